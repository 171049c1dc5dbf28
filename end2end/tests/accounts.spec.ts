import { expect, test, type Browser, type Page } from '@playwright/test';
import { APP_URL, PROVIDER_URL } from './support/env';
import { PASSWORD, hydrated, linkLogi, signIn, signUp, signedUp, unique, uniqueEmail } from './support/accounts';

async function me(page: Page) {
  return (await (await page.request.get('/api/auth/me')).json()).user;
}

async function signOut(page: Page) {
  await page.goto('/');
  await page.getByTestId('sign-out').click();
  await expect(page.getByTestId('signed-out')).toBeVisible();
}

for (const js of [true, false]) {
  test(`sign up, sign out and sign in with a password (JavaScript ${js ? 'on' : 'off'})`, async ({ browser }) => {
    const context = await browser.newContext({ javaScriptEnabled: js });
    const page = await context.newPage();
    const email = uniqueEmail('ada');
    await signUp(page, `  ${email.replace('example.com', 'EXAMPLE.com')} `, PASSWORD, 'Ada Lovelace', js);
    await expect(page).toHaveURL(`${APP_URL}/`);
    await expect(page.getByTestId('display-name')).toHaveText('Ada Lovelace');
    const cookie = (await context.cookies(APP_URL)).find((c) => c.name === 'logi_bff_session')!;
    expect([cookie.httpOnly, cookie.sameSite]).toEqual([true, 'Lax']);

    await signOut(page);
    await signIn(page, email, PASSWORD, js, '/signin?return_to=%2Faccount');
    await expect(page).toHaveURL(`${APP_URL}/account`);
    await expect(page.getByTestId('password-email')).toHaveText(email);
    expect((await context.cookies(APP_URL)).find((c) => c.name === 'logi_bff_session')!.value).not.toBe(cookie.value);
    await context.close();
  });
}

test('sign-up enforces the password rules and unique emails', async ({ page }) => {
  const email = uniqueEmail('rules');
  await signUp(page, email, 'short pass');
  await expect(page.getByTestId('form-error')).toHaveText('Use at least 12 characters for your password.');
  await signUp(page, email, email);
  await expect(page.getByTestId('form-error')).toHaveText('Your password must not be your email address.');
  await signUp(page, email, 'Password1234');
  await expect(page.getByTestId('form-error')).toHaveText('This password is too common. Choose another one.');
  // The browser's own check lets this through; ours wants a dotted domain.
  await signUp(page, 'someone@localhost', PASSWORD);
  await expect(page.getByTestId('form-error')).toHaveAttribute('data-code', 'invalid_email');
  expect(await me(page)).toBeNull();

  await signedUp(page, email);
  await signOut(page);
  await signUp(page, email.toUpperCase(), PASSWORD);
  await expect(page.getByTestId('form-error')).toHaveAttribute('data-code', 'email_taken');
});

test('a wrong password and an unknown email get the same answer', async ({ page }) => {
  const email = uniqueEmail('same');
  await signedUp(page, email);
  await signOut(page);
  await signIn(page, email, 'not the right password');
  await expect(page.getByTestId('form-error')).toHaveText('That email and password do not match an account.');
  const wrongPassword = await page.getByTestId('form-error').textContent();
  await signIn(page, uniqueEmail('nobody'), PASSWORD);
  await expect(page.getByTestId('form-error')).toHaveText(wrongPassword!);
  expect(await me(page)).toBeNull();
});

test('after five failures the account is throttled, even for the right password, also without JavaScript', async ({ page, browser }) => {
  const email = uniqueEmail('throttle');
  await signedUp(page, email);
  await signOut(page);
  for (let attempt = 0; attempt < 5; attempt++) {
    await signIn(page, email, `wrong password ${attempt}`);
    await expect(page.getByTestId('form-error')).toHaveAttribute('data-code', 'invalid_credentials');
  }
  await signIn(page, email, PASSWORD);
  await expect(page.getByTestId('form-error')).toHaveText('Too many failed attempts. Try again in 15 minutes.');
  expect(await me(page)).toBeNull();

  const noJs = await browser.newContext({ javaScriptEnabled: false });
  const plain = await noJs.newPage();
  await signIn(plain, email, PASSWORD, false);
  await expect(plain.getByTestId('form-error')).toHaveText('Too many failed attempts. Try again in 15 minutes.');
  await noJs.close();
});

