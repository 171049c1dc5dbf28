import { expect, type Page } from '@playwright/test';
import { APP_URL, CLIENT_ID, CLIENT_SECRET, PROVIDER_URL } from './env';

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

/** The provider's last token response (sign-in or refresh). */
export async function lastGrant(): Promise<{ access_token: string; refresh_token?: string; id_token?: string }> {
  return (await fetch(`${PROVIDER_URL}/__dev/last-grant`)).json();
}

const clientAuth = () => `Basic ${Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64')}`;

/** Asks the provider, as the app's client, whether a token is still alive (RFC 7662). */
export async function isActive(token: string): Promise<boolean> {
  const response = await fetch(`${PROVIDER_URL}/token/introspection`, {
    method: 'POST',
    headers: { authorization: clientAuth(), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token }),
  });
  return (await response.json()).active === true;
}

/** Uses a refresh token at the provider directly (what an attacker with a stolen, already rotated token would do). */
export async function replayRefreshToken(refreshToken: string) {
  const response = await fetch(`${PROVIDER_URL}/oauth/token`, {
    method: 'POST',
    headers: { authorization: clientAuth(), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken }),
  });
  return { status: response.status, body: await response.json() };
}

export async function issuedTokens(): Promise<string[]> {
  return (await fetch(`${PROVIDER_URL}/__dev/issued-tokens`)).json();
}

/**
 * Runs a scripted login up to, but not including, the callback (following each redirect
 * by hand with the context's cookies) and returns the callback URL logi sent back.
 */
export async function callbackUrl(page: Page, account: Account): Promise<URL> {
  let url = new URL(`/api/auth/login?login_hint=${account}`, APP_URL);
  for (let hop = 0; hop < 10; hop++) {
    if (url.pathname === '/api/auth/callback') return url;
    const response = await page.request.get(url.toString(), { maxRedirects: 0 });
    const location = response.headers()['location'];
    if (!location) throw new Error(`no redirect from ${url} (${response.status()})`);
    url = new URL(location, url);
  }
  throw new Error('the login did not reach the callback');
}
