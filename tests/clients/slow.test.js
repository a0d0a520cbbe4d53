'use strict';
// Tests that need real waiting (the 15 s crown rule, filling the chat history).
// Skipped unless MPPD_SLOW=1; about 25 s together.

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const H = require('./helpers');

const { waitFor, sync, collect } = H;
const SLOW = !!process.env.MPPD_SLOW;
const T = { timeout: 40000, skip: SLOW ? false : 'set MPPD_SLOW=1 to run' };

let server;
before(async () => { if (SLOW) server = await H.startServer(); });
afterEach(async () => { await H.disconnectAll(); });
after(async () => { await H.disconnectAll(); if (server) await server.stop(); });

test('net: anyone may pick up a dropped crown 15 s after it fell', T, async () => {
  const r = H.roomName('net pickup');
  const a = await H.connectBot('net', server.url, { label: 'net:A', channel: r });
  const b = await H.connectBot('net', server.url, { label: 'net:B', channel: r });
  const bid = b.hi.u._id;
  const dropP = waitFor(b.c, 'ch', (m) => m.ch.crown && !m.ch.crown.participantId);
  a.c.chown();
  const drop = await dropP;
  const fellAt = drop.ch.crown.time;
  // Just before 15 s: refused.
  await H.sleep(Math.max(0, fellAt + 14000 - Date.now()));
  const early = collect(b.c, 'ch');
  b.c.chown(bid);
  await sync(b.c);
  assert.equal(early.stop().length, 0, 'pickup before 15 s refused');
  await H.sleep(Math.max(0, fellAt + 15300 - Date.now()));
  const taken = waitFor(a.c, 'ch', (m) => m.ch.crown && m.ch.crown.participantId === bid);
  b.c.chown(bid);
  await taken;
  await sync(b.c);
  assert.equal(b.c.isOwner(), true);
});

test('xt: chat history keeps the last 32 messages', T, async () => {
  const r = H.roomName('xt history');
  const a = await H.connectBot('xt', server.url, { label: 'xt:A', channel: r });
  // The crown holder may chat 10 per 2 s.
  for (let i = 0; i < 34; i++) {
    if (i > 0 && i % 10 === 0) await H.sleep(2100);
    a.c.say(`m${i}`);
  }
  await waitFor(a.c, 'a', (m) => m.a === 'm33', 5000);
  const b = await H.connectBot('xt', server.url, { label: 'xt:B', channel: r });
  const texts = b.hist.c.map((m) => m.a);
  assert.equal(texts.length, 32);
  assert.equal(texts[0], 'm2');
  assert.equal(texts[31], 'm33');
});
