//! A bounded black-box fuzzer: random methods, paths, queries, headers, cookies and bodies
//! against a running app (the lane's database), signed in and not. It holds the app to:
//! every request answered, no `5xx` but the documented `502`/`503`/`504`, no panic, the
//! app still serving afterwards, and nothing written for anonymous requests.
//!
//! `LOGI_BFF_FUZZ_SEED` replays a run (the seed is printed); `LOGI_BFF_FUZZ_REQUESTS`
//! makes it longer (default 3,000).

use crate::support::{spawn_app, Browser, TestApp};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const PATHS: &[&str] = &[
    "/",
    "/signin",
    "/signup",
    "/account",
    "/api-demo",
    "/nope",
    "/api/auth/login",
    "/api/auth/callback",
    "/api/auth/link",
    "/api/auth/me",
    "/api/auth/logout",
    "/api/auth/logi/exchange",
    "/api/auth/token",
    "/api/auth/revoke",
    "/api/auth/backchannel-logout",
    "/.well-known/jwks.json",
    "/api/proxy/hello",
    "/api/proxy/",
    "/api/sign_up",
    "/api/sign_in",
    "/api/account",
    "/api/set_password",
    "/api/change_password",
    "/api/unlink_logi",
    "/api/end_session",
    "/api/sign_out_everywhere",
    "/api/auth_state",
    "/pkg/logi-bff.wasm",
    "/favicon.svg",
    "/healthz",
    "/readyz",
];
const METHODS: &[&str] = &["GET", "GET", "POST", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "FUZZ"];
/// Path segments that have broken path handling somewhere (`LONG` stands for 300 bytes).
const SEGMENTS: &[&str] = &["..", "%2e%2e", "%2F", "%5c", "%00", "a%zz", "%", "é", "\u{202e}", "LONG", "//", ";", "{}", "*"];
const QUERY_KEYS: &[&str] = &["state", "code", "error", "return_to", "login_hint", "prompt", "federated", "token", "x"];
const COOKIE_NAMES: &[&str] = &["logi_bff_session", "__Host-logi_bff_session", "logi_bff_pending", "__Secure-logi_bff_pending", "other"];
const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "text/plain",
    "application/json; charset=utf-16",
    "x/y; name=\"\u{e4}\"",
];
const FORM_KEYS: &[&str] = &[
    "email",
    "password",
    "name",
    "return_to",
    "code",
    "code_verifier",
    "redirect_uri",
    "grant_type",
    "refresh_token",
    "token",
    "logout_token",
    "id",
    "current_password",
    "new_password",
    "device_name",
    "nonce",
];

/// Printable junk without `@` (so no random form is a valid sign-up that would write rows).
fn junk(rng: &mut StdRng, max: usize) -> String {
    let len = rng.random_range(0..=max);
    (0..len)
        .map(|_| match rng.random_range(0..10) {
            0 => char::from(rng.random_range(0x20u8..0x7f)),
            1 => ['%', '&', '=', '"', '\\', '.', '/', ';', ','][rng.random_range(0..9)],
            2 => char::from_u32(rng.random_range(0xa0..0x3000)).unwrap_or('x'),
            _ => char::from(rng.random_range(b'a'..=b'z')),
        })
        .filter(|c| *c != '@')
        .collect()
}

fn base64ish(rng: &mut StdRng, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..len).map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())])).collect()
}

/// Something shaped like a token: a JWS of junk, a cookie-signature pair, or junk.
fn token_like(rng: &mut StdRng) -> String {
    match rng.random_range(0..4) {
        0 => format!("{}.{}.{}", base64ish(rng, 36), base64ish(rng, 80), base64ish(rng, 86)),
        1 => format!("{}.{}", base64ish(rng, 22), base64ish(rng, 43)),
        2 => {
            let len = rng.random_range(0..5000);
            base64ish(rng, len)
        }
        _ => junk(rng, 40),
    }
}

