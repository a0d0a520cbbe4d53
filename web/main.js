// Puts the page together: the connection, the room views, the keyboard with its sound, the
// note batching and quota, the computer keyboard and MIDI, and `window.MPP` for scripts.

import { Client } from './client.js';
import { NoteQuota, NoteBatcher, PARAMS_OFFLINE, FLUSH_MS, QUOTA_TICK_MS } from './notes.mjs';
import { Piano } from './piano.js';
import { Sound } from './sound.js';
import { Midi } from './midi.mjs';
import { Room, roomFromPath } from './room.js';
import { Chat, Notices } from './chat.js';

const $ = (id) => document.getElementById(id);

// The server is the host that served this page; the room is the page's path.
const client = new Client(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/`);
client.desiredChannelId = roomFromPath(location.pathname);

const sound = new Sound();
const quota = new NoteQuota(PARAMS_OFFLINE, (q) => {
  const meter = $('quota');
  meter.max = q.max;
  meter.value = q.points;
});
const batcher = new NoteBatcher({
  serverNow: () => client.clock.serverNow(),
  send: (msg) => client.sendArray([msg]),
  quota,
});
setInterval(() => batcher.flush(), FLUSH_MS);
setInterval(() => quota.tick(), QUOTA_TICK_MS);
client.on('nq', (msg) => quota.setParams(msg));
client.on('disconnect', () => {
  batcher.clear();
  quota.setParams(PARAMS_OFFLINE);
});

const room = new Room(client);
const chat = new Chat(client);
new Notices(client);

// The player: keys held, and keys the sustain pedal keeps sounding after their release.
const held = new Set();
const sustained = new Set();
let pedalDown = false;
const ownColor = () => (client.user && client.user.color) || '#ffffff';

function press(note, vel = 0.5) {
  if (!piano.keys[note]) return false;
  if (!batcher.press(note, vel)) {
    $('quota').classList.add('spent');
    setTimeout(() => $('quota').classList.remove('spent'), 300);
    return false;
  }
  sustained.delete(note);
  held.add(note);
  sound.play(note, vel, 0, 'self');
  piano.light(note, ownColor());
  piano.hold(note, true);
  return true;
}

function release(note) {
  if (!piano.keys[note]) return;
  held.delete(note);
  piano.hold(note, false);
  if (pedalDown) {
    sustained.add(note);
    return;
  }
  batcher.release(note);
  sound.stop(note, 0, 'self');
}

function pedal(down) {
  pedalDown = down;
  $('sustain-button').setAttribute('aria-pressed', String(down));
  if (down) return;
  for (const note of sustained) {
    batcher.release(note);
    sound.stop(note, 0, 'self');
  }
  sustained.clear();
}

const piano = new Piano($('piano'), { press, release });
// Where the keyboard scrolls (narrow screens), start around middle C.
const scroller = $('piano-scroll');
const middle = piano.keys.c3.el;
scroller.scrollLeft = middle.offsetLeft + middle.offsetWidth / 2 - scroller.clientWidth / 2;

// Notes of the others, at their time plus the buffer.
client.on('n', (msg) => {
  if (!Array.isArray(msg.n) || typeof msg.t !== 'number') return;
  const part = client.ppl[msg.p];
  if (part && room.isMuted(part._id)) return;
  const color = part ? part.color : '#777777';
  for (const note of msg.n) {
    if (!note || typeof note.n !== 'string') continue;
    const delay = client.clock.delayFor(msg.t, note.d);
    if (delay === null) continue;
    if (note.s) {
      sound.stop(note.n, delay, msg.p);
    } else {
      const v = typeof note.v === 'number' ? note.v : 0.5;
      sound.play(note.n, v, delay, msg.p);
      piano.light(note.n, color, delay);
    }
  }
});

// The computer keyboard: two rows in the usual layout, by key position (any keyboard layout).
const LOWER = ['KeyA', 'KeyZ', 'KeyS', 'KeyX', 'KeyC', 'KeyF', 'KeyV', 'KeyG', 'KeyB', 'KeyN', 'KeyJ', 'KeyM',
  'KeyK', 'Comma', 'KeyL', 'Period', 'Slash', 'Quote'];
const UPPER = ['Digit1', 'KeyQ', 'Digit2', 'KeyW', 'KeyE', 'Digit4', 'KeyR', 'Digit5', 'KeyT', 'KeyY', 'Digit7',
  'KeyU', 'Digit8', 'KeyI', 'Digit9', 'KeyO', 'KeyP', 'Minus', 'BracketLeft', 'Equal', 'BracketRight'];
const NAMES = Object.keys(piano.keys);
// Lower row from gs1 (A = g♯, Z = a, C = c2); upper row from gs2 (Q = a2, E = c3, middle C).
const KEYMAP = new Map([
  ...LOWER.map((code, i) => [code, NAMES.indexOf('gs1') + i]),
  ...UPPER.map((code, i) => [code, NAMES.indexOf('gs2') + i]),
]);
const down = new Map();

/** Whether a key press belongs to the focused control (typing, or activating a button). */
function forControl(e) {
  const t = e.target;
  if (!(t instanceof HTMLElement)) return false;
  if (t.isContentEditable || /^(TEXTAREA|SELECT)$/.test(t.tagName)) return true;
  if (t instanceof HTMLInputElement) return !['range', 'checkbox'].includes(t.type) || e.code === 'Space';
  return /^(BUTTON|A)$/.test(t.tagName) && (e.code === 'Enter' || e.code === 'Space');
}

document.addEventListener('keydown', (e) => {
  unlockSound();
  // Ctrl, Alt and Meta combinations stay the browser's shortcuts.
  if (e.repeat || e.ctrlKey || e.metaKey || e.altKey || forControl(e) || document.querySelector('dialog[open]')) {
    return;
  }
  if (e.code === 'Enter') {
    e.preventDefault();
    $('chat-input').focus();
    return;
  }
  if (e.code === 'Space') {
    e.preventDefault();
    pedal(true);
    return;
  }
  const index = KEYMAP.get(e.code);
  if (index === undefined) return;
  e.preventDefault();
  const shift = e.shiftKey ? 12 : e.getModifierState('CapsLock') ? -12 : 0;
  const note = NAMES[index + shift];
  if (!note) return;
  down.set(e.code, note);
  press(note, 0.6);
});

document.addEventListener('keyup', (e) => {
  if (e.code === 'Space' && pedalDown && !sustainToggled) {
    pedal(false);
    return;
  }
  const note = down.get(e.code);
  if (!note) return;
  down.delete(e.code);
  release(note);
});

// Keys held when the window loses focus would never see their keyup.
window.addEventListener('blur', () => {
  for (const note of down.values()) release(note);
  down.clear();
  if (pedalDown && !sustainToggled) pedal(false);
});

let sustainToggled = false;
$('sustain-button').addEventListener('click', () => {
  sustainToggled = !pedalDown;
  pedal(!pedalDown);
});

// Sound starts with the first gesture (browsers keep an AudioContext suspended until then).
function unlockSound() {
  if (sound.ready) return;
  sound.unlock().then((ok) => {
    $('sound-hint').hidden = ok;
  });
}
document.addEventListener('pointerdown', unlockSound, true);
// The volume, kept in this browser (where storage is allowed).
const volume = $('volume');
try {
  const saved = localStorage.getItem('mppd-volume');
  if (saved !== null && Number(saved) >= 0 && Number(saved) <= 100) volume.value = saved;
} catch {
  // No storage: the default volume.
}
sound.setVolume(Number(volume.value) / 100);
volume.addEventListener('input', () => {
  sound.setVolume(Number(volume.value) / 100);
  try {
    localStorage.setItem('mppd-volume', volume.value);
  } catch {
    // No storage: the volume lasts for this page.
  }
});

// MIDI keyboards.
const midi = new Midi({ press, release, pedal }, (state) => {
  const hint = $('midi-hint');
  hint.hidden = state.supported;
  hint.textContent = state.reason || '';
  $('midi-button').classList.toggle('warn', !state.supported);
  const select = $('midi-select');
  select.disabled = !state.supported;
  $('midi-enable').hidden = !!midi.access || !Midi.availability().supported;
  select.length = 1;
  for (const input of state.inputs) select.add(new Option(input.name, input.id));
  select.value = midi.chosen;
  $('midi-button').textContent = state.inputs.length ? `MIDI (${state.inputs.length})` : 'MIDI';
});
// Asking for MIDI may prompt, so the page asks on load only when the permission was given before.
const availability = Midi.availability();
if (!availability.supported) {
  midi.onstate({ ...availability, inputs: [] });
} else if (navigator.permissions) {
  navigator.permissions.query({ name: 'midi' }).then(
    (p) => p.state === 'granted' && midi.enable(),
    () => {},
  );
}
$('midi-button').addEventListener('click', () => $('midi-dialog').showModal());
$('midi-enable').addEventListener('click', () => midi.enable());
$('midi-select').addEventListener('change', (e) => midi.choose(e.target.value));

// The connection's state, with the retry countdown while offline.
let retryTicker = 0;
client.on('status', (status) => {
  const box = $('status');
  box.dataset.state = status.state;
  $('retry-button').hidden = status.state !== 'offline';
  clearInterval(retryTicker);
  const show = () => {
    const left = status.retryAt ? Math.max(0, Math.ceil((status.retryAt - Date.now()) / 1000)) : 0;
    $('status-text').textContent = left > 0 ? `${status.text}, retrying in ${left} s` : status.text;
  };
  show();
  if (status.retryAt) retryTicker = setInterval(show, 250);
});
$('retry-button').addEventListener('click', () => client.reconnectNow());

// Closing a dialog with its ✕ (a method="dialog" form) needs no script; Escape works too.
for (const dialog of document.querySelectorAll('dialog')) {
  dialog.addEventListener('click', (e) => {
    if (e.target === dialog) dialog.close();
  });
}

window.MPP = {
  client,
  piano,
  sound,
  midi,
  chat,
  noteQuota: quota,
  press,
  release,
  pressSustain: () => pedal(true),
  releaseSustain: () => pedal(false),
};

// When the first room was entered, in ms since navigation start (for measurements).
client.once('ch', () => {
  window.MPP.joinedAt = performance.now();
});

client.start();
