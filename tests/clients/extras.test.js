'use strict';
// Behaviour the libraries trigger beyond the basic flow: reconnects, settings
// carried over from the previous room, room limits, DMs, custom messages,
// quotas, malformed input, test rooms, unban and lobby overflow.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const H = require('./helpers');

const { waitFor, sync, collect } = H;
const T = { timeout: 20000 };

const server = H.serverPerFile();
const bot = (lib, label, opts = {}) => H.connectBot(lib, server().url, { label: `${lib}:${label}`, ...opts });

for (const lib of ['net', 'xt']) {
  test(`${lib}: the library reconnects after a dropped connection and rejoins its room`, T, async () => {
    const r = H.roomName(`${lib} reconnect`);
    const a = await bot('net', 'A', { channel: r });
    const b = await bot(lib, 'B', { channel: r });
    const A = a.c;
    const B = b.c;
    const oldId = b.hi.u._id;
    const byeA = waitFor(A, 'bye', (m) => m.p === oldId, undefined, 'bye of the dropped connection');
    const addedA = waitFor(A, 'participant added', (p) => p.id !== oldId && p.id !== a.hi.u._id, 5000, 'the reconnected bot');
    const hiAgain = waitFor(B, 'hi', () => true, 5000, 'second hi');
    const back = waitFor(B, 'ch', (m) => m.ch._id === r && m.p, 5000, 'rejoined room');
    B.ws.close(); // not stop(): the library treats this like a network drop
    await byeA;
    const [hi2] = await Promise.all([hiAgain, back]);
    const added = await addedA;
    assert.equal(added.id, hi2.u._id, 'new identity under --random-ids');
    assert.equal(B.channel._id, r);
    assert.equal(B.participantId, hi2.u._id);
    assert.equal(B.countParticipants(), 2);
    assert.equal(A.countParticipants(), 2);
  });
}

test('net: the previous room\'s settings sent with ch are filtered for a new room', T, async () => {
  // mpp-client-net resends the settings of the room it is in (here the lobby's,
  // lobby: true included) with every setChannel().
  const l = await bot('net', 'L', { channel: 'lobby' });
  const L = l.c;
  assert.equal(L.desiredChannelSettings.lobby, true);
  const r = H.roomName('net from lobby');
  const joined = waitFor(L, 'ch', (m) => m.ch._id === r && m.p);
  await H.sleep(550); // ch rate limit
  L.setChannel(r);
  const sent = JSON.parse(L.sent[L.sent.length - 1])[0];
  assert.equal(sent.set.lobby, true, 'library sent lobby: true');
  const ch = await joined;
  assert.equal(ch.ch.settings.lobby, undefined, 'lobby key dropped');
  assert.ok(ch.ch.crown && ch.ch.crown.participantId === l.hi.u._id, 'new normal room has a crown');
  assert.equal(L.isOwner(), true);
  assert.equal(L.getChannelSetting('color'), '#73b3cc', 'valid colour from set applied');
  assert.equal(L.getChannelSetting('color2'), '#273546');
  assert.equal(L.getChannelSetting('chat'), true);
});

test('xt: set on creation is filtered; an invisible room is not listed', T, async () => {
  const r = H.roomName('xt filtered');
  const set = { lobby: true, visible: false, chat: 'false', color: '#abc', owner_id: 'x', foo: 1, crownsolo: true };
  const a = await bot('xt', 'A', { channel: r, set });
  const A = a.c;
  assert.deepEqual(a.ch.ch.settings, { visible: false, chat: false, crownsolo: true, color: '#3b5054' });
  assert.equal(A.getChannelSetting('chat'), false);
  const s = await bot('xt', 'S');
  const ls = waitFor(s.c, 'ls', (m) => m.c === true);
  s.c.sendArray([{ m: '+ls' }]);
  assert.ok(!(await ls).u.some((e) => e._id === r), 'invisible room not listed');
  // chat: false drops chat.
  const none = collect(A, 'a');
  A.say('muted');
  await sync(A);
  assert.equal(none.stop().length, 0, 'no chat when chat is off');
});

