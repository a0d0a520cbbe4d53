'use strict';
// The scenario list run once per client library (net.test.js, xt.test.js).
// Every step asserts what the library reports to its user: its events and its
// participant / channel state, not only the raw frames.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const H = require('./helpers');

const { waitFor, sync, collect, HEX24, COLOR } = H;
const T = { timeout: 20000 };

const ROOM_DEFAULTS = { visible: true, chat: true, crownsolo: false, color: '#3b5054' };
const NQ_LOBBY = { allowance: 200, max: 600, maxHistLen: 3 };
const NQ_NORMAL = { allowance: 400, max: 1200, maxHistLen: 3 };
const NQ_CROWN = { allowance: 600, max: 1800, maxHistLen: 3 };

function nqParams(m) {
  return { allowance: m.allowance, max: m.max, maxHistLen: m.maxHistLen };
}

// Waits long enough since `since` for the server's `ch` rate limit
// (1 per 500 ms per connection, PROTOCOL.md 8.3) to allow another `ch`.
async function chRateGap(since) {
  const wait = since + 550 - Date.now();
  if (wait > 0) await H.sleep(wait);
}

function assertCrownShape(crown) {
  assert.ok(crown, 'crown present');
  assert.equal(typeof crown.time, 'number', 'crown.time is a number');
  assert.ok(Math.abs(crown.time - Date.now()) < 60000, `crown.time ${crown.time} is server ms`);
  for (const k of ['startPos', 'endPos']) {
    assert.equal(typeof crown[k], 'object', `crown.${k} present`);
    assert.equal(typeof crown[k].x, 'number', `crown.${k}.x is a number`);
    assert.equal(typeof crown[k].y, 'number', `crown.${k}.y is a number`);
  }
}

function assertNoLibErrors(...clients) {
  for (const c of clients) {
    assert.deepEqual(c.errors || [], [], `${c.label}: library reported errors`);
  }
}

