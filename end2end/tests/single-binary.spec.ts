import { expect, test } from '@playwright/test';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { AppProcess } from './support/app';
import { EXTRA_APP_PORTS, appBinary, appEnv, appWorkDir } from './support/env';

test('the binary runs alone: its directory holds nothing else, yet it serves wasm, js and css', async ({ request }) => {
  // The app under test was started from this directory by the Playwright config.
  expect(readdirSync(appWorkDir())).toEqual(['logi-bff']);
  const wasm = await request.get('/pkg/logi-bff.wasm');
  expect(wasm.status()).toBe(200);
  expect(wasm.headers()['content-type']).toBe('application/wasm');
  expect([...(await wasm.body()).subarray(0, 4)]).toEqual([0x00, 0x61, 0x73, 0x6d]);
  for (const [path, type] of [['/pkg/logi-bff.js', 'text/javascript'], ['/pkg/logi-bff.css', 'text/css'], ['/favicon.svg', 'image/svg+xml']]) {
    const response = await request.get(path);
    expect(response.status(), path).toBe(200);
    expect(response.headers()['content-type'], path).toContain(type);
  }
});

test('assets are served precompressed when the client accepts it', async ({ request }) => {
  const br = await request.get('/pkg/logi-bff.wasm', { headers: { 'accept-encoding': 'br' } });
  expect(br.headers()['content-encoding']).toBe('br');
  const plain = await request.get('/pkg/logi-bff.wasm', { headers: { 'accept-encoding': 'identity' } });
  expect(plain.headers()['content-encoding']).toBeUndefined();
  const etag = plain.headers()['etag'];
  const revalidated = await request.get('/pkg/logi-bff.wasm', { headers: { 'if-none-match': etag } });
  expect(revalidated.status()).toBe(304);
});

test('without ONE_PASS_URL the app starts and says logi sign-in is not configured', async ({ browser }) => {
  const app = AppProcess.start(EXTRA_APP_PORTS.notConfigured, { ONE_PASS_URL: undefined, ONE_PASS_CLIENT_ID: undefined, ONE_PASS_CLIENT_SECRET: undefined });
  try {
    await app.ready();
    const page = await browser.newPage();
    await page.goto(app.url);
    await expect(page.getByTestId('logi-not-configured')).toContainText('logi sign-in is not configured');
    await page.close();
  } finally {
    await app.stop();
  }
});

for (const [variable, why, overrides] of [
  ['SESSION_SECRET', 'missing', { SESSION_SECRET: undefined }],
  ['SESSION_SECRET', 'shorter than 32 bytes', { SESSION_SECRET: 'too-short' }],
  ['ONE_PASS_CLIENT_SECRET', 'missing while logi is configured', { ONE_PASS_CLIENT_SECRET: undefined }],
  ['APP_URL', 'plain http on a public host', { APP_URL: 'http://app.example.com' }],
  ['TRUSTED_PROXIES', 'not a network', { TRUSTED_PROXIES: '10.0.0.0/8, proxy.internal' }],
  ['LOG_FORMAT', 'unknown', { LOG_FORMAT: 'xml' }],
] as const) {
  test(`production refuses to start: ${variable} ${why}`, async () => {
    const app = AppProcess.start(EXTRA_APP_PORTS.failClosed, overrides);
    const { code, output } = await app.exited();
    expect(code).not.toBe(0);
    const lines = output.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`configuration error: ${variable}`);
  });
}

test('as the image runs it: an unprivileged user, a data directory it owns, its healthcheck, and SIGTERM failing readiness first', async () => {
  test.skip(process.getuid?.() !== 0, 'switching to an unprivileged user needs root');
  const nobody = 65534;
  // The Dockerfile's layout: /usr/local/bin/logi-bff, and /srv/logi-bff/data made and owned
  // by the app's user before it is declared a volume.
  const root = mkdtempSync(join(tmpdir(), 'logi-bff-image-'));
  chmodSync(root, 0o755);
  const [bin, home] = [join(root, 'usr/local/bin/logi-bff'), join(root, 'srv/logi-bff')];
  const data = join(home, 'data');
  mkdirSync(dirname(bin), { recursive: true, mode: 0o755 });
  copyFileSync(appBinary(), bin);
  chmodSync(bin, 0o755);
  mkdirSync(home, { recursive: true, mode: 0o755 });
  mkdirSync(data, { mode: 0o700 });
  for (const dir of [home, data]) chownSync(dir, nobody, nobody);
  const port = EXTRA_APP_PORTS.image;
  const env = appEnv(port, { DATABASE_URL: `sqlite://${data}/logi-bff.db`, SHUTDOWN_DRAIN_SECS: '1', RUST_LOG: 'info' }, data);
  const asNobody = ['--reuid', String(nobody), '--regid', String(nobody), '--clear-groups'];
  const healthcheck = () => spawnSync('setpriv', [...asNobody, bin, 'healthcheck'], { cwd: home, env, encoding: 'utf8' });

  const app = AppProcess.launch('setpriv', [...asNobody, bin], home, port, env);
  try {
    await app.ready();
    expect(statSync(join(data, 'logi-bff.db')).uid).toBe(nobody);
    const healthy = healthcheck();
    expect(healthy.status, healthy.stderr).toBe(0);
    expect(JSON.parse(healthy.stdout).status).toBe('ready');

    app.child.kill('SIGTERM');
    // A signal is delivered asynchronously: a request sent right after it may still find the
    // app ready (CI saw it once). It must fail readiness within half a second.
    let draining = await fetch(`${app.url}/readyz`);
    for (let tries = 0; draining.status === 200 && tries < 10; tries++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      draining = await fetch(`${app.url}/readyz`);
    }
    expect(draining.status).toBe(503);
    expect(await draining.json()).toEqual({ status: 'draining' });
    expect((await fetch(`${app.url}/`)).status, 'still serving while the balancer notices').toBe(200);
    expect(healthcheck().status).not.toBe(0);
    const { code, output } = await app.exited(5_000);
    expect(code, output).toBe(0);
    expect(output).toContain('stopping: /readyz fails now');
  } finally {
    await app.stop();
  }
});
