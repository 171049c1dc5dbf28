// A development OpenID provider that behaves like logi, built on `oidc-provider`.
// Used by `scripts/dev.sh` and by the end-to-end tests; never for production.
//
// Environment (all optional):
//   PROVIDER_PORT (9090)  PROVIDER_HOST (127.0.0.1)
//   CLIENT_ID (logi-bff-dev)  CLIENT_SECRET (logi-bff-dev-secret)
//   APP_URLS (http://localhost:3000): comma-separated app origins allowed as redirect targets
//   NATIVE_REDIRECT_URIS (com.example.logibff:/oauth/callback): the native app's redirect URIs
//   ACCESS_TOKEN_TTL (600 seconds)
//   UPSTREAM_PORT (unset): also serve the tiny upstream API (upstream.js) on this port
//
// Authentication levels (`acr`): "pwd" for picking an account, "mfa" after the extra
// second-factor step, which an authorization asking for `acr_values=mfa` requires (code
// MFA_CODE, shown on the page: this is a development provider).
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import http from 'node:http';
import Provider, { errors, interactionPolicy } from 'oidc-provider';
import { CONSENTABLE_CLAIMS, USERS, userByName, userBySub } from './users.js';
import { ORDERS_RESOURCE, ORDERS_SCOPES, startUpstream } from './upstream.js';
import { MFA_CODE, consentPage, mfaPage } from './views.js';

const PORT = Number(process.env.PROVIDER_PORT || 9090);
const HOST = process.env.PROVIDER_HOST || '127.0.0.1';
const ISSUER = `http://${HOST}:${PORT}`;
const CLIENT_ID = process.env.CLIENT_ID || 'logi-bff-dev';
const CLIENT_SECRET = process.env.CLIENT_SECRET || 'logi-bff-dev-secret';
const APP_URLS = (process.env.APP_URLS || 'http://localhost:3000').split(',').map((u) => u.trim().replace(/\/$/, ''));
const NATIVE_REDIRECT_URIS = (process.env.NATIVE_REDIRECT_URIS || 'com.example.logibff:/oauth/callback').split(',').map((u) => u.trim());
const ACCESS_TOKEN_TTL = Number(process.env.ACCESS_TOKEN_TTL || 600);

function signingKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), use: 'sig', alg: 'RS256' };
}

// A login_hint naming another account than the provider session's forces a fresh login,
// so scripted tests can switch users in one browser.
//
// An authorization asking for acr_values=mfa from a session that did not pass the second
// factor needs a login too (oidc-provider only enforces an *essential* acr by itself).
function loginHintPolicy() {
  const policy = interactionPolicy.base();
  policy.get('login').checks.add(new interactionPolicy.Check('login_hint_mismatch', 'login_hint names another account', (ctx) => {
    const hinted = userByName(ctx.oidc.params.login_hint);
    return Boolean(hinted && ctx.oidc.session.accountId && ctx.oidc.session.accountId !== hinted.sub);
  }));
  policy.get('login').checks.add(new interactionPolicy.Check('mfa_required', 'acr_values asks for mfa', (ctx) => wantsMfa(ctx.oidc.params) && ctx.oidc.acr !== 'mfa'));
  return policy;
}

const wantsMfa = (params) => String(params.acr_values ?? '').split(' ').includes('mfa');

