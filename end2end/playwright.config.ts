import { defineConfig } from '@playwright/test';
import { APP_URL, PROVIDER_URL, appBinary, appEnv, appWorkDir, providerEnv } from './tests/support/env';

// Runs against the release binary (copied alone into a temp dir by scripts/test.sh)
// and the dev provider, in Debian's Chromium (Playwright's own browser download
// does not work on these machines).
export default defineConfig({
  testDir: './tests',
  timeout: 30_000,
  fullyParallel: false,
  workers: 1,
  forbidOnly: !!process.env.CI,
  reporter: [['list']],
  use: {
    baseURL: APP_URL,
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    },
  },
  webServer: [
    {
      command: 'node dev-provider/server.js',
      url: `${PROVIDER_URL}/.well-known/openid-configuration`,
      env: providerEnv(),
      reuseExistingServer: false,
      stdout: 'pipe',
    },
    {
      command: appBinary(),
      cwd: appWorkDir(),
      url: `${APP_URL}/`,
      env: appEnv(),
      reuseExistingServer: false,
      stdout: 'pipe',
    },
  ],
});
