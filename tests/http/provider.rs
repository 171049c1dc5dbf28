//! One provider double for every test: logi's endpoints served by axum on loopback
//! (discovery, JWKS, an authorization endpoint that approves at once, token with PKCE,
//! client_secret_basic, refresh rotation and family revocation, client credentials,
//! userinfo, revocation), signing id_tokens with keys made here. Resource indicators (RFC
//! 8707) as logi's would work: a refresh grant may name a resource its sign-in asked for
//! (else `invalid_target`, before anything rotates) and a scope its grant holds (else
//! `invalid_scope`); the access token is then for that audience. Its upstream API accepts
//! its access tokens and says which audience and scope each had.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, get, post};
use axum::{Form, Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use rsa::pkcs1v15::SigningKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

pub const CLIENT_ID: &str = "logi-bff-test";
pub const CLIENT_SECRET: &str = "test-client-secret";

pub fn rsa_key(slot: usize) -> &'static RsaPrivateKey {
    static KEYS: OnceLock<Vec<RsaPrivateKey>> = OnceLock::new();
    &KEYS.get_or_init(|| (0..2).map(|_| RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap()).collect())[slot]
}

pub fn jwk(key: &RsaPrivateKey, kid: &str) -> Value {
    let public = key.to_public_key();
    json!({ "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
            "n": B64.encode(public.n().to_bytes_be()), "e": B64.encode(public.e().to_bytes_be()) })
}

pub fn sign(header: &Value, payload: &Value, key: &RsaPrivateKey) -> String {
    let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(payload.to_string()));
    let signature = SigningKey::<Sha256>::new(key.clone()).sign(input.as_bytes());
    format!("{input}.{}", B64.encode(signature.to_bytes()))
}

pub fn at_hash(access_token: &str) -> String {
    B64.encode(&Sha256::digest(access_token.as_bytes())[..16])
}

pub fn rs256(kid: &str) -> Value {
    json!({ "alg": "RS256", "typ": "JWT", "kid": kid })
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// How one endpoint of the double misbehaves (the fault tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answers only after this long (past the app's logi timeout).
    Slow(Duration),
    /// `503` with an HTML page, as a balancer in front of a broken logi answers.
    Unavailable,
    /// `200`, JSON by its content type, not by its body.
    Garbage,
}

/// The double's server while it is up.
struct Serving {
    stop: tokio::sync::oneshot::Sender<()>,
    stopped: tokio::task::JoinHandle<()>,
}

/// An authorization code waiting to be redeemed.
struct Grant {
    sub: String,
    nonce: Option<String>,
    challenge: String,
    redirect_uri: String,
    consent: Consent,
    /// How the person authenticated (the id_token's `acr`, `auth_time`).
    acr: String,
    auth_time: i64,
}

/// What a sign-in's grant covers: the resources its authorization request named, and its scope.
#[derive(Clone, Debug, Default)]
pub struct Consent {
    pub resources: Vec<String>,
    pub scope: String,
    /// The sign-in's `acr`, which its access tokens carry (what the upstream's `/challenge-<acr>` checks).
    pub acr: Option<String>,
}

/// Whom an access token speaks for, and for which audience and scope.
#[derive(Clone, Debug)]
pub struct Issued {
    pub sub: String,
    pub aud: Option<String>,
    pub scope: String,
    pub acr: Option<String>,
}