const configuration = {
  // One confidential client for the BFF and the native app it serves ("Confidential +
  // BFF"): the app authorizes with its own redirect URI, the BFF redeems the code with
  // the secret. `native` is what lets oidc-provider register a private-use scheme.
  clients: [{
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    application_type: 'native',
    token_endpoint_auth_method: 'client_secret_basic',
    // Every id_token says when the person authenticated (what max_age is checked against).
    require_auth_time: true,
    // client_credentials: the app's own token, for APIs declared with token = "client".
    grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
    response_types: ['code'],
    redirect_uris: [...APP_URLS.map((origin) => `${origin}/api/auth/callback`), ...NATIVE_REDIRECT_URIS],
    post_logout_redirect_uris: APP_URLS.map((origin) => `${origin}/`),
    // Back-Channel Logout to the first app origin: a sign-out here ends its sessions
    // (the id_token then carries `sid`, which the logout token names).
    backchannel_logout_uri: `${APP_URLS[0]}/api/auth/backchannel-logout`,
    backchannel_logout_session_required: true,
  }],
  jwks: { keys: [signingKey()] },
  cookies: { keys: [randomUUID()] },
  scopes: ['openid', 'profile:basic', 'email', 'offline_access'],
  acrValues: ['pwd', 'mfa'],
  // Access tokens carry the sign-in's acr, so the upstream API can demand "mfa" (RFC 9470).
  async extraTokenClaims(ctx) {
    const source = ctx.oidc.entities.AuthorizationCode ?? ctx.oidc.entities.RefreshToken;
    return source?.acr ? { acr: source.acr } : undefined;
  },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    'profile:basic': ['name', 'nickname', 'anonymous'],
  },
  // logi's id_token carries only the standard claims; the profile comes from userinfo.
  conformIdTokenClaims: true,
  pkce: { required: () => true },
  // The endpoints where logi's guides document them (logi-bff also runs without
  // discovery: ONE_PASS_DISCOVERY=off); JWKS and end-session keep oidc-provider's paths.
  routes: { authorization: '/oauth/authorize', token: '/oauth/token', userinfo: '/oauth/userinfo', revocation: '/oauth/revoke' },
  responseTypes: ['code'],
  features: {
    devInteractions: { enabled: false },
    revocation: { enabled: true },
    introspection: { enabled: true },
    clientCredentials: { enabled: true },
    // RFC 8707: the upstream's orders API is a resource server of its own. A sign-in that
    // names it may later get (by a refresh grant with `resource`) a token only it accepts;
    // the token for the sign-in itself stays the userinfo one.
    resourceIndicators: {
      enabled: true,
      async getResourceServerInfo(_ctx, resource) {
        if (resource !== ORDERS_RESOURCE) throw new errors.InvalidTarget(`unknown resource ${resource}`);
        return { scope: ORDERS_SCOPES, audience: ORDERS_RESOURCE, accessTokenFormat: 'opaque' };
      },
    },
    userinfo: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    backchannelLogout: { enabled: true },
  },
  // Dev only: the apps listen on loopback, which oidc-provider's SSRF guard (a
  // dispatcher refusing special-use addresses) blocks for back-channel logout calls.
  fetch: (url, { dispatcher: _guard, ...options }) => fetch(url, options),
  // logi issues (and rotates) refresh tokens without offline_access.
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: true,
  ttl: {
    AccessToken: ACCESS_TOKEN_TTL,
    AuthorizationCode: 60,
    IdToken: 3600,
    RefreshToken: 14 * 24 * 3600,
    Interaction: 600,
    Session: 3600,
    Grant: 14 * 24 * 3600,
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}`, policy: loginHintPolicy() },
  async findAccount(_ctx, sub) {
    const user = userBySub(sub);
    if (!user) return undefined;
    return { accountId: sub, claims: async () => ({ sub, ...user.claims }) };
  },
  renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = `<!DOCTYPE html><title>Provider error</title><h1>${out.error}</h1><p>${out.error_description ?? ''}</p>`;
  },
};

const provider = new Provider(ISSUER, configuration);
provider.on('backchannel.error', (_ctx, error, client) => console.error(`back-channel logout to ${client.backchannelLogoutUri} failed: ${error.message}${error.cause ? ` (${error.cause.code ?? error.cause.message})` : ''}`));

async function finish(req, res, details, { user, granted, cancelled, acr = 'pwd' }) {
  if (cancelled) {
    return provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'The user declined to sign in' }, { mergeWithLastSubmission: false });
  }
  const grant = details.grantId ? await provider.Grant.find(details.grantId) : new provider.Grant({ accountId: user.sub, clientId: details.params.client_id });
  grant.addOIDCScope(details.params.scope);
  // The resources the app named, each with the requested scopes (filtered per resource at the token endpoint).
  for (const resource of [details.params.resource ?? []].flat()) grant.addResourceScope(resource, details.params.scope);
  const withheld = CONSENTABLE_CLAIMS.filter((claim) => !granted.includes(claim));
  if (withheld.length) grant.rejectOIDCClaims(withheld);
  const grantId = await grant.save();
  const login = { accountId: user.sub, acr, amr: acr === 'mfa' ? ['pwd', 'otp'] : ['pwd'] };
  return provider.interactionFinished(req, res, { login, consent: { grantId } }, { mergeWithLastSubmission: false });
}

function readForm(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.on('data', (chunk) => { body += chunk; if (body.length > 10_000) reject(new Error('form too large')); });
    req.on('end', () => resolve(new URLSearchParams(body)));
    req.on('error', reject);
  });
}

// Counts the app's back-channel calls per endpoint (recognised by its User-Agent),
// so tests can assert what a login costs the provider.
const hits = new Map();
function count(req, path) {
  if (!(req.headers['user-agent'] ?? '').startsWith('logi-bff/')) return;
  hits.set(path, (hits.get(path) ?? 0) + 1);
}

// Every token this provider hands out, so tests can prove none of them reaches the
// browser, and the last token response, so tests can replay a rotated refresh token.
const issued = [];
let lastGrant = null;
provider.on('grant.success', (ctx) => {
  for (const key of ['access_token', 'refresh_token', 'id_token']) {
    if (ctx.body?.[key]) issued.push(ctx.body[key]);
  }
  lastGrant = { access_token: ctx.body?.access_token, refresh_token: ctx.body?.refresh_token, id_token: ctx.body?.id_token };
});

const devRoutes = {
  '/__dev/hits': (req) => {
    if (req.method === 'DELETE') hits.clear();
    return Object.fromEntries(hits);
  },
  '/__dev/issued-tokens': () => issued,
  '/__dev/last-grant': () => lastGrant,
};

function sendPage(res, html) {
  res.setHeader('content-type', 'text/html; charset=utf-8');
  return res.end(html);
}

// Pick an account and the claims to share; when the app asked for acr_values=mfa, then the
// second-factor step. A login_hint naming a known account skips the first page.
async function handleInteraction(req, res, uid) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('interaction mismatch');
  const mfa = wantsMfa(details.params);
  if (req.method === 'GET') {
    const hinted = userByName(details.params.login_hint);
    if (hinted && mfa) return sendPage(res, mfaPage({ uid, user: details.params.login_hint, granted: CONSENTABLE_CLAIMS }));
    if (hinted) return finish(req, res, details, { user: hinted, granted: CONSENTABLE_CLAIMS });
    return sendPage(res, consentPage({ uid, clientId: details.params.client_id, scope: details.params.scope, users: USERS, claims: CONSENTABLE_CLAIMS }));
  }
  const form = await readForm(req);
  const action = form.get('action');
  if (action === 'cancel') return finish(req, res, details, { cancelled: true });
  const user = userByName(form.get('user'));
  if (!user) {
    res.statusCode = 400;
    return res.end('unknown user');
  }
  const granted = form.getAll('claim');
  if (action === 'verify') {
    if (form.get('code') !== MFA_CODE) return sendPage(res, mfaPage({ uid, user: form.get('user'), granted, error: 'That code is not right.' }));
    return finish(req, res, details, { user, granted, acr: 'mfa' });
  }
  if (mfa) return sendPage(res, mfaPage({ uid, user: form.get('user'), granted }));
  return finish(req, res, details, { user, granted });
}

// oidc-provider 9 rotates (consumes) a refresh token before it checks a `resource` against
// the grant, so an ungranted resource would cost the login its token family. A provider must
// refuse it untouched (RFC 8707 §2.2, `invalid_target`), as the app expects of logi: checked
// here first.
async function refusedTarget(req) {
  if (req.method !== 'POST' || !(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) return false;
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  req.body = Buffer.concat(chunks).toString();
  const form = new URLSearchParams(req.body);
  if (form.get('grant_type') !== 'refresh_token' || !form.get('resource')) return false;
  const token = await provider.RefreshToken.find(form.get('refresh_token') ?? '', { ignoreExpiration: true });
  return Boolean(token && !token.resourceIndicators.has(form.get('resource')));
}

const callback = provider.callback();
const server = http.createServer(async (req, res) => {
  const { pathname } = new URL(req.url, ISSUER);
  try {
    // A browser on the consent page asks for one; a 404 would be a console error in tests.
    if (pathname === '/favicon.ico') {
      res.statusCode = 204;
      return res.end();
    }
    if (pathname === '/oauth/token' && (await refusedTarget(req))) {
      res.statusCode = 400;
      res.setHeader('content-type', 'application/json');
      return res.end(JSON.stringify({ error: 'invalid_target', error_description: 'the sign-in did not ask for this resource' }));
    }
    if (devRoutes[pathname]) {
      res.setHeader('content-type', 'application/json');
      return res.end(JSON.stringify(devRoutes[pathname](req)));
    }
    const interaction = pathname.match(/^\/interaction\/([\w-]+)$/);
    if (interaction) return await handleInteraction(req, res, interaction[1]);
    count(req, pathname);
    return callback(req, res);
  } catch (error) {
    console.error('dev provider:', error);
    res.statusCode = 500;
    return res.end('dev provider error');
  }
});

if (process.env.UPSTREAM_PORT) startUpstream(provider, { port: Number(process.env.UPSTREAM_PORT), host: HOST });

server.listen(PORT, HOST, () => {
  console.log(`dev provider (logi look-alike) at ${ISSUER} for client ${CLIENT_ID}; redirect URIs: ${configuration.clients[0].redirect_uris.join(', ')}`);
});
