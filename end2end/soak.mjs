#!/usr/bin/env node
// Steady mixed traffic against a running logi-bff and the dev provider, for scripts/soak.sh:
// browser sign-ins and sign-outs, /me, proxied calls (the provider's short tokens make them
// refresh), native exchanges, refreshes and revocations, back-channel logouts (signing out
// at the provider), password sign-ups and sign-ins. Every answer is classified: the ones
// each action documents count as fine, anything else is an error. Prints one JSON line per
// window (default 300 s) with requests, errors and p50/p99 per route, and a last line for
// the whole run; exits 1 if any undocumented answer was seen.
//
//   APP_URL=… PROVIDER_URL=… CLIENT_ID=… SOAK_SECONDS=1800 SOAK_WORKERS=6 node end2end/soak.mjs

import { randomBytes } from 'node:crypto';
import { authorize, exchange, refresh, call, revoke } from './native-client.mjs';

const appUrl = process.env.APP_URL;
const providerUrl = process.env.PROVIDER_URL;
const clientId = process.env.CLIENT_ID;
const redirectUri = process.env.REDIRECT_URI || 'com.example.logibff:/oauth/callback';
const seconds = Number(process.env.SOAK_SECONDS || 1800);
const windowSeconds = Number(process.env.SOAK_WINDOW_SECONDS || 300);
const workers = Number(process.env.SOAK_WORKERS || 6);

/** A browser: one cookie jar per host, redirects followed by hand. */
class Browser {
  jars = new Map();
  jar(url) {
    const host = new URL(url).host;
    if (!this.jars.has(host)) this.jars.set(host, new Map());
    return this.jars.get(host);
  }
  async fetch(url, init = {}) {
    const jar = this.jar(url);
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const response = await fetch(url, { ...init, redirect: 'manual', headers: { ...init.headers, ...(cookie ? { cookie } : {}) } });
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const at = pair.indexOf('=');
      const [name, value] = [pair.slice(0, at), pair.slice(at + 1)];
      if (!value || /max-age=0/i.test(line)) jar.delete(name);
      else jar.set(name, value);
    }
    return response;
  }
  /** Follows redirects; the last response and the URL it came from. */
  async navigate(url, init = {}) {
    let next = new URL(url);
    let response = await this.fetch(next, init);
    for (let hop = 0; hop < 10 && response.status >= 300 && response.status < 400; hop++) {
      await response.arrayBuffer();
      next = new URL(response.headers.get('location'), next);
      response = await this.fetch(next);
    }
    return { response, url: next };
  }
}

const stats = { window: new Map(), total: new Map(), errors: [] };
function record(route, started, ok, detail) {
  const ms = performance.now() - started;
  for (const scope of [stats.window, stats.total]) {
    if (!scope.has(route)) scope.set(route, { latencies: [], errors: 0 });
    const entry = scope.get(route);
    entry.latencies.push(ms);
    if (!ok) entry.errors += 1;
  }
  if (!ok && stats.errors.length < 50) stats.errors.push(`${route}: ${detail}`);
}

/** Runs `action`, timing it as `route`; `expected(result)` says whether the answer is documented. */
async function timed(route, action, expected) {
  const started = performance.now();
  try {
    const result = await action();
    const ok = expected(result);
    record(route, started, ok, ok ? '' : JSON.stringify(result).slice(0, 300));
    return ok ? result : undefined;
  } catch (error) {
    record(route, started, false, String(error));
    return undefined;
  }
}

const status = async (response) => ({ status: response.status, body: (await response.text()).slice(0, 200) });
const form = (fields) => ({ method: 'POST', headers: { origin: appUrl, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(fields) });

async function browserSignIn(browser, hint) {
  return timed('browser sign-in', async () => {
    const { url } = await browser.navigate(`${appUrl}/api/auth/login?login_hint=${hint}`);
    const me = await (await browser.fetch(`${appUrl}/api/auth/me`)).json();
    return { landed: url.pathname + url.search, sub: me.user?.sub };
  }, (result) => result.sub === `logi-user-${hint}`);
}

async function me(browser) {
  return timed('GET /api/auth/me', async () => status(await browser.fetch(`${appUrl}/api/auth/me`)), (r) => r.status === 200);
}

async function proxied(browser) {
  // 401 session_expired: the provider ended the login (a back-channel logout raced us).
  return timed('GET /api/proxy/hello', async () => status(await browser.fetch(`${appUrl}/api/proxy/hello`, { headers: { 'x-csrf': '1' } })),
    (r) => r.status === 200 || (r.status === 401 && r.body.includes('session_expired')));
}

async function signOut(browser) {
  return timed('POST /api/auth/logout', async () => status(await browser.fetch(`${appUrl}/api/auth/logout`, { method: 'POST', headers: { origin: appUrl } })), (r) => r.status === 200);
}

/** Signs out at the provider's end-session page: it then sends us a back-channel logout. */
async function logiSignOut(browser) {
  return timed('logi sign-out (back-channel logout)', async () => {
    const page = await browser.fetch(`${providerUrl}/session/end?client_id=${clientId}`);
    const html = await page.text();
    const xsrf = html.match(/name="xsrf" value="([^"]+)"/)?.[1];
    if (!xsrf) return { error: `no end-session form (${page.status})` };
    const confirm = new URL(html.match(/action="([^"]+)"/)?.[1] ?? '/session/end/confirm', providerUrl);
    await browser.navigate(confirm, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ xsrf, logout: 'yes' }) });
    // The provider's back-channel call is asynchronous: wait for the app to see it.
    for (let n = 0; n < 50; n++) {
      if ((await (await browser.fetch(`${appUrl}/api/auth/me`)).json()).user === null) return { ended: true };
      await new Promise((r) => setTimeout(r, 100));
    }
    return { ended: false };
  }, (r) => r.ended === true);
}

