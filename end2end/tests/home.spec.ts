import { expect, test } from '@playwright/test';

test('the home page renders the signed-out state on the server, without JavaScript', async ({ browser }) => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  const response = await page.goto('/');
  expect(response?.status()).toBe(200);
  await expect(page.getByTestId('signed-out')).toHaveText('You are signed out.');
  await expect(page.getByTestId('how-it-works-text')).toHaveCount(0);
  await context.close();
});

test('the page hydrates: a client-side interaction works', async ({ page }) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  await page.goto('/');
  await expect(page.getByTestId('signed-out')).toBeVisible();
  const toggle = page.getByTestId('how-it-works');
  // Clicking before hydration does nothing, so retry until the wasm has taken over.
  await expect(async () => {
    await toggle.click();
    await expect(page.getByTestId('how-it-works-text')).toBeVisible({ timeout: 500 });
  }).toPass({ timeout: 15_000 });
  await expect(toggle).toHaveAttribute('aria-expanded', 'true');
  await toggle.click();
  await expect(page.getByTestId('how-it-works-text')).toHaveCount(0);
  expect(errors).toEqual([]);
});

test('an unknown route gets a readable 404 page', async ({ page }) => {
  const response = await page.goto('/no/such/page');
  expect(response?.status()).toBe(404);
  await expect(page.getByRole('heading', { name: 'Page not found' })).toBeVisible();
  await expect(page.getByRole('link', { name: 'Back to the home page' })).toHaveAttribute('href', '/');
});
