import { expect, test, type Page } from '@playwright/test';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hydrated } from './support/accounts';
import { AppProcess } from './support/app';
import { CLIENT_ID, EXTRA_APP_PORTS, ORDERS_RESOURCE, PROVIDER_URL, UPSTREAM_URL } from './support/env';
import { issuedTokens } from './support/logi';
// @ts-expect-error: a plain ES module without type declarations.
import { authorize, authorizeParams, call, exchange } from '../native-client.mjs';

function apiFile(lines: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'logi-bff-e2e-apis-'));
  const file = join(dir, 'apis.toml');
  writeFileSync(file, lines.join('\n'));
  return file;
}

// Declared APIs against the real dev provider: the app's own client-credentials token
// (oidc-provider's grant, checked by its upstream API) and an API that gets no token.
test('a public client API gets the app\'s own token from logi, and a token-less API gets none', async ({ request }) => {
  const file = apiFile([
    '[[api]]', 'name = "relay"', 'path = "/api/relay/"', `upstream = "${UPSTREAM_URL}"`, 'token = "client"', 'public = true', '',
    '[[api]]', 'name = "status"', 'path = "/api/status/"', `upstream = "${UPSTREAM_URL}/public"`, 'methods = ["GET", "HEAD"]', 'token = "none"', 'public = true', '',
  ]);
  const app = AppProcess.start(EXTRA_APP_PORTS.apis, { API_ROUTES_FILE: file });
  try {
    await app.ready();
    const relayed = await request.get(`${app.url}/api/relay/hello`);
    expect(relayed.status()).toBe(200);
    expect(await relayed.json()).toMatchObject({ message: 'Hello from the upstream API', sub: `client:${CLIENT_ID}` });
    const open = await request.get(`${app.url}/api/status/now`);
    expect(open.status()).toBe(200);
    expect(await open.json()).toMatchObject({ sub: null, authorization_sent: false });
    const refused = await request.delete(`${app.url}/api/status/now`, { headers: { origin: app.url } });
    expect(refused.status()).toBe(405);
    expect(refused.headers()['allow']).toBe('GET, HEAD');
  } finally {
    await app.stop();
  }
});

// RFC 8707 against oidc-provider: the sign-in names the orders resource, the app gets the
// orders token by a refresh grant with `resource`, and the upstream accepts only that token
// under /orders/ and refuses it everywhere else (so no API's token reached another).
/** The app on its own port with one API of each kind (as deploy/apis.example.toml), signed in as alice on the demo page. */
async function demoApp(page: Page): Promise<AppProcess> {
  const file = apiFile([
    '[[api]]', 'name = "orders"', 'path = "/api/orders/"', `upstream = "${UPSTREAM_URL}/orders"`, `resource = "${ORDERS_RESOURCE}"`, 'scopes = "orders:read"', '',
    '[[api]]', 'name = "status"', 'path = "/api/status/"', `upstream = "${UPSTREAM_URL}/public"`, 'token = "none"', 'public = true', '',
    '[[api]]', 'name = "reports"', 'path = "/api/reports/"', `upstream = "${UPSTREAM_URL}"`, 'token = "client"', '',
    '[[api]]', 'name = "live"', 'path = "/api/live/"', `upstream = "${UPSTREAM_URL}/ws"`, 'methods = ["GET"]', 'websocket = true', '',
  ]);
  const app = AppProcess.start(EXTRA_APP_PORTS.apis, { API_ROUTES_FILE: file });
  await app.ready();
  await page.goto(`${app.url}/api/auth/login?login_hint=alice`);
  await expect(page.getByTestId('signed-in')).toBeVisible();
  await page.goto(`${app.url}/api-demo`);
  await hydrated(page);
  return app;
}

test('the demo page calls each declared API, the orders API with a token minted for its own audience', async ({ page }) => {
  const app = await demoApp(page);
  try {
    for (const name of ['default', 'orders', 'status', 'reports']) {
      const suffix = name === 'default' ? '' : `-${name}`;
      await page.getByTestId(`call-api${suffix}`).click();
      await expect(page.getByTestId(`api-status${suffix}`)).toHaveText('200');
    }
    const orders = JSON.parse(await page.getByTestId('api-response-orders').innerText());
    expect(orders).toMatchObject({ message: 'Your orders', sub: 'logi-user-alice', aud: ORDERS_RESOURCE, scope: 'orders:read' });
    expect(JSON.parse(await page.getByTestId('api-response-reports').innerText())).toMatchObject({ sub: `client:${CLIENT_ID}` });
    const html = await page.content();
    for (const token of await issuedTokens()) expect(html).not.toContain(token);

    // A native app builds its own authorization request from what the server says it needs.
    const params = await authorizeParams(app.url);
    expect(params).toMatchObject({ client_id: CLIENT_ID, resource: [ORDERS_RESOURCE] });
    expect(params.scope.split(' ')).toContain('orders:read');
    const authorization = await authorize({ providerUrl: PROVIDER_URL, clientId: params.client_id, redirectUri: 'com.example.logibff:/oauth/callback', loginHint: 'alice', scope: params.scope, resource: params.resource });
    const device = await exchange(app.url, authorization, 'e2e device');
    expect(device.status).toBe(200);
    const fromDevice = await call(app.url, '/api/orders/mine', device.body.access_token);
    expect(fromDevice.status).toBe(200);
    expect(JSON.parse(fromDevice.text)).toMatchObject({ aud: ORDERS_RESOURCE, sub: 'logi-user-alice' });
  } finally {
    await app.stop();
  }
});

test('the demo page\'s socket streams through the app, survives the page\'s use and closes (4401) on sign-out in another tab', async ({ page, context }) => {
  const app = await demoApp(page);
  try {
    await page.getByTestId('socket-connect-live').click();
    await expect(page.getByTestId('socket-state-live')).toHaveText('open');
    await expect(page.getByTestId('socket-messages-live')).toContainText('"sub":"logi-user-alice"');
    await expect(page.getByTestId('socket-messages-live')).toContainText('"tick":2', { timeout: 5_000 });
    await page.getByTestId('socket-send-live').click();
    await expect(page.getByTestId('socket-messages-live')).toContainText('"echo":"hello from the page"');
    // The page's other calls go on beside it.
    for (const name of ['orders', 'status']) {
      await page.getByTestId(`call-api-${name}`).click();
      await expect(page.getByTestId(`api-status-${name}`)).toHaveText('200');
    }
    await expect(page.getByTestId('socket-state-live')).toHaveText('open');

    const other = await context.newPage();
    await other.goto(`${app.url}/`);
    await hydrated(other);
    const signedOut = Date.now();
    await other.getByTestId('sign-out').click();
    await expect(other.getByTestId('signed-out')).toBeVisible();
    await expect(page.getByTestId('socket-state-live')).toHaveText('closed (4401)', { timeout: 3_000 });
    console.log(`socket closed ${Date.now() - signedOut} ms after the sign-out click`);
  } finally {
    await app.stop();
  }
});