async function nativeDevice(hint) {
  const tokens = await timed('native exchange', async () => {
    const authorization = await authorize({ providerUrl, clientId, redirectUri, loginHint: hint });
    return exchange(appUrl, authorization, 'soak');
  }, (r) => r.status === 200);
  if (!tokens) return;
  let current = tokens.body;
  for (let n = 0; n < 3; n++) {
    await timed('bearer GET /api/proxy/hello', () => call(appUrl, '/api/proxy/hello', current.access_token), (r) => r.status === 200);
    const next = await timed('POST /api/auth/token (refresh)', () => refresh(appUrl, current.refresh_token), (r) => r.status === 200);
    if (!next) return;
    current = next.body;
  }
  await timed('POST /api/auth/revoke', () => revoke(appUrl, current.refresh_token), (s) => s === 200);
}

async function passwordUser(worker) {
  const email = `soak-${worker}-${randomBytes(4).toString('hex')}@example.com`;
  const password = `soak-passphrase-${randomBytes(6).toString('hex')}`;
  const browser = new Browser();
  await timed('POST /api/sign_up', async () => status(await browser.fetch(`${appUrl}/api/sign_up`, form({ email, name: '', password, return_to: '/' }))), (r) => r.status < 400);
  await signOut(browser);
  await timed('POST /api/sign_in', async () => status(await browser.fetch(`${appUrl}/api/sign_in`, form({ email, password, return_to: '/' }))), (r) => r.status < 400);
  await me(browser);
  await signOut(browser);
}

async function worker(id, deadline) {
  // One browser stays signed in all along, so its 60-second access tokens get refreshed.
  let resident = new Browser();
  const residentHint = `test-soak-resident-${id}`;
  let n = 0;
  while (Date.now() < deadline) {
    let signedIn = (await (await resident.fetch(`${appUrl}/api/auth/me`)).json()).user;
    if (!signedIn) {
      resident = new Browser();
      signedIn = await browserSignIn(resident, residentHint);
    }
    if (signedIn) {
      await me(resident);
      await proxied(resident);
    }
    n += 1;
    const hint = `test-soak-${id}-${n % 20}`;
    const browser = new Browser();
    if (await browserSignIn(browser, hint)) {
      for (let call = 0; call < 10 && Date.now() < deadline; call++) {
        await me(browser);
        await proxied(browser);
        await new Promise((r) => setTimeout(r, 200));
      }
      if (n % 4 === 0) await logiSignOut(browser);
      else await signOut(browser);
    }
    if (n % 2 === 0) await nativeDevice(hint);
    if (n % 5 === 0) await passwordUser(id);
  }
}

function percentile(sorted, p) {
  return sorted.length ? Math.round(sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]) : null;
}

function summary(scope) {
  const routes = {};
  for (const [route, { latencies, errors }] of [...scope].sort()) {
    const sorted = [...latencies].sort((a, b) => a - b);
    routes[route] = { n: sorted.length, errors, p50_ms: percentile(sorted, 50), p99_ms: percentile(sorted, 99) };
  }
  return routes;
}

const started = Date.now();
const deadline = started + seconds * 1000;
const reporter = setInterval(() => {
  console.log(JSON.stringify({ at_s: Math.round((Date.now() - started) / 1000), routes: summary(stats.window) }));
  stats.window = new Map();
}, windowSeconds * 1000);
await Promise.all(Array.from({ length: workers }, (_, id) => worker(id, deadline)));
clearInterval(reporter);
const total = summary(stats.total);
const errors = Object.values(total).reduce((sum, r) => sum + r.errors, 0);
console.log(JSON.stringify({ at_s: Math.round((Date.now() - started) / 1000), total, errors, first_errors: stats.errors.slice(0, 10) }));
process.exit(errors === 0 ? 0 : 1);
