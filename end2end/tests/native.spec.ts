import { expect, test } from '@playwright/test';
import { calculateJwkThumbprint, createRemoteJWKSet, jwtVerify, type JWK } from 'jose';
// The runnable native client (end2end/native-client.mjs) is the app under test here.
// @ts-expect-error: a plain ES module without type declarations.
import { authorize, authorizeParams, call, exchange, refresh, revoke } from '../native-client.mjs';
import { hydrated, unique } from './support/accounts';
import { APP_URL, CLIENT_ID, PROVIDER_URL } from './support/env';
import { isActive, issuedTokens, lastGrant, providerHits } from './support/logi';

const REDIRECT_URI = 'com.example.logibff:/oauth/callback';

type Tokens = { access_token: string; refresh_token: string; expires_in: number; refresh_expires_in: number; user?: { sub: string } };

/** A fresh logi identity signed in on a "device"; every body the device received goes into `seen`. */
async function deviceSignIn(account: string, deviceName: string, seen: string[]): Promise<Tokens> {
  const { client_id: clientId, scope, resource } = await authorizeParams(APP_URL);
  expect(clientId).toBe(CLIENT_ID);
  const authorization = await authorize({ providerUrl: PROVIDER_URL, clientId, redirectUri: REDIRECT_URI, loginHint: account, scope, resource });
  const answer = await exchange(APP_URL, authorization, deviceName);
  seen.push(JSON.stringify(answer.body), [...answer.headers].join('\n'));
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  expect(answer.headers.get('cache-control')).toBe('no-store');
  expect(answer.headers.get('set-cookie')).toBeNull();
  return answer.body;
}

test('a native app exchanges logi\'s code for our tokens, which an independent JOSE library verifies', async () => {
  const seen: string[] = [];
  const account = unique('test-native');
  const tokens = await deviceSignIn(account, 'Pixel 9 (e2e)', seen);
  expect(tokens.user?.sub).toBe(`logi-user-${account}`);
  expect(tokens.expires_in).toBe(600);

  const jwks = createRemoteJWKSet(new URL(`${APP_URL}/.well-known/jwks.json`));
  const { payload, protectedHeader } = await jwtVerify(tokens.access_token, jwks, {
    issuer: APP_URL,
    audience: APP_URL,
    typ: 'at+jwt',
    algorithms: ['ES256'],
    requiredClaims: ['sub', 'sid', 'client_id', 'iat', 'exp', 'jti'],
  });
  expect(payload.client_id).toBe(CLIENT_ID);
  expect(payload.sub).toMatch(/^\d+$/); // our user id, not logi's sub
  const published = (await (await fetch(`${APP_URL}/.well-known/jwks.json`)).json()).keys as JWK[];
  const key = published.find((k) => k.kid === protectedHeader.kid)!;
  expect(await calculateJwkThumbprint(key)).toBe(protectedHeader.kid);

  // Our token, not logi's, calls the API through the proxy (no X-CSRF for a bearer).
  const me = await call(APP_URL, '/api/auth/me', tokens.access_token);
  const api = await call(APP_URL, '/api/proxy/hello', tokens.access_token);
  seen.push(me.text, api.text);
  expect(me.body.user.sub).toBe(`logi-user-${account}`);
  expect(api.status).toBe(200);
  expect(api.body.sub).toBe(`logi-user-${account}`);

  for (const token of await issuedTokens()) {
    for (const text of seen) expect(text.includes(token), 'a logi token reached the device').toBe(false);
  }
});

test('refresh rotates; a lost response may be retried; any other reuse ends the device and logi\'s refresh token', async () => {
  const seen: string[] = [];
  const first = await deviceSignIn(unique('test-native'), 'Reuse phone', seen);
  const logiRefresh = (await lastGrant()).refresh_token!;
  expect(await isActive(logiRefresh)).toBe(true);

  const lost = await refresh(APP_URL, first.refresh_token);
  const retried = await refresh(APP_URL, first.refresh_token);
  seen.push(JSON.stringify(lost.body), JSON.stringify(retried.body));
  expect([lost.status, retried.status]).toEqual([200, 200]);
  expect(retried.body.refresh_token).not.toBe(lost.body.refresh_token);
  expect((await call(APP_URL, '/api/auth/me', retried.body.access_token)).status).toBe(200);

  // The successor that was never delivered shows up: someone else holds the family.
  const reused = await refresh(APP_URL, lost.body.refresh_token);
  expect([reused.status, reused.body.error]).toEqual([400, 'invalid_grant']);
  expect(await isActive(logiRefresh)).toBe(false);
  expect((await refresh(APP_URL, retried.body.refresh_token)).body.error).toBe('invalid_grant');
  const refused = await call(APP_URL, '/api/auth/me', retried.body.access_token);
  expect(refused.status).toBe(401);
  expect(refused.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');

  for (const token of await issuedTokens()) {
    for (const text of seen) expect(text.includes(token), 'a logi token reached the device').toBe(false);
  }
});

test('the account page lists the device by name and ending it stops its bearer; revoke is always 200', async ({ page }) => {
  const account = unique('test-native');
  const tokens = await deviceSignIn(account, 'Ada\'s tablet', []);
  await page.goto(`/api/auth/login?login_hint=${account}`);
  await expect(page.getByTestId('signed-in')).toBeVisible();
  await page.goto('/account');
  await hydrated(page);
  const row = page.locator('[data-testid=session][data-app=true]');
  await expect(row).toContainText('Ada\'s tablet');
  await row.getByTestId('end-session').click();
  await expect(page.locator('[data-testid=session][data-app=true]')).toHaveCount(0);
  expect((await call(APP_URL, '/api/auth/me', tokens.access_token)).status).toBe(401);
  expect((await refresh(APP_URL, tokens.refresh_token)).body.error).toBe('invalid_grant');

  const other = await deviceSignIn(account, 'Spare phone', []);
  await providerHits(true);
  expect(await revoke(APP_URL, other.refresh_token)).toBe(200);
  expect(await revoke(APP_URL, 'not-a-token')).toBe(200);
  // Revocation at logi runs in the background; one, and only one, arrives.
  await expect.poll(async () => (await providerHits())['/oauth/revoke'] ?? 0).toBe(1);
  expect((await call(APP_URL, '/api/proxy/hello', other.access_token)).status).toBe(401);
});
