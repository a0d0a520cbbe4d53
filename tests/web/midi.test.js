// MIDI input as the page reads it (web/midi.mjs): note-on and note-off on any channel, a
// note-on with velocity 0 as a note-off, and the sustain pedal as controller 64 on any channel.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Midi } from '../../web/midi.mjs';

function player() {
  const events = [];
  return {
    events,
    press: (note, vel) => events.push(['press', note, vel]),
    release: (note) => events.push(['release', note]),
    pedal: (down) => events.push(['pedal', down]),
  };
}

test('notes on any channel, velocity scaled to 0-1, velocity 0 releases', () => {
  const p = player();
  const midi = new Midi(p, () => {});
  midi.message([0x90, 60, 127]); // channel 1: middle C
  midi.message([0x9f, 21, 64]); // channel 16: the lowest key
  midi.message([0x90, 60, 0]); // note-on with velocity 0
  midi.message([0x8f, 21, 30]); // note-off, channel 16
  midi.message([0x90, 20, 100]); // below the 88 keys
  midi.message([0x90, 109, 100]); // above them
  assert.deepEqual(p.events, [
    ['press', 'c3', 1],
    ['press', 'a-1', 64 / 127],
    ['release', 'c3'],
    ['release', 'a-1'],
  ]);
});

test('the sustain pedal is controller 64 on every channel, down from 64', () => {
  const p = player();
  const midi = new Midi(p, () => {});
  for (let channel = 0; channel < 16; channel++) {
    midi.message([0xb0 | channel, 64, 127]);
    midi.message([0xb0 | channel, 64, 63]);
  }
  midi.message([0xb0, 64, 64]);
  midi.message([0xb0, 1, 127]); // the modulation wheel is not the pedal
  midi.message([0xe0, 0, 64]); // pitch bend: ignored
  midi.message([0xf8]); // clock: ignored
  const expected = [];
  for (let channel = 0; channel < 16; channel++) expected.push(['pedal', true], ['pedal', false]);
  expected.push(['pedal', true]);
  assert.deepEqual(p.events, expected);
});