test('net: a test/ room has no crown and ignores chown/chset', T, async () => {
  const t = await bot('net', 'T', { channel: 'test/clients' });
  const C = t.c;
  assert.equal(C.getChannelSetting('lobby'), true);
  assert.ok(!C.channel.crown);
  assert.deepEqual({ a: t.nq.allowance, m: t.nq.max }, { a: 200, m: 600 }, 'lobby quota in a test room');
  const none = collect(C, 'ch');
  C.chown(t.hi.u._id);
  C.chset({ color: '#000000' });
  await sync(C);
  assert.equal(none.stop().length, 0);
});

test('net: limit sends newcomers to test/awkward', T, async () => {
  const r = H.roomName('net limit');
  const a = await bot('net', 'A', { channel: r });
  const A = a.c;
  const limited = waitFor(A, 'ch', (m) => m.ch.settings.limit === 1);
  A.chset({ ...A.channel.settings, limit: '1' }); // the mppnet form sends a string
  await limited;
  const n = await H.connectBot('net', server().url, { label: 'net:N', channel: null });
  const N = n.c;
  const notice = waitFor(N, 'notification', () => true, undefined, 'refusal notice');
  const awk = waitFor(N, 'ch', (m) => m.p && m.ch._id === 'test/awkward', undefined, 'sent to test/awkward');
  const noP = collect(A, 'p');
  N.setChannel(r);
  await Promise.all([notice, awk]);
  await sync(N, A);
  assert.equal(noP.stop().length, 0, 'room did not see the refused user');
  assert.equal(N.channel._id, 'test/awkward');
});

test('net: dm reaches the recipient and the sender, not the room or the history', T, async () => {
  const r = H.roomName('net dm');
  const a = await bot('net', 'A', { channel: r });
  const b = await bot('net', 'B', { channel: r });
  const c = await bot('net', 'C', { channel: r });
  const aid = a.hi.u._id;
  const bid = b.hi.u._id;
  const toB = waitFor(b.c, 'dm', (m) => m.a === 'psst');
  const echo = waitFor(a.c, 'dm', (m) => m.a === 'psst');
  const third = collect(c.c, 'dm');
  a.c.sendArray([{ m: 'dm', _id: bid, message: 'psst' }]);
  const [d, e] = await Promise.all([toB, echo]);
  assert.equal(d.sender.id, aid);
  assert.equal(d.sender._id, aid);
  assert.equal(d.recipient._id, bid);
  assert.match(d.id, /^[0-9a-f]{8}$/);
  assert.equal(e.id, d.id);
  await sync(a.c, c.c);
  assert.equal(third.stop().length, 0, 'others do not get the dm');
  const late = await bot('net', 'D', { channel: r });
  assert.deepEqual(late.hist.c, [], 'dm not in history');
});

test('net: custom goes to +custom subscribers except the sender', T, async () => {
  const r = H.roomName('net custom');
  const a = await bot('net', 'A', { channel: r });
  const b = await bot('net', 'B', { channel: r });
  const c = await bot('net', 'C', { channel: r });
  for (const x of [a, b]) x.c.sendArray([{ m: '+custom' }]);
  await sync(a.c, b.c);
  const gotA = waitFor(a.c, 'custom', (m) => m.data && m.data.k === 1);
  const notB = collect(b.c, 'custom');
  const notC = collect(c.c, 'custom');
  b.c.sendArray([{ m: 'custom', data: { k: 1 }, target: { mode: 'subscribed' } }]);
  const got = await gotA;
  assert.equal(got.p, b.hi.u._id);
  await sync(b.c, c.c);
  assert.equal(notB.stop().length, 0, 'not to the sender');
  assert.equal(notC.stop().length, 0, 'not to non-subscribers');
});

test('xt: note quota in a test room caps a burst', T, async () => {
  const r = 'test/quota';
  const a = await bot('xt', 'A', { channel: r });
  const b = await bot('xt', 'B', { channel: r });
  let received = 0;
  b.c.on('n', (m) => { if (m.p === a.hi.u._id) received += m.n.length; });
  // 10 messages of 100 notes: the lobby quota (max 600) lets about 600 through.
  for (let i = 0; i < 10; i++) {
    const n = [];
    for (let k = 0; k < 100; k++) n.push({ n: 'c4', v: 0.5, d: k });
    a.c.sendArray([{ m: 'n', t: Date.now(), n }]);
  }
  await sync(a.c, b.c);
  assert.ok(received >= 600 && received <= 800, `received ${received} notes of 1000 (max 600, tolerance 200)`);
});

