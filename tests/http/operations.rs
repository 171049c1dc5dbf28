//! What operators rely on: the probes, and the client address behind reverse proxies.

use crate::support::{spawn_app, spawn_app_with, TestApp};
use logi_bff::server::db::Db;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn the_probes_answer_without_sessions_or_cookies() {
    let app = spawn_app().await;
    let browser = app.browser();
    let health = browser.get("/healthz").await;
    assert_eq!((health.status, health.json()), (StatusCode::OK, json!({ "status": "ok" })));
    let ready = browser.get("/readyz").await;
    assert_eq!((ready.status, ready.json()), (StatusCode::OK, json!({ "status": "ready", "checks": { "database": "ok", "logi": "ok" } })));
    for answer in [&health, &ready] {
        assert!(answer.set_cookies().is_empty(), "a probe set a cookie");
        assert_eq!(answer.header("cache-control"), "no-store");
    }
    assert_eq!(app.count("SELECT count(*) FROM logins").await, 0);
    assert_eq!(app.row_counts().await["tower_sessions"], 0, "a probe wrote a session");

    let without_logi = spawn_app_with(&[("ONE_PASS_URL", "")]).await;
    let ready = without_logi.browser().get("/readyz").await;
    assert_eq!((ready.status, ready.json()), (StatusCode::OK, json!({ "status": "ready", "checks": { "database": "ok" } })));
}

#[tokio::test]
async fn readyz_names_what_is_not_ready() {
    // logi is every replica's: a balancer must keep serving signed-in users without it.
    let unreachable_logi = spawn_app_with(&[("ONE_PASS_URL", "http://127.0.0.1:9")]).await;
    let ready = unreachable_logi.browser().get("/readyz").await;
    assert_eq!((ready.status, ready.json()), (StatusCode::OK, json!({ "status": "degraded", "checks": { "database": "ok", "logi": "failing" } })));

    let app = spawn_app().await;
    match &app.state.db {
        Db::Sqlite(pool) => pool.close().await,
        Db::Postgres(pool) => pool.close().await,
    }
    let ready = app.browser().get("/readyz").await;
    assert_eq!(
        (ready.status, ready.json()),
        (StatusCode::SERVICE_UNAVAILABLE, json!({ "status": "not_ready", "checks": { "database": "failing", "logi": "ok" } }))
    );
    // Liveness does no I/O: the process still serves.
    assert_eq!(app.browser().get("/healthz").await.status, StatusCode::OK);
}

/// One (invalid) exchange, which counts against the per-address limit of 2 a minute.
async fn exchange_from(app: &TestApp, forwarded_for: Option<&str>) -> StatusCode {
    let headers: Vec<(&str, &str)> = forwarded_for.map(|value| ("x-forwarded-for", value)).into_iter().collect();
    app.browser().send(Method::POST, "/api/auth/logi/exchange", &headers, Some(("application/json", b"{}".to_vec()))).await.status
}

