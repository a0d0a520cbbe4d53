'use strict';
// One bot of each library in the same room: each sees the other through its own API.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const H = require('./helpers');

const { waitFor, sync, collect } = H;
const T = { timeout: 20000 };

const server = H.serverPerFile();

test('net and xt bots share a room', T, async () => {
  const r = H.roomName('mixed');
  const n = await H.connectBot('net', server().url, { channel: r, label: 'net' });
  const addedOnNet = waitFor(n.c, 'participant added', (p) => p.id !== n.hi.u._id);
  const x = await H.connectBot('xt', server().url, { channel: r, label: 'xt' });
  const N = n.c;
  const X = x.c;
  const nid = n.hi.u._id;
  const xid = x.hi.u._id;
  assert.equal((await addedOnNet).id, xid);
  assert.equal(X.ppl[nid].id, nid);
  assert.equal(X.channel.crown.participantId, nid);

  // Chat both ways.
  let got = waitFor(X, 'a', (m) => m.a === 'from net');
  N.sendChat('from net');
  assert.equal((await got).p.id, nid);
  got = waitFor(N, 'a', (m) => m.a === 'from xt');
  X.say('from xt');
  assert.equal((await got).p.id, xid);

  // Notes both ways, through each library's note buffer.
  got = waitFor(X, 'n', (m) => m.p === nid);
  N.startNote('c4', 0.6);
  const fromNet = await got;
  assert.deepEqual(fromNet.n, [{ n: 'c4', v: 0.6 }]);
  got = waitFor(N, 'n', (m) => m.p === xid);
  X.startNote('d4', 0.4);
  const fromXt = await got;
  assert.deepEqual(fromXt.n, [{ n: 'd4', v: 0.4 }]);

  // Renames are seen by the other library.
  got = waitFor(N, 'participant update', (p) => p.id === xid && p.name === 'classic');
  X.setName('classic');
  await got;
  assert.equal(N.ppl[xid].name, 'classic');
  got = waitFor(X, 'participant update', (p) => p.id === nid && p.name === 'dotnet');
  N.setName('dotnet');
  await got;
  assert.equal(X.ppl[nid].name, 'dotnet');

  // Crown from net to xt.
  got = waitFor(X, 'ch', (m) => m.ch.crown && m.ch.crown.participantId === xid);
  N.chown(xid);
  await got;
  await sync(N);
  assert.equal(X.isOwner(), true);
  assert.equal(N.isOwner(), false);

  // xt leaves; net sees it go.
  got = waitFor(N, 'participant removed', (p) => p.id === xid);
  const noMore = collect(N, 'a');
  await H.disconnect(X);
  await got;
  assert.equal(N.countParticipants(), 1);
  assert.equal(noMore.stop().length, 0);
});
