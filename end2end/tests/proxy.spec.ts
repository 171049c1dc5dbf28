import { expect, test, type APIRequestContext, type Page } from '@playwright/test';
import http from 'node:http';
import { AppProcess } from './support/app';
import { PASSWORD, hydrated, signedUp, unique, uniqueEmail } from './support/accounts';
import { ACCESS_TOKEN_TTL_SECS, APP_URL, CLIENT_ID, EXTRA_APP_PORTS, PROVIDER_URL, UPSTREAM_URL } from './support/env';
import { isActive, issuedTokens, lastGrant, providerHits, replayRefreshToken } from './support/logi';

const CSRF = { 'x-csrf': '1' };

/** Signs a fresh logi identity in (no other test shares it); returns its sub. */
async function signInWithLogi(page: Page, baseUrl = ''): Promise<string> {
  const account = unique('test-proxy');
  await page.goto(`${baseUrl}/api/auth/login?login_hint=${account}`);
  await expect(page.getByTestId('signed-in')).toBeVisible();
  return `logi-user-${account}`;
}

async function accessTokenExpires() {
  await new Promise((resolve) => setTimeout(resolve, ACCESS_TOKEN_TTL_SECS * 1000));
}

async function hello(request: APIRequestContext, headers: Record<string, string> = CSRF) {
  const response = await request.get('/api/proxy/hello', { headers });
  return { status: response.status(), body: await response.json(), headers: response.headers() };
}

async function upstreamSaw(reset = false): Promise<{ method: string; path: string; headers: Record<string, string> }[]> {
  return (await fetch(`${UPSTREAM_URL}/__dev/seen`, { method: reset ? 'DELETE' : 'GET' })).json();
}

test('the demo page shows upstream data after sign-in, and again after the access token expired', async ({ page }) => {
  const sub = await signInWithLogi(page);
  await page.goto('/api-demo');
  await hydrated(page);
  await page.getByTestId('call-api').click();
  await expect(page.getByTestId('api-status')).toHaveText('200');
  await expect(page.getByTestId('api-response')).toContainText(`"sub": "${sub}"`);
  await expect(page.getByTestId('api-response')).toContainText('Hello from the upstream API');

  await accessTokenExpires();
  await providerHits(true);
  await page.getByTestId('call-api').click();
  await expect(page.getByTestId('api-status')).toHaveText('200');
  await expect(page.getByTestId('api-response')).toContainText(`"sub": "${sub}"`);
  expect((await providerHits())['/token']).toBe(1);

  // None of the tokens the provider issued (including the refreshed ones) reached the page.
  const html = await page.content();
  for (const token of await issuedTokens()) expect(html).not.toContain(token);
});

test('signed out, the demo page says so and the proxy answers not_signed_in', async ({ page }) => {
  await page.goto('/api-demo');
  await expect(page.getByTestId('demo-signed-out')).toBeVisible();
  expect(await hello(page.request)).toMatchObject({ status: 401, body: { error: 'not_signed_in' } });
});

test('twenty concurrent calls after expiry share exactly one refresh grant', async ({ page }) => {
  await signInWithLogi(page);
  expect((await hello(page.request)).status).toBe(200);
  await accessTokenExpires();
  await providerHits(true);
  const answers = await Promise.all(Array.from({ length: 20 }, () => hello(page.request)));
  expect(answers.map((a) => a.status)).toEqual(Array(20).fill(200));
  expect(await providerHits()).toEqual({ '/token': 1 });
});

