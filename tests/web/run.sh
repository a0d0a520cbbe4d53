#!/bin/sh
# Runs the web client's tests: the note batching and quota logic under Node's test runner, then
# two pages of the built-in client in headless Chromium against the mppd binary.
# Env: MPPD_BIN (default ../../target/debug/mppd relative to this directory), CHROMIUM (default
# /usr/bin/chromium), MPPD_TEST_WAIT_MS (per-step wait, default 10000).
# Screenshots: target/web-client/page-a.png and page-b.png.
set -eu
cd "$(dirname "$0")"
node --test --test-force-exit notes.test.js midi.test.js
chromium="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  echo "SKIPPED: web client in a browser: no Chromium at $chromium"
  exit 0
fi
if [ ! -d node_modules ]; then
  npm ci --no-audit --no-fund
fi
exec node --test --test-concurrency=1 --test-force-exit browser.test.js
