//! Unauthenticated requests create no server state: no row in any table, no entry in
//! any in-process cache (the login-start flood of issue 14).

use crate::support::{spawn_app, Browser};
use futures_util::future::join_all;
use reqwest::Method;

#[tokio::test]
async fn a_thousand_login_starts_and_garbage_callbacks_write_nothing() {
    let app = spawn_app().await;
    // Warm discovery so the flood measures steady state.
    app.browser().get("/api/auth/login").await;
    let rows_before = app.row_counts().await;
    let cached_before = app.state.logins.cached_entries();

    let mut requests: Vec<_> = (0..1000)
        .map(|n| {
            let origin = app.url.clone();
            async move {
                let client = Browser::new(&origin);
                let login = client.get("/api/auth/login?login_hint=flood").await;
                assert!(login.status.is_redirection() && !login.set_cookies().is_empty());
                let garbage = client_without_cookies(&origin).get(&format!("/api/auth/callback?code=c{n}&state=s{n}&state=x&code=y")).await;
                assert_eq!(garbage.location(), "/?auth_error=session_expired");
            }
        })
        .map(Box::pin)
        .collect();
    while !requests.is_empty() {
        let batch: Vec<_> = requests.drain(..50.min(requests.len())).collect();
        join_all(batch).await;
    }

    assert_eq!(app.row_counts().await, rows_before, "anonymous requests wrote rows");
    assert_eq!(app.state.logins.cached_entries(), cached_before, "anonymous requests grew a cache");
    let rows: i64 = rows_before.iter().filter(|(table, _)| *table != "signing_keys").map(|(_, rows)| rows).sum();
    assert_eq!(rows, 0, "rows before any request, besides the signing key made at startup");
}

fn client_without_cookies(origin: &str) -> Browser {
    Browser::new(origin)
}

#[tokio::test]
async fn pages_me_server_functions_and_the_proxy_write_nothing_for_anonymous_clients() {
    let app = spawn_app().await;
    let browser = app.browser();
    let rows_before = app.row_counts().await;
    for _ in 0..20 {
        for path in ["/", "/account", "/signin", "/api-demo", "/nowhere", "/api/auth/me"] {
            browser.get(path).await;
        }
        browser.send(Method::POST, "/api/auth_state", &[("origin", &app.url)], Some(("application/x-www-form-urlencoded", Vec::new()))).await;
        browser.send(Method::POST, "/api/account", &[("origin", &app.url)], Some(("application/x-www-form-urlencoded", Vec::new()))).await;
        browser.send(Method::GET, "/api/proxy/hello", &[("x-csrf", "1")], None).await;
        browser.set_cookie("logi_bff_session", "forged-session-id");
        browser.get("/api/auth/me").await;
    }
    assert_eq!(app.row_counts().await, rows_before);
    assert_eq!(app.state.logins.cached_entries(), 0);
    assert!(browser.cookie("logi_bff_session").is_some_and(|v| v == "forged-session-id"), "a session was created");
}