#[tokio::test]
async fn without_trusted_proxies_a_forwarded_for_header_gains_nothing() {
    let app = spawn_app_with(&[("NATIVE_EXCHANGE_PER_MINUTE", "2")]).await;
    assert_eq!(exchange_from(&app, Some("198.51.100.1")).await, StatusCode::BAD_REQUEST);
    assert_eq!(exchange_from(&app, Some("198.51.100.2")).await, StatusCode::BAD_REQUEST);
    assert_eq!(exchange_from(&app, Some("198.51.100.3")).await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(exchange_from(&app, None).await, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_limited_and_cannot_spoof() {
    let app = spawn_app_with(&[("NATIVE_EXCHANGE_PER_MINUTE", "2"), ("TRUSTED_PROXIES", "127.0.0.0/8")]).await;
    assert_eq!(exchange_from(&app, Some("198.51.100.1")).await, StatusCode::BAD_REQUEST);
    assert_eq!(exchange_from(&app, Some("198.51.100.1")).await, StatusCode::BAD_REQUEST);
    assert_eq!(exchange_from(&app, Some("198.51.100.1")).await, StatusCode::TOO_MANY_REQUESTS);
    // Another client behind the same proxy has a limit of its own.
    assert_eq!(exchange_from(&app, Some("198.51.100.2")).await, StatusCode::BAD_REQUEST);
    // The limited client writes its own entry first; the proxy appends the real address.
    assert_eq!(exchange_from(&app, Some("203.0.113.50, 198.51.100.1")).await, StatusCode::TOO_MANY_REQUESTS);
    // An entry that is no address stops at the proxy (the loopback peer), whose own
    // budget is then spent like any client's.
    assert_eq!(exchange_from(&app, Some("garbage")).await, StatusCode::BAD_REQUEST);
}

/// The nonce of a page's CSP header, checked against every inline script of the page.
fn page_nonce(answer: &crate::support::Answer) -> String {
    let policy = answer.header("content-security-policy");
    let nonce = policy.split("'nonce-").nth(1).and_then(|rest| rest.split('\'').next()).unwrap_or_else(|| panic!("no nonce in {policy:?}")).to_owned();
    let script_tags: Vec<&str> = answer.body.split("<script").skip(1).map(|rest| rest.split('>').next().unwrap_or_default()).collect();
    assert!(!script_tags.is_empty());
    for tag in script_tags {
        assert!(tag.contains(&format!("nonce=\"{nonce}\"")), "a script without this response's nonce: <script{tag}>");
    }
    nonce
}

#[tokio::test]
async fn pages_carry_a_fresh_nonce_policy_and_https_adds_hsts() {
    let app = spawn_app().await;
    let browser = app.browser();
    let first = browser.get("/").await;
    let policy = first.header("content-security-policy").to_owned();
    assert!(policy.contains("'wasm-unsafe-eval'") && policy.contains("object-src 'none'") && policy.contains("frame-ancestors 'none'"), "{policy}");
    assert!(policy.ends_with(&format!("form-action 'self' {}", app.double.issuer)), "{policy}");
    let nonces = [page_nonce(&first), page_nonce(&browser.get("/signin").await), page_nonce(&browser.get("/no-such-page").await)];
    assert!(nonces[0] != nonces[1] && nonces[1] != nonces[2] && nonces[0] != nonces[2], "{nonces:?}");
    assert_eq!(first.header("strict-transport-security"), "", "HSTS on a plain-http origin");

    let https = spawn_app_with(&[("APP_URL", "https://localhost:8443")]).await;
    for path in ["/", "/api/auth/me", "/healthz"] {
        assert_eq!(https.browser().get(path).await.header("strict-transport-security"), "max-age=31536000", "{path}");
    }
}

#[tokio::test]
async fn every_response_has_a_request_id_and_only_a_trusted_proxy_may_set_it() {
    let app = spawn_app().await;
    let browser = app.browser();
    let (first, second) = (browser.get("/healthz").await, browser.get("/api/auth/me").await);
    let (a, b) = (first.header("x-request-id"), second.header("x-request-id"));
    assert!(a.len() == 32 && a.chars().all(|c| c.is_ascii_hexdigit()) && a != b, "{a} {b}");
    let chosen = browser.send(Method::GET, "/healthz", &[("x-request-id", "client-chosen-id")], None).await;
    assert_ne!(chosen.header("x-request-id"), "client-chosen-id", "an untrusted client set its request id");

    let behind_proxy = spawn_app_with(&[("TRUSTED_PROXIES", "127.0.0.1")]).await;
    let proxied = behind_proxy.browser().send(Method::GET, "/healthz", &[("x-request-id", "lb-1234")], None).await;
    assert_eq!(proxied.header("x-request-id"), "lb-1234");
    let forged = behind_proxy.browser().send(Method::GET, "/healthz", &[("x-request-id", "a b\"c")], None).await;
    assert_eq!(forged.header("x-request-id").len(), 32, "an id that is no plain token was kept");
}

/// The value of one series in a Prometheus text page (0 when absent).
pub(crate) fn series(page: &str, name_and_labels: &[&str]) -> f64 {
    page.lines()
        .filter(|line| !line.starts_with('#'))
        .find(|line| name_and_labels.iter().all(|part| line.contains(part)))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Anyone can send a browser to the callback with any `error`: the metric's labels must
/// not grow with what they choose.
#[tokio::test]
async fn a_thousand_forged_provider_errors_add_no_series_of_their_own() {
    let app = spawn_app_with(&[("METRICS_ADDR", "127.0.0.1:0")]).await;
    let metrics_url = app.metrics_url.clone().expect("a metrics listener");
    let scrape = || async { reqwest::get(&metrics_url).await.unwrap().text().await.unwrap() };
    let other = ["logi_bff_auth_errors_total{", "code=\"provider_other\""];
    let before = series(&scrape().await, &other);
    let browser = app.browser();
    for n in 0..1000u32 {
        let to_logi = browser.get("/api/auth/login").await;
        let state = url::Url::parse(to_logi.location()).unwrap().query_pairs().find(|(key, _)| key == "state").unwrap().1.into_owned();
        // Letters only, so each passes the code sanitiser as a distinct code.
        let forged: String = format!("forged_{}", n.to_string().bytes().map(|digit| char::from(b'a' + digit - b'0')).collect::<String>());
        let answer = browser.get(&format!("/api/auth/callback?state={state}&error={forged}")).await;
        assert!(answer.location().ends_with(&format!("auth_error={forged}")), "{}", answer.location());
    }
    let after = scrape().await;
    assert!(!after.contains("forged_"), "a forged code became a label");
    assert!(series(&after, &other) >= before + 1000.0, "{after}");
}

#[tokio::test]
async fn metrics_are_served_on_their_own_listener_only() {
    let app = spawn_app_with(&[("METRICS_ADDR", "127.0.0.1:0")]).await;
    let metrics_url = app.metrics_url.clone().expect("a metrics listener");
    let scrape = || async { reqwest::get(&metrics_url).await.unwrap().text().await.unwrap() };
    let before = scrape().await;
    let browser = app.browser();
    browser.sign_in("alice").await;
    assert_eq!(browser.send(Method::GET, "/api/proxy/hello", &[("x-csrf", "1")], None).await.status, StatusCode::OK);
    let after = scrape().await;
    let grew = |parts: &[&str]| series(&after, parts) > series(&before, parts);
    assert!(grew(&["http_requests_total{", "route=\"/api/{*path}\"", "method=\"GET\"", "status=\"200\""]), "{after}");
    assert!(grew(&["logi_bff_sign_ins_total{", "method=\"logi\"", "outcome=\"success\""]), "{after}");
    assert!(grew(&["logi_bff_logi_requests_total{", "endpoint=\"token\"", "outcome=\"ok\""]), "{after}");
    assert!(grew(&["logi_bff_logi_requests_total{", "endpoint=\"userinfo\"", "outcome=\"ok\""]), "{after}");
    assert!(grew(&["logi_bff_upstream_responses_total{", "api=\"default\"", "status=\"2xx\""]), "{after}");
    assert!(after.contains("http_request_duration_seconds_bucket{"), "no latency histogram");
    assert!(series(&after, &["logi_bff_active_logins{", "client=\"browser\""]) >= 1.0, "{after}");
    // Never on the public port.
    assert_eq!(browser.get("/metrics").await.status, StatusCode::NOT_FOUND);
}
