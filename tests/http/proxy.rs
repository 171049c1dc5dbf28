//! `/api/proxy/*`: CSRF header, path escapes, header filtering, body limit, upstream
//! failures and single-flight refresh, against the provider double's upstream API.

use crate::support::{spawn_app, spawn_app_against, Answer, Browser, TestApp};
use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use std::sync::atomic::Ordering;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CSRF: (&str, &str) = ("x-csrf", "1");

async fn signed_in(app: &TestApp, hint: &str) -> Browser {
    let browser = app.browser();
    browser.sign_in(hint).await;
    browser
}

fn error(answer: &Answer) -> (StatusCode, String) {
    (answer.status, answer.json()["error"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn every_proxied_request_needs_x_csrf_and_a_logi_session() {
    let app = spawn_app().await;
    let anonymous = app.browser();
    assert_eq!(error(&anonymous.send(Method::GET, "/api/proxy/hello", &[CSRF], None).await), (StatusCode::UNAUTHORIZED, "not_signed_in".into()));
    let browser = signed_in(&app, "alice").await;
    app.double.reset_hits();
    assert_eq!(error(&browser.get("/api/proxy/hello").await), (StatusCode::FORBIDDEN, "missing_csrf_header".into()));
    assert_eq!(error(&browser.send(Method::GET, "/api/proxy/hello", &[("x-csrf", "yes")], None).await), (StatusCode::FORBIDDEN, "missing_csrf_header".into()));
    let cross_site =
        browser.send(Method::POST, "/api/proxy/echo", &[CSRF, ("origin", "https://evil.example")], Some(("application/json", b"{}".to_vec()))).await;
    assert_eq!(error(&cross_site), (StatusCode::FORBIDDEN, "cross_site_request".into()));
    assert_eq!(app.double.hits("upstream"), 0);

    let ok = browser.send(Method::POST, "/api/proxy/echo?x=1", &[CSRF, ("origin", &app.url)], Some(("application/json", br#"{"a":1}"#.to_vec()))).await;
    assert_eq!(ok.status, StatusCode::OK);
    let echoed = ok.json();
    assert_eq!(
        (echoed["sub"].as_str(), echoed["method"].as_str(), echoed["path"].as_str(), echoed["query"].as_str(), echoed["body_bytes"].as_u64()),
        (Some("logi-user-alice"), Some("POST"), Some("/echo"), Some("x=1"), Some(7))
    );
}

/// A GET with the path sent byte for byte (an HTTP client would normalise `%2e%2e`).
async fn raw_get(app: &TestApp, path: &str, cookie: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(app.url.trim_start_matches("http://")).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nCookie: {cookie}\r\nX-CSRF: 1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    (status, response.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned())
}

#[tokio::test]
async fn path_escapes_are_refused_before_any_upstream_call() {
    let app = spawn_app().await;
    let browser = signed_in(&app, "alice").await;
    app.double.reset_hits();
    for path in ["..", "%2e%2e/x", ".%2E/x", "a/../../x", "a%2fb", "a%5cb", "a\\b", "a//b", "a/%2e%2e/%2e%2e/x", "x%00", "a%0d%0aHost:%20evil", "%zz"] {
        let (status, body) = raw_get(&app, &format!("/api/proxy/{path}"), &browser.cookie_header()).await;
        assert_eq!((path, status, body.as_str()), (path, 400, r#"{"error":"invalid_proxy_path"}"#));
    }
    assert_eq!(app.double.hits("upstream"), 0);
}

#[tokio::test]
async fn the_upstream_gets_only_our_bearer_token_and_safe_headers() {
    let app = spawn_app().await;
    let browser = signed_in(&app, "alice").await;
    // (A cookie with a bearer is refused outright: tests/http/native.rs.)
    let headers = [CSRF, ("authorization", "Basic smuggled"), ("x-forwarded-for", "6.6.6.6"), ("x-api-key", "k"), ("accept", "application/json")];
    let answer = browser.send(Method::GET, "/api/proxy/echo", &headers, None).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.set_cookies().is_empty(), "the upstream's cookie came back");
    let echoed = answer.json();
    let mut names: Vec<&str> = echoed["headers"].as_object().unwrap().keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(names, ["accept", "authorization", "host", "user-agent", "x-request-id"]);
    assert_eq!(echoed["headers"]["authorization"].as_str(), Some("Bearer (a live access token)"));
    // The request id travels on (ours: the client is not a trusted proxy).
    assert_eq!(echoed["headers"]["x-request-id"].as_str(), Some(answer.header("x-request-id")));
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused() {
    let app = spawn_app().await;
    let browser = signed_in(&app, "alice").await;
    let big = vec![b'x'; 1024 * 1024 + 1];
    let answer = browser.send(Method::POST, "/api/proxy/echo", &[CSRF, ("origin", &app.url)], Some(("application/octet-stream", big))).await;
    assert_eq!(error(&answer), (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large".into()));
}

#[tokio::test]
async fn a_slow_upstream_is_cut_off_with_504_and_a_down_one_answers_502() {
    let app = spawn_app().await;
    let browser = signed_in(&app, "alice").await;
    let started = std::time::Instant::now();
    assert_eq!(error(&browser.send(Method::GET, "/api/proxy/slow?ms=8000", &[CSRF], None).await), (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout".into()));
    assert!(started.elapsed().as_secs() < 6);

    let down = spawn_app_against(app.double.clone(), "http://127.0.0.1:9", &[]).await;
    let browser = signed_in(&down, "alice").await;
    assert_eq!(error(&browser.send(Method::GET, "/api/proxy/hello", &[CSRF], None).await), (StatusCode::BAD_GATEWAY, "upstream_unreachable".into()));
}

#[tokio::test]
async fn twenty_concurrent_calls_after_expiry_share_one_refresh_grant() {
    let app = spawn_app().await;
    app.double.access_token_ttl.store(1, Ordering::SeqCst);
    let browser = signed_in(&app, "alice").await;
    assert_eq!(browser.send(Method::GET, "/api/proxy/hello", &[CSRF], None).await.status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // The refreshed token must outlive the 20 calls, however slow the machine.
    app.double.access_token_ttl.store(300, Ordering::SeqCst);
    app.double.reset_hits();
    let calls = (0..20).map(|_| browser.send(Method::GET, "/api/proxy/hello", &[CSRF], None));
    let statuses: Vec<StatusCode> = join_all(calls).await.into_iter().map(|a| a.status).collect();
    assert_eq!(statuses, vec![StatusCode::OK; 20]);
    assert_eq!(app.double.hits("token"), 1);
}

#[tokio::test]
async fn a_revoked_refresh_family_ends_the_session_cleanly() {
    let app = spawn_app().await;
    app.double.access_token_ttl.store(1, Ordering::SeqCst);
    let browser = signed_in(&app, "alice").await;
    let first = app.double.issued.lock().unwrap().iter().find(|t| t.starts_with("refresh-")).cloned().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(browser.send(Method::GET, "/api/proxy/hello", &[CSRF], None).await.status, StatusCode::OK);
    // Someone replays the old refresh token: the double, like logi, revokes the family.
    assert!(!app.double.replay_refresh_token(&first));
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(error(&browser.send(Method::GET, "/api/proxy/hello", &[CSRF], None).await), (StatusCode::UNAUTHORIZED, "session_expired".into()));
    assert_eq!(browser.me().await, serde_json::Value::Null);
}

#[tokio::test]
async fn a_password_sign_in_has_no_logi_token_to_call_the_api_with() {
    let app = spawn_app().await;
    let browser = app.browser();
    let form = b"email=pw%40example.com&name=&password=a-long-enough-passphrase&return_to=%2F".to_vec();
    let signed_up = browser.send(Method::POST, "/api/sign_up", &[("origin", &app.url)], Some(("application/x-www-form-urlencoded", form))).await;
    assert!(signed_up.status.is_success(), "{} {}", signed_up.status, signed_up.body);
    assert_eq!(error(&browser.send(Method::GET, "/api/proxy/hello", &[CSRF], None).await), (StatusCode::FORBIDDEN, "logi_sign_in_required".into()));
}
