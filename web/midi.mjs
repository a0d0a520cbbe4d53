// MIDI keyboards through the Web MIDI API: note-on (velocity 0 is a note-off), note-off, and
// the sustain pedal (control change 64 on any of the 16 channels, down from value 64). Browsers
// offer Web MIDI on secure pages only (https, or http on localhost).

import { midiToName } from './notes.mjs';

export class Midi {
  /**
   * @param {{press: Function, release: Function, pedal: (down: boolean) => void}} player
   * @param {(state: {supported: boolean, reason?: string, inputs: {id: string, name: string}[]}) => void} onstate
   */
  constructor(player, onstate) {
    this.player = player;
    this.onstate = onstate;
    this.access = null;
    this.chosen = 'all';
    this.handler = (e) => this.message(e.data);
  }

  /** Whether the page may ask for MIDI at all, and if not why. */
  static availability() {
    if (!globalThis.isSecureContext) {
      return { supported: false, reason: 'MIDI keyboards need a secure page: open this piano over https or on localhost.' };
    }
    if (!navigator.requestMIDIAccess) {
      return { supported: false, reason: 'This browser has no Web MIDI; try a Chromium-based browser or Firefox.' };
    }
    return { supported: true };
  }

  /** Asks for MIDI access (the browser may prompt). */
  async enable() {
    const avail = Midi.availability();
    if (!avail.supported) {
      this.onstate({ ...avail, inputs: [] });
      return;
    }
    try {
      this.access = await navigator.requestMIDIAccess();
    } catch (e) {
      this.onstate({ supported: false, reason: `MIDI access was refused (${e.message || e}).`, inputs: [] });
      return;
    }
    this.access.onstatechange = () => this.attach();
    this.attach();
  }

  /** Uses input `id`, or every input for "all". */
  choose(id) {
    this.chosen = id;
    this.attach();
  }

  attach() {
    const inputs = [];
    for (const input of this.access.inputs.values()) {
      inputs.push({ id: input.id, name: input.name || input.id });
      input.onmidimessage = this.chosen === 'all' || this.chosen === input.id ? this.handler : null;
    }
    this.onstate({ supported: true, inputs });
  }

  message(data) {
    if (!data || data.length < 2) return;
    const kind = data[0] & 0xf0;
    const value = data.length > 2 ? data[2] : 0;
    if (kind === 0x90 || kind === 0x80) {
      const note = midiToName(data[1]);
      if (!note) return;
      if (kind === 0x90 && value > 0) this.player.press(note, value / 127);
      else this.player.release(note);
    } else if (kind === 0xb0 && data[1] === 64) {
      this.player.pedal(value >= 64);
    }
  }
}
