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
    let unreachable_logi = spawn_app_with(&[("ONE_PASS_URL", "http://127.0.0.1:9")]).await;
    let ready = unreachable_logi.browser().get("/readyz").await;
    assert_eq!(
        (ready.status, ready.json()),
        (StatusCode::SERVICE_UNAVAILABLE, json!({ "status": "not_ready", "checks": { "database": "ok", "logi": "failing" } }))
    );

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
