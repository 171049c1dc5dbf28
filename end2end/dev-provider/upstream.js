// A tiny upstream API for the BFF's proxy: it accepts only live access tokens of this
// provider (looked up in-process, like token introspection; a user's or the client's own,
// from the client-credentials grant), so the demo page and the tests exercise real
// bearer-token checks. Under /public/ it answers anyone. Under /orders/ it is a resource
// server of its own (RFC 8707): only tokens minted for ORDERS_RESOURCE are accepted there,
// and nowhere else. Under /payments/ it needs a token of an "mfa" sign-in and otherwise
// answers RFC 9470's challenge (insufficient_user_authentication, acr_values="mfa").
import http from 'node:http';
import { WebSocketServer } from 'ws';

export const ORDERS_RESOURCE = 'https://orders.logi-bff.dev/';
export const ORDERS_SCOPES = 'orders:read orders:write';

async function bearerSubject(provider, req) {
  const match = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
  if (!match) return undefined;
  // The app's own client-credentials token speaks for the client, not for a user.
  const client = await provider.ClientCredentials.find(match[1]);
  if (client?.isValid) return { sub: `client:${client.clientId}`, scope: client.scope, expiresAt: client.exp, aud: client.aud };
  const token = await provider.AccessToken.find(match[1]);
  if (!token?.isValid) return undefined;
  // A revoked grant (e.g. refresh-token reuse) kills its access tokens too.
  if (!(await provider.Grant.find(token.grantId))) return undefined;
  return { sub: token.accountId, scope: token.scope, expiresAt: token.exp, aud: token.aud, acr: token.extra?.acr };
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

const routes = {
  '/hello': async (_req, url, token) => ({ message: 'Hello from the upstream API', sub: token.sub, scope: token.scope, token_expires_at: token.expiresAt, query: url.search }),
  '/orders': async (_req, _url, token) => ({ message: 'Your orders', sub: token.sub, aud: token.aud, scope: token.scope, orders: [{ id: 1, item: 'A teapot' }] }),
  '/payments': async (_req, _url, token) => ({ message: 'Payment authorised', sub: token.sub, acr: token.acr }),
  '/echo': async (req, url, token, body) => ({ sub: token.sub, method: req.method, path: url.pathname, query: url.search, headers: req.headers, body_bytes: body.length }),
  '/slow': async (_req, url) => {
    await new Promise((resolve) => setTimeout(resolve, Number(url.searchParams.get('ms') ?? 5000)));
    return { slow: true };
  },
};

// WebSockets under /ws/ (declared with websocket = true): the handshake needs a live access
// token like any call; the socket greets with whom the token spoke for, echoes what it gets,
// and sends a tick every second.
function serveSockets(server, provider) {
  const sockets = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 });
  server.on('upgrade', async (req, socket, head) => {
    const url = new URL(req.url, 'http://upstream');
    const token = await bearerSubject(provider, req);
    if (!url.pathname.startsWith('/ws/') || !token || token.aud) {
      socket.end('HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\n\r\n{"error":"invalid_token"}');
      return;
    }
    sockets.handleUpgrade(req, socket, head, (ws) => {
      ws.send(JSON.stringify({ message: 'Connected to the upstream socket', sub: token.sub, path: url.pathname }));
      let tick = 0;
      const ticker = setInterval(() => ws.send(JSON.stringify({ tick: ++tick, at: new Date().toISOString() })), 1000);
      ws.on('message', (data, isBinary) => ws.send(isBinary ? data : JSON.stringify({ echo: data.toString() }), { binary: isBinary }));
      ws.on('close', () => clearInterval(ticker));
    });
  });
}

export function startUpstream(provider, { port, host }) {
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, `http://${host}:${port}`);
    const body = await readBody(req);
    const token = await bearerSubject(provider, req);
    res.setHeader('content-type', 'application/json');
    // Must never reach the browser through the proxy.
    res.setHeader('set-cookie', 'upstream_tracker=1; Path=/');
    // Under /public/ anyone is answered (an API declared with token = "none").
    if (url.pathname.startsWith('/public/')) {
      return res.end(JSON.stringify({ message: 'Public data from the upstream API', sub: token?.sub ?? null, authorization_sent: Boolean(req.headers.authorization) }));
    }
    const forOrders = url.pathname.startsWith('/orders/');
    if (!token || [token.aud ?? []].flat().includes(ORDERS_RESOURCE) !== forOrders) {
      res.statusCode = 401;
      res.setHeader('www-authenticate', 'Bearer error="invalid_token"');
      return res.end(JSON.stringify({ error: 'invalid_token' }));
    }
    const forPayments = url.pathname.startsWith('/payments/');
    if (forPayments && token.acr !== 'mfa') {
      res.statusCode = 401;
      res.setHeader('www-authenticate', 'Bearer error="insufficient_user_authentication", error_description="A payment needs an mfa sign-in", acr_values="mfa"');
      return res.end(JSON.stringify({ error: 'insufficient_user_authentication' }));
    }
    const route = routes[forOrders ? '/orders' : forPayments ? '/payments' : url.pathname.replace(/\/+$/, '')];
    if (!route) {
      res.statusCode = 404;
      return res.end(JSON.stringify({ error: 'not_found', path: url.pathname }));
    }
    return res.end(JSON.stringify(await route(req, url, token, body)));
  });
  serveSockets(server, provider);
  server.keepAliveTimeout = 65_000;
  server.listen(port, host, () => console.log(`upstream API at http://${host}:${port} (accepts this provider's access tokens)`));
  return server;
}