test('net: malformed frames are ignored and the session continues', T, async () => {
  const r = H.roomName('net junk');
  const a = await bot('net', 'A', { channel: r });
  const b = await bot('net', 'B', { channel: r });
  const A = a.c;
  A.ws.send(Buffer.from([1, 2, 3]), { binary: true });
  A.ws.send('not json');
  A.ws.send('{"m":"a","message":"object, not array"}');
  A.ws.send('[1, "x", null, {"m": 5}, {"m":"no such message"}, {"m":"a","message":"after junk"}]');
  const got = waitFor(b.c, 'a', (m) => m.a === 'after junk');
  const noObj = collect(b.c, 'a', (m) => m.a === 'object, not array');
  await got;
  await sync(A, b.c);
  assert.equal(noObj.stop().length, 0);
  assert.equal(A.isConnected(), true);
  // t without e is answered without e.
  const pong = waitFor(A, 't', (m) => m.e === undefined && typeof m.t === 'number');
  A.sendArray([{ m: 't' }]);
  await pong;
});

test('xt: non-holder chat is limited to 4 per 6 s', T, async () => {
  const r = H.roomName('xt chat rate');
  const a = await bot('xt', 'A', { channel: r });
  const b = await bot('xt', 'B', { channel: r });
  const got = collect(a.c, 'a', (m) => m.p.id === b.hi.u._id);
  for (let i = 0; i < 6; i++) b.c.say(`msg ${i}`);
  await sync(b.c, a.c);
  assert.deepEqual(got.stop().map((m) => m.a), ['msg 0', 'msg 1', 'msg 2', 'msg 3']);
});

test('xt: unban lets a kickbanned user back in', T, async () => {
  const r = H.roomName('xt unban');
  const a = await bot('xt', 'A', { channel: r });
  const b = await bot('xt', 'B', { channel: r });
  const joinedAt = Date.now();
  const bid = b.hi.u._id;
  const moved = waitFor(b.c, 'ch', (m) => m.ch._id === 'test/awkward');
  a.c.kickBan(bid, 600000);
  await moved;
  a.c.sendArray([{ m: 'unban', _id: bid }]);
  await sync(a.c);
  await H.sleep(Math.max(0, joinedAt + 550 - Date.now()));
  const back = waitFor(b.c, 'ch', (m) => m.ch._id === r && m.p);
  const seen = waitFor(a.c, 'participant added', (p) => p.id === bid);
  b.c.setChannel(r);
  await Promise.all([back, seen]);
});

test('xt: the 21st bot in a full lobby is moved to the next number', T, async () => {
  const base = 'lobby70';
  const bots = [];
  for (let i = 0; i < 20; i++) {
    bots.push(await bot('xt', `L${i}`, { channel: base }));
  }
  assert.equal(bots[19].ch.ch.count, 20);
  const extra = await H.connectBot('xt', server().url, { label: 'xt:L20', channel: null });
  const moved = waitFor(extra.c, 'ch', (m) => m.p, undefined, 'join of the 21st');
  extra.c.setChannel(base);
  const ch = await moved;
  assert.equal(ch.ch._id, 'lobby71');
  assert.equal(extra.c.channel._id, 'lobby71');
});

test('net: lengths count UTF-16 units, not bytes', T, async () => {
  const r = H.roomName('net lengths');
  const a = await bot('net', 'A', { channel: r });
  const b = await bot('net', 'B', { channel: r });
  const A = a.c;
  const long = '\ud83c\udfb9'.repeat(256); // 512 UTF-16 units, 1024 UTF-8 bytes
  const got = waitFor(b.c, 'a', (m) => m.a === long, undefined, '512-unit chat');
  A.sendChat(long);
  await got;
  const tooLong = collect(b.c, 'a');
  A.sendChat(`${long}x`);
  await sync(A, b.c);
  assert.equal(tooLong.stop().length, 0, '513 units refused');
  const name = '\u266b'.repeat(20) + '\ud83c\udfb9'.repeat(10); // 40 units
  const renamed = waitFor(b.c, 'participant update', (p) => p.id === a.hi.u._id && p.name === name, undefined, '40-unit name');
  A.setName(name);
  await renamed;
  const noRename = collect(b.c, 'p');
  A.setName(`${name}x`);
  await sync(A, b.c);
  assert.equal(noRename.stop().length, 0, '41-unit name refused');
});

