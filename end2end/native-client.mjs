#!/usr/bin/env node
// A tiny "native app" for logi-bff's Confidential + BFF exchange: PKCE + authorize at
// logi (with login_hint, so the dev provider approves at once), then the code goes to
// logi-bff, which answers with *its own* tokens; then a proxied API call and a refresh.
//
//   APP_URL=http://localhost:3000 PROVIDER_URL=http://127.0.0.1:9090 node end2end/native-client.mjs alice
//
// Environment: APP_URL, PROVIDER_URL, CLIENT_ID (logi-bff-dev),
// REDIRECT_URI (com.example.logibff:/oauth/callback). The end-to-end tests import it.
import { createHash, randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';

const b64url = (bytes) => Buffer.from(bytes).toString('base64url');

/** What the app's server says the authorization request must carry: client id, scope and
 * the declared APIs' resources (GET /api/auth/logi/authorize-params). */
export async function authorizeParams(appUrl) {
  const response = await fetch(`${appUrl}/api/auth/logi/authorize-params`);
  if (!response.ok) throw new Error(`authorize-params: ${response.status}`);
  return response.json();
}

/** Runs logi's authorization request like an app would; returns what the exchange needs.
 * `scope` and `resource` come from {@link authorizeParams}; a step-up adds the `acrValues` and
 * `maxAge` of the app's `401 step_up_required`, and `mfaCode` answers the dev provider's
 * second-factor page (what the person types in the system browser). */
export async function authorize({ providerUrl, clientId, redirectUri, loginHint, prompt, acrValues, maxAge, mfaCode, scope = 'openid profile:basic email', resource = [] }) {
  const discovery = await (await fetch(`${providerUrl}/.well-known/openid-configuration`)).json();
  const verifier = b64url(randomBytes(32));
  const nonce = b64url(randomBytes(16));
  const state = b64url(randomBytes(16));
  const url = new URL(discovery.authorization_endpoint);
  for (const [key, value] of Object.entries({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: redirectUri,
    scope,
    state,
    nonce,
    code_challenge: b64url(createHash('sha256').update(verifier).digest()),
    code_challenge_method: 'S256',
    login_hint: loginHint,
    ...(prompt ? { prompt } : {}),
    ...(acrValues ? { acr_values: acrValues } : {}),
    ...(maxAge ? { max_age: String(maxAge) } : {}),
  })) url.searchParams.set(key, value);
  for (const indicator of resource) url.searchParams.append('resource', indicator);

  // Follow the provider's redirects by hand (with its cookies) until it sends the app
  // to its redirect URI: a real app's system browser does this.
  const cookies = new Map();
  let next = url;
  let form;
  for (let hop = 0; hop < 10; hop++) {
    const headers = { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; '), ...(form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) };
    const response = await fetch(next, { redirect: 'manual', method: form ? 'POST' : 'GET', headers, body: form });
    form = undefined;
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const at = pair.indexOf('=');
      cookies.set(pair.slice(0, at), pair.slice(at + 1));
    }
    const location = response.headers.get('location');
    const page = location ? '' : await response.text();
    const secondFactor = page.match(/<form method="post" action="(\/interaction\/[\w-]+)">/);
    if (!location && secondFactor && mfaCode && page.includes('name="code"')) {
      form = new URLSearchParams({ user: loginHint, action: 'verify', code: mfaCode }).toString();
      next = new URL(secondFactor[1], next);
      continue;
    }
    if (!location) throw new Error(`the provider stopped at ${next} with ${response.status}`);
    if (location.startsWith(redirectUri)) {
      const answer = new URL(location);
      if (answer.searchParams.get('state') !== state) throw new Error('state mismatch');
      if (answer.searchParams.get('error')) throw new Error(`authorization failed: ${answer.searchParams.get('error')}`);
      return { code: answer.searchParams.get('code'), code_verifier: verifier, redirect_uri: redirectUri, nonce };
    }
    next = new URL(location, next);
  }
  throw new Error('too many redirects at the provider');
}

/** A device's step-up: POST /api/auth/logi/exchange with its bearer token and the
 * requirement it authorized with; the device login is upgraded in place (no new tokens). */
export async function upgrade(appUrl, authorization, accessToken, { acrValues, maxAge }) {
  const response = await fetch(`${appUrl}/api/auth/logi/exchange`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${accessToken}` },
    body: JSON.stringify({ ...authorization, ...(acrValues ? { acr_values: acrValues } : {}), ...(maxAge ? { max_age: maxAge } : {}) }),
  });
  return { status: response.status, body: await response.json() };
}

/** POST /api/auth/logi/exchange: logi's code in, logi-bff's tokens out. */
export async function exchange(appUrl, authorization, deviceName) {
  const response = await fetch(`${appUrl}/api/auth/logi/exchange`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...authorization, device_name: deviceName }),
  });
  return { status: response.status, headers: response.headers, body: await response.json() };
}

/** POST /api/auth/token with grant_type=refresh_token. */
export async function refresh(appUrl, refreshToken) {
  const response = await fetch(`${appUrl}/api/auth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken }),
  });
  return { status: response.status, body: await response.json() };
}

