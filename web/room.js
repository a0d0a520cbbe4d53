// The room around the piano: who is here (names, colours, the crown), their cursors, the room
// list with counts, creating and joining rooms, the crown holder's settings and moderation
// (give or drop the crown, kickban, unban), and the player's own name and colour.

const $ = (id) => document.getElementById(id);
/** Own cursor positions are sent at most this often. */
const CURSOR_MS = 50;
/** A dropped crown may be taken by anyone this long after the drop (PROTOCOL §7). */
const CROWN_WAIT_MS = 15000;

/** A room's second colour when it has none: each component darkened by 0x40 (PROTOCOL §3.4). */
export function darken(color) {
  const m = /^#([0-9a-f]{6})$/i.exec(color || '');
  if (!m) return '#101418';
  const n = parseInt(m[1], 16);
  const part = (shift) => Math.max(0, ((n >> shift) & 255) - 0x40).toString(16).padStart(2, '0');
  return `#${part(16)}${part(8)}${part(0)}`;
}

/** The URL path of a room: `/` for the lobby, slashes kept readable. */
export function roomPath(name) {
  return name === 'lobby' ? '/' : `/${encodeURIComponent(name).replace(/%2F/g, '/')}`;
}

/** The room a page path names (`lobby` for `/`). */
export function roomFromPath(path) {
  let name = path.replace(/^\/+/, '');
  try {
    name = decodeURIComponent(name);
  } catch {
    // A malformed escape: use the path as written.
  }
  return name || 'lobby';
}

export class Room {
  constructor(client) {
    this.client = client;
    this.people = $('people');
    this.cursors = $('cursors');
    this.rows = new Map();
    this.pointers = new Map();
    this.rooms = new Map();
    this.banned = new Map();
    this.muted = new Set();
    this.selected = null;
    this.lastCursor = 0;
    this.pendingCursor = null;

    client.on('participant added', (p) => this.upsert(p));
    client.on('participant update', (p) => this.upsert(p));
    client.on('participant removed', (p) => this.remove(p));
    client.on('m', (msg) => this.moveCursor(this.client.ppl[msg.id]));
    client.on('count', (n) => ($('room-count').textContent = String(n)));
    client.on('ch', (msg) => this.channel(msg.ch));
    client.on('hi', (msg) => this.showMe(msg.u));
    client.on('ls', (msg) => this.roomList(msg));
    client.on('disconnect', () => this.crownTick());

    this.wireDialogs();
    document.addEventListener('pointermove', (e) => this.ownCursor(e));
    setInterval(() => this.crownTick(), 500);
  }

  channel(ch) {
    const settings = ch.settings || {};
    $('room-name').textContent = ch._id;
    $('watermark').textContent = ch._id;
    document.title = `${ch._id} · Piano`;
    const color = /^#[0-9a-f]{6}$/i.test(settings.color || '') ? settings.color : '#3b5054';
    const color2 = /^#[0-9a-f]{6}$/i.test(settings.color2 || '') ? settings.color2 : darken(color);
    document.body.style.setProperty('--room', color);
    document.body.style.setProperty('--room2', color2);
    const path = roomPath(ch._id);
    if (location.pathname !== path) history.replaceState(null, '', path + location.search);
    $('settings-button').hidden = !this.client.isOwner();
    for (const p of Object.values(this.client.ppl)) this.upsert(p);
    this.crownTick();
  }

  /** Shows the dropped crown (where it fell, and how long until anyone may take it). */
  crownTick() {
    const el = $('crown');
    const ch = this.client.channel;
    const crown = ch && ch.crown;
    if (!crown || crown.participantId) {
      el.hidden = true;
      return;
    }
    const place = (pos) => {
      const x = Math.min(95, Math.max(5, Number(pos && pos.x) || 50));
      const y = Math.min(85, Math.max(5, Number(pos && pos.y) || 80));
      el.style.left = `${x}%`;
      el.style.top = `${y}%`;
    };
    if (el.hidden || this.crownDrop !== crown.time) {
      // A new drop: it falls from where the holder was to where it lands, as on other clients.
      this.crownDrop = crown.time;
      el.hidden = false;
      el.style.transition = 'none';
      place(crown.startPos);
      void el.offsetWidth;
      el.style.transition = '';
    }
    place(crown.endPos);
    const left = crown.time + CROWN_WAIT_MS - (Date.now() + this.client.serverTimeOffset);
    const mine = this.client.user && crown.userId === this.client.user._id;
    $('crown-text').textContent = mine || left <= 0 ? 'Take the crown' : `Free in ${Math.ceil(left / 1000)} s`;
  }

