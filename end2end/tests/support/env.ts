import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

// Ports of their own, so a developer's `scripts/dev.sh` (3000/9090) can keep running.
export const APP_PORT = 3190;
export const PROVIDER_PORT = 9190;
// Provider on 127.0.0.1 and app on localhost: two sites, as in production, and the
// provider's cookies (per host, not per port) never collide with the app's.
export const APP_URL = `http://localhost:${APP_PORT}`;
/** Ports of extra app instances some tests start (all registered with the dev provider). */
export const EXTRA_APP_PORTS = { notConfigured: 3191, failClosed: 3192, restart: 3193, image: 3194, apis: 3195 };
/** Three replicas on one Postgres behind haproxy (replicas.spec.ts): the balancer's port is APP_URL's. */
export const REPLICAS = { balancerPort: 3290, ports: [3291, 3292, 3293] };
export const PROVIDER_URL = `http://127.0.0.1:${PROVIDER_PORT}`;
/** The dev provider's tiny upstream API (accepts its access tokens). */
export const UPSTREAM_PORT = 9191;
export const UPSTREAM_URL = `http://127.0.0.1:${UPSTREAM_PORT}`;
/** The upstream's orders API, a resource server of its own at the dev provider (RFC 8707). */
export const ORDERS_RESOURCE = 'https://orders.logi-bff.dev/';
/** Short-lived access tokens, so tests see them expire and get refreshed. */
export const ACCESS_TOKEN_TTL_SECS = 5;
export const CLIENT_ID = 'logi-bff-e2e';
export const CLIENT_SECRET = 'logi-bff-e2e-secret';
export const SESSION_SECRET = 'e2e-session-secret-0123456789abcdef0123456789';

/** The release binary under test: scripts/test.sh copies it alone into an empty dir. */
export function appBinary(): string {
  const bin = process.env.LOGI_BFF_BIN;
  if (!bin) throw new Error('LOGI_BFF_BIN is not set: run the tests with scripts/test.sh');
  return bin;
}

export function providerEnv(): Record<string, string> {
  return {
    PROVIDER_PORT: String(PROVIDER_PORT),
    CLIENT_ID,
    CLIENT_SECRET,
    APP_URLS: [APP_PORT, EXTRA_APP_PORTS.restart, EXTRA_APP_PORTS.apis, REPLICAS.balancerPort].map((port) => `http://localhost:${port}`).join(','),
    ACCESS_TOKEN_TTL: String(ACCESS_TOKEN_TTL_SECS),
    UPSTREAM_PORT: String(UPSTREAM_PORT),
  };
}

/** Production-mode settings for an app on `port`, with its database in `dataDir`. */
export function appEnv(port = APP_PORT, overrides: Record<string, string | undefined> = {}, dataDir = mkdtempSync(join(tmpdir(), 'logi-bff-e2e-db-'))) {
  const vars: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    APP_ENV: 'production',
    APP_URL: `http://localhost:${port}`,
    LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
    SESSION_SECRET,
    DATABASE_URL: `sqlite://${join(dataDir, 'app.db')}`,
    ONE_PASS_URL: PROVIDER_URL,
    ONE_PASS_CLIENT_ID: CLIENT_ID,
    ONE_PASS_CLIENT_SECRET: CLIENT_SECRET,
    UPSTREAM_API_URL: UPSTREAM_URL,
    UPSTREAM_TIMEOUT_SECS: '2',
    // With 5 s tokens the default 30 s skew would refresh on every call.
    TOKEN_REFRESH_SKEW_SECS: '1',
    // The native app's redirect URI, registered for the same client at the dev provider.
    NATIVE_REDIRECT_URIS: 'com.example.logibff:/oauth/callback',
    RUST_LOG: 'info,logi_bff=debug',
    // No balancer to wait for: tests stop their apps at once (one test checks the drain).
    SHUTDOWN_DRAIN_SECS: '0',
  };
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) delete vars[key];
    else vars[key] = value;
  }
  return vars;
}

/** The directory the binary was copied into (and nothing else). */
export const appWorkDir = () => dirname(appBinary());
