//! logi slow, down, failing or talking nonsense: every request gets its documented code
//! within `ONE_PASS_TIMEOUT_SECS`, nothing is half written, signed-in users keep working
//! until a refresh is due, and everything recovers by itself when logi does.

use crate::provider::{jwk, rsa_key, Fault};
use crate::support::{eventually, spawn_app_with, Browser, TestApp};
use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const TIMEOUT_SECS: u64 = 1;
/// What a request may take beyond the timeout on a loaded machine.
const SLACK: Duration = Duration::from_millis(1500);
const SLOWER_THAN_THE_TIMEOUT: Fault = Fault::Slow(Duration::from_secs(3));
const DISCOVERY: &str = "/.well-known/openid-configuration";
const CSRF: (&str, &str) = ("x-csrf", "1");

async fn app() -> TestApp {
    spawn_app_with(&[("ONE_PASS_TIMEOUT_SECS", &TIMEOUT_SECS.to_string())]).await
}

fn in_time(started: Instant) -> bool {
    started.elapsed() < Duration::from_secs(TIMEOUT_SECS) + SLACK
}

/// A browser sign-in as `hint`: the `auth_error` it ended with (`None` when signed in)
/// and whether it was answered within the bound.
async fn sign_in(browser: &Browser, hint: &str) -> (Option<String>, bool) {
    let started = Instant::now();
    let landed = browser.sign_in(hint).await;
    let error = url::Url::parse("http://x").unwrap().join(&landed).unwrap().query_pairs().find(|(k, _)| k == "auth_error").map(|(_, v)| v.into_owned());
    (error, in_time(started))
}

/// What logi does wrong, and the code the sign-in must end with.
enum Trouble {
    Down,
    At(&'static str, Fault),
    IssuerChanged,
    EmptyJwks,
}

impl Trouble {
    async fn start(&self, app: &TestApp) {
        match self {
            Self::Down => app.double.go_down().await,
            Self::At(path, fault) => app.double.set_fault(path, Some(*fault)),
            Self::IssuerChanged => *app.double.discovery_issuer.lock().unwrap() = Some("https://impostor.example".into()),
            Self::EmptyJwks => app.double.set_jwks(json!({ "keys": [] })),
        }
    }