test('reusing a rotated refresh token revokes the family; the session then ends cleanly', async ({ page }) => {
  await signInWithLogi(page);
  const first = (await lastGrant()).refresh_token!;
  await accessTokenExpires();
  expect((await hello(page.request)).status).toBe(200);
  const rotated = (await lastGrant()).refresh_token!;
  expect(rotated).not.toBe(first);

  // Someone replays the old refresh token: logi refuses it and revokes the whole family.
  expect((await replayRefreshToken(first)).body.error).toBe('invalid_grant');
  expect(await isActive(rotated)).toBe(false);

  await accessTokenExpires();
  expect(await hello(page.request)).toMatchObject({ status: 401, body: { error: 'session_expired' } });
  expect((await (await page.request.get('/api/auth/me')).json()).user).toBeNull();
  await page.goto('/api-demo');
  await expect(page.getByTestId('demo-signed-out')).toBeVisible();
});

test('a session that expires while the demo page is open offers to sign in again', async ({ page }) => {
  await signInWithLogi(page);
  const first = (await lastGrant()).refresh_token!;
  await page.goto('/api-demo');
  await hydrated(page);
  await replayRefreshToken(first);
  await replayRefreshToken(first);
  await accessTokenExpires();
  await page.getByTestId('call-api').click();
  await expect(page.getByTestId('api-status')).toHaveText('401');
  await expect(page.getByTestId('api-advice')).toContainText('Your session has ended');
});

test('every proxied request needs X-CSRF; refused requests never reach the upstream', async ({ page }) => {
  await signInWithLogi(page);
  await upstreamSaw(true);
  expect(await hello(page.request, {})).toMatchObject({ status: 403, body: { error: 'missing_csrf_header' } });
  expect(await hello(page.request, { 'x-csrf': 'yes' })).toMatchObject({ status: 403, body: { error: 'missing_csrf_header' } });
  const post = await page.request.post('/api/proxy/echo', { headers: { origin: APP_URL }, data: { a: 1 } });
  expect([post.status(), await post.json()]).toEqual([403, { error: 'missing_csrf_header' }]);
  const crossSite = await page.request.post('/api/proxy/echo', { headers: { ...CSRF, origin: 'https://evil.example' }, data: { a: 1 } });
  expect([crossSite.status(), await crossSite.json()]).toEqual([403, { error: 'cross_site_request' }]);
  expect(await upstreamSaw()).toEqual([]);

  const ok = await page.request.post('/api/proxy/echo?x=1', { headers: { ...CSRF, origin: APP_URL }, data: { a: 1 } });
  expect(ok.status()).toBe(200);
  expect(await ok.json()).toMatchObject({ method: 'POST', path: '/echo', query: '?x=1', body_bytes: 7 });
});

