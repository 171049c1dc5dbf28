import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { hydrated, unique } from './support/accounts';
import { AppProcess } from './support/app';
import { ACCESS_TOKEN_TTL_SECS, REPLICAS } from './support/env';
import { providerHits, signInThroughConsentPage } from './support/logi';

// Three replicas of the release binary on one Postgres, behind Debian's haproxy
// (round-robin, no stickiness) on APP_URL. scripts/test.sh starts the Postgres server
// and names the database in LOGI_BFF_E2E_POSTGRES.
const databaseUrl = process.env.LOGI_BFF_E2E_POSTGRES;
const { balancerPort, ports } = REPLICAS;
const appUrl = `http://localhost:${balancerPort}`;
const CSRF = { 'x-csrf': '1' };

test.describe.configure({ mode: 'serial' });
test.skip(!databaseUrl, 'needs LOGI_BFF_E2E_POSTGRES (scripts/test.sh sets it)');

let replicas: AppProcess[] = [];
let balancer: ChildProcess | undefined;

async function startReplicas() {
  replicas = ports.map((port) => AppProcess.start(port, { APP_URL: appUrl, DATABASE_URL: databaseUrl }));
  await Promise.all(replicas.map((replica) => replica.ready()));
}

async function stopReplicas() {
  await Promise.all(replicas.map((replica) => replica.stop()));
}

function startBalancer(): ChildProcess {
  const config = join(mkdtempSync(join(tmpdir(), 'logi-bff-haproxy-')), 'haproxy.cfg');
  writeFileSync(config, [
    'defaults',
    '  mode http',
    '  timeout connect 2s',
    '  timeout client 30s',
    '  timeout server 30s',
    'frontend app',
    `  bind 127.0.0.1:${balancerPort}`,
    '  default_backend replicas',
    'backend replicas',
    '  balance roundrobin',
    ...ports.map((port, n) => `  server r${n + 1} 127.0.0.1:${port}`),
    '',
  ].join('\n'));
  return spawn(process.env.HAPROXY ?? '/usr/sbin/haproxy', ['-db', '-f', config], { stdio: 'inherit' });
}

test.beforeAll(async () => {
  await startReplicas();
  balancer = startBalancer();
  await expect.poll(async () => (await fetch(`${appUrl}/`).catch(() => null))?.status ?? 0, { timeout: 10_000 }).toBe(200);
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

test('twenty concurrent proxy calls after expiry, spread over three replicas, cost one refresh grant', async ({ page }) => {
  await page.goto(`${appUrl}/api/auth/login?login_hint=${unique('test-replicas')}`);
  await expect(page.getByTestId('signed-in')).toBeVisible();
  await new Promise((resolve) => setTimeout(resolve, ACCESS_TOKEN_TTL_SECS * 1000));
  await providerHits(true);
  const calls = Array.from({ length: 20 }, () => page.request.get(`${appUrl}/api/proxy/hello`, { headers: CSRF }));
  const statuses = (await Promise.all(calls)).map((response) => response.status());
  expect(statuses).toEqual(Array(20).fill(200));
  expect((await providerHits())['/token']).toBe(1);
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