test('the account page needs a signed-in user and comes back after sign-in', async ({ page }) => {
  await page.goto('/account');
  await expect(page).toHaveURL(`${APP_URL}/signin?return_to=%2Faccount`);
  const email = uniqueEmail('account');
  await signedUp(page, email, PASSWORD, 'Grace');
  await page.goto('/account');
  await expect(page.getByTestId('display-name')).toHaveText('Grace');
  await expect(page.getByTestId('profile-name')).toHaveText('Grace');
  await expect(page.getByTestId('profile-email')).toHaveText(email);
  await expect(page.getByTestId('logi-not-linked')).toBeVisible();
  await expect(page.getByTestId('session')).toHaveCount(1);
  await expect(page.getByTestId('this-device')).toBeVisible();
});

test('link logi from the account page, then sign in with logi into the same account', async ({ page, browser }) => {
  const email = uniqueEmail('linker');
  const logiAccount = unique('test-link');
  await signedUp(page, email, PASSWORD, 'Linker');
  await page.goto('/account');
  await linkLogi(page, logiAccount);
  await expect(page).toHaveURL(`${APP_URL}/account?notice=logi_linked`);
  await expect(page.getByTestId('notice')).toContainText('Your logi account is linked');
  await expect(page.getByTestId('logi-sub')).toHaveText(`logi-user-${logiAccount}`);

  const other = await browser.newContext();
  const fresh = await other.newPage();
  await fresh.goto(`/api/auth/login?login_hint=${logiAccount}`);
  await expect(fresh.getByTestId('display-name')).toHaveText('Linker');
  expect(await me(fresh)).toEqual({ sub: `logi-user-${logiAccount}`, anonymous: false, email, name: 'Linker' });
  await other.close();
});

test('an identity linked to another account cannot be linked, and signing in with it switches accounts', async ({ page }) => {
  const taken = unique('test-taken');
  await page.goto(`/api/auth/login?login_hint=${taken}`);
  await expect(page.getByTestId('display-name')).toHaveText(`Test ${taken}`);
  await signOut(page);

  const email = uniqueEmail('victim');
  await signedUp(page, email, PASSWORD, 'Local Only');
  await page.goto('/account');
  await linkLogi(page, taken);
  await expect(page).toHaveURL(`${APP_URL}/account?auth_error=identity_linked_elsewhere`);
  await expect(page.getByTestId('auth-error')).toContainText('already linked to another account');
  await expect(page.getByTestId('logi-not-linked')).toBeVisible();
  expect((await me(page)).email).toBe(email);

  await page.goto(`/api/auth/login?login_hint=${taken}`);
  expect(await me(page)).toEqual({ sub: `logi-user-${taken}`, anonymous: false, email: `${taken}@example.test`, name: `Test ${taken}` });
  await signOut(page);
  await signIn(page, email, PASSWORD);
  await expect(page.getByTestId('signed-in')).toBeVisible();
  expect(await me(page)).toEqual({ sub: null, anonymous: false, email, name: 'Local Only' });
});

test('logi cannot be unlinked while it is the only way to sign in', async ({ page }) => {
  const account = unique('test-only');
  await page.goto(`/api/auth/login?login_hint=${account}`);
  await page.goto('/account');
  await hydrated(page);
  await page.getByTestId('unlink-logi').click();
  await expect(page.getByTestId('form-error')).toHaveAttribute('data-code', 'last_sign_in_method');
  await page.reload();
  await expect(page.getByTestId('logi-linked')).toBeVisible();

  const email = uniqueEmail('only');
  await page.getByTestId('set-password-email').fill(email);
  await page.getByTestId('set-password-password').fill(PASSWORD);
  await page.getByTestId('set-password').click();
  await expect(page).toHaveURL(`${APP_URL}/account?notice=password_set`);
  await expect(page.getByTestId('password-email')).toHaveText(email);
  await hydrated(page);
  await page.getByTestId('unlink-logi').click();
  await expect(page).toHaveURL(`${APP_URL}/account?notice=logi_unlinked`);
  await expect(page.getByTestId('logi-not-linked')).toBeVisible();
});

