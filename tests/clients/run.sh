#!/bin/sh
# Runs the real-client test suite against an mppd binary.
# Usage: tests/clients/run.sh [test files...]
# Env: MPPD_BIN (default ../../target/debug/mppd relative to this directory),
#      MPPD_LOG_LEVEL (default warn), MPPD_SHOW_LOG=1 to print the server log,
#      MPPD_TEST_WAIT_MS (per-event wait, default 3000), MPPD_SLOW=1 (15 s crown rule,
#      history cap).
set -eu
cd "$(dirname "$0")"
if [ ! -d node_modules ]; then
  npm ci --no-audit --no-fund
fi
if [ "$#" -eq 0 ]; then
  set -- net.test.js xt.test.js mixed.test.js extras.test.js lifecycle.test.js slow.test.js
fi
exec node --test --test-concurrency=1 --test-force-exit "$@"
