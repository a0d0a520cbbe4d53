'use strict';
// Shared plumbing for the real-client tests: start an mppd process on a free
// 127.0.0.1 port, create bots from the two published client libraries, wait
// for library events with timeouts, and tear everything down.

const { spawn } = require('node:child_process');
const net = require('node:net');
const path = require('node:path');
const fs = require('node:fs');

const NetClient = require('mpp-client-net').Client;
const XtClient = require('mpp-client-xt');

const DEFAULT_BIN = path.resolve(__dirname, '../../target/debug/mppd');
const MPPD_BIN = process.env.MPPD_BIN ? path.resolve(process.env.MPPD_BIN) : DEFAULT_BIN;
const WAIT_MS = Number(process.env.MPPD_TEST_WAIT_MS || 3000);
const LOG_LEVEL = process.env.MPPD_LOG_LEVEL || 'warn';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function portAccepts(port) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    sock.once('connect', () => { sock.destroy(); resolve(true); });
    sock.once('error', () => { sock.destroy(); resolve(false); });
  });
}

const servers = new Set();
process.on('exit', () => {
  for (const s of servers) {
    try { s.proc.kill('SIGKILL'); } catch (_) { /* already gone */ }
  }
});

// Spawns the server and resolves once its port accepts TCP connections.
async function startServer(extraArgs = []) {
  if (!fs.existsSync(MPPD_BIN)) {
    throw new Error(`server binary not found at ${MPPD_BIN} (build it with cargo build, or set MPPD_BIN)`);
  }
  const port = await freePort();
  const args = ['--listen', `127.0.0.1:${port}`, '--random-ids', '--data-dir', '', '--log-level', LOG_LEVEL, ...extraArgs];
  const proc = spawn(MPPD_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk) => {
    output += chunk.toString();
    if (output.length > 200000) output = output.slice(-100000);
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  let exited = null;
  proc.on('exit', (code, signal) => { exited = { code, signal }; });
  const server = {
    port,
    url: `ws://127.0.0.1:${port}`,
    proc,
    output: () => output,
    async stop() {
      servers.delete(server);
      if (exited) return exited;
      const done = new Promise((r) => proc.once('exit', (code, signal) => r({ code, signal })));
      proc.kill('SIGTERM');
      const t = setTimeout(() => { try { proc.kill('SIGKILL'); } catch (_) { /* gone */ } }, 2000);
      const res = await done;
      clearTimeout(t);
      return res;
    },
  };
  servers.add(server);
  const deadline = Date.now() + 10000;
  for (;;) {
    if (exited) {
      throw new Error(`mppd exited early (${JSON.stringify(exited)}) with args ${args.join(' ')}:\n${output}`);
    }
    if (await portAccepts(port)) break;
    if (Date.now() > deadline) {
      await server.stop();
      throw new Error(`mppd did not accept on port ${port} within 10 s:\n${output}`);
    }
    await sleep(50);
  }
  return server;
}

// ---------------------------------------------------------------------------
// Library adapters: the same operations expressed with each library's own API.

const LIBS = {
  net: {
    name: 'mpp-client-net',
    create(url) { return new NetClient(url); },
    say(c, message) { c.sendChat(message); },
    cursor(c, x, y) { c.setCursor(x, y); },
    userset(c, set) { c.userset(set); },
    chown(c, id) { c.chown(id); },
    chset(c, set) { c.chset(set); },
    kickban(c, _id, ms) { c.sendArray([{ m: 'kickban', _id, ms }]); },
    stop(c) { c.stop(); },
  },
  xt: {
    name: 'mpp-client-xt',
    create(url) { return new XtClient(url); },
    say(c, message) { c.say(message); },
    cursor(c, x, y) { c.moveMouse(x, y); },
    userset(c, set) { c.userset(set); },
    chown(c, id) { c.chown(id); },
    chset(c, set) { c.chset(set); },
    kickban(c, _id, ms) { c.kickBan(_id, ms); },
    stop(c) { if (c.ws) c.stop(); else c.canConnect = false; },
  },
};

// Every bot records the frames it sends and receives (for failure messages)
// and the order of the protocol events it emitted.
function instrument(c, label) {
  c.label = label;
  c.sent = [];
  c.received = [];
  c.events = [];
  const origSend = c.send.bind(c);
  c.send = (raw) => {
    if (c.isConnected()) c.sent.push(raw);
    origSend(raw);
  };
  c.on('connect', () => {
    const ws = c.ws;
    ws.on('close', (code, reason) => { c.closeCode = code; c.closeReason = String(reason); });
    const onMsg = (data) => {
      c.received.push(data);
      if (c.received.length > 300) c.received.splice(0, 100);
    };
    // ws@8 (mpp-client-net) passes (Buffer, isBinary); ws@5 (mpp-client-xt) a string for text.
    ws.on('message', (data, isBinary) => onMsg(typeof data === 'string' ? data
      : isBinary === false ? data.toString() : '<binary>'));
  });
  for (const m of ['b', 'hi', 'ch', 'c', 'nq', 'p', 'a', 'n', 'm', 'bye', 'ls', 'notification', 't']) {
    c.on(m, () => { c.events.push(m); });
  }
  c.on('b', (m) => { c.bMsg = m; });
  // mpp-client-xt emits WebSocket and parse errors as 'error'; an EventEmitter
  // 'error' without a listener would kill the test process.
  c.on('error', (err) => { c.errors = (c.errors || []).concat(String(err && err.message || err)); });
  return c;
}

function describeClient(c) {
  const tail = (arr) => arr.slice(-12).map((s) => `    ${String(s).slice(0, 400)}`).join('\n');
  return `[${c.label}] sent:\n${tail(c.sent)}\n  received:\n${tail(c.received)}`;
}

// Resolves with the first `event` emitted by `c` (after the call) for which
// `pred` holds; rejects after `ms`. Register before triggering the action.
function waitFor(c, event, pred = () => true, ms = WAIT_MS, what = '') {
  return new Promise((resolve, reject) => {
    const seen = [];
    const listener = (...args) => {
      let ok;
      try {
        ok = pred(...args);
      } catch (e) {
        ok = false;
      }
      if (ok) {
        clearTimeout(timer);
        c.removeListener(event, listener);
        resolve(args[0]);
      } else {
        seen.push(args[0]);
      }
    };
    const timer = setTimeout(() => {
      c.removeListener(event, listener);
      const seenStr = seen.slice(-5).map((s) => JSON.stringify(s)).join('\n    ');
      reject(new Error(`timeout after ${ms} ms waiting for '${event}'${what ? ` (${what})` : ''} on ${c.label}` +
        `${seen.length ? `; non-matching '${event}' seen:\n    ${seenStr}` : ''}\n${describeClient(c)}`));
    }, ms);
    c.on(event, listener);
  });
}

// Collects every `event` from now on; `stop()` returns the list.
function collect(c, event, pred = () => true) {
  const got = [];
  const listener = (msg) => { try { if (pred(msg)) got.push(msg); } catch (_) { /* ignore */ } };
  c.on(event, listener);
  return { got, stop() { c.removeListener(event, listener); return got; } };
}

// A round trip on one connection: once the pong arrives, the server has
// handled everything this connection sent before, and everything it queued
// for this connection before the pong has been delivered.
let syncSeq = 0;
async function sync(...clients) {
  for (const c of clients) {
    syncSeq += 1;
    const e = 1e12 + syncSeq;
    const p = waitFor(c, 't', (m) => m.e === e, WAIT_MS, 'pong for sync');
    c.sendArray([{ m: 't', e }]);
    await p;
  }
}

const created = new Set();

// Creates a bot, connects it and (unless channel is null) waits until it is
// in `channel`. Returns { c: client, hi, ch, hist: the `c` message, nq }.
async function connectBot(lib, url, { channel = null, set, label } = {}) {
  const L = LIBS[lib];
  const c = instrument(L.create(url), label || `${lib}-bot`);
  c.lib = L;
  created.add(c);
  const hiP = waitFor(c, 'hi', () => true, WAIT_MS, 'hi after connect');
  let chP = null;
  let hist = null;
  let nq = null;
  if (channel !== null) {
    // Set before start(): both libraries then send `ch` from their `hi` handler.
    c.setChannel(channel, set);
    chP = waitFor(c, 'ch', (m) => m.ch && m.ch._id === channel && m.p, WAIT_MS, `ch for ${channel}`);
    hist = collect(c, 'c');
    nq = collect(c, 'nq');
  }
  c.start();
  const hi = await hiP;
  const res = { c, hi };
  if (chP) {
    res.ch = await chP;
    // `c` and `nq` follow the joining `ch`; after a round trip they are here.
    await sync(c);
    res.hist = hist.stop()[0] || null;
    res.nq = nq.stop()[0] || null;
  }
  return res;
}

async function disconnect(c) {
  c.canConnect = false;
  if (c.ws && c.ws.readyState <= 1) {
    const closed = new Promise((r) => {
      c.ws.addEventListener('close', () => r());
      setTimeout(r, 1000);
    });
    try { c.lib.stop(c); } catch (_) { /* closing a connecting socket may throw */ }
    await closed;
  }
}

async function disconnectAll() {
  const all = [...created];
  created.clear();
  await Promise.all(all.map(disconnect));
}

let roomCounter = 0;
function roomName(prefix) {
  roomCounter += 1;
  return `${prefix} ${process.pid}-${roomCounter}`;
}

const HEX24 = /^[0-9a-f]{24}$/;
const COLOR = /^#[0-9a-f]{6}$/;

// One server for a whole test file: started before the first test, every bot disconnected after
// each test, stopped after the last one, which fails on a panic or an unclean exit. Returns a
// function giving the running server.
function serverPerFile() {
  const { before, after, afterEach } = require('node:test');
  const assert = require('node:assert/strict');
  let server;
  before(async () => { server = await startServer(); });
  afterEach(async () => { await disconnectAll(); });
  after(async () => {
    await disconnectAll();
    if (!server) return;
    const res = await server.stop();
    if (process.env.MPPD_SHOW_LOG) process.stderr.write(server.output());
    assert.ok(!/panicked/.test(server.output()), `server panicked:\n${server.output().slice(-4000)}`);
    assert.ok(res.signal === 'SIGTERM' || res.code === 0 || res.code === 143 || res.signal === null,
      `server exit: ${JSON.stringify(res)}`);
  });
  return () => server;
}

module.exports = {
  MPPD_BIN, WAIT_MS, LIBS, HEX24, COLOR,
  sleep, startServer, serverPerFile, connectBot, waitFor, collect, sync, disconnect, disconnectAll,
  roomName, describeClient,
};
