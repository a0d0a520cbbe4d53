// The web client's note batching, note quota and server clock, as the page uses them
// (web/notes.mjs), driven with a hand-moved clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  NoteQuota, NoteBatcher, ServerClock, PARAMS_LOBBY, PARAMS_NORMAL, PARAMS_OFFLINE,
  NOTE_NAMES, midiToName, frequency, PLAY_BUFFER_MS,
} from '../../web/notes.mjs';

function setup(params = PARAMS_NORMAL) {
  const clock = { now: 1_700_000_000_000 };
  const sent = [];
  const quota = new NoteQuota(params);
  const batcher = new NoteBatcher({ serverNow: () => clock.now, send: (m) => sent.push(m), quota });
  return { clock, sent, quota, batcher };
}

test('notes of one flush period go out as one n with the start time and offsets', () => {
  const { clock, sent, batcher } = setup();
  assert.equal(batcher.press('c3', 0.8), true);
  clock.now += 40;
  batcher.press('e3', 1.7);
  clock.now += 95.4;
  batcher.release('c3');
  batcher.flush();
  assert.deepEqual(sent, [{
    m: 'n',
    t: 1_700_000_000_000,
    n: [{ n: 'c3', v: 0.8 }, { n: 'e3', v: 1, d: 40 }, { n: 'c3', s: 1, d: 135 }],
  }]);
  batcher.flush();
  assert.equal(sent.length, 1, 'an empty buffer sends nothing');
  clock.now += 500;
  batcher.release('e3');
  batcher.flush();
  assert.deepEqual(sent[1], { m: 'n', t: 1_700_000_000_635.4, n: [{ n: 'e3', s: 1 }] });
});

test('clear forgets unsent notes', () => {
  const { sent, batcher } = setup();
  batcher.press('a1', 0.5);
  batcher.clear();
  batcher.flush();
  assert.deepEqual(sent, []);
});

test('the quota refuses notes past max, refills every tick, and the refused are not sent', () => {
  const { sent, quota, batcher } = setup(PARAMS_LOBBY);
  let accepted = 0;
  for (let i = 0; i < 700; i++) if (batcher.press('a1', 0.5)) accepted += 1;
  assert.equal(accepted, 600);
  assert.equal(quota.points, 0);
  batcher.flush();
  assert.equal(sent[0].n.length, 600);
  quota.tick();
  assert.equal(quota.points, 200);
  for (let i = 0; i < 250; i++) batcher.release('a1');
  batcher.flush();
  assert.equal(sent[1].n.length, 200);
});

test('after three empty ticks each note costs a whole allowance (PROTOCOL 8.1)', () => {
  const quota = new NoteQuota({ allowance: 10, max: 10, maxHistLen: 3 });
  assert.equal(quota.spend(10), true);
  quota.tick(); // history [0, 10, 10], points 10
  assert.equal(quota.spend(10), true);
  quota.tick(); // [0, 0, 10]
  assert.equal(quota.spend(10), true);
  quota.tick(); // [0, 0, 0]
  assert.equal(quota.points, 10);
  assert.equal(quota.spend(2), false, 'two notes would cost 20');
  assert.equal(quota.spend(1), true, 'one note costs the allowance, 10');
  assert.equal(quota.points, 0);
});

test('nq parameters: a change resets, a repeat or zeros change nothing', () => {
  const { quota } = setup(PARAMS_OFFLINE);
  assert.equal(quota.setParams({ m: 'nq', allowance: 400, max: 1200, maxHistLen: 3 }), true);
  assert.equal(quota.points, 1200);
  quota.spend(100);
  assert.equal(quota.setParams({ m: 'nq', allowance: 400, max: 1200, maxHistLen: 3 }), false);
  assert.equal(quota.setParams({ m: 'nq', allowance: 0, max: 0 }), false);
  assert.equal(quota.points, 1100);
  assert.equal(quota.setParams({ m: 'nq', allowance: 600, max: 1800 }), true);
  assert.deepEqual([quota.points, quota.history], [1800, [1800, 1800, 1800]]);
});

test('the server clock takes half the round trip and schedules with the buffer', () => {
  let local = 1000;
  const clock = new ServerClock(() => local);
  clock.update(5000); // hi: no round trip known
  assert.equal(clock.serverNow(), 5000);
  local = 1100;
  clock.update(5080, 1000); // a pong: sent at 1000, back at 1100
  assert.equal(clock.offset, 5080 + 50 - 1100);
  assert.equal(clock.delayFor(clock.serverNow(), 0), PLAY_BUFFER_MS);
  assert.equal(clock.delayFor(clock.serverNow() - 5000, 100), 0, 'late notes play at once');
  assert.equal(clock.delayFor(clock.serverNow() + 60_000, 0), null, 'far ahead: skipped');
});

test('88 key names from a-1 to c7, MIDI numbers and pitch', () => {
  assert.equal(NOTE_NAMES.length, 88);
  assert.deepEqual([NOTE_NAMES[0], NOTE_NAMES[3], NOTE_NAMES[87]], ['a-1', 'c0', 'c7']);
  assert.deepEqual([midiToName(21), midiToName(60), midiToName(108), midiToName(109)], ['a-1', 'c3', 'c7', undefined]);
  assert.equal(frequency('a3'), 440);
});