  upsert(p) {
    let row = this.rows.get(p.id);
    if (!row) {
      row = document.createElement('li');
      const button = document.createElement('button');
      button.className = 'person';
      button.setAttribute('aria-haspopup', 'dialog');
      button.addEventListener('click', () => this.openPerson(p.id));
      row.append(button);
      this.rows.set(p.id, row);
      this.people.append(row);
    }
    const button = row.firstChild;
    const crown = this.client.channel && this.client.channel.crown;
    const crowned = !!crown && crown.participantId === p.id;
    const me = p.id === this.client.participantId;
    button.textContent = `${crowned ? '♛ ' : ''}${p.name || 'Anonymous'}${me ? ' (you)' : ''}`;
    button.style.setProperty('--who', p.color || '#777');
    button.classList.toggle('me', me);
    button.classList.toggle('owner', crowned);
    if (p.tag && p.tag.text) button.dataset.tag = p.tag.text;
    else delete button.dataset.tag;
    if (me) this.showMe(p);
    this.moveCursor(p);
  }

  remove(p) {
    const row = this.rows.get(p.id);
    if (row) row.remove();
    this.rows.delete(p.id);
    const cursor = this.pointers.get(p.id);
    if (cursor) cursor.remove();
    this.pointers.delete(p.id);
  }

  moveCursor(p) {
    if (!p || p.id === this.client.participantId) return;
    const x = parseFloat(p.x);
    const y = parseFloat(p.y);
    let el = this.pointers.get(p.id);
    if (!Number.isFinite(x) || !Number.isFinite(y) || x > 100 || y > 100 || x < 0 || y < 0) {
      if (el) el.hidden = true;
      return;
    }
    if (!el) {
      el = document.createElement('div');
      el.className = 'cursor';
      el.append(document.createElement('span'));
      this.pointers.set(p.id, el);
      this.cursors.append(el);
    }
    el.hidden = false;
    el.style.setProperty('--who', p.color || '#777');
    el.firstChild.textContent = p.name || '';
    el.style.transform = `translate(${(x / 100) * innerWidth}px, ${(y / 100) * innerHeight}px)`;
  }

  /** Sends the own cursor as percentages of the window, coalesced to one message per 50 ms. */
  ownCursor(e) {
    this.pendingCursor = {
      m: 'm',
      x: ((e.clientX / innerWidth) * 100).toFixed(2),
      y: ((e.clientY / innerHeight) * 100).toFixed(2),
    };
    const wait = this.lastCursor + CURSOR_MS - performance.now();
    if (this.cursorTimer) return;
    this.cursorTimer = setTimeout(
      () => {
        this.cursorTimer = null;
        this.lastCursor = performance.now();
        if (this.client.channel) this.client.sendArray([this.pendingCursor]);
      },
      Math.max(0, wait),
    );
  }

  showMe(u) {
    if (!u) return;
    $('me-name').textContent = u.name;
    $('me-dot').style.background = u.color;
  }

  /** `ls`: a full list replaces the menu; an update changes, adds or removes entries. */
  roomList(msg) {
    if (msg.c) this.rooms.clear();
    for (const info of Array.isArray(msg.u) ? msg.u : []) {
      if (!info || typeof info._id !== 'string') continue;
      if (info.count > 0 && (!info.settings || info.settings.visible !== false)) this.rooms.set(info._id, info);
      else this.rooms.delete(info._id);
    }
    const list = $('room-list');
    list.textContent = '';
    const sorted = [...this.rooms.values()].sort((a, b) => b.count - a.count || a._id.localeCompare(b._id));
    for (const info of sorted) {
      const li = document.createElement('li');
      const button = document.createElement('button');
      button.className = 'room-entry';
      button.dataset.room = info._id;
      const here = this.client.channel && this.client.channel._id === info._id;
      if (here) button.setAttribute('aria-current', 'true');
      const name = document.createElement('span');
      name.className = 'room-title';
      name.textContent = info._id;
      const count = document.createElement('span');
      count.className = 'badge';
      const limit = info.settings && typeof info.settings.limit === 'number' ? info.settings.limit : null;
      count.textContent = limit === null ? String(info.count) : `${info.count}/${limit}`;
      button.append(name, count);
      if (info.banned) button.classList.add('banned');
      if (info.settings && info.settings.color) button.style.setProperty('--swatch', info.settings.color);
      button.addEventListener('click', () => {
        this.client.setChannel(info._id);
        $('rooms-dialog').close();
      });
      li.append(button);
      list.append(li);
    }
  }