function defineSuite(lib) {
  const L = H.LIBS[lib];
  const server = H.serverPerFile();
  const bot = (label, opts = {}) => H.connectBot(lib, server().url, { label: `${lib}:${label}`, ...opts });
  // Two bots of this library, A then B, in a fresh room.
  const pair = async (name) => {
    const r = room(name);
    const a = await bot('A', { channel: r });
    const b = await bot('B', { channel: r });
    return { r, a, b, A: a.c, B: b.c };
  };
  const room = (what) => H.roomName(`${lib} ${what}`);

  test(`${lib}: connect, b before hi, hi and pong reported`, T, async () => {
    const { c, hi } = await bot('solo');
    assert.equal(c.events[0], 'b', `first message is b (events: ${c.events.join(',')})`);
    assert.equal(typeof c.bMsg.code, 'string', 'b carries code');
    assert.ok(c.events.indexOf('hi') > 0, 'hi follows b');
    assert.equal(c.isConnected(), true);
    assert.ok(hi.u, 'hi.u present');
    assert.match(hi.u._id, HEX24, 'hi.u._id is 24 hex');
    assert.equal(hi.u.name, 'Anonymous');
    assert.match(hi.u.color, COLOR);
    assert.equal(typeof hi.t, 'number');
    assert.ok(Math.abs(hi.t - Date.now()) < 10000, 'hi.t is server time in ms');
    assert.equal(typeof hi.permissions, 'object');
    assert.equal(c.user, hi.u, 'library stores hi.u as its user');
    assert.equal(c.channel, undefined, 'not in a channel before ch');

    // Pong echoes e unchanged, fractions included (4.4).
    const pong = waitFor(c, 't', (m) => m.e === 1234.5);
    c.sendArray([{ m: 't', e: 1234.5 }]);
    const t = await pong;
    assert.equal(typeof t.t, 'number');
    assert.ok(Math.abs(t.t - Date.now()) < 10000);
    assertNoLibErrors(c);
  });

  test(`${lib}: join a lobby`, T, async () => {
    const { c, ch, hist, nq } = await bot('lobby', { channel: 'lobby' });
    assert.equal(c.channel._id, 'lobby');
    assert.equal(ch.ch.id, 'lobby', 'ch.ch.id present');
    assert.equal(c.getChannelSetting('lobby'), true);
    assert.equal(c.getChannelSetting('color'), '#73b3cc');
    assert.equal(c.getChannelSetting('color2'), '#273546');
    assert.equal(c.getChannelSetting('chat'), true);
    assert.ok(!c.channel.crown, 'no crown in a lobby');
    assert.ok(!c.isOwner());
    assert.ok(hist && Array.isArray(hist.c), 'c (history) after ch');
    assert.ok(nq, 'nq after joining');
    assert.deepEqual(nqParams(nq), NQ_LOBBY);
    assert.ok(c.ppl[c.participantId], 'own participant in ppl');
    assertNoLibErrors(c);
  });

  test(`${lib}: create a room, get its crown, see another bot join`, T, async () => {
    const r = room('join');
    const a = await bot('A', { channel: r });
    const A = a.c;
    const aid = a.hi.u._id;
    assert.equal(a.ch.p, aid, 'ch.p is own participant id');
    assert.equal(A.participantId, aid, 'participant id = user id');
    assert.equal(A.channel._id, r);
    assert.equal(a.ch.ch.id, r, 'ch.ch.id present');
    assert.equal(a.ch.ch.count, 1);
    for (const [k, v] of Object.entries(ROOM_DEFAULTS)) {
      assert.equal(A.getChannelSetting(k), v, `default setting ${k}`);
    }
    assert.equal(A.getChannelSetting('lobby'), undefined, 'no lobby key in a normal room');
    assert.equal(A.getChannelSetting('color2'), undefined, 'no color2 in a new room');
    assertCrownShape(A.channel.crown);
    assert.equal(A.channel.crown.userId, aid);
    assert.equal(A.channel.crown.participantId, aid);
    assert.equal(A.isOwner(), true, 'creator is owner');
    assert.equal(A.preventsPlaying(), false);
    assert.ok(a.hist, 'c (history) after ch');
    assert.deepEqual(a.hist.c, [], 'empty history in a new room');
    assert.ok(a.nq, 'nq after joining');
    assert.deepEqual(nqParams(a.nq), NQ_CROWN, 'creator holds the crown: crown-holder quota');
    assert.equal(A.countParticipants(), 1);
    const me = A.getOwnParticipant();
    assert.equal(me.id, aid);
    assert.equal(me._id, aid);
    assert.equal(me.name, 'Anonymous');
    assert.equal(me.x, 200, 'never-moved cursor x is the number 200');
    assert.equal(me.y, 100, 'never-moved cursor y is the number 100');

    const pP = waitFor(A, 'p', (m) => m.id !== aid, undefined, 'p for B');
    const addedP = waitFor(A, 'participant added', (p) => p.id !== aid);
    const b = await bot('B', { channel: r });
    const B = b.c;
    const bid = b.hi.u._id;
    const [p, added] = await Promise.all([pP, addedP]);
    assert.equal(p.id, bid);
    assert.equal(p._id, bid);
    assert.equal(p.name, 'Anonymous');
    assert.match(p.color, COLOR);
    assert.equal(p.x, 200);
    assert.equal(p.y, 100);
    assert.equal(added.id, bid, "library emitted 'participant added'");
    assert.equal(A.countParticipants(), 2);
    assert.equal(A.ppl[bid].color, b.hi.u.color);

    assert.equal(b.ch.ch.count, 2);
    assert.equal(b.ch.ppl.length, 2, 'ppl complete');
    assert.equal(B.countParticipants(), 2);
    assert.equal(B.ppl[aid].name, 'Anonymous');
    assert.equal(B.channel.crown.participantId, aid);
    assert.equal(B.isOwner(), false);
    assert.ok(b.nq, 'nq after joining');
    assert.deepEqual(nqParams(b.nq), NQ_NORMAL, 'non-holder gets the normal-room quota');
    // A's own join produced no p about itself for A.
    assert.ok(!A.events.slice(0, A.events.indexOf('c')).includes('p'));
    assertNoLibErrors(A, B);
  });

  test(`${lib}: chat with echo, reply and history`, T, async () => {
    const { r, a, b, A, B } = await pair('chat');
    const aid = a.hi.u._id;
    const text = 'hello \u00e9\u266a \ud83c\udfb9';
    const onA = waitFor(A, 'a', (m) => m.a === text, undefined, 'own chat echo');
    const onB = waitFor(B, 'a', (m) => m.a === text, undefined, 'chat from A');
    L.say(A, text);
    const [ea, eb] = await Promise.all([onA, onB]);
    for (const m of [ea, eb]) {
      assert.equal(m.m, 'a');
      assert.match(m.id, /^[0-9a-f]{8}$/);
      assert.equal(typeof m.t, 'number');
      assert.equal(m.p.id, aid);
      assert.equal(m.p._id, aid);
      assert.equal(m.p.name, 'Anonymous');
      assert.match(m.p.color, COLOR);
      assert.equal(m.r, undefined, 'no r without reply_to');
    }
    assert.equal(ea.id, eb.id, 'same message id for everyone');

    const rA = waitFor(A, 'a', (m) => m.a === 'a reply', undefined, 'reply');
    B.sendArray([{ m: 'a', message: 'a reply', reply_to: ea.id }]);
    const reply = await rA;
    assert.equal(reply.r, ea.id, 'reply_to comes back as r');
    assert.equal(reply.p.id, b.hi.u._id);

    // Invalid chat (newline, empty, over 512) is dropped silently.
    const bad = collect(A, 'a');
    L.say(B, 'line1\nline2');
    L.say(B, '   ');
    await sync(B, A);
    assert.equal(bad.stop().length, 0, 'invalid chat dropped');

    const c = await bot('C', { channel: r });
    assert.ok(c.hist, 'c (history) after ch');
    const hist = c.hist.c;
    assert.ok(Array.isArray(hist));
    assert.deepEqual(hist.map((m) => m.a), [text, 'a reply'], 'history oldest first');
    for (const m of hist) {
      assert.equal(m.m, 'a', 'history entries carry m: a');
      assert.ok(m.p && m.p._id && m.p.id && m.p.name && m.p.color, 'history entries carry p');
    }
    assert.equal(hist[0].id, ea.id);
    assertNoLibErrors(A, B, c.c);
  });

  test(`${lib}: notes keep t and d, not echoed to the sender`, T, async () => {
    const { r, a, b, A, B } = await pair('notes');
    const bid = b.hi.u._id;
    const ownNotes = collect(B, 'n');

    // Through the library: it buffers notes and flushes every 200 ms, with
    // `t` = first note time + server offset and `d` relative to it.
    const got = [];
    let total = 0;
    const allNotes = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`library notes not all received: ${JSON.stringify(got)}\n${H.describeClient(A)}\n${H.describeClient(B)}`)), 3000);
      A.on('n', (m) => {
        if (m.p !== bid) return;
        got.push(m);
        total += m.n.length;
        if (total >= 3) { clearTimeout(timer); resolve(); }
      });
    });
    B.startNote('a1', 0.5);
    B.startNote('cs3', 0.75);
    await H.sleep(60); // gives the release a non-zero d
    B.stopNote('a1');
    await allNotes;
    const sentN = B.sent.map((s) => JSON.parse(s)).flat().filter((m) => m.m === 'n');
    assert.equal(got.length, sentN.length, 'one n per flushed buffer');
    for (let i = 0; i < got.length; i++) {
      assert.equal(got[i].t, sentN[i].t, 't passed through unchanged');
      assert.deepEqual(got[i].n, sentN[i].n, 'notes passed through unchanged (incl. d)');
    }
    const flat = got.map((m) => m.n).flat();
    assert.deepEqual(flat.map((n) => n.n), ['a1', 'cs3', 'a1']);
    assert.equal(flat[0].v, 0.5);
    assert.equal(flat[2].s, 1);

    // Raw frame: fractional t, d above 200, velocity above 1 clamped, junk note dropped.
    const t = Date.now() + 0.25;
    const rawP = waitFor(A, 'n', (m) => m.t === t, undefined, 'raw n');
    B.sendArray([{ m: 'n', t, n: [{ n: 'c4', v: 0.7 }, { n: 'c4', s: 1, d: 350 }, { n: 'e4', v: 1.5, d: 10 }, { x: 1 }] }]);
    const raw = await rawP;
    assert.equal(raw.p, bid);
    assert.deepEqual(raw.n, [{ n: 'c4', v: 0.7 }, { n: 'c4', s: 1, d: 350 }, { n: 'e4', v: 1, d: 10 }]);

    await sync(A, B);
    assert.equal(ownNotes.stop().length, 0, 'sender does not get its own notes back');
    assertNoLibErrors(A, B);
  });

  test(`${lib}: cursor moves reach the others and the library's participant map`, T, async () => {
    const { r, a, b, A, B } = await pair('cursor');
    const aid = a.hi.u._id;
    const mP = waitFor(B, 'm', (m) => m.id === aid, undefined, 'cursor of A');
    L.cursor(A, 25.5, 63.25);
    const m = await mP;
    assert.equal(m.x, '25.50', 'x as a two-decimal string');
    assert.equal(m.y, '63.25', 'y as a two-decimal string');
    assert.equal(B.ppl[aid].x, '25.50');
    assert.equal(B.ppl[aid].y, '63.25');

    // A burst is coalesced, never losing the last position.
    const lastP = waitFor(B, 'm', (mm) => mm.id === aid && mm.x === '14.00', undefined, 'last cursor of a burst');
    for (let i = 10; i <= 14; i++) L.cursor(A, i, 50);
    await lastP;
    await sync(A, B);
    assert.equal(B.ppl[aid].x, '14.00');
    assert.equal(B.ppl[aid].y, '50.00');

    const c = await bot('C', { channel: r });
    const inPpl = c.ch.ppl.find((p) => p.id === aid);
    assert.equal(inPpl.x, '14.00', 'ppl carries the stored cursor');
    assert.equal(c.c.ppl[aid].y, '50.00');
    assertNoLibErrors(A, B, c.c);
  });

  test(`${lib}: userset changes name and colour for everyone, sender included`, T, async () => {
    const { r, a, b, A, B } = await pair('userset');
    const aid = a.hi.u._id;
    const name = 'Alice \u266a';
    const onA = waitFor(A, 'participant update', (p) => p.id === aid && p.name === name, undefined, 'own update');
    const onB = waitFor(B, 'p', (p) => p.id === aid && p.name === name, undefined, 'update of A');
    L.userset(A, { name, color: '#FF8FF9' });
    const [ownPart, pB] = await Promise.all([onA, onB]);
    assert.equal(pB._id, aid);
    assert.equal(pB.color, '#ff8ff9', 'colour stored lowercase');
    assert.equal(ownPart.color, '#ff8ff9');
    assert.equal(A.getOwnParticipant().name, name);
    assert.equal(B.ppl[aid].name, name);
    assert.equal(B.ppl[aid].color, '#ff8ff9');

    // Invalid values are ignored, each independently.
    const none = collect(B, 'p', (p) => p.id === aid);
    L.userset(A, { name: 'x'.repeat(41), color: '#fff' });
    await sync(A, B);
    assert.equal(none.stop().length, 0, 'invalid userset ignored');
    const onlyColor = waitFor(B, 'p', (p) => p.id === aid && p.color === '#123456');
    L.userset(A, { name: 'bad\nname', color: '#123456' });
    const p2 = await onlyColor;
    assert.equal(p2.name, name, 'invalid name skipped, valid colour applied');

    // The new name shows in chat.
    const chat = waitFor(B, 'a', (m) => m.a === 'renamed');
    L.say(A, 'renamed');
    assert.equal((await chat).p.name, name);
    assertNoLibErrors(A, B);
  });

  test(`${lib}: +ls lists rooms and pushes changes`, T, async () => {
    const r = room('listed');
    const a = await bot('A', { channel: r });
    const aid = a.hi.u._id;
    const s = await bot('S');
    const S = s.c;
    const full = waitFor(S, 'ls', (m) => m.c === true, undefined, 'full list');
    S.sendArray([{ m: '+ls' }]);
    const ls = await full;
    assert.ok(Array.isArray(ls.u));
    const entry = ls.u.find((e) => e._id === r);
    assert.ok(entry, `room ${r} listed`);
    assert.equal(entry.id, r, 'entry has id as well as _id');
    assert.equal(entry.count, 1);
    assert.equal(entry.settings.visible, true);
    assert.equal(entry.crown.participantId, aid);

    const upd = waitFor(S, 'ls', (m) => m.c === false && m.u.some((e) => e._id === r && e.count === 2), undefined, 'count update');
    const b = await bot('B', { channel: r });
    await upd;

    const r2 = room('listed-new');
    const created = waitFor(S, 'ls', (m) => m.c === false && m.u.some((e) => e._id === r2 && e.count === 1), undefined, 'new room');
    const c = await bot('C', { channel: r2 });
    await created;

    const gone = waitFor(S, 'ls', (m) => m.c === false && m.u.some((e) => e._id === r2 && e.count === 0), 6000, 'destroyed room');
    await H.disconnect(c.c);
    await gone;

    // Every +ls gets a complete list again.
    const again = waitFor(S, 'ls', (m) => m.c === true, undefined, 'second full list');
    S.sendArray([{ m: '+ls' }]);
    const ls2 = await again;
    assert.equal(ls2.u.find((e) => e._id === r).count, 2);
    assert.ok(!ls2.u.some((e) => e._id === r2), 'destroyed room absent from a full list');

    // After -ls no more pushes.
    S.sendArray([{ m: '-ls' }]);
    await sync(S);
    const quiet = collect(S, 'ls');
    await bot('D', { channel: r });
    await sync(a.c, S);
    assert.equal(quiet.stop().length, 0, 'no ls after -ls');
    assertNoLibErrors(a.c, b.c, S);
  });

  test(`${lib}: crown given, dropped, re-taken, dropped on leave and returned`, T, async () => {
    const { r, a, b, A, B } = await pair('crown');
    const aid = a.hi.u._id;
    const bid = b.hi.u._id;
    let bJoined = Date.now();

    // Holder gives it directly.
    const heldB = (m) => m.ch && m.ch.crown && m.ch.crown.participantId === bid;
    let chA = waitFor(A, 'ch', heldB, undefined, 'crown to B (seen by A)');
    let chB = waitFor(B, 'ch', heldB, undefined, 'crown to B (seen by B)');
    const nqA = waitFor(A, 'nq', () => true, undefined, 'nq for old holder');
    const nqB = waitFor(B, 'nq', () => true, undefined, 'nq for new holder');
    L.chown(A, bid);
    let [ca, cb] = await Promise.all([chA, chB]);
    assert.equal(cb.ch.crown.userId, bid);
    assertCrownShape(cb.ch.crown);
    assert.ok(ca.p === undefined || ca.p === aid, 'broadcast ch has no foreign p');
    assert.ok(cb.p === undefined || cb.p === bid, 'broadcast ch has no foreign p');
    assert.equal(B.isOwner(), true);
    assert.equal(A.isOwner(), false);
    assert.equal(A.participantId, aid, 'library kept its own participant id');
    assert.equal(A.countParticipants(), 2, 'ppl complete in the broadcast');
    assert.deepEqual(nqParams(await nqA), NQ_NORMAL);
    assert.deepEqual(nqParams(await nqB), NQ_CROWN);

    // A former holder may not take it back while it is held.
    const noCh = collect(B, 'ch');
    L.chown(A, aid);
    await sync(A, B);
    assert.equal(noCh.stop().length, 0, 'chown by a non-holder ignored');
    assert.equal(B.isOwner(), true);

    // Holder drops it (chown without id).
    const dropped = (m) => m.ch && m.ch.crown && !m.ch.crown.participantId;
    chA = waitFor(A, 'ch', dropped, undefined, 'drop seen by A');
    chB = waitFor(B, 'ch', dropped, undefined, 'drop seen by B');
    L.chown(B);
    [ca, cb] = await Promise.all([chA, chB]);
    assert.equal(ca.ch.crown.userId, bid, 'dropped crown remembers its last holder');
    assertCrownShape(ca.ch.crown);
    assert.ok(ca.ch.crown.endPos.y >= 70 && ca.ch.crown.endPos.y < 90, `endPos.y ${ca.ch.crown.endPos.y} in [70, 90)`);
    assert.ok(ca.ch.crown.endPos.x >= 10 && ca.ch.crown.endPos.x <= 90);
    assert.equal(A.isOwner(), false);
    assert.equal(B.isOwner(), false);

    // Anyone else must wait 15 s.
    const early = collect(A, 'ch');
    L.chown(A, aid);
    await sync(A, B);
    assert.equal(early.stop().length, 0, 'early pickup by another user ignored');

    // The last holder re-takes it at once.
    chA = waitFor(A, 'ch', heldB, undefined, 're-take seen by A');
    L.chown(B, bid);
    await chA;
    await sync(B);
    assert.equal(B.isOwner(), true);

    // Holder leaves for another room: crown dropped, not passed on.
    await chRateGap(bJoined);
    const byeP = waitFor(A, 'bye', (m) => m.p === bid, undefined, 'bye of B');
    chA = waitFor(A, 'ch', dropped, undefined, 'drop on leave');
    const elsewhere = room('crown-elsewhere');
    const bLeft = waitFor(B, 'ch', (m) => m.ch._id === elsewhere);
    B.setChannel(elsewhere);
    await bLeft;
    const bLeftAt = Date.now();
    await byeP;
    ca = await chA;
    assert.equal(ca.ch.crown.userId, bid);
    assert.deepEqual(ca.ch.crown.startPos, { x: 200, y: 100 }, 'startPos = never-moved cursor');
    assert.equal(ca.ch.crown.endPos.x, 90, 'endPos.x clamped to 90');
    assert.equal(A.isOwner(), false);
    assert.equal(A.ppl[bid], undefined);

    // Coming back returns it.
    await chRateGap(bLeftAt);
    chA = waitFor(A, 'ch', heldB, undefined, 'crown returned (seen by A)');
    chB = waitFor(B, 'ch', (m) => m.ch._id === r && heldB(m), undefined, 'crown returned (seen by B)');
    B.setChannel(r);
    await Promise.all([chA, chB]);
    await sync(B);
    assert.equal(B.isOwner(), true);
    assertNoLibErrors(A, B);
  });

  test(`${lib}: chset by the holder, ignored from others`, T, async () => {
    const { r, a, b, A, B } = await pair('chset');
    const aid = a.hi.u._id;
    const bid = b.hi.u._id;
    const changed = (m) => m.ch && m.ch.settings && m.ch.settings.color === '#0066ff';
    let chA = waitFor(A, 'ch', changed, undefined, 'settings seen by A');
    let chB = waitFor(B, 'ch', changed, undefined, 'settings seen by B');
    // Like the clients: the whole settings object with the changes applied.
    const set = { ...A.channel.settings, color: '#0066FF', color2: '#ff9900' };
    if (lib === 'net') A.setChannelSettings({ color: '#0066FF', color2: '#ff9900' });
    else L.chset(A, set);
    const firstChset = Date.now();
    let [ca, cb] = await Promise.all([chA, chB]);
    assert.equal(cb.ch.settings.color2, '#ff9900');
    assert.equal(cb.ch.settings.chat, true);
    assert.equal(cb.ch.settings.visible, true);
    assert.ok(cb.p === undefined || cb.p === bid, 'broadcast ch has no foreign p');
    assert.equal(B.participantId, bid);
    assert.equal(B.getChannelSetting('color'), '#0066ff');
    assert.equal(B.getChannelSetting('color2'), '#ff9900');
    assert.equal(B.countParticipants(), 2);
    assert.equal(A.channel.settings.color, '#0066ff');

    // Non-holder's chset is ignored.
    const none = collect(A, 'ch');
    L.chset(B, { color: '#000000' });
    await sync(B, A);
    assert.equal(none.stop().length, 0, 'chset from a non-holder ignored');
    assert.equal(A.getChannelSetting('color'), '#0066ff');

    // crownsolo on; color2 absent from the set is removed. chset is limited to 1/s.
    await H.sleep(Math.max(0, firstChset + 1100 - Date.now()));
    const solo = (m) => m.ch && m.ch.settings && m.ch.settings.crownsolo === true;
    chA = waitFor(A, 'ch', solo, undefined, 'crownsolo seen by A');
    chB = waitFor(B, 'ch', solo, undefined, 'crownsolo seen by B');
    L.chset(A, { color: '#0066ff', crownsolo: true, chat: true, visible: true });
    [ca, cb] = await Promise.all([chA, chB]);
    assert.equal(cb.ch.settings.color2, undefined, 'color2 removed when absent');
    assert.equal(B.preventsPlaying(), true, 'library sees crownsolo');
    assert.equal(A.preventsPlaying(), false);

    const notes = collect(A, 'n');
    B.sendArray([{ m: 'n', t: Date.now(), n: [{ n: 'a1', v: 0.5 }] }]);
    await sync(B, A);
    assert.equal(notes.stop().length, 0, 'crownsolo blocks notes of non-holders');
    const fromA = waitFor(B, 'n', (m) => m.p === aid);
    A.sendArray([{ m: 'n', t: Date.now(), n: [{ n: 'a1', v: 0.5 }] }]);
    await fromA;
    assertNoLibErrors(A, B);
  });

  test(`${lib}: kickban moves the target to test/awkward and refuses its return`, T, async () => {
    const { r, a, b, A, B } = await pair('kickban');
    const bid = b.hi.u._id;
    const bJoined = Date.now();
    const named = Promise.all([
      waitFor(A, 'p', (p) => p.name === 'Banner'),
      waitFor(A, 'p', (p) => p.name === 'Target'),
    ]);
    L.userset(A, { name: 'Banner' });
    L.userset(B, { name: 'Target' });
    await named;

    const notifB = waitFor(B, 'notification', (m) => m.text === `Banned from "${r}" for 1 minutes.`, undefined, 'ban notice to target');
    const movedB = waitFor(B, 'ch', (m) => m.ch._id === 'test/awkward', undefined, 'move to test/awkward');
    const byeA = waitFor(A, 'bye', (m) => m.p === bid, undefined, 'bye of target');
    const removedA = waitFor(A, 'participant removed', (p) => p.id === bid);
    const notifA = waitFor(A, 'notification', (m) => m.text === 'Banner banned Target from the channel for 1 minutes.', undefined, 'ban notice to channel');
    L.kickban(A, bid, 60000);
    const [nb] = await Promise.all([notifB, movedB, byeA, removedA, notifA]);
    assert.equal(nb.title, 'Notice');
    assert.equal(B.channel._id, 'test/awkward');
    assert.equal(B.getChannelSetting('lobby'), true);
    assert.equal(B.ppl[a.hi.u._id], undefined, 'target no longer sees the room');
    assert.equal(A.ppl[bid], undefined);
    assert.equal(A.countParticipants(), 1);

    // Rejoin is refused with a notification; the target stays in test/awkward.
    await chRateGap(bJoined);
    const refused = waitFor(B, 'notification', (m) => m.text === `Currently banned from "${r}" for 1 minutes.`, undefined, 'refusal on rejoin');
    const noP = collect(A, 'p');
    B.setChannel(r);
    await refused;
    await sync(B, A);
    assert.equal(B.channel._id, 'test/awkward');
    assert.equal(noP.stop().length, 0, 'room did not see the banned user');

    // The channel list marks the room as banned for the target only.
    const lsB = waitFor(B, 'ls', (m) => m.c === true);
    B.sendArray([{ m: '+ls' }]);
    const entry = (await lsB).u.find((e) => e._id === r);
    assert.ok(entry, 'room listed');
    assert.equal(entry.banned, true);
    assertNoLibErrors(A, B);
  });

  test(`${lib}: leaving with bye and by disconnect; holder's crown drops`, T, async () => {
    const r = room('leave');
    const a = await bot('A', { channel: r });
    const b = await bot('B', { channel: r });
    const c = await bot('C', { channel: r });
    const A = a.c;
    const B = b.c;
    const C = c.c;
    const aid = a.hi.u._id;
    const bid = b.hi.u._id;
    assert.equal(A.countParticipants(), 3);

    // bye: the server closes with 1000. The libraries would reconnect after
    // any close, so the bot switches that off first.
    let byeC = waitFor(C, 'bye', (m) => m.p === bid, undefined, 'bye after bye');
    const removed = waitFor(C, 'participant removed', (p) => p.id === bid);
    const closed = waitFor(B, 'disconnect', () => true, undefined, 'close after bye');
    B.canConnect = false;
    B.sendArray([{ m: 'bye' }]);
    await Promise.all([byeC, removed, closed]);
    assert.equal(B.closeCode, 1000, 'closed with 1000 after bye');
    assert.equal(C.ppl[bid], undefined);
    assert.equal(C.countParticipants(), 2);

    // Holder disconnects: others see bye and a dropped crown.
    byeC = waitFor(C, 'bye', (m) => m.p === aid, undefined, 'bye after disconnect');
    const drop = waitFor(C, 'ch', (m) => m.ch.crown && !m.ch.crown.participantId, undefined, 'crown dropped');
    await H.disconnect(A);
    const [, d] = await Promise.all([byeC, drop]);
    assert.equal(d.ch.crown.userId, aid);
    assert.equal(C.countParticipants(), 1);
    assert.equal(C.isOwner(), false);
    assertNoLibErrors(C);
  });
}

module.exports = { defineSuite, NQ_LOBBY, NQ_NORMAL, NQ_CROWN, ROOM_DEFAULTS, nqParams };
