// Chat (history on join, live messages, replies, private messages received) and the server's
// notifications. Everything users wrote is inserted as text, never as HTML.

const $ = (id) => document.getElementById(id);
/** Messages kept on screen. */
const MAX_LINES = 200;

export class Chat {
  constructor(client) {
    this.client = client;
    this.log = $('chat-log');
    this.input = $('chat-input');
    this.replyTo = null;
    this.byId = new Map();
    client.on('c', (msg) => {
      this.clear();
      for (const a of Array.isArray(msg.c) ? msg.c : []) this.add(a);
    });
    client.on('a', (msg) => this.add(msg));
    client.on('dm', (msg) => this.add(msg));
    client.on('ch', (msg) => this.setEnabled(msg.ch.settings && msg.ch.settings.chat !== false));
    $('chat-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const text = this.input.value.trim();
      if (!text) return;
      if (this.client.say(text, this.replyTo && this.replyTo.id)) {
        this.input.value = '';
        this.setReply(null);
      }
    });
    $('reply-cancel').addEventListener('click', () => this.setReply(null));
    this.input.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') {
        this.setReply(null);
        this.input.blur();
      }
    });
  }

  /** Sends a chat message (what `MPP.chat.send` does). */
  send(text, replyTo) {
    return this.client.say(String(text), replyTo);
  }

  clear() {
    this.log.textContent = '';
    this.byId.clear();
  }

  setEnabled(on) {
    this.input.disabled = !on;
    this.input.placeholder = on ? 'Press Enter to chat' : 'Chat is off in this room';
  }

  setReply(msg) {
    this.replyTo = msg;
    $('reply-box').hidden = !msg;
    if (msg) {
      $('reply-text').textContent = `Replying to ${msg.p ? msg.p.name : ''}: ${msg.a}`;
      this.input.focus();
    }
  }

  add(msg) {
    if (!msg || typeof msg.a !== 'string') return;
    const sender = msg.m === 'dm' ? msg.sender : msg.p;
    if (!sender) return;
    const li = document.createElement('li');
    li.className = 'line';
    if (msg.m === 'dm') li.classList.add('dm');
    if (typeof msg.r === 'string') {
      const quoted = this.byId.get(msg.r);
      const q = document.createElement('div');
      q.className = 'quote';
      q.textContent = quoted ? `↪ ${quoted.p ? quoted.p.name : ''}: ${quoted.a}` : '↪ an earlier message';
      li.append(q);
    }
    const name = document.createElement('span');
    name.className = 'name';
    name.style.setProperty('--who', sender.color);
    name.textContent = msg.m === 'dm' ? `${sender.name} → ${msg.recipient ? msg.recipient.name : ''}` : sender.name;
    const text = document.createElement('span');
    text.className = 'text';
    text.textContent = msg.a;
    li.append(name, text);
    if (typeof msg.t === 'number') li.title = new Date(msg.t - this.client.serverTimeOffset).toLocaleTimeString();
    if (msg.m === 'a' && typeof msg.id === 'string') {
      this.byId.set(msg.id, msg);
      const reply = document.createElement('button');
      reply.type = 'button';
      reply.className = 'link reply';
      reply.textContent = '↩';
      reply.setAttribute('aria-label', `Reply to ${sender.name}`);
      reply.addEventListener('click', () => this.setReply(msg));
      li.append(reply);
    }
    this.log.append(li);
    while (this.log.children.length > MAX_LINES) this.log.firstChild.remove();
    this.log.scrollTop = this.log.scrollHeight;
  }
}

/** The server's `notification` messages (PROTOCOL §3.8) as dismissable boxes. */
export class Notices {
  constructor(client) {
    this.box = $('notices');
    client.on('notification', (msg) => this.show(msg));
  }

  show(msg) {
    const el = document.createElement('div');
    el.className = `notice ${msg.class === 'short' ? 'short' : 'classic'}`;
    el.setAttribute('role', 'alert');
    if (typeof msg.id === 'string') {
      el.dataset.id = msg.id;
      for (const old of this.box.querySelectorAll('.notice')) if (old.dataset.id === msg.id) old.remove();
    }
    if (msg.title) {
      const title = document.createElement('strong');
      title.textContent = String(msg.title);
      el.append(title);
    }
    const text = document.createElement('p');
    // `html` is shown as its text: markup from the server is not needed to read a notice.
    text.textContent = msg.text
      ? String(msg.text)
      : new DOMParser().parseFromString(String(msg.html || ''), 'text/html').body.textContent;
    const close = document.createElement('button');
    close.className = 'link close';
    close.setAttribute('aria-label', 'Close the notice');
    close.textContent = '✕';
    close.addEventListener('click', () => el.remove());
    el.append(text, close);
    this.box.append(el);
    const duration = Number(msg.duration) || 30000;
    if (duration > 0) setTimeout(() => el.remove(), duration);
  }
}