#[derive(Default)]
pub struct Double {
    pub issuer: String,
    jwks: Mutex<Value>,
    userinfo: Mutex<Option<Value>>,
    hits: Mutex<HashMap<&'static str, usize>>,
    codes: Mutex<HashMap<String, Grant>>,
    access: Mutex<HashMap<String, Issued>>,
    /// Live refresh token → subject and consent; reusing a dead one revokes them all.
    refresh: Mutex<HashMap<String, (String, Consent)>>,
    /// Every grant at the token endpoint: (grant type, resource asked for).
    pub grants: Mutex<Vec<(String, Option<String>)>>,
    /// Every token it issued (tests scan responses for them).
    pub issued: Mutex<Vec<String>>,
    pub revoked: Mutex<HashSet<String>>,
    /// The token endpoint's answer instead of tokens: (status, OAuth error).
    pub token_failure: Mutex<Option<(u16, &'static str)>>,
    pub access_token_ttl: AtomicI64,
    pub rotate: AtomicBool,
    counter: AtomicI64,
    /// Misbehaviour by path (`/token`, `/jwks`, …).
    faults: Mutex<HashMap<String, Fault>>,
    /// The `issuer` discovery names instead of the real one.
    pub discovery_issuer: Mutex<Option<String>>,
    /// The base URL of its WebSocket upstream (`start_socket_upstream`).
    pub socket_upstream: String,
    /// The `acr` sign-ins get whatever they ask for (else the first of `acr_values`, else `pwd`).
    pub acr_override: Mutex<Option<String>>,
    /// How many seconds before the sign-in the person authenticated (`auth_time`).
    pub auth_age_secs: AtomicI64,
    /// The query of every authorization request.
    pub authorizations: Mutex<Vec<HashMap<String, String>>>,
    serving: tokio::sync::Mutex<Option<Serving>>,
}

impl Double {
    pub fn hits(&self, endpoint: &'static str) -> usize {
        self.hits.lock().unwrap().get(endpoint).copied().unwrap_or(0)
    }

    pub fn reset_hits(&self) {
        self.hits.lock().unwrap().clear();
    }

    fn hit(&self, endpoint: &'static str) {
        *self.hits.lock().unwrap().entry(endpoint).or_default() += 1;
    }

    pub fn set_jwks(&self, jwks: Value) {
        *self.jwks.lock().unwrap() = jwks;
    }

    pub fn set_userinfo(&self, body: Value) {
        *self.userinfo.lock().unwrap() = Some(body);
    }

    /// Makes `token` a live refresh token of `sub` (for custody tests).
    pub fn issue_refresh_token(&self, token: &str, sub: &str) {
        self.issue_refresh_token_with(token, sub, Consent { resources: Vec::new(), scope: "openid".into(), acr: None });
    }

    pub fn issue_refresh_token_with(&self, token: &str, sub: &str, consent: Consent) {
        self.refresh.lock().unwrap().insert(token.to_owned(), (sub.to_owned(), consent));
    }

    /// What the access token was issued for, if it is live.
    pub fn issued_access_token(&self, token: &str) -> Option<Issued> {
        self.access.lock().unwrap().get(token).cloned()
    }

    /// How many grants named this resource (`None`: the sign-in's own).
    pub fn grants_for(&self, grant_type: &str, resource: Option<&str>) -> usize {
        self.grants.lock().unwrap().iter().filter(|(kind, asked)| kind == grant_type && asked.as_deref() == resource).count()
    }

    pub fn is_live_refresh_token(&self, token: &str) -> bool {
        self.refresh.lock().unwrap().contains_key(token)
    }

    /// How many live refresh tokens `sub` has (a family logi revoked has none).
    pub fn live_refresh_tokens_of(&self, sub: &str) -> usize {
        self.refresh.lock().unwrap().values().filter(|(holder, _)| holder == sub).count()
    }

    /// Reuses a refresh token the way an attacker would; like logi, a dead one revokes the family.
    pub fn replay_refresh_token(&self, token: &str) -> bool {
        let mut live = self.refresh.lock().unwrap();
        if live.remove(token).is_none() {
            live.clear();
            return false;
        }
        true
    }

    /// The endpoint at `path` misbehaves as `fault` says, or behaves again with `None`.
    pub fn set_fault(&self, path: &str, fault: Option<Fault>) {
        let mut faults = self.faults.lock().unwrap();
        match fault {
            Some(fault) => faults.insert(path.to_owned(), fault),
            None => faults.remove(path),
        };
    }

    /// logi is down: it stops listening and closes every connection (connections refused).
    pub async fn go_down(&self) {
        if let Some(Serving { stop, stopped }) = self.serving.lock().await.take() {
            _ = stop.send(());
            stopped.await.unwrap();
        }
    }

    /// logi is back, at the same address.
    pub async fn come_back(self: &Arc<Self>) {
        let addr = self.issuer.trim_start_matches("http://").to_owned();
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        self.serve(listener).await;
    }

