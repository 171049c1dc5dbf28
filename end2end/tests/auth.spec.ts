import { expect, test, type BrowserContext, type Page } from '@playwright/test';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppProcess } from './support/app';
import { APP_URL, EXTRA_APP_PORTS, PROVIDER_URL } from './support/env';
import { callbackUrl, issuedTokens, providerHits, signInThroughConsentPage, signInWithHint } from './support/logi';

async function sessionCookie(context: BrowserContext) {
  const cookies = await context.cookies(APP_URL);
  const session = cookies.find((c) => c.name === 'logi_bff_session');
  expect(session, JSON.stringify(cookies)).toBeDefined();
  return session!;
}

async function me(page: Page, cookie?: string) {
  const response = await page.request.get('/api/auth/me', cookie === undefined ? {} : { headers: { cookie } });
  expect(response.headers()['cache-control']).toBe('no-store');
  return (await response.json()).user;
}

test('a normal user signs in through the consent page and sees their profile', async ({ page, context }) => {
  await page.goto('/');
  await signInThroughConsentPage(page, 'alice');
  await expect(page).toHaveURL(`${APP_URL}/`);
  await expect(page.getByTestId('display-name')).toHaveText('Alice Example');
  await expect(page.getByTestId('logi-sub')).toHaveText('logi-user-alice');
  await expect(page.getByTestId('email')).toHaveText('alice@example.com');
  const cookie = await sessionCookie(context);
  expect(cookie.httpOnly).toBe(true);
  expect(cookie.sameSite).toBe('Lax');
  expect(await me(page)).toEqual({ sub: 'logi-user-alice', anonymous: false, email: 'alice@example.com', name: 'Alice Example' });
});

test('the first paint is already signed in: no signed-out flash before hydration', async ({ browser }) => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await signInWithHint(page, 'alice');
  const html = await (await page.request.get('/')).text();
  expect(html).toContain('data-testid="signed-in"');
  expect(html).not.toContain('data-testid="signed-out"');
  await context.close();
});

test('an anonymous user is shown as anonymous and its synthetic email is dropped', async ({ page }) => {
  await page.goto('/');
  await signInThroughConsentPage(page, 'anon');
  await expect(page.getByTestId('display-name')).toHaveText('Anonymous user');
  await expect(page.getByTestId('email')).toHaveCount(0);
  expect(await me(page)).toEqual({ sub: 'logi-user-anon', anonymous: true, email: null, name: null });
  expect(await page.content()).not.toContain('1pass.internal');
});

test('a user who grants no email signs in without one', async ({ page }) => {
  await page.goto('/');
  await signInThroughConsentPage(page, 'alice', ['email']);
  await expect(page.getByTestId('display-name')).toHaveText('Alice Example');
  await expect(page.getByTestId('email')).toHaveCount(0);
  expect((await me(page)).email).toBeNull();
});

test('a user with no email and a withheld name falls back to the nickname', async ({ page }) => {
  await page.goto('/');
  await signInThroughConsentPage(page, 'noemail', ['name']);
  await expect(page.getByTestId('display-name')).toHaveText('nora');
  expect(await me(page)).toEqual({ sub: 'logi-user-noemail', anonymous: false, email: null, name: 'nora' });
});

test('sign out ends the server-side session: the old cookie no longer works', async ({ page, context }) => {
  await signInWithHint(page, 'alice');
  const old = await sessionCookie(context);
  await page.getByTestId('sign-out').click();
  await expect(page.getByTestId('signed-out')).toBeVisible();
  expect(await context.cookies(APP_URL)).toEqual([]);
  expect(await me(page, `${old.name}=${old.value}`)).toBeNull();
});

test('return_to is honoured for same-origin paths only', async ({ page }) => {
  await page.goto('/api/auth/login?login_hint=alice&return_to=%2F%3Ffrom%3Dreturn_to');
  await expect(page).toHaveURL(`${APP_URL}/?from=return_to`);
  await expect(page.getByTestId('signed-in')).toBeVisible();
  await page.goto('/api/auth/login?login_hint=alice&return_to=%2F%2Fevil.example%2F');
  await expect(page).toHaveURL(`${APP_URL}/`);
});

test('cancelling at logi shows access_denied as a readable error and leaves no session', async ({ page, context }) => {
  await page.goto('/');
  await page.getByTestId('sign-in').click();
  await page.getByRole('button', { name: 'Cancel' }).click();
  await expect(page).toHaveURL(`${APP_URL}/?auth_error=access_denied`);
  await expect(page.getByTestId('auth-error')).toContainText('Sign-in was cancelled at logi.');
  await expect(page.getByTestId('signed-out')).toBeVisible();
  expect(await context.cookies(APP_URL)).toEqual([]);
});

test('a tampered state is refused with a readable error', async ({ page }) => {
  const callback = await callbackUrl(page, 'alice');
  callback.searchParams.set('state', 'tampered');
  await page.goto(callback.toString());
  await expect(page).toHaveURL(`${APP_URL}/?auth_error=state_mismatch`);
  await expect(page.getByTestId('auth-error')).toContainText('does not belong to a sign-in started in this browser');
  await expect(page.getByTestId('signed-out')).toBeVisible();
});

