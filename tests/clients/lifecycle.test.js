'use strict';
// Server-side closes as the libraries see them: ping timeout and shutdown.
// Each test starts its own server.

const { test, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const H = require('./helpers');

const { waitFor } = H;
const T = { timeout: 20000 };

afterEach(async () => { await H.disconnectAll(); });

for (const lib of ['net', 'xt']) {
  test(`${lib}: no t within the ping timeout closes with 4004; the library reconnects`, T, async () => {
    const server = await H.startServer(['--ping-timeout-ms', '800']);
    try {
      // Both libraries ping only every 20 s.
      const a = await H.connectBot(lib, server.url, { label: `${lib}:idle`, channel: 'lobby' });
      const closed = waitFor(a.c, 'disconnect', () => true, 4000, 'ping timeout');
      const again = waitFor(a.c, 'hi', () => true, 4000, 'hi after reconnect');
      await closed;
      assert.equal(a.c.closeCode, 4004);
      assert.equal(a.c.closeReason, 'Timed out.');
      await again;
      a.c.canConnect = false;
    } finally {
      await H.disconnectAll();
      await server.stop();
    }
  });
}

// PROTOCOL.md 11: shutdown (SIGTERM) closes every connection with 4000 "Server closing.".
test('xt: SIGTERM shuts the server down with close 4000 to clients', T, async () => {
  const server = await H.startServer();
  const a = await H.connectBot('xt', server.url, { label: 'xt:shutdown', channel: 'lobby' });
  a.c.canConnect = false;
  const closed = waitFor(a.c, 'disconnect', () => true, 4000, 'close on shutdown');
  const exit = server.stop();
  await closed;
  assert.equal(a.c.closeCode, 4000);
  assert.equal(a.c.closeReason, 'Server closing.');
  const res = await exit;
  assert.equal(res.code, 0, `exit ${JSON.stringify(res)}`);
});
