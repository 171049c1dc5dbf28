import { expect, test, type APIRequestContext, type Page } from '@playwright/test';
import { hydrated, unique } from './support/accounts';
import { ACCESS_TOKEN_TTL_SECS, APP_URL, CLIENT_ID, PROVIDER_URL } from './support/env';
import { isActive, issuedTokens, lastGrant, providerHits, replayRefreshToken } from './support/logi';

const CSRF = { 'x-csrf': '1' };

/** Signs a fresh logi identity in (no other test shares it); returns its sub. */
async function signInWithLogi(page: Page): Promise<string> {
  const account = unique('test-proxy');
  await page.goto(`/api/auth/login?login_hint=${account}`);
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
  expect((await providerHits())['/oauth/token']).toBe(1);

  // None of the tokens the provider issued (including the refreshed ones) reached the page.
  const html = await page.content();
  for (const token of await issuedTokens()) expect(html).not.toContain(token);
});

test('signed out, the demo page says so and the proxy answers not_signed_in', async ({ page }) => {
  await page.goto('/api-demo');
  await expect(page.getByTestId('demo-signed-out')).toBeVisible();
  expect(await hello(page.request)).toMatchObject({ status: 401, body: { error: 'not_signed_in' } });
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
