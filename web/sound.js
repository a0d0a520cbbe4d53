// The piano's voice, synthesised with Web Audio (no sample files): a few harmonics through a
// velocity-dependent low-pass filter, a quick attack, a two-stage decay that is longer for low
// notes, and a short damper release. Browsers start an AudioContext only after a click or a key
// press, so `unlock` is called from the first gesture.

import { frequency } from './notes.mjs';

/** Voices sounding at once; the oldest is cut when a new one needs room. */
const MAX_VOICES = 48;
/** Relative strength of the harmonics 1…8 (a hammered string: strong low partials). */
const HARMONICS = [0, 1, 0.55, 0.32, 0.2, 0.12, 0.07, 0.045, 0.03];

export class Sound {
  constructor() {
    this.ctx = null;
    this.master = null;
    this.volume = 0.7;
    this.voices = new Map();
    this.order = [];
    this.wave = null;
  }

  get ready() {
    return !!this.ctx && this.ctx.state === 'running';
  }

  /** Creates or resumes the AudioContext; call from a user gesture. */
  unlock() {
    const AudioCtx = globalThis.AudioContext || globalThis.webkitAudioContext;
    if (!AudioCtx) return Promise.resolve(false);
    if (!this.ctx) {
      this.ctx = new AudioCtx({ latencyHint: 'interactive' });
      const compressor = this.ctx.createDynamicsCompressor();
      compressor.threshold.value = -14;
      compressor.ratio.value = 6;
      this.master = this.ctx.createGain();
      this.master.gain.value = this.volume;
      this.master.connect(compressor).connect(this.ctx.destination);
      const real = new Float32Array(HARMONICS.length);
      this.wave = this.ctx.createPeriodicWave(real, Float32Array.from(HARMONICS));
    }
    return this.ctx.resume().then(
      () => this.ready,
      () => false,
    );
  }

  setVolume(v) {
    this.volume = v;
    if (this.master) this.master.gain.setTargetAtTime(v, this.ctx.currentTime, 0.02);
  }

  /** Starts `note` after `delayMs` with velocity `vel` (0–1); `key` tells the voices of
   * different players apart. */
  play(note, vel, delayMs = 0, key = '') {
    if (!this.ready) return;
    const f = frequency(note);
    if (!f) return;
    const id = key + note;
    this.stop(note, delayMs, key);
    const ctx = this.ctx;
    const at = ctx.currentTime + delayMs / 1000;
    const v = Math.min(1, Math.max(0.05, vel));
    const osc = ctx.createOscillator();
    osc.setPeriodicWave(this.wave);
    osc.frequency.value = f;
    const filter = ctx.createBiquadFilter();
    filter.type = 'lowpass';
    filter.frequency.value = Math.min(16000, f * (1.5 + 9 * v * v));
    filter.Q.value = 0.4;
    const gain = ctx.createGain();
    // Low strings ring longer than high ones.
    const ring = 0.6 + 3.2 * Math.pow(1 - Math.min(1, f / 2200), 2);
    const peak = 0.28 * Math.pow(v, 1.3);
    gain.gain.setValueAtTime(0, at);
    gain.gain.linearRampToValueAtTime(peak, at + 0.006);
    gain.gain.setTargetAtTime(peak * 0.35, at + 0.006, 0.09);
    gain.gain.setTargetAtTime(0, at + 0.25, ring);
    osc.connect(filter).connect(gain).connect(this.master);
    osc.start(at);
    osc.stop(at + 0.25 + ring * 6);
    const voice = { osc, gain, id };
    osc.onended = () => {
      gain.disconnect();
      if (this.voices.get(id) === voice) this.voices.delete(id);
    };
    this.voices.set(id, voice);
    this.order.push(voice);
    if (this.order.length > MAX_VOICES) {
      const old = this.order.shift();
      this.damp(old, ctx.currentTime);
    }
  }

  /** Damps `note` of player `key` after `delayMs`. */
  stop(note, delayMs = 0, key = '') {
    const voice = this.voices.get(key + note);
    if (!voice || !this.ctx) return;
    this.voices.delete(voice.id);
    this.damp(voice, this.ctx.currentTime + delayMs / 1000);
  }

  damp(voice, at) {
    const i = this.order.indexOf(voice);
    if (i >= 0) this.order.splice(i, 1);
    try {
      voice.gain.gain.cancelScheduledValues(at);
      voice.gain.gain.setTargetAtTime(0, at, 0.07);
      voice.osc.stop(at + 0.5);
    } catch {
      // Already stopped.
    }
  }
}
