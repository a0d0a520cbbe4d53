// The connection to the server: one WebSocket, the session of PROTOCOL §2 (b → hi → ch), the
// room's state (channel, participants) and an event emitter that scripts can listen to through
// `MPP.client.on(event, fn)`. Events carry the server's messages by their `m` ("hi", "ch", "a",
// "n", "p", "m", "bye", "ls", "nq", "notification", "c", "t", "custom", …) plus "participant
// added" / "participant update" / "participant removed", "count", "connect", "disconnect" and
// "status" (what to tell the user about the connection).

import { ServerClock } from './notes.mjs';

/** Waits before reconnecting: the first retry comes quickly, later ones back off. */
const BACKOFF_MS = [250, 1000, 2500, 5000, 10000];
/** Ping period (the server closes after 60 s without one, PROTOCOL §11). */
const PING_MS = 20000;

export class Client {
  constructor(uri) {
    this.uri = uri;
    this.ws = null;
    this.listeners = new Map();
    this.clock = new ServerClock();
    this.channel = null;
    this.ppl = {};
    this.participantId = null;
    this.user = null;
    this.desiredChannelId = 'lobby';
    this.desiredChannelSettings = undefined;
    this.attempt = 0;
    this.stopped = true;
    this.pingTimer = null;
    this.retryTimer = null;
    this.sentHi = false;
  }

  on(event, fn) {
    if (!this.listeners.has(event)) this.listeners.set(event, []);
    this.listeners.get(event).push(fn);
    return this;
  }

  off(event, fn) {
    const list = this.listeners.get(event);
    if (list) this.listeners.set(event, list.filter((f) => f !== fn));
    return this;
  }

  once(event, fn) {
    const wrapper = (...args) => {
      this.off(event, wrapper);
      fn(...args);
    };
    return this.on(event, wrapper);
  }

  emit(event, ...args) {
    for (const fn of this.listeners.get(event) || []) {
      try {
        fn(...args);
      } catch (e) {
        console.error(`listener for "${event}" failed`, e);
      }
    }
  }

  get serverTimeOffset() {
    return this.clock.offset;
  }

  isConnected() {
    return !!this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    if (this.ws) this.ws.close();
  }

  connect() {
    if (this.stopped || (this.ws && this.ws.readyState <= WebSocket.OPEN)) return;
    this.emit('status', { state: 'connecting', text: 'Connecting…' });
    const ws = new WebSocket(this.uri);
    this.ws = ws;
    this.sentHi = false;
    ws.addEventListener('open', () => {
      if (this.ws !== ws) return;
      this.emit('connect');
      this.emit('status', { state: 'joining', text: 'Joining…' });
      // The server speaks first with `b`; a server that does not gets `hi` anyway.
      setTimeout(() => this.sayHi(ws), 2000);
    });
    ws.addEventListener('message', (event) => {
      if (this.ws !== ws || typeof event.data !== 'string') return;
      let messages;
      try {
        messages = JSON.parse(event.data);
      } catch {
        return;
      }
      if (!Array.isArray(messages)) return;
      for (const msg of messages) {
        if (!msg || typeof msg.m !== 'string') continue;
        try {
          this.receive(msg);
        } catch (e) {
          // A malformed message is skipped; the rest of the frame still counts.
          console.warn(`cannot handle "${msg.m}"`, e);
        }
      }
    });
    ws.addEventListener('close', (event) => {
      if (this.ws !== ws) return;
      clearInterval(this.pingTimer);
      const wasIn = !!this.channel;
      this.ws = null;
      this.emit('disconnect', event);
      this.forgetPeople();
      if (this.stopped) {
        this.emit('status', { state: 'offline', text: 'Offline' });
        return;
      }
      // A session that got into a room starts the backoff again.
      if (wasIn) this.attempt = 0;
      const wait = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
      this.attempt += 1;
      this.retryAt = Date.now() + wait;
      this.emit('status', { state: 'offline', text: 'Connection lost', retryAt: this.retryAt });
      this.retryTimer = setTimeout(() => this.connect(), wait);
    });
    ws.addEventListener('error', (e) => this.emit('wserror', e));
  }

