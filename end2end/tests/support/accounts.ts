import { expect, type Page } from '@playwright/test';

let counter = 0;
/** A name no other test (or earlier run against the same database) uses. */
export function unique(prefix: string): string {
  counter += 1;
  return `${prefix}-${Date.now().toString(36)}-${counter}`;
}

export const uniqueEmail = (prefix: string) => `${unique(prefix)}@example.com`;

/** Waits until the wasm has hydrated the page (set by an effect, which runs only in the browser). */
export async function hydrated(page: Page) {
  await expect(page.locator('main')).toHaveAttribute('data-hydrated', 'true', { timeout: 15_000 });
}

/** Fills and submits the sign-up form; with JavaScript on, only after hydration. */
export async function signUp(page: Page, email: string, password: string, name = '', js = true) {
  await page.goto('/signup');
  if (js) await hydrated(page);
  await page.getByTestId('email-input').fill(email);
  await page.getByTestId('name-input').fill(name);
  await page.getByTestId('password-input').fill(password);
  await page.getByTestId('sign-up-submit').click();
}

/** Signs up and waits until the new account is signed in. */
export async function signedUp(page: Page, email: string, password = PASSWORD, name = '') {
  await signUp(page, email, password, name);
  await expect(page.getByTestId('signed-in')).toBeVisible();
}

export async function signIn(page: Page, email: string, password: string, js = true, path = '/signin') {
  await page.goto(path);
  if (js) await hydrated(page);
  await page.getByTestId('email-input').fill(email);
  await page.getByTestId('password-input').fill(password);
  await page.getByTestId('password-sign-in').click();
}

/** Clicks "Link logi" on the account page, naming the logi account with a login_hint. */
export async function linkLogi(page: Page, account: string) {
  const form = page.locator('form[action="/api/auth/link"]');
  await form.evaluate((element, hint) => {
    const input = document.createElement('input');
    Object.assign(input, { type: 'hidden', name: 'login_hint', value: hint });
    element.appendChild(input);
  }, account);
  await page.getByTestId('link-logi').click();
}

export const PASSWORD = 'a long enough passphrase';