    async fn end(&self, app: &TestApp) {
        match self {
            Self::Down => app.double.come_back().await,
            Self::At(path, _) => app.double.set_fault(path, None),
            Self::IssuerChanged => *app.double.discovery_issuer.lock().unwrap() = None,
            Self::EmptyJwks => app.double.set_jwks(json!({ "keys": [jwk(rsa_key(0), "k1")] })),
        }
    }
}

/// One fresh app per case (discovery is cached once it succeeds), all cases at once.
#[tokio::test]
async fn a_broken_logi_during_sign_in_gets_its_code_in_time_writes_nothing_and_recovery_needs_no_restart() {
    // The last column: logi's tokens reached the app before the failure.
    let cases = [
        (Trouble::Down, "provider_unreachable", false),
        (Trouble::At(DISCOVERY, SLOWER_THAN_THE_TIMEOUT), "provider_unreachable", false),
        (Trouble::At(DISCOVERY, Fault::Unavailable), "provider_unreachable", false),
        (Trouble::At(DISCOVERY, Fault::Garbage), "provider_unreachable", false),
        (Trouble::IssuerChanged, "provider_unreachable", false),
        (Trouble::At("/jwks", Fault::Garbage), "provider_unreachable", false),
        (Trouble::At("/jwks", Fault::Unavailable), "provider_unreachable", false),
        (Trouble::EmptyJwks, "id_token_invalid", true),
        (Trouble::At("/token", SLOWER_THAN_THE_TIMEOUT), "provider_unreachable", false),
        (Trouble::At("/token", Fault::Unavailable), "token_exchange_503", false),
        (Trouble::At("/token", Fault::Garbage), "token_exchange_200", false),
        (Trouble::At("/userinfo", SLOWER_THAN_THE_TIMEOUT), "provider_unreachable", true),
        (Trouble::At("/userinfo", Fault::Unavailable), "userinfo_failed", true),
        (Trouble::At("/userinfo", Fault::Garbage), "userinfo_failed", true),
    ];
    let outcomes = join_all(cases.iter().map(|(trouble, code, got_tokens)| async move {
        let app = app().await;
        let rows = app.row_counts().await;
        trouble.start(&app).await;
        let browser = app.browser();
        let (error, answered_in_time) = sign_in(&browser, "alice").await;
        let written = without_markers(app.row_counts().await) != without_markers(rows) || browser.cookie("logi_bff_session").is_some();
        // A sign-in that failed after logi issued tokens leaves no live refresh token there.
        let live_grant = || app.double.issued.lock().unwrap().iter().any(|t| t.starts_with("refresh-") && app.double.is_live_refresh_token(t));
        assert!(!*got_tokens || eventually(|| !live_grant()).await, "{code}: the failed sign-in's refresh token is live at logi");
        trouble.end(&app).await;
        // A failed discovery is not retried for 2 s; an empty JWKS is refetched once a minute,
        // so that case recovers on the next discovery (a fresh app stands in for it here).
        if matches!(trouble, Trouble::EmptyJwks) {
            return (error, *code, answered_in_time, written, true);
        }
        let recovered = eventually_signed_in(&app, &browser).await;
        (error, *code, answered_in_time, written, recovered)
    }))
    .await;
    for (error, code, answered_in_time, written, recovered) in outcomes {
        assert_eq!(error.as_deref(), Some(code));
        assert!(answered_in_time, "{code}: not answered within the timeout");
        assert!(!written, "{code}: a failed sign-in wrote rows or a session");
        assert!(recovered, "{code}: sign-in did not recover by itself");
    }
}

/// The single-use marker of an answered authorization response is kept on purpose (a
/// replay of that response must fail), whatever happened next.
fn without_markers(mut rows: std::collections::BTreeMap<String, i64>) -> std::collections::BTreeMap<String, i64> {
    rows.remove("used_logins");
    rows
}

/// Signs in within a few seconds of logi behaving again.
async fn eventually_signed_in(app: &TestApp, browser: &Browser) -> bool {
    let deadline = Instant::now() + Duration::from_secs(6);
    while Instant::now() < deadline {
        if sign_in(browser, "alice").await.0.is_none() {
            return browser.me().await["sub"] == "logi-user-alice" && app.count("SELECT count(*) FROM logins").await == 1;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

/// Before discovery had a bound per attempt, each waiting request fetched it again in turn.
#[tokio::test]
async fn twenty_sign_ins_while_discovery_hangs_are_all_answered_within_one_timeout() {
    let app = app().await;
    app.double.set_fault(DISCOVERY, Some(Fault::Slow(Duration::from_secs(30))));
    let started = Instant::now();
    let outcomes = join_all((0..20).map(|_| async { app.browser().get("/api/auth/login").await })).await;
    for answer in &outcomes {
        assert_eq!((answer.status, answer.location()), (StatusCode::SEE_OTHER, "/?auth_error=provider_unreachable"));
    }
    assert!(in_time(started), "20 sign-ins took {:?}", started.elapsed());
}

#[tokio::test]
async fn signed_in_users_keep_working_while_logi_is_down_then_a_due_refresh_is_502_and_the_login_is_kept() {
    let app = app().await;
    app.double.access_token_ttl.store(2, Ordering::SeqCst);
    let browser = app.browser();
    assert_eq!(sign_in(&browser, "alice").await.0, None);
    app.double.access_token_ttl.store(300, Ordering::SeqCst);
    let proxied = || browser.send(Method::GET, "/api/proxy/hello", &[CSRF], None);

    for trouble in
        [Trouble::Down, Trouble::At("/token", SLOWER_THAN_THE_TIMEOUT), Trouble::At("/token", Fault::Unavailable), Trouble::At("/token", Fault::Garbage)]
    {
        trouble.start(&app).await;
        assert_eq!(browser.me().await["sub"], "logi-user-alice", "/me needs no logi");
        // Wait until the access token is due for a refresh.
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let started = Instant::now();
        let answer = proxied().await;
        assert_eq!((answer.status, answer.json()["error"].clone()), (StatusCode::BAD_GATEWAY, json!("token_refresh_failed")));
        assert!(in_time(started), "the refresh was not cut off in time");
        assert_eq!(browser.me().await["sub"], "logi-user-alice", "a refresh logi could not answer ended the login");
        trouble.end(&app).await;
        app.double.access_token_ttl.store(2, Ordering::SeqCst);
        assert_eq!(proxied().await.status, StatusCode::OK, "the proxy did not recover when logi did");
        app.double.access_token_ttl.store(300, Ordering::SeqCst);
    }
    assert_eq!(app.count("SELECT count(*) FROM logins").await, 1);
}

#[tokio::test]
async fn signing_out_never_waits_for_logi_and_the_revocation_is_retried_when_logi_is_back() {
    let app = app().await;
    let browser = app.browser();
    assert_eq!(sign_in(&browser, "alice").await.0, None);
    let refresh_token = app.double.issued.lock().unwrap().iter().find(|t| t.starts_with("refresh-")).cloned().unwrap();
    app.double.set_fault("/revoke", Some(Fault::Slow(Duration::from_secs(30))));
    let started = Instant::now();
    let logout = browser.send(Method::POST, "/api/auth/logout", &[("origin", &app.url)], None).await;
    assert_eq!(logout.status, StatusCode::OK);
    assert!(started.elapsed() < Duration::from_millis(500), "sign-out waited for logi: {:?}", started.elapsed());
    assert_eq!(browser.me().await, serde_json::Value::Null);
    // The first attempt times out after 1 s; the retry 2 s later finds logi answering.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    app.double.set_fault("/revoke", None);
    assert!(eventually(|| app.double.revoked.lock().unwrap().contains(&refresh_token)).await, "the revocation was not retried");
}

#[tokio::test]
async fn a_back_channel_logout_while_logi_is_down_checks_with_the_keys_it_has_or_asks_logi_to_retry() {
    use crate::backchannel::{claims, log_out, logout_header};
    use crate::provider::sign;
    let app = app().await;
    let browser = app.browser();
    assert_eq!(sign_in(&browser, "alice").await.0, None);
    app.double.go_down().await;
    let started = Instant::now();
    let answer = log_out(&app, &sign(&logout_header(), &claims(&app, Some("logi-user-alice"), None), rsa_key(0))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(in_time(started));
    assert_eq!(browser.me().await, serde_json::Value::Null);

    // A replica that never reached logi has no keys to check a token with: logi should retry.
    let cold = crate::support::spawn_app_against(app.double.clone(), "http://127.0.0.1:9", &[("ONE_PASS_TIMEOUT_SECS", "1")]).await;
    let started = Instant::now();
    let answer = log_out(&cold, &sign(&logout_header(), &claims(&cold, Some("logi-user-alice"), None), rsa_key(0))).await;
    assert_eq!((answer.status, answer.json()["error"].clone()), (StatusCode::SERVICE_UNAVAILABLE, json!("provider_unreachable")));
    assert!(in_time(started));
    app.double.come_back().await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let answer = log_out(&cold, &sign(&logout_header(), &claims(&cold, Some("logi-user-alice"), None), rsa_key(0))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
}
