// The 88-key keyboard on screen: drawn to fit its box, played with mouse, touch and pen (a drag
// glides over the keys), and lit in the colour of whoever plays a key.

import { NOTE_NAMES } from './notes.mjs';

const WHITE_COUNT = 52;

export class Piano {
  /**
   * @param {HTMLElement} root the element that holds the keys
   * @param {{press: (note: string, vel: number) => void, release: (note: string) => void}} player
   */
  constructor(root, player) {
    this.root = root;
    this.player = player;
    this.keys = {};
    this.pointers = new Map();
    let white = 0;
    for (const name of NOTE_NAMES) {
      const sharp = name.includes('s');
      const el = document.createElement('div');
      el.className = sharp ? 'key black' : 'key white';
      el.dataset.note = name;
      if (sharp) {
        el.style.left = `${((white - 0.32) / WHITE_COUNT) * 100}%`;
        el.style.width = `${(0.64 / WHITE_COUNT) * 100}%`;
      } else {
        el.style.left = `${(white / WHITE_COUNT) * 100}%`;
        el.style.width = `${(1 / WHITE_COUNT) * 100}%`;
        if (name.startsWith('c')) {
          const label = document.createElement('span');
          label.className = 'label';
          label.textContent = name.toUpperCase();
          el.append(label);
        }
        white += 1;
      }
      this.keys[name] = { name, el, timer: 0, sharp };
      root.append(el);
    }
    root.addEventListener('pointerdown', (e) => this.pointerDown(e));
    root.addEventListener('pointermove', (e) => this.pointerMove(e));
    for (const type of ['pointerup', 'pointercancel', 'lostpointercapture']) {
      root.addEventListener(type, (e) => this.pointerUp(e));
    }
    root.addEventListener('contextmenu', (e) => e.preventDefault());
  }

  /** The key under a point, black keys first (they lie on top). */
  keyAt(x, y) {
    const el = document.elementFromPoint(x, y);
    const key = el && el.closest && el.closest('.key');
    return key && this.root.contains(key) ? key.dataset.note : null;
  }

  /** Velocity from how far down the key was struck (the front of a key is louder). */
  velocityAt(note, y) {
    const rect = this.keys[note].el.getBoundingClientRect();
    const depth = Math.min(1, Math.max(0, (y - rect.top) / rect.height));
    return Math.round((0.35 + 0.6 * depth) * 100) / 100;
  }

  pointerDown(e) {
    if (e.button !== 0) return;
    e.preventDefault();
    this.root.setPointerCapture(e.pointerId);
    const note = this.keyAt(e.clientX, e.clientY);
    this.pointers.set(e.pointerId, note);
    if (note) this.player.press(note, this.velocityAt(note, e.clientY));
  }

  pointerMove(e) {
    if (!this.pointers.has(e.pointerId)) return;
    const note = this.keyAt(e.clientX, e.clientY);
    const before = this.pointers.get(e.pointerId);
    if (note === before) return;
    if (before) this.player.release(before);
    this.pointers.set(e.pointerId, note);
    if (note) this.player.press(note, this.velocityAt(note, e.clientY));
  }

  pointerUp(e) {
    if (!this.pointers.has(e.pointerId)) return;
    const note = this.pointers.get(e.pointerId);
    this.pointers.delete(e.pointerId);
    if (note) this.player.release(note);
  }

  /** Lights `note` in `color` after `delayMs` (a key held by the player stays lit). */
  light(note, color, delayMs = 0) {
    const key = this.keys[note];
    if (!key) return;
    const show = () => {
      key.el.style.setProperty('--hit', color);
      key.el.classList.remove('lit');
      // Restarting the fade needs a style flush between the two class changes.
      void key.el.offsetWidth;
      key.el.classList.add('lit');
    };
    if (delayMs > 0) setTimeout(show, delayMs);
    else show();
  }

  /** Marks keys the player holds down. */
  hold(note, down) {
    const key = this.keys[note];
    if (key) key.el.classList.toggle('down', down);
  }
}