test('a callback is single-use: replaying it does not sign in again', async ({ page, context }) => {
  let callback = '';
  page.on('request', (r) => { if (r.url().includes('/api/auth/callback?')) callback = r.url(); });
  await signInWithHint(page, 'alice');
  await page.getByTestId('sign-out').click();
  await expect(page.getByTestId('signed-out')).toBeVisible();
  await page.goto(callback);
  await expect(page).toHaveURL(`${APP_URL}/?auth_error=session_expired`);
  expect(await context.cookies(APP_URL)).toEqual([]);
});

test('a malformed login request gets a clear error code', async ({ page }) => {
  await page.goto('/api/auth/login?prompt=everything');
  await expect(page).toHaveURL(`${APP_URL}/?auth_error=invalid_request`);
  await expect(page.getByTestId('auth-error')).toContainText('The sign-in link was malformed.');
});

test('in steady state a login costs exactly two provider calls: token and userinfo', async ({ page }) => {
  await signInWithHint(page, 'alice'); // warms discovery and the JWKS cache
  await page.getByTestId('sign-out').click();
  // The sign-out's revocation runs in the background: let it land before counting.
  await expect.poll(async () => (await providerHits())['/oauth/revoke'] ?? 0).toBeGreaterThan(0);
  await providerHits(true);
  await signInWithHint(page, 'noemail');
  expect(await providerHits()).toEqual({ '/oauth/token': 1, '/oauth/userinfo': 1 });
});

test('without discovery (ONE_PASS_DISCOVERY=off) sign-in uses the endpoints logi documents', async ({ browser }) => {
  const app = AppProcess.start(EXTRA_APP_PORTS.restart, { ONE_PASS_DISCOVERY: 'off', ONE_PASS_JWKS_URL: `${PROVIDER_URL}/jwks` });
  const context = await browser.newContext();
  try {
    await app.ready();
    await providerHits(true);
    const page = await context.newPage();
    const authorize: string[] = [];
    page.on('request', (request) => { if (request.url().startsWith(PROVIDER_URL)) authorize.push(new URL(request.url()).pathname); });
    await signInWithHint(page, 'alice', app.url);
    await expect(page.getByTestId('display-name')).toHaveText('Alice Example');
    expect(authorize[0]).toBe('/oauth/authorize');
    const hits = await providerHits();
    expect(hits['/.well-known/openid-configuration']).toBeUndefined();
    expect(hits).toMatchObject({ '/jwks': 1, '/oauth/token': 1, '/oauth/userinfo': 1 });
  } finally {
    await context.close();
    await app.stop();
  }
});

test('no token, code or cookie ever reaches the browser or the (JSON) logs, and sign-in survives a restart', async ({ browser }) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'logi-bff-restart-'));
  let app = AppProcess.start(EXTRA_APP_PORTS.restart, { LOG_FORMAT: 'json' }, dataDir);
  await app.ready();
  const context = await browser.newContext();
  const page = await context.newPage();
  const seen: string[] = [];
  page.on('response', async (response) => {
    seen.push(JSON.stringify(response.headers()));
    try { seen.push(await response.text()); } catch { /* redirects have no body */ }
  });
  const before = new Set(await issuedTokens());
  try {
    await page.goto(app.url);
    await signInWithHint(page, 'alice', app.url);
    await page.reload();
    await page.getByTestId('how-it-works').click();
    seen.push(await (await page.request.get(`${app.url}/api/auth/me`)).text());
    seen.push(await page.content());

    // A request that logs (a refused sign-in link), so the scan sees a line with its request id.
    await page.request.get(`${app.url}/api/auth/login?prompt=everything`, { maxRedirects: 0 });
    const codes = seen.flatMap((text) => [...text.matchAll(/[?&]code=([\w.~-]+)/g)].map((match) => match[1]));
    expect(codes.length).toBeGreaterThan(0); // the callback's redirect was seen
    const cookie = (await context.cookies(app.url)).find((c) => c.name === 'logi_bff_session')!.value;
    await app.stop();
    const logs = app.logs;
    app = AppProcess.start(EXTRA_APP_PORTS.restart, { LOG_FORMAT: 'json' }, dataDir);
    await app.ready();
    await page.reload();
    await expect(page.getByTestId('display-name')).toHaveText('Alice Example');

    const tokens = (await issuedTokens()).filter((t) => !before.has(t));
    expect(tokens.length).toBeGreaterThanOrEqual(3); // access, refresh and id token of this sign-in
    const everything = [...seen, logs, app.logs].join('\n');
    for (const token of tokens) expect(everything.includes(token), 'a provider token leaked').toBe(false);
    const lines = [logs, app.logs].join('\n').split('\n').filter((line) => line.trim());
    const records = lines.map((line) => JSON.parse(line)); // one JSON object per line
    const requestIds = records.flatMap((record) => (record.spans ?? []).map((span: { request_id?: string }) => span.request_id ?? ''));
    expect(requestIds.some((id: string) => /^[0-9a-f]{32}$/.test(id)), 'no log line names its request').toBe(true);
    const clients = records.flatMap((record) => (record.spans ?? []).map((span: { client?: string }) => span.client));
    expect(clients, 'the request span names the client address').toContain('127.0.0.1');
    for (const secret of [...codes, cookie]) expect(lines.join('\n').includes(secret), 'a code or cookie reached the logs').toBe(false);
    expect(everything).toContain('Alice Example'); // the scan did see the pages
  } finally {
    await context.close();
    await app.stop();
  }
});