    async fn serve(self: &Arc<Self>, listener: tokio::net::TcpListener) {
        let (stop, stopping) = tokio::sync::oneshot::channel::<()>();
        let app = provider_routes(self.clone());
        let stopped = tokio::spawn(async move {
            axum::serve(listener, app).with_graceful_shutdown(async move { _ = stopping.await }).await.unwrap();
        });
        *self.serving.lock().await = Some(Serving { stop, stopped });
    }

    fn next(&self, prefix: &str) -> String {
        let token = format!("{prefix}-{}-{}", self.counter.fetch_add(1, Ordering::SeqCst), rand_suffix());
        self.issued.lock().unwrap().push(token.clone());
        token
    }
}

fn rand_suffix() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Starts the provider double (and its upstream API); returns it with the upstream's base URL.
pub async fn start() -> (Arc<Double>, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let sockets = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let double = Arc::new(Double {
        issuer: issuer.clone(),
        socket_upstream: format!("http://{}", sockets.local_addr().unwrap()),
        jwks: Mutex::new(json!({ "keys": [jwk(rsa_key(0), "k1")] })),
        access_token_ttl: AtomicI64::new(300),
        rotate: AtomicBool::new(true),
        ..Default::default()
    });
    double.serve(listener).await;
    let upstream = start_upstream(double.clone()).await;
    tokio::spawn(serve_sockets(sockets, double.clone()));
    (double, upstream)
}

/// The WebSocket upstream: refuses a handshake without a live access token (`401`), except
/// under `/open/`; says first whom the token spoke for (`{"sub","aud","path"}`), then echoes
/// every text and binary message; `close:<code>` makes it close with that code.
#[allow(clippy::result_large_err)] // the shape of tungstenite's handshake callback
async fn serve_sockets(listener: tokio::net::TcpListener, double: Arc<Double>) {
    use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response as HandshakeResponse};
    use tokio_tungstenite::tungstenite::protocol::{frame::coding::CloseCode, CloseFrame};
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let Ok((stream, _)) = listener.accept().await else { return };
        let double = double.clone();
        tokio::spawn(async move {
            double.hit("socket_handshake");
            let mut seen = None;
            let check = |request: &Request, response: HandshakeResponse| -> Result<HandshakeResponse, ErrorResponse> {
                let issued = bearer_subject(&double, request.headers());
                let path = request.uri().path().to_owned();
                if issued.is_none() && !path.starts_with("/open/") {
                    let mut refused = ErrorResponse::new(Some(r#"{"error":"invalid_token"}"#.into()));
                    *refused.status_mut() = StatusCode::UNAUTHORIZED;
                    return Err(refused);
                }
                seen = Some(json!({ "sub": issued.as_ref().map(|i| i.sub.clone()), "aud": issued.and_then(|i| i.aud), "path": path }));
                Ok(response)
            };
            let Ok(mut socket) = tokio_tungstenite::accept_hdr_async(stream, check).await else { return };
            if socket.send(Message::text(seen.unwrap_or_default().to_string())).await.is_err() {
                return;
            }
            while let Some(Ok(message)) = socket.next().await {
                let reply = match message {
                    Message::Text(text) if text.starts_with("close:") => {
                        let code: u16 = text.trim_start_matches("close:").parse().unwrap_or(1000);
                        Message::Close(Some(CloseFrame { code: CloseCode::from(code), reason: "asked to".into() }))
                    }
                    Message::Text(_) | Message::Binary(_) => message,
                    _ => continue,
                };
                if socket.send(reply).await.is_err() {
                    return;
                }
            }
        });
    }
}

fn provider_routes(double: Arc<Double>) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route(
            "/jwks",
            get(|State(d): State<Arc<Double>>| async move {
                d.hit("jwks");
                Json(d.jwks.lock().unwrap().clone())
            }),
        )
        .route("/auth", get(authorize))
        .route("/token", post(token))
        .route("/userinfo", get(userinfo))
        .route("/revoke", post(revoke))
        // The same, at the paths logi's guides document (ONE_PASS_DISCOVERY=off).
        .route("/oauth/authorize", get(authorize))
        .route("/oauth/token", post(token))
        .route("/oauth/userinfo", get(userinfo))
        .route("/oauth/revoke", post(revoke))
        .layer(axum::middleware::from_fn_with_state(double.clone(), misbehave))
        .with_state(double)
}

