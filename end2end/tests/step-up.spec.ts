import { expect, test } from '@playwright/test';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hydrated } from './support/accounts';
import { AppProcess } from './support/app';
import { ACCESS_TOKEN_TTL_SECS, EXTRA_APP_PORTS, PROVIDER_URL, UPSTREAM_URL } from './support/env';
import { issuedTokens } from './support/logi';
import { authorize, authorizeParams, call, exchange, refresh, upgrade } from '../native-client.mjs';

/** `payments` requires an mfa sign-in within 10 minutes; `vault` requires nothing, but its
 * upstream (the dev provider's /payments/) answers RFC 9470's challenge to a non-mfa token. */
function apiFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'logi-bff-e2e-step-up-'));
  const file = join(dir, 'apis.toml');
  writeFileSync(file, [
    '[[api]]', 'name = "payments"', 'path = "/api/payments/"', `upstream = "${UPSTREAM_URL}/payments"`, 'acr_values = "mfa"', 'max_age_secs = 600', '',
    '[[api]]', 'name = "vault"', 'path = "/api/vault/"', `upstream = "${UPSTREAM_URL}/payments"`, '',
  ].join('\n'));
  return file;
}

test('an API needing an mfa sign-in steps the same login up through logi\'s extra step', async ({ page }) => {
  const app = AppProcess.start(EXTRA_APP_PORTS.apis, { API_ROUTES_FILE: apiFile() });
  try {
    await app.ready();
    await page.goto(`${app.url}/api/auth/login?login_hint=alice`);
    await expect(page.getByTestId('signed-in')).toBeVisible();
    await page.goto(`${app.url}/api-demo`);
    await hydrated(page);
    await expect(page.getByTestId('api-needs-payments')).toHaveText('a sign-in of level mfa within 600 s');

    // Refused by the app before the upstream, and by the upstream itself for `vault`.
    await page.getByTestId('call-api-payments').click();
    await expect(page.getByTestId('api-status-payments')).toHaveText('401');
    expect(JSON.parse(await page.getByTestId('api-response-payments').innerText())).toEqual({
      error: 'step_up_required', acr_values: 'mfa', max_age: 600, login_url: '/api/auth/login?acr_values=mfa&max_age=600&return_to=%2Fapi-demo',
    });
    await page.getByTestId('call-api-vault').click();
    await expect(page.getByTestId('api-status-vault')).toHaveText('401');
    expect(JSON.parse(await page.getByTestId('api-response-vault').innerText())).toMatchObject({ error: 'step_up_required', acr_values: 'mfa', max_age: null });

    // At logi: the account, then the second factor (a wrong code first).
    await page.getByTestId('api-step-up-payments').click();
    await expect(page.getByRole('heading', { name: 'logi (development provider)' })).toBeVisible();
    await page.getByLabel(/Alice/).check();
    await page.getByRole('button', { name: 'Continue' }).click();
    await expect(page.getByRole('heading', { name: 'Confirm it is you' })).toBeVisible();
    await page.getByLabel('Code').fill('000000');
    await page.getByRole('button', { name: 'Verify' }).click();
    await expect(page.getByRole('alert')).toHaveText('That code is not right.');
    await page.getByLabel('Code').fill('246810');
    await page.getByRole('button', { name: 'Verify' }).click();

    // Back on the page that asked, the same login now meets both.
    await expect(page).toHaveURL(`${app.url}/api-demo`);
    await hydrated(page);
    for (const name of ['payments', 'vault']) {
      await page.getByTestId(`call-api-${name}`).click();
      await expect(page.getByTestId(`api-status-${name}`)).toHaveText('200');
      expect(JSON.parse(await page.getByTestId(`api-response-${name}`).innerText())).toMatchObject({ message: 'Payment authorised', sub: 'logi-user-alice', acr: 'mfa' });
    }
    const html = await page.content();
    for (const token of await issuedTokens()) expect(html).not.toContain(token);

    await page.goto(`${app.url}/account`);
    await expect(page.getByTestId('session')).toHaveCount(1);
    await expect(page.getByTestId('activity').first()).toHaveAttribute('data-kind', 'step_up');
    await expect(page.getByTestId('activity').first()).toContainText('Signed in again with a stronger method');
    await expect(page.getByTestId('activity').nth(1)).toHaveAttribute('data-kind', 'sign_in');
  } finally {
    await app.stop();
  }
});

test('a native app steps its device login up against the dev provider and keeps its tokens', async () => {
  const app = AppProcess.start(EXTRA_APP_PORTS.apis, { API_ROUTES_FILE: apiFile() });
  try {
    await app.ready();
    const { client_id: clientId, scope, resource } = await authorizeParams(app.url);
    const native = { providerUrl: PROVIDER_URL, clientId, redirectUri: 'com.example.logibff:/oauth/callback', loginHint: 'alice', scope, resource };
    const device = await exchange(app.url, await authorize(native), 'Step-up phone');
    expect(device.status).toBe(200);
    const refused = await call(app.url, '/api/payments/charge', device.body.access_token);
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toContain('error="insufficient_user_authentication"');
    const { acr_values: acrValues, max_age: maxAge } = refused.body;
    expect({ acrValues, maxAge }).toEqual({ acrValues: 'mfa', maxAge: 600 });

    const stepped = await authorize({ ...native, acrValues, maxAge, mfaCode: '246810' });
    const upgraded = await upgrade(app.url, stepped, device.body.access_token, { acrValues, maxAge });
    expect(upgraded.status).toBe(200);
    expect(upgraded.body).toMatchObject({ upgraded: true, acr: 'mfa' });
    expect(Object.keys(upgraded.body).sort()).toEqual(['acr', 'auth_time', 'upgraded']);

    // The same access token now passes the app and the upstream; the refresh family goes on,
    // and logi's tokens behind it keep working past their lifetime.
    const paid = await call(app.url, '/api/payments/charge', device.body.access_token);
    expect(paid.status).toBe(200);
    expect(paid.body).toMatchObject({ message: 'Payment authorised', acr: 'mfa' });
    const rotated = await refresh(app.url, device.body.refresh_token);
    expect(rotated.status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, ACCESS_TOKEN_TTL_SECS * 1000 + 500));
    const later = await call(app.url, '/api/vault/charge', rotated.body.access_token);
    expect(later.status).toBe(200);
    expect(later.body).toMatchObject({ acr: 'mfa' });
  } finally {
    await app.stop();
  }
});
