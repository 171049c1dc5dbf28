import { expect, test } from '@playwright/test';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppProcess } from './support/app';
import { CLIENT_ID, EXTRA_APP_PORTS, UPSTREAM_URL } from './support/env';

// Declared APIs against the real dev provider: the app's own client-credentials token
// (oidc-provider's grant, checked by its upstream API) and an API that gets no token.
test('a public client API gets the app\'s own token from logi, and a token-less API gets none', async ({ request }) => {
  const dir = mkdtempSync(join(tmpdir(), 'logi-bff-e2e-apis-'));
  const file = join(dir, 'apis.toml');
  writeFileSync(file, [
    '[[api]]', 'name = "relay"', 'path = "/api/relay/"', `upstream = "${UPSTREAM_URL}"`, 'token = "client"', 'public = true', '',
    '[[api]]', 'name = "status"', 'path = "/api/status/"', `upstream = "${UPSTREAM_URL}/public"`, 'methods = ["GET", "HEAD"]', 'token = "none"', 'public = true', '',
  ].join('\n'));
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
