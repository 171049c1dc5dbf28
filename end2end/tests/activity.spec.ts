import { expect, test, type Page } from '@playwright/test';
import { authorize, authorizeParams, exchange } from '../native-client.mjs';
import { PASSWORD, hydrated, unique } from './support/accounts';
import { APP_URL, PROVIDER_URL } from './support/env';

/** The kinds of the account page's "Recent activity", newest first. */
async function activityKinds(page: Page): Promise<string[]> {
  await page.goto('/account');
  return page.getByTestId('activity').evaluateAll((items) => items.map((item) => item.getAttribute('data-kind') ?? ''));
}

test('recent activity shows the sign-in, the device, the password change and the device ended', async ({ page }) => {
  const account = unique('test-activity');
  const { client_id: clientId, scope, resource } = await authorizeParams(APP_URL);
  const authorization = await authorize({ providerUrl: PROVIDER_URL, clientId, redirectUri: 'com.example.logibff:/oauth/callback', loginHint: account, scope, resource });
  expect((await exchange(APP_URL, authorization, 'Activity phone')).status).toBe(200);

  await page.goto(`/api/auth/login?login_hint=${account}`);
  await expect(page.getByTestId('signed-in')).toBeVisible();
  expect(await activityKinds(page)).toEqual(['sign_in', 'device_added', 'sign_in']);
  const newest = page.getByTestId('activity').first();
  await expect(newest).toContainText('Signed in with logi');
  await expect(newest).toContainText('just now');
  await expect(page.getByTestId('activity').nth(1)).toContainText('Activity phone');

  await hydrated(page);
  await page.getByTestId('set-password-email').fill(`${account}@example.com`);
  await page.getByTestId('set-password-password').fill(PASSWORD);
  await page.getByTestId('set-password').click();
  await expect(page.getByTestId('password-method')).toBeVisible();
  await hydrated(page);
  await page.getByTestId('current-password').fill(PASSWORD);
  await page.getByTestId('new-password').fill('a brand new passphrase');
  await page.getByTestId('change-password').click();
  await expect(page).toHaveURL(/notice=password_changed/);
  // The change ended the phone's login too.
  expect(await activityKinds(page)).toEqual(['login_ended', 'password_changed', 'password_set', 'sign_in', 'device_added', 'sign_in']);
  await expect(page.getByTestId('activity').first()).toContainText('Session ended (password changed) — Activity phone');

  const second = await exchange(APP_URL, await authorize({ providerUrl: PROVIDER_URL, clientId, redirectUri: 'com.example.logibff:/oauth/callback', loginHint: account, scope, resource }), 'Spare tablet');
  expect(second.status).toBe(200);
  await page.goto('/account');
  await hydrated(page);
  await page.locator('[data-testid=session][data-app=true]').getByTestId('end-session').click();
  await expect(page.locator('[data-testid=session][data-app=true]')).toHaveCount(0);
  expect((await activityKinds(page)).slice(0, 3)).toEqual(['login_ended', 'device_added', 'sign_in']);
  await expect(page.getByTestId('activity').first()).toContainText('Session ended (ended from another device) — Spare tablet');
});
