import { expect, test, type Page } from '@playwright/test';
import { APP_URL, CLIENT_ID, PROVIDER_URL } from './support/env';
import { signInWithHint } from './support/logi';

async function me(page: Page) {
  return (await (await page.request.get(`${APP_URL}/api/auth/me`)).json()).user;
}

test('signing out at logi ends that logi session\'s app session over the back channel', async ({ browser }) => {
  // Two browsers of the same user: two logi sessions.
  const [leaving, staying] = [await browser.newContext(), await browser.newContext()];
  const [page, other] = [await leaving.newPage(), await staying.newPage()];
  await signInWithHint(page, 'alice');
  await signInWithHint(other, 'alice');
  expect((await me(page)).sub).toBe('logi-user-alice');

  // At logi itself, not through the app: only logi's back-channel call can tell us.
  await page.goto(`${PROVIDER_URL}/session/end?client_id=${CLIENT_ID}`);
  await page.getByRole('button', { name: /yes/i }).click();
  await expect.poll(() => me(page), { timeout: 10_000 }).toBeNull();
  await page.goto(`${APP_URL}/`);
  await expect(page.getByTestId('signed-out')).toBeVisible();
  expect((await me(other)).sub).toBe('logi-user-alice');
  await Promise.all([leaving.close(), staying.close()]);
});
