import { expect, test, type Page } from '@playwright/test';
import { PROVIDER_URL } from './support/env';
import { hydrated, signedUp, uniqueEmail } from './support/accounts';
import { signInWithHint } from './support/logi';

const NOT_FOUND = '/no-such-page';

/** Everything that went wrong on the pages `page` opened: CSP violations (recorded by every
 * document from its first script on) and console errors. */
function watch(page: Page) {
  const problems: string[] = [];
  page.on('console', (message) => {
    // The browser reports the 404 page's own status as a console error.
    if (message.type() === 'error' && !(page.url().endsWith(NOT_FOUND) && message.text().includes('404'))) problems.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  return problems;
}

async function visit(page: Page, path: string, problems: string[]) {
  const response = await page.goto(path);
  await hydrated(page);
  const violations = await page.evaluate(() => (window as unknown as { __violations: string[] }).__violations);
  expect([...problems, ...violations], `on ${path}`).toEqual([]);
  return response!;
}

test.beforeEach(async ({ page }) => {
  await page.addInitScript(() => {
    const record = window as unknown as { __violations: string[] };
    record.__violations = [];
    document.addEventListener('securitypolicyviolation', (e) => record.__violations.push(`${e.violatedDirective}: ${e.blockedURI}`));
  });
});

test('every page runs under its nonce-based CSP without a violation, signed out and signed in', async ({ page }) => {
  const problems = watch(page);
  const nonces = new Set<string>();
  const check = async (path: string) => {
    const response = await visit(page, path, problems);
    const policy = (await response.allHeaders())['content-security-policy'];
    const nonce = /'nonce-([^']+)'/.exec(policy ?? '')?.[1];
    expect(nonce, `no nonce in the CSP of ${path}: ${policy}`).toBeTruthy();
    for (const directive of ["default-src 'self'", "'wasm-unsafe-eval'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'", 'form-action']) {
      expect(policy).toContain(directive);
    }
    // Every inline script carries this response's nonce (the DOM exposes it as a property only).
    const scriptNonces = await page.evaluate(() => [...document.querySelectorAll('script:not([src])')].map((s) => (s as HTMLScriptElement).nonce));
    expect(scriptNonces.length).toBeGreaterThan(0);
    expect(new Set(scriptNonces)).toEqual(new Set([nonce]));
    nonces.add(nonce!);
  };

  for (const path of ['/', '/signin', '/signup', '/api-demo', NOT_FOUND]) await check(path);
  await page.goto('/');
  await page.getByTestId('how-it-works').click();
  await expect(page.getByTestId('how-it-works-text')).toBeVisible();

  await signedUp(page, uniqueEmail('csp'));
  for (const path of ['/', '/account', '/api-demo']) await check(path);
  expect(nonces.size, 'a nonce was reused').toBe(8);

  // The link form's redirect to logi is an allowed form target.
  await page.goto('/account');
  await hydrated(page);
  await page.getByTestId('link-logi').click();
  await expect(page).toHaveURL(new RegExp(`^${PROVIDER_URL}/`));
  expect(problems).toEqual([]);

  // The API call (fetch from the island) with a logi sign-in.
  await signInWithHint(page, 'alice');
  await visit(page, '/api-demo', problems);
  await page.getByTestId('call-api').click();
  await expect(page.getByTestId('api-status')).toHaveText('200');
  const violations = await page.evaluate(() => (window as unknown as { __violations: string[] }).__violations);
  expect([...problems, ...violations]).toEqual([]);
});
