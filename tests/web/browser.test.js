// The built-in web client in headless Chromium, served by the real mppd binary: two pages, each
// with its own client address (mppd trusts X-Forwarded-For from 127.0.0.1 here, and each page
// sends a different one), play together in one room: they see each other, chat and notes cross
// both ways, a room made on page A shows in page B's room list, and the crown holder's settings
// reach B. Screenshots of both pages go to target/web-client/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const MPPD = process.env.MPPD_BIN || path.join(repo, 'target/debug/mppd');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = path.join(repo, 'target/web-client');
const WAIT = Number(process.env.MPPD_TEST_WAIT_MS || 10000);

let server;
let base;
let browser;
const pages = {};
const problems = [];

/** Starts mppd on a free port of 127.0.0.1 and resolves with its address. */
function startServer(addr = '127.0.0.1:0') {
  return new Promise((resolve, reject) => {
    const child = spawn(MPPD, [
      '--listen', addr, '--data-dir', '', '--trusted-proxy', '127.0.0.1', '--log-level', 'info',
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    const timer = setTimeout(() => reject(new Error(`mppd did not start:\n${log}`)), WAIT);
    const read = (chunk) => {
      log += chunk;
      const m = /listening on (127\.0\.0\.1:\d+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve({ child, addr: m[1] });
      }
    };
    child.stdout.on('data', read);
    child.stderr.on('data', read);
    child.on('error', reject);
    child.on('exit', (code) => reject(new Error(`mppd exited with ${code}:\n${log}`)));
  });
}

/** A page of its own browser context, seen by the server as a client at `ip`. */
async function openPage(name, ip, room) {
  const context = await browser.newContext({
    viewport: { width: 1280, height: 760 },
    extraHTTPHeaders: { 'X-Forwarded-For': ip },
  });
  const page = await context.newPage();
  page.on('pageerror', (e) => problems.push(`${name}: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`${name} console: ${m.text()}`);
  });
  await page.goto(`${base}/${encodeURIComponent(room)}`);
  await page.evaluate(() => {
    // What this page receives, for the assertions below.
    window.seen = { a: [], n: [] };
    MPP.client.on('a', (m) => window.seen.a.push(m));
    MPP.client.on('n', (m) => window.seen.n.push(m));
  });
  return page;
}

const until = (page, fn, arg) => page.waitForFunction(fn, arg, { timeout: WAIT });

before(async () => {
  assert.ok(existsSync(MPPD), `build mppd first (${MPPD})`);
  server = await startServer();
  base = `http://${server.addr}`;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    // Playwright gives each launch a fresh --user-data-dir of its own.
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      // A name that is not localhost, for a page that is not a secure context.
      '--host-resolver-rules=MAP piano.example 127.0.0.1',
    ],
  });
  pages.a = await openPage('A', '198.51.100.1', 'Piano test');
  pages.b = await openPage('B', '198.51.100.2', 'Piano test');
});

after(async () => {
  if (browser) await browser.close();
  if (server) server.child.kill('SIGTERM');
});

test('the page is the piano and both pages are in the room as two people', async (t) => {
  const { a, b } = pages;
  // From navigation start to the room's participant list, as the page measured it.
  const ms = await a.evaluate(() => MPP.joinedAt);
  t.diagnostic(`page A: in the room ${Math.round(ms)} ms after navigation start`);
  for (const page of [a, b]) {
    await until(page, () => MPP.client.channel && MPP.client.channel._id === 'Piano test'
      && Object.keys(MPP.client.ppl).length === 2);
    assert.equal(await page.locator('#piano .key').count(), 88);
    assert.equal(await page.locator('#people .person').count(), 2);
  }
  const idA = await a.evaluate(() => MPP.client.participantId);
  const idB = await b.evaluate(() => MPP.client.participantId);
  assert.notEqual(idA, idB, 'each page is its own user (X-Forwarded-For reached the upgrade)');
  assert.ok(await b.evaluate((id) => id in MPP.client.ppl, idA));
  assert.ok(await a.evaluate((id) => id in MPP.client.ppl, idB));
  assert.equal(await a.evaluate(() => MPP.client.getOwnParticipant().id), idA);
});

test('names set in the dialog reach the other page', async () => {
  for (const [page, other, name] of [[pages.a, pages.b, 'Alice'], [pages.b, pages.a, 'Bob']]) {
    await page.click('#me-button');
    await page.fill('#me-name-input', name);
    await page.click('#me-form button[type=submit]');
    await until(other, (n) => Object.values(MPP.client.ppl).some((p) => p.name === n), name);
    await until(other, (n) => document.getElementById('people').textContent.includes(n), name);
  }
});

