import { expect, type Page } from '@playwright/test';
import { PROVIDER_URL } from './env';

export type Account = 'alice' | 'anon' | 'noemail';

/** Clicks "Sign in with logi", then picks `account` and the claims to share on the dev provider's page. */
export async function signInThroughConsentPage(page: Page, account: Account, withhold: string[] = []) {
  await page.getByTestId('sign-in').click();
  await expect(page).toHaveURL(new RegExp(`^${PROVIDER_URL}/interaction/`));
  await page.locator(`input[name=user][value=${account}]`).check();
  for (const claim of withhold) await page.locator(`input[name=claim][value=${claim}]`).uncheck();
  await page.getByRole('button', { name: 'Continue' }).click();
}

/** Scripted sign-in: login_hint makes the dev provider skip its page. */
export async function signInWithHint(page: Page, account: Account, appUrl = '') {
  await page.goto(`${appUrl}/api/auth/login?login_hint=${account}`);
  await expect(page.getByTestId('signed-in')).toBeVisible();
}

export async function providerHits(reset = false): Promise<Record<string, number>> {
  const response = await fetch(`${PROVIDER_URL}/__dev/hits`, { method: reset ? 'DELETE' : 'GET' });
  return response.json();
}

export async function issuedTokens(): Promise<string[]> {
  return (await fetch(`${PROVIDER_URL}/__dev/issued-tokens`)).json();
}