test('xt: kickban above the maximum is clamped to 60 minutes', T, async () => {
  const r = H.roomName('xt clamp');
  const a = await bot('xt', 'A', { channel: r });
  const b = await bot('xt', 'B', { channel: r });
  const notice = waitFor(b.c, 'notification', (m) => /^Banned from/.test(m.text));
  a.c.kickBan(b.hi.u._id, 10 * 3600000);
  assert.equal((await notice).text, `Banned from "${r}" for 60 minutes.`);
});

test('net: a room turned invisible gets one last ls entry with visible: false', T, async () => {
  const r = H.roomName('net hide');
  const a = await bot('net', 'A', { channel: r });
  const s = await bot('net', 'S');
  const full = waitFor(s.c, 'ls', (m) => m.c === true);
  s.c.sendArray([{ m: '+ls' }]);
  assert.ok((await full).u.some((e) => e._id === r));
  const hidden = waitFor(s.c, 'ls', (m) => m.u.some((e) => e._id === r && e.settings.visible === false), undefined, 'visible: false entry');
  a.c.chset({ ...a.c.channel.settings, visible: false });
  await hidden;
  const again = waitFor(s.c, 'ls', (m) => m.c === true);
  s.c.sendArray([{ m: '+ls' }]);
  assert.ok(!(await again).u.some((e) => e._id === r), 'hidden room absent from a full list');
});

test('xt: note fields are normalised', T, async () => {
  const r = H.roomName('xt note fields');
  const a = await bot('xt', 'A', { channel: r });
  const b = await bot('xt', 'B', { channel: r });
  const t = Date.now() + 0.5;
  const got = waitFor(b.c, 'n', (m) => m.t === t);
  a.c.sendArray([{ m: 'n', t, n: [
    { n: 'a1', v: -2, extra: true }, { n: 'a1', s: true, d: -5 }, { n: 'b1', v: 'loud' },
    { n: 'c2', d: 'soon' }, { n: 'x'.repeat(17) }, 'c3',
  ] }]);
  const m = await got;
  assert.deepEqual(m.n, [{ n: 'a1', v: 0 }, { n: 'a1', s: 1, d: 0 }, { n: 'b1' }]);
});

test('xt: upgrade on the classic path /ws with a query string', T, async () => {
  const url = `${server().url}/ws?v=1`;
  const a = await H.connectBot('xt', url, { label: 'xt:path', channel: 'lobby' });
  assert.equal(a.c.channel._id, 'lobby');
});

test('net: ping frames get pongs; a second hi is ignored', T, async () => {
  const a = await bot('net', 'A', { channel: H.roomName('net ping') });
  const A = a.c;
  const pong = new Promise((resolve) => A.ws.once('pong', (d) => resolve(String(d))));
  A.ws.ping('abc');
  assert.equal(await pong, 'abc');
  const hiAgain = collect(A, 'hi');
  A.sendArray([{ m: 'hi' }]);
  await sync(A);
  assert.equal(hiAgain.stop().length, 0, 'repeated hi ignored');
  assert.equal(A.channel._id.startsWith('net ping'), true, 'still in the room');
});

test('net: oversized message closes with 1009, invalid UTF-8 with 1007', T, async () => {
  const a = await bot('net', 'A');
  a.c.canConnect = false;
  const closed = waitFor(a.c, 'disconnect', () => true, 5000, 'close after oversized frame');
  a.c.ws.send(`[{"m":"a","message":"${'x'.repeat((1 << 20) + 10)}"}]`);
  await closed;
  assert.equal(a.c.closeCode, 1009);

  const b = await bot('net', 'B');
  b.c.canConnect = false;
  const closedB = waitFor(b.c, 'disconnect', () => true, 5000, 'close after invalid UTF-8');
  b.c.ws.send(Buffer.from([0x5b, 0x22, 0xff, 0xfe, 0x22, 0x5d]), { binary: false });
  await closedB;
  assert.equal(b.c.closeCode, 1007);
});