test('chat crosses both ways', async () => {
  const { a, b } = pages;
  await a.fill('#chat-input', 'hello from A');
  await a.press('#chat-input', 'Enter');
  await until(b, () => document.getElementById('chat-log').textContent.includes('hello from A'));
  await b.evaluate(() => MPP.chat.send('hello from B'));
  await until(a, () => seen.a.some((m) => m.a === 'hello from B' && m.p.name === 'Bob'));
  await until(a, () => document.getElementById('chat-log').textContent.includes('hello from B'));
  // A reply from A to B's line: it carries the line's id and shows the quoted line.
  await a.click('#chat-log li:has-text("hello from B") .reply');
  await a.fill('#chat-input', 'hi Bob');
  await a.press('#chat-input', 'Enter');
  const replied = await until(b, () => {
    const original = seen.a.find((m) => m.a === 'hello from B');
    return seen.a.find((m) => m.a === 'hi Bob' && m.r === original.id);
  });
  assert.ok(await replied.jsonValue());
  await until(b, () => [...document.querySelectorAll('#chat-log .quote')].some((q) => q.textContent.includes('hello from B')));
});

test('notes cross both ways, batched with the sender id', async () => {
  const { a, b } = pages;
  const idA = await a.evaluate(() => MPP.client.participantId);
  await a.evaluate(() => {
    MPP.press('c3', 0.8);
    MPP.press('e3', 0.6);
    MPP.release('c3');
  });
  const fromA = await until(b, (id) => {
    const msg = seen.n.find((m) => m.p === id);
    return msg && msg.n.length >= 3 && msg;
  }, idA);
  const msg = await fromA.jsonValue();
  assert.deepEqual(msg.n.map((n) => n.n), ['c3', 'e3', 'c3']);
  assert.equal(msg.n[2].s, 1);
  assert.equal(typeof msg.t, 'number');
  const idB = await b.evaluate(() => MPP.client.participantId);
  await b.mouse.move(640, 300);
  // B plays with the mouse on a key of the drawn keyboard.
  const key = b.locator('#piano .key[data-note="a3"]');
  await key.click();
  await until(a, (id) => seen.n.some((m) => m.p === id && m.n.some((n) => n.n === 'a3' && !n.s)), idB);
  // A lights the key in B's colour when the note sounds.
  await until(a, () => document.querySelector('#piano .key[data-note="a3"]').classList.contains('lit'));
  // The computer keyboard: E is middle C (c3), Shift+E an octave up.
  await b.keyboard.press('e');
  await b.keyboard.down('Shift');
  await b.keyboard.press('e');
  await b.keyboard.up('Shift');
  await until(a, (id) => {
    const played = seen.n.filter((m) => m.p === id).flatMap((m) => m.n).filter((n) => !n.s).map((n) => n.n);
    return played.includes('c3') && played.includes('c4');
  }, idB);
  // The first gesture started the sound.
  assert.equal(await b.evaluate(() => MPP.sound.ready), true);
});

test('a room made on page A shows in the room list of page B', async () => {
  const { a, b } = pages;
  await b.click('#room-button');
  await until(b, () => document.querySelector('#room-list [data-room="Piano test"]'));
  await a.click('#room-button');
  await a.fill('#new-room-name', 'Made by A');
  await a.click('#new-room-form button[type=submit]');
  await until(a, () => MPP.client.channel._id === 'Made by A' && MPP.client.isOwner());
  assert.equal(await a.evaluate(() => location.pathname), '/Made%20by%20A');
  await until(b, () => document.querySelector('#room-list [data-room="Made by A"]'));
  await b.click('#room-list [data-room="Made by A"]');
  await until(b, () => MPP.client.channel._id === 'Made by A' && Object.keys(MPP.client.ppl).length === 2);
  await until(a, () => Object.keys(MPP.client.ppl).length === 2);
});

test("the crown holder's settings reach the other page", async () => {
  const { a, b } = pages;
  assert.equal(await b.locator('#settings-button').isHidden(), true, 'B holds no crown');
  await a.click('#settings-button');
  await a.fill('#set-color', '#6a2f7a');
  await a.fill('#set-limit', '12');
  await a.click('#settings-form button[type=submit]');
  await until(b, () => MPP.client.channel.settings.color === '#6a2f7a' && MPP.client.channel.settings.limit === 12);
  await until(b, () => document.body.style.getPropertyValue('--room') === '#6a2f7a');
  // B's list entry for the room follows too.
  await b.click('#room-button');
  await until(b, () => document.querySelector('#room-list [data-room="Made by A"] .badge').textContent === '2/12');
  await b.keyboard.press('Escape');
});

test('screenshots of both pages', async () => {
  const { a, b } = pages;
  mkdirSync(SHOTS, { recursive: true });
  await a.mouse.move(420, 260);
  await b.mouse.move(900, 220);
  await a.evaluate(() => MPP.chat.send('Shall we play a duet?'));
  await until(b, () => document.getElementById('chat-log').textContent.includes('duet'));
  await until(a, () => document.querySelectorAll('.cursor:not([hidden])').length === 1);
  // A chord from B, lit on A when it sounds there.
  await b.evaluate(() => ['c3', 'e3', 'g3', 'c4'].forEach((n) => MPP.press(n, 0.7)));
  await until(a, () => document.querySelector('#piano .key[data-note="g3"]').classList.contains('lit'));
  // …and sounding there, as a voice of B's.
  const idB = await b.evaluate(() => MPP.client.participantId);
  assert.ok(await a.evaluate((id) => MPP.sound.ready && MPP.sound.voices.has(`${id}g3`), idB));
  await a.evaluate(() => ['a2', 'e3'].forEach((n) => MPP.press(n, 0.7)));
  await a.screenshot({ path: path.join(SHOTS, 'page-a.png') });
  await b.screenshot({ path: path.join(SHOTS, 'page-b.png') });
  assert.deepEqual(problems, [], 'no page errors');
});

