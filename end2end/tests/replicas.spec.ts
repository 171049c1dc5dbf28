import { spawn, type ChildProcess } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { hydrated, unique } from './support/accounts';
import { AppProcess } from './support/app';
import { ACCESS_TOKEN_TTL_SECS, REPLICAS } from './support/env';
import { providerHits, signInThroughConsentPage } from './support/logi';

// Three replicas of the release binary on one Postgres, behind Debian's haproxy running
// the shipped deploy/haproxy.cfg (addresses substituted) on APP_URL. scripts/test.sh
// starts the Postgres server and names the database in LOGI_BFF_E2E_POSTGRES.
const databaseUrl = process.env.LOGI_BFF_E2E_POSTGRES;
const { balancerPort, ports } = REPLICAS;
const appUrl = `http://localhost:${balancerPort}`;
const CSRF = { 'x-csrf': '1' };

test.describe.configure({ mode: 'serial' });
test.skip(!databaseUrl, 'needs LOGI_BFF_E2E_POSTGRES (scripts/test.sh sets it)');

let replicas: AppProcess[] = [];
let balancer: ChildProcess | undefined;

async function startReplicas() {
  // haproxy connects from 127.0.0.1, as compose.yaml's balancer from its fixed address.
  replicas = ports.map((port) => AppProcess.start(port, { APP_URL: appUrl, DATABASE_URL: databaseUrl, TRUSTED_PROXIES: '127.0.0.1' }));
  await Promise.all(replicas.map((replica) => replica.ready()));
  // Its health checks (/readyz) put them in rotation.
  await expect.poll(async () => (await fetch(`${appUrl}/readyz`).catch(() => null))?.status ?? 0, { timeout: 15_000 }).toBe(200);
}

async function stopReplicas() {
  await Promise.all(replicas.map((replica) => replica.stop()));
}

/** deploy/haproxy.cfg with this machine's addresses; fails if the file changed shape. */
function shippedBalancerConfig(): string {
  let config = readFileSync(join(process.cwd(), '..', 'deploy', 'haproxy.cfg'), 'utf8');
  const substitute = (from: RegExp, to: string) => {
    if (!from.test(config)) throw new Error(`deploy/haproxy.cfg has no ${from}`);
    config = config.replace(from, to);
  };
  substitute(/^(\s*)bind :8080$/m, `$1bind 127.0.0.1:${balancerPort}`);
  ports.forEach((port, n) => substitute(new RegExp(`^(\\s*server app${n + 1}) app${n + 1}:3000 `, 'm'), `$1 127.0.0.1:${port} `));
  return config;
}

function startBalancer(): ChildProcess {
  const config = join(mkdtempSync(join(tmpdir(), 'logi-bff-haproxy-')), 'haproxy.cfg');
  writeFileSync(config, shippedBalancerConfig());
  return spawn(process.env.HAPROXY ?? '/usr/sbin/haproxy', ['-db', '-f', config], { stdio: 'inherit' });
}

/** A failed password sign-in through the balancer, from this local address. */
function failedSignInFrom(localAddress: string): Promise<{ status: number; error: string }> {
  const body = `email=${unique('nobody')}%40example.com&password=wrong-password-123&return_to=%2F`;
  return new Promise((resolve, reject) => {
    const request = httpRequest(`${appUrl}/api/sign_in`, {
      method: 'POST', localAddress,
      headers: { origin: appUrl, 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) },
    }, (response) => {
      let text = '';
      response.on('data', (chunk) => { text += chunk; });
      response.on('end', () => resolve({ status: response.statusCode ?? 0, error: JSON.parse(text).error }));
    });
    request.on('error', reject);
    request.end(body);
  });
}

test.beforeAll(async () => {
  balancer = startBalancer();
  await startReplicas();
});

test.afterAll(async () => {
  balancer?.kill();
  await stopReplicas();
});

test('through the load balancer: sign-in on the consent page, the account page and the proxy work across replicas', async ({ page }) => {
  await page.goto(`${appUrl}/`);
  await hydrated(page);
  await signInThroughConsentPage(page, 'alice');
  await expect(page.getByTestId('signed-in')).toBeVisible();
  // Round-robin: these requests reach every replica.
  for (let n = 0; n < ports.length; n++) {
    await page.goto(`${appUrl}/account`);
    await hydrated(page);
    await expect(page.getByTestId('display-name')).toHaveText('Alice Example');
    const api = await page.request.get(`${appUrl}/api/proxy/hello`, { headers: CSRF });
    expect(api.status()).toBe(200);
    expect((await api.json()).sub).toBe('logi-user-alice');
  }
});

test('the balancer names each client: failed password sign-ins from one address throttle that address only', async () => {
  // Every failure is for another account, so only the per-address limit (20 in 15 minutes) can apply.
  const fromFirst = [];
  for (let n = 0; n < 21; n++) fromFirst.push(await failedSignInFrom('127.0.0.2'));
  expect(fromFirst.slice(0, 20).map((answer) => answer.error)).toEqual(Array(20).fill('invalid_credentials'));
  expect(fromFirst[20]).toEqual({ status: 429, error: 'throttled' });
  expect(await failedSignInFrom('127.0.0.3')).toEqual({ status: 401, error: 'invalid_credentials' });
});

test('twenty concurrent proxy calls after expiry, spread over three replicas, cost one refresh grant', async ({ page }) => {
  await page.goto(`${appUrl}/api/auth/login?login_hint=${unique('test-replicas')}`);
  await expect(page.getByTestId('signed-in')).toBeVisible();
  await new Promise((resolve) => setTimeout(resolve, ACCESS_TOKEN_TTL_SECS * 1000));
  await providerHits(true);
  const calls = Array.from({ length: 20 }, () => page.request.get(`${appUrl}/api/proxy/hello`, { headers: CSRF }));
  const statuses = (await Promise.all(calls)).map((response) => response.status());
  expect(statuses).toEqual(Array(20).fill(200));
  expect((await providerHits())['/oauth/token']).toBe(1);
});

test('a session ended through one replica is refused by the others within a second', async ({ page }) => {
  await page.goto(`${appUrl}/api/auth/login?login_hint=${unique('test-replicas')}`);
  await expect(page.getByTestId('signed-in')).toBeVisible();
  const cookie = (await page.context().cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
  const me = async (port: number) => (await (await fetch(`http://127.0.0.1:${port}/api/auth/me`, { headers: { cookie } })).json()).user;
  for (const port of ports) expect(await me(port)).not.toBeNull(); // every replica has it cached now
  const ended = Date.now();
  const out = await fetch(`http://127.0.0.1:${ports[0]}/api/auth/logout`, { method: 'POST', headers: { cookie, origin: appUrl } });
  expect(out.status).toBe(200);
  for (const port of ports.slice(1)) {
    while ((await me(port)) !== null) {
      expect(Date.now() - ended, `replica ${port} still accepts the ended session`).toBeLessThan(1000);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  console.log(`ended session refused by every replica after ${Date.now() - ended} ms`);
});

test('sessions survive restarting every replica', async ({ page }) => {
  const account = unique('test-replicas');
  await page.goto(`${appUrl}/api/auth/login?login_hint=${account}`);
  await expect(page.getByTestId('signed-in')).toBeVisible();
  await stopReplicas();
  await startReplicas();
  await page.goto(`${appUrl}/account`);
  await expect(page.getByTestId('display-name')).toHaveText(`Test ${account}`);
  const api = await page.request.get(`${appUrl}/api/proxy/hello`, { headers: CSRF });
  expect((await api.json()).sub).toBe(`logi-user-${account}`);
});