async fn misbehave(State(d): State<Arc<Double>>, request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let fault = d.faults.lock().unwrap().get(request.uri().path()).copied();
    match fault {
        None => next.run(request).await,
        Some(Fault::Slow(delay)) => {
            tokio::time::sleep(delay).await;
            next.run(request).await
        }
        Some(Fault::Unavailable) => (StatusCode::SERVICE_UNAVAILABLE, [("content-type", "text/html")], "<html>503 Service Unavailable</html>").into_response(),
        Some(Fault::Garbage) => (StatusCode::OK, [("content-type", "application/json")], "<html>not json").into_response(),
    }
}

async fn discovery(State(d): State<Arc<Double>>) -> Json<Value> {
    d.hit("discovery");
    let issuer = &d.issuer;
    let named = d.discovery_issuer.lock().unwrap().clone().unwrap_or_else(|| issuer.clone());
    Json(json!({
        "issuer": named,
        "authorization_endpoint": format!("{issuer}/auth"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "revocation_endpoint": format!("{issuer}/revoke"),
        "end_session_endpoint": format!("{issuer}/session/end"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
}

/// Approves at once as the account named by `login_hint` (`sub` = `logi-user-<hint>`).
async fn authorize(State(d): State<Arc<Double>>, Query(pairs): Query<Vec<(String, String)>>) -> Response {
    d.hit("auth");
    let resources = pairs.iter().filter(|(key, _)| key == "resource").map(|(_, value)| value.clone()).collect();
    let q: HashMap<String, String> = pairs.into_iter().collect();
    d.authorizations.lock().unwrap().push(q.clone());
    let redirect_uri = q.get("redirect_uri").cloned().unwrap_or_default();
    let state = q.get("state").cloned().unwrap_or_default();
    if q.get("code_challenge_method").map(String::as_str) != Some("S256") || q.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
        return (StatusCode::BAD_REQUEST, "bad authorization request").into_response();
    }
    let code = d.next("code");
    let asked = q.get("acr_values").and_then(|values| values.split(' ').next()).map(str::to_owned);
    let acr = d.acr_override.lock().unwrap().clone().or(asked).unwrap_or_else(|| "pwd".into());
    let grant = Grant {
        sub: format!("logi-user-{}", q.get("login_hint").map_or("alice", String::as_str)),
        nonce: q.get("nonce").cloned(),
        challenge: q.get("code_challenge").cloned().unwrap_or_default(),
        redirect_uri: redirect_uri.clone(),
        consent: Consent { resources, scope: q.get("scope").cloned().unwrap_or_default(), acr: Some(acr.clone()) },
        acr,
        auth_time: now() - d.auth_age_secs.load(Ordering::SeqCst),
    };
    d.codes.lock().unwrap().insert(code.clone(), grant);
    let mut target = url::Url::parse(&redirect_uri).unwrap();
    target.query_pairs_mut().append_pair("code", &code).append_pair("state", &state);
    Redirect::to(target.as_str()).into_response()
}

fn client_authenticated(headers: &HeaderMap) -> bool {
    let expected = format!("Basic {}", STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}")));
    headers.get("authorization").is_some_and(|v| v.as_bytes() == expected.as_bytes())
}

fn oauth_error(status: u16, error: &str) -> Response {
    (StatusCode::from_u16(status).unwrap(), Json(json!({ "error": error }))).into_response()
}

async fn token(State(d): State<Arc<Double>>, headers: HeaderMap, Form(form): Form<HashMap<String, String>>) -> Response {
    d.hit("token");
    if !client_authenticated(&headers) {
        return oauth_error(401, "invalid_client");
    }
    if let Some((status, error)) = *d.token_failure.lock().unwrap() {
        return oauth_error(status, error);
    }
    d.grants.lock().unwrap().push((form.get("grant_type").cloned().unwrap_or_default(), form.get("resource").cloned()));
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => redeem_code(&d, &form),
        Some("refresh_token") => {
            // Slow enough that concurrent refreshes would overlap; and, like a provider that
            // does not watch its clients, it finishes (rotates) even if the client is gone.
            let rotation = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(150)).await;
                refresh(&d, &form)
            });
            rotation.await.unwrap()
        }
        Some("client_credentials") => {
            d.hit("client_credentials");
            let access = d.next("access");
            let scope = form.get("scope").cloned().unwrap_or_default();
            d.access
                .lock()
                .unwrap()
                .insert(access.clone(), Issued { sub: format!("client:{CLIENT_ID}"), aud: form.get("resource").cloned(), scope: scope.clone(), acr: None });
            Json(json!({ "access_token": access, "token_type": "Bearer", "expires_in": d.access_token_ttl.load(Ordering::SeqCst), "scope": scope }))
                .into_response()
        }
        _ => oauth_error(400, "unsupported_grant_type"),
    }
}