test('on a phone that is not on a secure page (plain http, not localhost) the MIDI dialog says why', async () => {
  const context = await browser.newContext({
    viewport: { width: 390, height: 760 },
    isMobile: true,
    hasTouch: true,
    extraHTTPHeaders: { 'X-Forwarded-For': '198.51.100.3' },
  });
  const page = await context.newPage();
  const port = server.addr.split(':')[1];
  await page.goto(`http://piano.example:${port}/`);
  await until(page, () => MPP.client.channel && MPP.client.channel._id === 'lobby');
  // Everything but the keyboard fits the phone's width; the keyboard scrolls, keys finger-wide.
  assert.equal(await page.evaluate(() => document.documentElement.scrollWidth <= innerWidth), true);
  const keyWidth = await page.evaluate(() => MPP.piano.keys.c3.el.getBoundingClientRect().width);
  assert.ok(keyWidth >= 16, `white keys ${keyWidth} px wide`);
  await page.tap('#piano .key[data-note="c3"]');
  await page.screenshot({ path: path.join(SHOTS, 'phone.png') });
  assert.equal(await page.evaluate(() => window.isSecureContext), false);
  await page.click('#midi-button');
  const hint = page.locator('#midi-hint');
  assert.equal(await hint.isVisible(), true);
  assert.match(await hint.textContent(), /secure page: open this piano over https or on localhost/);
  assert.equal(await page.locator('#midi-enable').isHidden(), true);
  await page.keyboard.press('Escape');
  // The volume is remembered by the browser.
  await page.fill('#volume', '30');
  await page.reload();
  await until(page, () => MPP.client.channel);
  assert.equal(await page.evaluate(() => [document.getElementById('volume').value, MPP.sound.volume].join()), '30,0.3');
  await context.close();
});

test('kickban from the participant menu, its notices, unban from the settings, and giving the crown', async () => {
  const { a, b } = pages;
  const idB = await b.evaluate(() => MPP.client.participantId);
  await a.click(`#people .person:has-text("Bob")`);
  await a.fill('#kickban-minutes', '1');
  await a.click('#kickban-form button[type=submit]');
  await until(b, () => MPP.client.channel._id === 'test/awkward');
  await until(b, () => document.getElementById('notices').textContent.includes('Banned from "Made by A" for 1 minutes.'));
  await until(a, () => document.getElementById('notices').textContent.includes('Alice banned Bob from the channel'));
  await until(a, (id) => !(id in MPP.client.ppl), idB);
  await a.click('#settings-button');
  await a.click('#banned-list button:has-text("Unban Bob")');
  await a.keyboard.press('Escape');
  // The unban has gone out before B asks again (both on A's connection, in order).
  await a.evaluate(() => new Promise((resolve) => {
    MPP.client.once('t', resolve);
    MPP.client.ping();
  }));
  await b.evaluate(() => MPP.client.setChannel('Made by A'));
  await until(b, () => MPP.client.channel._id === 'Made by A' && Object.keys(MPP.client.ppl).length === 2);
  // Back in the room, B gets its chat history.
  await until(b, () => document.getElementById('chat-log').textContent.includes('Shall we play a duet?'));
  // A gives B the crown from B's menu; B gets the settings button, A loses it.
  await a.click(`#people .person:has-text("Bob")`);
  await a.click('#give-crown');
  await until(b, () => MPP.client.isOwner() && !document.getElementById('settings-button').hidden);
  await until(a, () => !MPP.client.isOwner() && document.getElementById('settings-button').hidden);
  await until(a, () => document.querySelector('#people .person.owner').textContent.includes('Bob'));
});

test('a lost connection is shown and both pages come back to their room', async () => {
  const { a, b } = pages;
  const addr = server.addr;
  server.child.kill('SIGTERM');
  await new Promise((resolve) => server.child.once('exit', resolve));
  for (const page of [a, b]) {
    await until(page, () => /Connection lost/.test(document.getElementById('status').textContent)
      && !document.getElementById('retry-button').hidden);
  }
  server = await startServer(addr);
  for (const page of [a, b]) {
    await until(page, () => MPP.client.channel && MPP.client.channel._id === 'Made by A'
      && Object.keys(MPP.client.ppl).length === 2
      && document.getElementById('status').textContent.includes('Connected'), undefined);
  }
  // While the server was away the browser logged its failed connection attempts; nothing else.
  assert.deepEqual(problems.filter((p) => !/WebSocket connection to .* failed/.test(p)), []);
});