/** A GET with the path sent byte for byte (browsers and fetch would normalise `%2e%2e`). */
function rawGet(path: string, cookie: string): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(APP_URL);
  return new Promise((resolve, reject) => {
    const request = http.request({ host: hostname, port, path, headers: { cookie, ...CSRF } }, (response) => {
      let body = '';
      response.on('data', (chunk) => { body += chunk; });
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    request.on('error', reject);
    request.end();
  });
}

test('path escapes are refused before any upstream call', async ({ page, context }) => {
  await signInWithLogi(page);
  const session = (await context.cookies(APP_URL)).find((c) => c.name === 'logi_bff_session')!;
  await upstreamSaw(true);
  for (const path of ['..', '%2e%2e/__dev/seen', '.%2E/x', 'a/../../x', 'a%2fb', 'a%5cb', 'a\\b', 'a//b', 'a/%2e%2e/%2e%2e/x', 'x%00', 'a%0d%0aHost:%20evil', '%zz']) {
    const response = await rawGet(`/api/proxy/${path}`, `${session.name}=${session.value}`);
    expect([path, response.status, response.body]).toEqual([path, 400, '{"error":"invalid_proxy_path"}']);
  }
  expect(await upstreamSaw()).toEqual([]);
});

test('the upstream gets only our bearer token and safe headers; its cookies never come back', async ({ page, context }) => {
  const sub = await signInWithLogi(page);
  await upstreamSaw(true);
  const response = await page.request.get('/api/proxy/echo', {
    headers: { ...CSRF, authorization: 'Bearer smuggled', 'x-forwarded-for': '6.6.6.6', 'x-api-key': 'k', accept: 'application/json' },
  });
  expect(response.status()).toBe(200);
  expect(response.headers()['set-cookie']).toBeUndefined();
  const echoed = await response.json();
  expect(echoed.sub).toBe(sub);
  expect(Object.keys(echoed.headers).sort()).toEqual(['accept', 'authorization', 'host', 'user-agent']);
  expect(echoed.headers.authorization).not.toContain('smuggled');
  expect(echoed.headers.host).toBe(new URL(UPSTREAM_URL).host);
  expect((await context.cookies(APP_URL)).map((c) => c.name)).toEqual(['logi_bff_session']);
  expect((await upstreamSaw()).length).toBe(1);
});

test('request bodies over the limit are refused', async ({ page }) => {
  await signInWithLogi(page);
  const big = await page.request.post('/api/proxy/echo', { headers: { ...CSRF, origin: APP_URL }, data: 'x'.repeat(1024 * 1024 + 1) });
  expect([big.status(), await big.json()]).toEqual([413, { error: 'body_too_large' }]);
});

test('a slow upstream is cut off with 504, a down one answers 502', async ({ page, browser }) => {
  await signInWithLogi(page);
  const started = Date.now();
  const slow = await page.request.get('/api/proxy/slow?ms=8000', { headers: CSRF });
  expect([slow.status(), await slow.json()]).toEqual([504, { error: 'upstream_timeout' }]);
  expect(Date.now() - started).toBeLessThan(6000);

  const app = AppProcess.start(EXTRA_APP_PORTS.upstreamDown, { UPSTREAM_API_URL: 'http://127.0.0.1:9' });
  try {
    await app.ready();
    const other = await browser.newContext();
    const otherPage = await other.newPage();
    await signInWithLogi(otherPage, app.url);
    const down = await otherPage.request.get(`${app.url}/api/proxy/hello`, { headers: CSRF });
    expect([down.status(), await down.json()]).toEqual([502, { error: 'upstream_unreachable' }]);
    await other.close();
  } finally {
    await app.stop();
  }
});

test('a password sign-in has no logi token to call the API with', async ({ page }) => {
  await signedUp(page, uniqueEmail('nologi'), PASSWORD);
  expect(await hello(page.request)).toMatchObject({ status: 403, body: { error: 'logi_sign_in_required' } });
});

test('sign-out revokes the refresh token at logi', async ({ page }) => {
  await signInWithLogi(page);
  const refreshToken = (await lastGrant()).refresh_token!;
  expect(await isActive(refreshToken)).toBe(true);
  await page.getByTestId('sign-out').click();
  await expect(page.getByTestId('signed-out')).toBeVisible();
  expect(await isActive(refreshToken)).toBe(false);
});

test('"sign out of logi too" goes to logi\'s end-session endpoint without putting a token in the URL', async ({ page }) => {
  await signInWithLogi(page);
  const idToken = (await lastGrant()).id_token!;
  const [request] = await Promise.all([
    page.waitForRequest((r) => r.url().startsWith(`${PROVIDER_URL}/session/end`)),
    page.getByTestId('sign-out-federated').click(),
  ]);
  const url = new URL(request.url());
  expect(url.searchParams.get('client_id')).toBe(CLIENT_ID);
  expect(url.searchParams.get('post_logout_redirect_uri')).toBe(`${APP_URL}/`);
  expect(url.searchParams.has('id_token_hint')).toBe(false);
  expect(request.url()).not.toContain(idToken);
  expect((await (await page.request.get(`${APP_URL}/api/auth/me`)).json()).user).toBeNull();
  // logi asks the user to confirm; confirming lands back on the app, signed out.
  await page.getByRole('button', { name: /yes/i }).click();
  await expect(page).toHaveURL(`${APP_URL}/`);
  await expect(page.getByTestId('signed-out')).toBeVisible();
});