fn redeem_code(d: &Double, form: &HashMap<String, String>) -> Response {
    let code = form.get("code").cloned().unwrap_or_default();
    let Some(grant) = d.codes.lock().unwrap().remove(&code) else { return oauth_error(400, "invalid_grant") };
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    if B64.encode(Sha256::digest(verifier.as_bytes())) != grant.challenge || form.get("redirect_uri") != Some(&grant.redirect_uri) {
        return oauth_error(400, "invalid_grant");
    }
    let (access, refresh) = (d.next("access"), d.next("refresh"));
    let scope = grant.consent.scope.clone();
    let acr = grant.consent.acr.clone();
    d.access.lock().unwrap().insert(access.clone(), Issued { sub: grant.sub.clone(), aud: None, scope: scope.clone(), acr });
    d.refresh.lock().unwrap().insert(refresh.clone(), (grant.sub.clone(), grant.consent));
    // Each sign-in is a logi session of its own (what a back-channel logout names).
    let sid = format!("op-session-{}", d.counter.fetch_add(1, Ordering::SeqCst));
    let mut claims = json!({ "iss": d.issuer, "sub": grant.sub, "aud": CLIENT_ID, "exp": now() + 300, "iat": now(), "at_hash": at_hash(&access), "sid": sid,
                             "acr": grant.acr, "auth_time": grant.auth_time });
    if let Some(nonce) = grant.nonce {
        claims["nonce"] = json!(nonce);
    }
    let id_token = sign(&rs256("k1"), &claims, rsa_key(0));
    d.issued.lock().unwrap().push(id_token.clone());
    let ttl = d.access_token_ttl.load(Ordering::SeqCst);
    Json(json!({ "access_token": access, "token_type": "Bearer", "expires_in": ttl, "refresh_token": refresh, "id_token": id_token, "scope": scope }))
        .into_response()
}

fn refresh(d: &Double, form: &HashMap<String, String>) -> Response {
    let presented = form.get("refresh_token").cloned().unwrap_or_default();
    let mut live = d.refresh.lock().unwrap();
    let Some((sub, consent)) = live.get(&presented).cloned() else {
        live.clear();
        return oauth_error(400, "invalid_grant");
    };
    let resource = form.get("resource").cloned();
    if resource.as_ref().is_some_and(|resource| !consent.resources.contains(resource)) {
        return oauth_error(400, "invalid_target");
    }
    let granted: Vec<&str> = consent.scope.split(' ').collect();
    let scope = match form.get("scope") {
        Some(asked) if asked.split(' ').any(|scope| !granted.contains(&scope)) => return oauth_error(400, "invalid_scope"),
        Some(asked) => asked.clone(),
        None => consent.scope.clone(),
    };
    let access = d.next("access");
    d.access.lock().unwrap().insert(access.clone(), Issued { sub: sub.clone(), aud: resource, scope: scope.clone(), acr: consent.acr.clone() });
    let mut body = json!({ "access_token": access, "token_type": "Bearer", "expires_in": d.access_token_ttl.load(Ordering::SeqCst), "scope": scope });
    if d.rotate.load(Ordering::SeqCst) {
        live.remove(&presented);
        let rotated = d.next("refresh");
        live.insert(rotated.clone(), (sub, consent));
        body["refresh_token"] = json!(rotated);
    }
    Json(body).into_response()
}