test('xt: cursor values are validated; the mover gets no echo', T, async () => {
  const r = H.roomName('xt cursor checks');
  const a = await bot('xt', 'A', { channel: r });
  const b = await bot('xt', 'B', { channel: r });
  const aid = a.hi.u._id;
  const own = collect(a.c, 'm');
  const bad = collect(b.c, 'm', (m) => m.id === aid);
  a.c.moveMouse('abc', '10');
  a.c.moveMouse(null, 5);
  a.c.sendArray([{ m: 'm', x: '1e999', y: '1' }]);
  await H.sleep(120); // longer than the server's cursor coalescing interval
  await sync(a.c, b.c);
  assert.deepEqual(bad.stop(), [], 'invalid cursors not broadcast');
  const good = waitFor(b.c, 'm', (m) => m.id === aid && m.x === '5.25' && m.y === '7.00');
  a.c.moveMouse('5.25', '7');
  await good;
  await sync(a.c);
  assert.equal(own.stop().length, 0, 'no echo of own cursor (SHOULD)');
});

test('xt: holder chown to an absent id drops the crown; self-kickban drops it too', T, async () => {
  const r = H.roomName('xt crown edge');
  const a = await bot('xt', 'A', { channel: r });
  const b = await bot('xt', 'B', { channel: r });
  const aid = a.hi.u._id;
  const dropped = waitFor(b.c, 'ch', (m) => m.ch.crown && !m.ch.crown.participantId, undefined, 'drop via absent id');
  a.c.chown('0123456789abcdef01234567');
  await dropped;
  const back = waitFor(b.c, 'ch', (m) => m.ch.crown && m.ch.crown.participantId === aid);
  a.c.chown(aid);
  await back;
  const cert = waitFor(b.c, 'notification', (m) => m.title === 'Certificate of Award', undefined, 'self-ban certificate');
  const drop2 = waitFor(b.c, 'ch', (m) => m.ch.crown && !m.ch.crown.participantId && m.ch.crown.userId === aid, undefined, 'drop on self-ban');
  const moved = waitFor(a.c, 'ch', (m) => m.ch._id === 'test/awkward');
  a.c.kickBan(aid, 60000);
  const [c] = await Promise.all([cert, drop2, moved]);
  assert.equal(c.text, 'Let it be known that Anonymous kickbanned him/her self.');
});

test('net: ls marks banned only for the banned user; absent users can be banned', T, async () => {
  const r = H.roomName('net ban absent');
  const a = await bot('net', 'A', { channel: r });
  const x = await bot('net', 'X');
  a.c.sendArray([{ m: 'kickban', _id: x.hi.u._id, ms: 60000 }]);
  await sync(a.c);
  const lsX = waitFor(x.c, 'ls', (m) => m.c === true);
  x.c.sendArray([{ m: '+ls' }]);
  assert.equal((await lsX).u.find((e) => e._id === r).banned, true);
  const lsA = waitFor(a.c, 'ls', (m) => m.c === true);
  a.c.sendArray([{ m: '+ls' }]);
  assert.equal((await lsA).u.find((e) => e._id === r).banned, undefined);
  const refused = waitFor(x.c, 'notification', (m) => /^Currently banned from/.test(m.text));
  const awk = waitFor(x.c, 'ch', (m) => m.ch._id === 'test/awkward' && m.p);
  x.c.setChannel(r);
  await Promise.all([refused, awk]);
});

test('xt: a name set before joining shows in the room; chat before joining is ignored', T, async () => {
  const x = await bot('xt', 'X');
  x.c.userset({ name: 'Early' });
  x.c.say('nowhere');
  await sync(x.c);
  const r = H.roomName('xt early name');
  const joined = waitFor(x.c, 'ch', (m) => m.ch._id === r && m.p);
  x.c.setChannel(r);
  const ch = await joined;
  assert.equal(ch.ppl.find((p) => p.id === x.hi.u._id).name, 'Early');
  assert.equal(x.c.getOwnParticipant().name, 'Early');
  assert.deepEqual(ch.ppl.length, 1);
});

test('net: ch to the room the bot is already in keeps the library state intact', T, async () => {
  const r = H.roomName('net same room');
  const a = await bot('net', 'A', { channel: r });
  const b = await bot('net', 'B', { channel: r });
  await H.sleep(550); // ch rate limit
  const noP = collect(a.c, 'p');
  b.c.setChannel(r);
  await sync(b.c, a.c);
  assert.equal(noP.stop().length, 0, 'no second p for the room');
  assert.equal(b.c.countParticipants(), 2);
  assert.equal(a.c.countParticipants(), 2);
  assert.equal(b.c.channel._id, r);
});