/** A call with our access token (e.g. /api/auth/me, /api/proxy/hello). */
export async function call(appUrl, path, accessToken, init = {}) {
  const response = await fetch(`${appUrl}${path}`, { ...init, headers: { ...init.headers, authorization: `Bearer ${accessToken}` } });
  const text = await response.text();
  return { status: response.status, headers: response.headers, text, body: text ? JSON.parse(text) : null };
}

/** POST /api/auth/revoke (RFC 7009). */
export async function revoke(appUrl, refreshToken) {
  const response = await fetch(`${appUrl}/api/auth/revoke`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: refreshToken }),
  });
  return response.status;
}

async function main() {
  const appUrl = process.env.APP_URL || 'http://localhost:3000';
  const providerUrl = process.env.PROVIDER_URL || 'http://127.0.0.1:9090';
  const redirectUri = process.env.REDIRECT_URI || 'com.example.logibff:/oauth/callback';
  const loginHint = process.argv[2] || 'alice';
  const short = (token) => `${token.slice(0, 16)}…`;

  const { client_id: clientId, scope, resource } = await authorizeParams(appUrl);
  const authorization = await authorize({ providerUrl, clientId, redirectUri, loginHint, scope, resource });
  console.log(`1. logi sent a code to ${redirectUri}`);
  const tokens = await exchange(appUrl, authorization, 'native-client.mjs');
  if (tokens.status !== 200) throw new Error(`exchange: ${tokens.status} ${JSON.stringify(tokens.body)}`);
  console.log(`2. exchange: our access token ${short(tokens.body.access_token)} (${tokens.body.expires_in} s), refresh token ${short(tokens.body.refresh_token)}; user ${JSON.stringify(tokens.body.user)}`);
  const me = await call(appUrl, '/api/auth/me', tokens.body.access_token);
  console.log(`3. GET /api/auth/me: ${me.status} ${me.text}`);
  const api = await call(appUrl, '/api/proxy/hello', tokens.body.access_token);
  console.log(`4. GET /api/proxy/hello: ${api.status} ${api.text}`);
  const refreshed = await refresh(appUrl, tokens.body.refresh_token);
  if (refreshed.status !== 200) throw new Error(`refresh: ${refreshed.status} ${JSON.stringify(refreshed.body)}`);
  console.log(`5. refresh: new access token ${short(refreshed.body.access_token)}, new refresh token ${short(refreshed.body.refresh_token)}`);
  console.log(`6. revoke: ${await revoke(appUrl, refreshed.body.refresh_token)}`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((error) => {
    console.error(`native-client: ${error.message}`);
    process.exit(1);
  });
}