fn bearer_subject(d: &Double, headers: &HeaderMap) -> Option<Issued> {
    let token = headers.get("authorization")?.to_str().ok()?.strip_prefix("Bearer ")?;
    d.access.lock().unwrap().get(token).cloned()
}

async fn userinfo(State(d): State<Arc<Double>>, headers: HeaderMap) -> Response {
    d.hit("userinfo");
    if let Some(body) = d.userinfo.lock().unwrap().clone() {
        return Json(body).into_response();
    }
    match bearer_subject(&d, &headers).map(|issued| issued.sub) {
        Some(sub) => {
            let name = sub.trim_start_matches("logi-user-").to_owned();
            Json(json!({ "sub": sub, "email": format!("{name}@example.com"), "name": name })).into_response()
        }
        None => oauth_error(401, "invalid_token"),
    }
}

async fn revoke(State(d): State<Arc<Double>>, headers: HeaderMap, Form(form): Form<HashMap<String, String>>) -> Response {
    d.hit("revoke");
    if !client_authenticated(&headers) {
        return oauth_error(401, "invalid_client");
    }
    let token = form.get("token").cloned().unwrap_or_default();
    d.refresh.lock().unwrap().remove(&token);
    d.revoked.lock().unwrap().insert(token);
    StatusCode::OK.into_response()
}

/// The upstream API: `/echo` (what arrived, with the token's `aud` and `scope`), `/slow?ms=`, anything else `/hello`-like;
/// only the double's live access tokens are accepted, except under `/open/`, which
/// answers anyone (`"sub": null` without a token) and says whether a token came.
async fn start_upstream(double: Arc<Double>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().route("/{*path}", any(upstream)).with_state(double);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

async fn upstream(State(d): State<Arc<Double>>, request: axum::extract::Request) -> Response {
    d.hit("upstream");
    let (parts, body) = request.into_parts();
    let issued = bearer_subject(&d, &parts.headers);
    let sub = issued.as_ref().map(|issued| issued.sub.clone());
    if sub.is_none() && !parts.uri.path().starts_with("/open/") {
        return oauth_error(401, "invalid_token");
    }
    // `/challenge-<acr>`: RFC 9470's answer to a token of any other sign-in.
    let required_acr = parts.uri.path().rsplit('/').next().and_then(|last| last.strip_prefix("challenge-"));
    if let Some(required) = required_acr.filter(|required| issued.as_ref().and_then(|i| i.acr.as_deref()) != Some(*required)) {
        let challenge = format!(r#"Bearer error="insufficient_user_authentication", error_description="needs {required}", acr_values="{required}""#);
        return (StatusCode::UNAUTHORIZED, [("www-authenticate", challenge)], Json(json!({ "error": "insufficient_user_authentication" }))).into_response();
    }
    if parts.uri.path().ends_with("/slow") {
        let ms = parts.uri.query().and_then(|q| q.strip_prefix("ms=")).and_then(|ms| ms.parse().ok()).unwrap_or(5000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    // The token itself is not echoed: a real API would not, and tests scan answers for tokens.
    let mut headers: HashMap<String, String> = parts.headers.iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned())).collect();
    if let Some(sent) = headers.get_mut("authorization") {
        *sent = if sub.is_some() { "Bearer (a live access token)" } else { "(not a live access token)" }.into();
    }
    let (aud, scope, acr) = issued.map_or((None, None, None), |issued| (issued.aud, Some(issued.scope), issued.acr));
    let answer = json!({ "sub": sub, "aud": aud, "scope": scope, "acr": acr, "method": parts.method.as_str(), "path": parts.uri.path(), "query": parts.uri.query(), "headers": headers, "body_bytes": body.len() });
    ([("set-cookie", "upstream_tracker=1; Path=/")], Json(answer)).into_response()
}
