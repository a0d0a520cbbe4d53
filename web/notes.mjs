// Note timing and the note quota: pure logic, no DOM, no timers of its own, so the same module
// runs in the page and under `node --test`. Times are milliseconds; `now` functions are passed in.

/** Quota parameters the server announces with `nq` (PROTOCOL §8.2). */
export const PARAMS_LOBBY = { allowance: 200, max: 600, maxHistLen: 3 };
export const PARAMS_NORMAL = { allowance: 400, max: 1200, maxHistLen: 3 };
/** What a client assumes before the first `nq`. */
export const PARAMS_OFFLINE = { allowance: 8000, max: 24000, maxHistLen: 3 };
/** How often the quota refills, as on the server. */
export const QUOTA_TICK_MS = 2000;
/** How often buffered notes are sent. */
export const FLUSH_MS = 200;
/** Added to a received note's time so a burst keeps its rhythm despite network jitter. */
export const PLAY_BUFFER_MS = 1000;
/** Received notes further ahead than this are skipped. */
export const MAX_AHEAD_MS = 10000;

/**
 * The note quota of PROTOCOL §8.1, kept on the client so that it never sends notes the server
 * would drop: each note (press or release) spends a point; `tick` runs every 2 s.
 */
export class NoteQuota {
  constructor(params = PARAMS_OFFLINE, onchange = () => {}) {
    this.allowance = params.allowance;
    this.max = params.max;
    this.maxHistLen = params.maxHistLen;
    this.onchange = onchange;
    this.reset();
  }

  reset() {
    this.points = this.max;
    this.history = new Array(this.maxHistLen).fill(this.max);
    this.onchange(this);
  }

  /** Applies an `nq`; missing or zero values keep theirs; a change resets the quota. */
  setParams(params) {
    const next = {};
    for (const key of ['allowance', 'max', 'maxHistLen']) {
      const v = Number(params && params[key]);
      next[key] = Number.isFinite(v) && v > 0 ? v : this[key];
    }
    if (next.allowance === this.allowance && next.max === this.max && next.maxHistLen === this.maxHistLen) {
      return false;
    }
    Object.assign(this, next);
    this.reset();
    return true;
  }

  tick() {
    this.history.unshift(this.points);
    this.history.length = this.maxHistLen;
    if (this.points < this.max) {
      this.points = Math.min(this.points + this.allowance, this.max);
    }
    this.onchange(this);
  }

  /** Spends `k` points; false (and nothing spent) when there are not enough. */
  spend(k = 1) {
    const recent = this.history.reduce((a, b) => a + b, 0);
    const cost = recent <= 0 ? k * this.allowance : k;
    if (this.points < cost) return false;
    this.points -= cost;
    this.onchange(this);
    return true;
  }
}

/**
 * The offset from this machine's clock to the server's, from `hi.t` and the `t` replies to our
 * pings (`e` = our send time): the reply was made about half a round trip ago.
 */
export class ServerClock {
  constructor(now = () => Date.now()) {
    this.now = now;
    this.offset = 0;
    this.known = false;
  }

  /** A server time `t`, and `e` when it answers a ping sent at our time `e`. */
  update(t, e) {
    if (!Number.isFinite(t)) return;
    const local = this.now();
    const rtt = Number.isFinite(e) && e <= local ? local - e : 0;
    this.offset = t + rtt / 2 - local;
    this.known = true;
  }

  serverNow() {
    return this.now() + this.offset;
  }

  /** Milliseconds from now until a note of a message with time `t` and delay `d` should sound;
   * `null` for notes too far ahead to trust. Late notes play at once (0). */
  delayFor(t, d = 0) {
    const at = t + (Number(d) || 0) + PLAY_BUFFER_MS - this.serverNow();
    if (at > MAX_AHEAD_MS) return null;
    return Math.max(0, at);
  }
}

/**
 * Collects the player's notes and sends them as one `n` every `FLUSH_MS`: `t` is the server
 * time of the batch's first note and every later note carries `d`, its offset from `t`.
 * A note the quota refuses is dropped here, so the server never has to drop a message.
 */
export class NoteBatcher {
  /**
   * @param {object} o
   * @param {() => number} o.serverNow the server clock
   * @param {(msg: object) => void} o.send sends one message
   * @param {NoteQuota} o.quota
   */
  constructor({ serverNow, send, quota }) {
    this.serverNow = serverNow;
    this.send = send;
    this.quota = quota;
    this.start = null;
    this.buffer = [];
  }

  /** Queues a press of `note` with velocity `v` in (0, 1]; false when the quota refuses it. */
  press(note, v) {
    const vel = Math.round(Math.min(1, Math.max(0.001, Number(v) || 0.5)) * 1000) / 1000;
    return this.add({ n: note, v: vel });
  }

  /** Queues a release of `note`; false when the quota refuses it. */
  release(note) {
    return this.add({ n: note, s: 1 });
  }

  add(note) {
    if (!this.quota.spend(1)) return false;
    const now = this.serverNow();
    if (this.start === null) {
      this.start = now;
    } else {
      note.d = Math.round(now - this.start);
    }
    this.buffer.push(note);
    return true;
  }

  /** Sends what is buffered (called every `FLUSH_MS`); nothing when it is empty. */
  flush() {
    if (this.buffer.length === 0) return;
    this.send({ m: 'n', t: this.start, n: this.buffer });
    this.buffer = [];
    this.start = null;
  }

  /** Forgets unsent notes (the connection closed: the server would not take them now). */
  clear() {
    this.buffer = [];
    this.start = null;
  }
}

/** The 88 key names from `a-1` to `c7`, lowest first. */
export const NOTE_NAMES = (() => {
  const names = ['a-1', 'as-1', 'b-1'];
  const steps = ['c', 'cs', 'd', 'ds', 'e', 'f', 'fs', 'g', 'gs', 'a', 'as', 'b'];
  for (let octave = 0; octave < 7; octave++) for (const s of steps) names.push(s + octave);
  names.push('c7');
  return names;
})();

/** The key name of a MIDI note number (21 = `a-1`), or undefined outside the 88 keys. */
export function midiToName(number) {
  return NOTE_NAMES[number - 21];
}

/** The frequency of a key name in Hz (`a3` = 440). */
export function frequency(name) {
  const index = NOTE_NAMES.indexOf(name);
  return index < 0 ? 0 : 440 * Math.pow(2, (index - 48) / 12);
}