  openPerson(id) {
    const p = this.client.ppl[id];
    if (!p) return;
    this.selected = p;
    $('person-name').textContent = p.name;
    $('person-dot').style.background = p.color;
    $('person-id').textContent = p._id;
    const owner = this.client.isOwner() && id !== this.client.participantId;
    $('person-owner').hidden = !owner;
    $('person-mute').checked = this.muted.has(p._id);
    $('person-mute').parentElement.hidden = id === this.client.participantId;
    $('person-dialog').showModal();
  }

  wireDialogs() {
    const client = this.client;
    const rooms = $('rooms-dialog');
    $('room-button').addEventListener('click', () => {
      client.sendArray([{ m: '+ls' }]);
      rooms.showModal();
    });
    rooms.addEventListener('close', () => client.sendArray([{ m: '-ls' }]));
    $('new-room-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const name = $('new-room-name').value.trim();
      if (!name) return;
      client.setChannel(name, { visible: $('new-room-visible').checked });
      $('new-room-name').value = '';
      rooms.close();
    });

    $('settings-button').addEventListener('click', () => {
      const s = (client.channel && client.channel.settings) || {};
      $('set-visible').checked = s.visible !== false;
      $('set-chat').checked = s.chat !== false;
      $('set-crownsolo').checked = s.crownsolo === true;
      $('set-color').value = s.color || '#3b5054';
      $('set-color2').value = s.color2 || darken(s.color || '#3b5054');
      $('set-limit').value = typeof s.limit === 'number' ? String(s.limit) : '';
      this.showBanned();
      $('settings-dialog').showModal();
    });
    $('settings-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const set = {
        visible: $('set-visible').checked,
        chat: $('set-chat').checked,
        crownsolo: $('set-crownsolo').checked,
        color: $('set-color').value,
        color2: $('set-color2').value,
        limit: $('set-limit').value.trim(),
      };
      client.sendArray([{ m: 'chset', set }]);
      $('settings-dialog').close();
    });
    $('drop-crown').addEventListener('click', () => {
      client.sendArray([{ m: 'chown' }]);
      $('settings-dialog').close();
    });
    $('unban-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const id = $('unban-id').value.trim();
      if (id) this.unban(id);
      $('unban-id').value = '';
    });

    $('crown').addEventListener('click', () => client.sendArray([{ m: 'chown', id: client.participantId }]));
    $('give-crown').addEventListener('click', () => {
      if (this.selected) client.sendArray([{ m: 'chown', id: this.selected.id }]);
      $('person-dialog').close();
    });
    $('kickban-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const p = this.selected;
      const minutes = Math.max(0, Math.min(60, Number($('kickban-minutes').value) || 0));
      if (p) {
        client.sendArray([{ m: 'kickban', _id: p._id, ms: minutes * 60000 }]);
        this.banned.set(p._id, p.name);
      }
      $('person-dialog').close();
    });
    $('person-unban').addEventListener('click', () => {
      if (this.selected) this.unban(this.selected._id);
      $('person-dialog').close();
    });
    $('person-mute').addEventListener('change', (e) => {
      if (!this.selected) return;
      if (e.target.checked) this.muted.add(this.selected._id);
      else this.muted.delete(this.selected._id);
    });

    $('me-button').addEventListener('click', () => {
      const u = client.user || {};
      $('me-name-input').value = u.name || '';
      $('me-color-input').value = /^#[0-9a-f]{6}$/i.test(u.color || '') ? u.color : '#888888';
      $('me-dialog').showModal();
    });
    $('me-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const name = $('me-name-input').value.trim();
      const set = { color: $('me-color-input').value };
      if (name) set.name = name;
      client.sendArray([{ m: 'userset', set }]);
      $('me-dialog').close();
    });
  }

  unban(id) {
    this.client.sendArray([{ m: 'unban', _id: id }]);
    this.banned.delete(id);
    this.showBanned();
  }

  /** Users this page banned here, each with an unban button. */
  showBanned() {
    const list = $('banned-list');
    list.textContent = '';
    for (const [id, name] of this.banned) {
      const li = document.createElement('li');
      const button = document.createElement('button');
      button.type = 'button';
      button.textContent = `Unban ${name}`;
      button.addEventListener('click', () => this.unban(id));
      li.append(button);
      list.append(li);
    }
  }

  /** Whether notes of user `_id` are to be ignored. */
  isMuted(userId) {
    return this.muted.has(userId);
  }
}