  /** Retries at once (the user clicked "reconnect now"). */
  reconnectNow() {
    clearTimeout(this.retryTimer);
    this.connect();
  }

  sayHi(ws) {
    if (this.sentHi || this.ws !== ws || ws.readyState !== WebSocket.OPEN) return;
    this.sentHi = true;
    this.sendArray([{ m: 'hi' }]);
  }

  sendArray(messages) {
    if (!this.isConnected()) return false;
    this.ws.send(JSON.stringify(messages));
    return true;
  }

  receive(msg) {
    switch (msg.m) {
      case 'b':
        // The server's `code` is never run here: `hi` is the whole answer.
        this.sayHi(this.ws);
        break;
      case 'hi':
        this.user = msg.u;
        this.clock.update(msg.t);
        this.pingTimer = setInterval(() => this.ping(), PING_MS);
        this.ping();
        this.sendArray([{ m: 'ch', _id: this.desiredChannelId, set: this.desiredChannelSettings }]);
        break;
      case 't':
        this.clock.update(msg.t, msg.e);
        break;
      case 'ch':
        if (!msg.ch || typeof msg.ch._id !== 'string') return;
        this.channel = msg.ch;
        this.desiredChannelId = msg.ch._id;
        if (typeof msg.p === 'string') this.participantId = msg.p;
        this.setPeople(Array.isArray(msg.ppl) ? msg.ppl : []);
        this.emit('status', { state: 'online', text: 'Connected' });
        break;
      case 'p':
        this.participantUpdate(msg);
        this.emit('count', this.countParticipants());
        break;
      case 'm': {
        const part = this.ppl[msg.id];
        if (part) {
          part.x = msg.x;
          part.y = msg.y;
        }
        break;
      }
      case 'bye':
        this.removeParticipant(msg.p);
        this.emit('count', this.countParticipants());
        break;
      default:
        break;
    }
    this.emit(msg.m, msg);
  }

  ping() {
    this.sendArray([{ m: 't', e: Date.now() }]);
  }

  setPeople(list) {
    const seen = new Set();
    for (const info of list) {
      if (info && typeof info.id === 'string') {
        seen.add(info.id);
        this.participantUpdate(info);
      }
    }
    for (const id of Object.keys(this.ppl)) {
      if (!seen.has(id)) this.removeParticipant(id);
    }
    this.emit('count', this.countParticipants());
  }

  participantUpdate(info) {
    const known = this.ppl[info.id];
    const part = known || { id: info.id };
    for (const key of ['_id', 'name', 'color', 'x', 'y', 'tag', 'afk']) {
      if (key in info) part[key] = info[key];
    }
    if (!('tag' in info)) delete part.tag;
    if (known) {
      this.emit('participant update', part);
    } else {
      this.ppl[info.id] = part;
      this.emit('participant added', part);
    }
    if (info.id === this.participantId && this.user) {
      this.user.name = part.name;
      this.user.color = part.color;
    }
  }

  removeParticipant(id) {
    const part = this.ppl[id];
    if (!part) return;
    delete this.ppl[id];
    this.emit('participant removed', part);
  }

  forgetPeople() {
    for (const id of Object.keys(this.ppl)) this.removeParticipant(id);
    this.channel = null;
  }

  countParticipants() {
    return Object.keys(this.ppl).length;
  }

  getOwnParticipant() {
    return this.ppl[this.participantId];
  }

  isOwner() {
    const crown = this.channel && this.channel.crown;
    return !!crown && !!this.participantId && crown.participantId === this.participantId;
  }

  /** Moves to another room; `set` gives a new room its first settings. */
  setChannel(id, set) {
    this.desiredChannelId = id || this.desiredChannelId;
    this.desiredChannelSettings = set;
    this.sendArray([{ m: 'ch', _id: this.desiredChannelId, set }]);
  }

  say(message, replyTo) {
    const msg = { m: 'a', message };
    if (replyTo) msg.reply_to = replyTo;
    return this.sendArray([msg]);
  }
}