async function secondDevice(browser: Browser, email: string) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await signIn(page, email, PASSWORD);
  await expect(page.getByTestId('signed-in')).toBeVisible();
  return { context, page };
}

test('ending another session from the list signs that browser out at once', async ({ page, browser }) => {
  const email = uniqueEmail('devices');
  await signedUp(page, email);
  const laptop = await secondDevice(browser, email);
  await page.goto('/account');
  await expect(page.getByTestId('session')).toHaveCount(2);
  await hydrated(page);
  await page.locator('[data-testid=session][data-this-device=false]').getByTestId('end-session').click();
  await expect(page).toHaveURL(`${APP_URL}/account?notice=session_ended`);
  await expect(page.getByTestId('session')).toHaveCount(1);
  expect(await me(laptop.page)).toBeNull();
  await laptop.page.goto('/');
  await expect(laptop.page.getByTestId('signed-out')).toBeVisible();
  expect(await me(page)).not.toBeNull();
  await laptop.context.close();
});

test('sign out everywhere ends every session, this one included', async ({ page, browser }) => {
  const email = uniqueEmail('everywhere');
  await signedUp(page, email);
  const laptop = await secondDevice(browser, email);
  await page.goto('/account');
  await hydrated(page);
  await page.getByTestId('sign-out-everywhere').click();
  await expect(page).toHaveURL(`${APP_URL}/`);
  await expect(page.getByTestId('signed-out')).toBeVisible();
  expect(await me(laptop.page)).toBeNull();
  await laptop.context.close();
});

test('changing the password needs the current one and signs the other sessions out', async ({ page, browser }) => {
  const email = uniqueEmail('changer');
  await signedUp(page, email);
  const laptop = await secondDevice(browser, email);
  await page.goto('/account');
  await hydrated(page);
  await page.getByTestId('current-password').fill('not my password at all');
  await page.getByTestId('new-password').fill('a brand new passphrase');
  await page.getByTestId('change-password').click();
  await expect(page.getByTestId('form-error')).toHaveAttribute('data-code', 'wrong_current_password');
  expect(await me(laptop.page)).not.toBeNull();

  await page.getByTestId('current-password').fill(PASSWORD);
  await page.getByTestId('new-password').fill('a brand new passphrase');
  await page.getByTestId('change-password').click();
  await expect(page).toHaveURL(`${APP_URL}/account?notice=password_changed`);
  expect(await me(laptop.page)).toBeNull();
  expect(await me(page)).not.toBeNull();
  await signOut(page);
  await signIn(page, email, 'a brand new passphrase');
  await expect(page.getByTestId('signed-in')).toBeVisible();
  await laptop.context.close();
});

test('a forged cross-site form post to a server function is refused', async ({ page, browser }) => {
  const email = uniqueEmail('forged');
  await signedUp(page, email);
  const cookie = (await page.context().cookies(APP_URL)).find((c) => c.name === 'logi_bff_session')!;
  // A real page on another origin (the provider) posting a form to the app.
  const attacker = await browser.newContext();
  await attacker.addCookies([{ ...cookie, sameSite: 'None', secure: false }]);
  const evil = await attacker.newPage();
  await evil.goto(`${PROVIDER_URL}/.well-known/openid-configuration`);
  const [response] = await Promise.all([
    evil.waitForResponse(`${APP_URL}/api/sign_out_everywhere`),
    evil.evaluate((action) => {
      const form = document.createElement('form');
      Object.assign(form, { method: 'post', action });
      document.body.appendChild(form);
      form.submit();
    }, `${APP_URL}/api/sign_out_everywhere`),
  ]);
  expect(response.status()).toBe(403);
  expect(await response.json()).toEqual({ error: 'cross_site_request' });
  expect((await me(page)).email).toBe(email);
  await attacker.close();
});