struct Request {
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn random_request(rng: &mut StdRng, app_url: &str) -> Request {
    let method = Method::from_bytes(METHODS.choose(rng).unwrap().as_bytes()).unwrap();
    let mut path = PATHS.choose(rng).unwrap().to_string();
    for _ in 0..rng.random_range(0..3) {
        let segment = match *SEGMENTS.choose(rng).unwrap() {
            "LONG" => "x".repeat(300),
            other => other.to_owned(),
        };
        path = format!("{}/{segment}", path.trim_end_matches('/'));
    }
    if rng.random_bool(0.6) {
        let pairs: Vec<String> = (0..rng.random_range(1..5)).map(|_| format!("{}={}", QUERY_KEYS.choose(rng).unwrap(), junk(rng, 30))).collect();
        path = format!("{path}?{}", pairs.join("&"));
    }
    let mut headers = Vec::new();
    if rng.random_bool(0.5) {
        let cookies: Vec<String> = (0..rng.random_range(1..4)).map(|_| format!("{}={}", COOKIE_NAMES.choose(rng).unwrap(), token_like(rng))).collect();
        headers.push(("cookie".into(), cookies.join("; ")));
    }
    if rng.random_bool(0.3) {
        let scheme = ["Bearer", "Basic", "bearer", "DPoP", ""][rng.random_range(0..5)];
        headers.push(("authorization".into(), format!("{scheme} {}", token_like(rng))));
    }
    if rng.random_bool(0.5) {
        let origin = [app_url, "https://evil.example", "null", ""][rng.random_range(0..4)];
        headers.push(("origin".into(), origin.into()));
    }
    if rng.random_bool(0.3) {
        headers.push(("x-forwarded-for".into(), ["1.2.3.4", "::1, 10.0.0.1", "junk", "300.1.1.1"][rng.random_range(0..4)].into()));
    }
    if rng.random_bool(0.4) {
        headers.push(("x-csrf".into(), "1".into()));
    }
    let body = match rng.random_range(0..4) {
        0 => Vec::new(),
        1 => (0..rng.random_range(0..2000)).map(|_| rng.random::<u8>()).collect(),
        2 => {
            let pairs: Vec<String> = (0..rng.random_range(0..6)).map(|_| format!("{}={}", FORM_KEYS.choose(rng).unwrap(), junk(rng, 60))).collect();
            pairs.join("&").into_bytes()
        }
        _ => {
            let fields: Vec<String> = (0..rng.random_range(0..6)).map(|_| format!("{:?}:{:?}", FORM_KEYS.choose(rng).unwrap(), junk(rng, 60))).collect();
            format!("{{{}}}", fields.join(",")).into_bytes()
        }
    };
    if !body.is_empty() || rng.random_bool(0.2) {
        headers.push(("content-type".into(), CONTENT_TYPES.choose(rng).unwrap().to_string()));
    }
    Request { method, path, headers, body }
}

/// The statuses a client may see from us that are not its own fault: documented gateway
/// and availability answers only.
fn acceptable(status: u16) -> bool {
    status < 500 || matches!(status, 502..=504)
}

/// Panics in the app's code while the fuzzer runs (the hook is process-wide, so only
/// panics outside the tests' own files count).
fn count_app_panics() -> Arc<AtomicUsize> {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.location().is_some_and(|at| !at.file().starts_with("tests/")) {
            seen.fetch_add(1, Ordering::SeqCst);
        }
        previous(info);
    }));
    count
}

async fn send(http: &reqwest::Client, app: &TestApp, request: &Request, cookie: Option<&str>) -> Result<u16, String> {
    let mut builder = http.request(request.method.clone(), format!("{}{}", app.url, request.path));
    for (name, value) in &request.headers {
        // Bytes, not text: non-ASCII reaches the app as obs-text, as some clients send it.
        match reqwest::header::HeaderValue::from_bytes(value.as_bytes()) {
            Ok(value) => builder = builder.header(name.as_str(), value),
            Err(_) => return Ok(0),
        }
    }
    if let Some(cookie) = cookie {
        builder = builder.header("cookie", cookie);
    }
    match builder.body(request.body.clone()).send().await {
        Ok(response) => Ok(response.status().as_u16()),
        // A request the client itself could not build (a header value reqwest refuses) is not the app's.
        Err(error) if error.is_builder() => Ok(0),
        Err(error) => Err(format!("{} {}: {error}", request.method, request.path)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_requests_get_an_answer_never_an_undocumented_5xx_and_anonymous_ones_write_nothing() {
    let seed = std::env::var("LOGI_BFF_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random::<u64>);
    let requests: usize = std::env::var("LOGI_BFF_FUZZ_REQUESTS").ok().and_then(|n| n.parse().ok()).unwrap_or(3000);
    let panics = count_app_panics();
    let app = spawn_app().await;
    let signed_in = app.browser();
    signed_in.sign_in("alice").await;
    let session = signed_in.cookie_header();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(Duration::from_secs(20)).build().unwrap();
    let mut rng = StdRng::seed_from_u64(seed);

    // Anonymous first: nothing may be written but failed password sign-ins (recorded for
    // throttling, by design).
    let before = app.row_counts().await;
    let mut failures = Vec::new();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for n in 0..requests {
        let request = random_request(&mut rng, &app.url);
        let cookie = (n >= requests / 2).then_some(session.as_str());
        if n == requests / 2 {
            let mut after = app.row_counts().await;
            let mut expected = before.clone();
            after.remove("sign_in_attempts");
            expected.remove("sign_in_attempts");
            assert_eq!(after, expected, "anonymous random requests wrote rows (seed {seed})");
        }
        match send(&http, &app, &request, cookie).await {
            Ok(status) => {
                *statuses.entry(status).or_default() += 1;
                if !acceptable(status) {
                    failures.push(format!("{status} for {} {} {:?} ({} body bytes)", request.method, request.path, request.headers, request.body.len()));
                }
            }
            Err(error) => failures.push(format!("no answer: {error}")),
        }
    }
    println!("fuzz: {requests} requests, seed {seed}, statuses {statuses:?}");
    assert!(failures.is_empty(), "seed {seed}: {} bad answers, first: {:#?}", failures.len(), &failures[..failures.len().min(5)]);
    assert_eq!(panics.load(Ordering::SeqCst), 0, "the app panicked (seed {seed})");
    assert_eq!(Browser::new(&app.url).get("/healthz").await.status, reqwest::StatusCode::OK);
}
