//! The browser sign-in contract: `/api/auth/login`, the callback and its error codes,
//! `/api/auth/me`, logout and the session cookie.

use crate::support::{eventually, spawn_app, spawn_app_with, Browser, TestApp, SESSION_SECRET};
use reqwest::{Method, StatusCode};
use std::collections::HashMap;
use url::Url;

fn query(url: &str) -> HashMap<String, String> {
    Url::parse(url).unwrap().query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

#[tokio::test]
async fn the_login_redirect_asks_logi_for_a_code_with_pkce_state_and_nonce() {
    let app = spawn_app().await;
    let answer = app.browser().get("/api/auth/login?login_hint=alice&prompt=login").await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(answer.header("cache-control"), "no-store");
    let location = answer.location();
    assert!(location.starts_with(&format!("{}/auth?", app.double.issuer)), "{location}");
    let q = query(location);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], "logi-bff-test");
    assert_eq!(q["redirect_uri"], format!("{}/api/auth/callback", app.url));
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!((q["login_hint"].as_str(), q["prompt"].as_str()), ("alice", "login"));
    assert!(q["scope"].split(' ').any(|s| s == "openid"));
    for random in ["state", "nonce", "code_challenge"] {
        assert!(q[random].len() >= 22, "{random} is too short: {}", q[random]);
    }
    let again = query(app.browser().get("/api/auth/login").await.location());
    assert_ne!((&again["state"], &again["nonce"]), (&q["state"], &q["nonce"]));
}

#[tokio::test]
async fn a_malformed_login_request_is_refused_with_a_code() {
    let app = spawn_app().await;
    for bad in ["prompt=everything", "login_hint=%00x", &format!("login_hint={}", "a".repeat(257))] {
        let answer = app.browser().get(&format!("/api/auth/login?{bad}")).await;
        assert_eq!((answer.status, answer.location()), (StatusCode::SEE_OTHER, "/?auth_error=invalid_request"), "{bad}");
        assert!(answer.set_cookies().is_empty(), "{bad}");
    }
    // Repeated keys cannot fail the decoder; the first value wins.
    let answer = app.browser().get("/api/auth/login?prompt=login&prompt=everything&x=1&x=2").await;
    assert_eq!(query(answer.location())["prompt"], "login");
}

#[tokio::test]
async fn a_sign_in_lands_on_return_to_with_an_http_only_lax_session_and_no_pending_cookie() {
    let app = spawn_app().await;
    let browser = app.browser();
    let landed = browser.sign_in("alice&return_to=%2Faccount%3Ftab%3D1").await;
    assert_eq!(landed, "/account?tab=1");
    assert_eq!(browser.me().await, serde_json::json!({ "sub": "logi-user-alice", "anonymous": false, "email": "alice@example.com", "name": "alice" }));
    let cookies: Vec<String> = browser.cookies.lock().unwrap().keys().cloned().collect();
    assert_eq!(cookies, ["logi_bff_session"], "the pending-login cookie outlived its callback");

    let (_, hops) = browser.navigate("/api/auth/login?login_hint=alice&return_to=%2F%2Fevil.example%2F").await;
    assert_eq!(hops.last().unwrap(), "/");
}

#[tokio::test]
async fn the_session_cookie_is_http_only_lax_host_wide_and_renewed_at_sign_in() {
    let app = spawn_app().await;
    let browser = app.browser();
    browser.sign_in("alice").await;
    let first = browser.cookie("logi_bff_session").unwrap();
    let pending = browser.get("/api/auth/login").await;
    let pending_cookie = pending.set_cookies().join(" | ");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/api/auth", "Max-Age=600"] {
        assert!(pending_cookie.contains(attribute), "{attribute}: {pending_cookie}");
    }
    let location = pending.location().to_owned();
    browser.navigate(&location).await;
    let second = browser.cookie("logi_bff_session").unwrap();
    assert_ne!(first, second, "sign-in kept the session id");
    let stale = Browser::new(&app.url);
    stale.set_cookie("logi_bff_session", &first);
    assert_eq!(stale.me().await, serde_json::Value::Null, "the pre-login id survived sign-in");
    assert_eq!(app.count("SELECT count(*) FROM logins").await, 1, "the replaced login was kept");
}

#[tokio::test]
async fn an_https_origin_gets_secure_prefixed_cookies() {
    let app = spawn_app_with(&[("APP_URL", "https://app.example.com")]).await;
    let answer = app.browser().get("/api/auth/login").await;
    let cookie = answer.set_cookies().join(" | ");
    assert!(cookie.starts_with("__Secure-logi_bff_login=") && cookie.contains("Secure") && cookie.contains("HttpOnly"), "{cookie}");
}

/// A new browser that started a login, and the callback URL logi sends it back to.
async fn at_callback(app: &TestApp) -> (Browser, String) {
    let browser = app.browser();
    let url = callback_url(&browser, "alice").await;
    (browser, url)
}

/// Starts a login and returns the callback URL the provider would send the browser to.
async fn callback_url(browser: &Browser, hint: &str) -> String {
    let to_logi = browser.get(&format!("/api/auth/login?login_hint={hint}")).await;
    browser.get(to_logi.location()).await.location().to_owned()
}

fn with_param(url: &str, key: &str, value: &str) -> String {
    let mut url = Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = url.query_pairs().filter(|(k, _)| k != key).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    url.query_pairs_mut().clear().extend_pairs(pairs).append_pair(key, value);
    url.to_string()
}

async fn callback_error(browser: &Browser, url: &str) -> String {
    let answer = browser.get(url).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(answer.header("cache-control"), "no-store");
    answer.location().to_owned()
}

#[tokio::test]
async fn callback_errors_have_codes_and_leave_no_session() {
    let app = spawn_app().await;

    let browser = app.browser();
    let tampered = with_param(&callback_url(&browser, "alice").await, "state", "tampered");
    assert_eq!(callback_error(&browser, &tampered).await, "/?auth_error=state_mismatch");

    let (browser, url) = at_callback(&app).await;
    assert_eq!(callback_error(&browser, &with_param(&url, "code", "")).await, "/?auth_error=missing_code");

    let (browser, url) = at_callback(&app).await;
    let denied = with_param(&with_param(&url, "error", "access_denied"), "code", "");
    assert_eq!(callback_error(&browser, &denied).await, "/?auth_error=access_denied");
    let (browser, url) = at_callback(&app).await;
    assert_eq!(callback_error(&browser, &with_param(&url, "error", "<script>")).await, "/?auth_error=provider_error");

    let (browser, url) = at_callback(&app).await;
    assert_eq!(callback_error(&browser, &with_param(&url, "code", "forged")).await, "/?auth_error=token_exchange_400");

    let (browser, url) = at_callback(&app).await;
    *app.double.token_failure.lock().unwrap() = Some((401, "invalid_client"));
    assert_eq!(callback_error(&browser, &url).await, "/?auth_error=invalid_client");
    *app.double.token_failure.lock().unwrap() = None;

    let (browser, url) = at_callback(&app).await;
    app.double.set_userinfo(serde_json::json!({ "sub": "someone-else" }));
    assert_eq!(callback_error(&browser, &url).await, "/?auth_error=userinfo_sub_mismatch");

    assert_eq!(callback_error(&app.browser(), &format!("{}/api/auth/callback?code=x&state=y", app.url)).await, "/?auth_error=session_expired");
    assert_eq!(app.row_counts().await["tower_sessions"], 0);
    assert_eq!(app.count("SELECT count(*) FROM logins").await, 0);
}

#[tokio::test]
async fn a_callback_is_single_use_even_with_a_copied_cookie() {
    let app = spawn_app().await;
    let (browser, url) = at_callback(&app).await;
    let copied_cookies = browser.cookie_header();
    browser.navigate(&url).await;
    assert_eq!(browser.me().await["sub"], "logi-user-alice");

    // The same browser replays it: its cookie no longer holds that login.
    let replay = Browser::new(&app.url);
    assert_eq!(callback_error(&replay, &url).await, "/?auth_error=session_expired");
    // Someone replays it with a copy of the cookie as it was before the callback.
    let thief = Browser::new(&app.url);
    for pair in copied_cookies.split("; ") {
        let (name, value) = pair.split_once('=').unwrap();
        thief.set_cookie(name, value);
    }
    assert_eq!(callback_error(&thief, &url).await, "/?auth_error=session_expired");
    assert!(thief.cookie("logi_bff_session").is_none());
}

#[tokio::test]
async fn a_pending_cookie_sealed_by_another_secret_or_truncated_starts_nothing() {
    let app = spawn_app().await;
    let other = spawn_app_with(&[("SESSION_SECRET", "another-session-secret-0123456789abcdef")]).await;
    let browser = other.browser();
    let to_logi = browser.get("/api/auth/login?login_hint=alice").await;
    let foreign = browser.cookie("logi_bff_login").unwrap();
    let state = query(to_logi.location())["state"].clone();
    assert_ne!(SESSION_SECRET, "another-session-secret-0123456789abcdef");

    for value in [foreign.clone(), foreign[..foreign.len() / 2].to_owned(), format!("{}A", &foreign[..foreign.len() - 1])] {
        let victim = Browser::new(&app.url);
        victim.set_cookie("logi_bff_login", &value);
        let url = format!("{}/api/auth/callback?code=c&state={state}", app.url);
        assert_eq!(callback_error(&victim, &url).await, "/?auth_error=session_expired");
        assert!(victim.cookie("logi_bff_session").is_none());
    }
    assert_eq!(app.row_counts().await["tower_sessions"], 0);
}

#[tokio::test]
async fn three_tabs_can_sign_in_at_once() {
    let app = spawn_app().await;
    let browser = app.browser();
    let mut urls = Vec::new();
    for _ in 0..3 {
        urls.push(callback_url(&browser, "alice").await);
    }
    let (_, hops) = browser.navigate(&urls[0]).await;
    assert_eq!(hops.last().unwrap(), "/");
    let (_, hops) = browser.navigate(&urls[2]).await;
    assert_eq!(hops.last().unwrap(), "/", "a second tab's login was lost");
}

#[tokio::test]
async fn me_logout_and_the_cross_site_checks() {
    let app = spawn_app().await;
    let browser = app.browser();
    assert_eq!(browser.me().await, serde_json::Value::Null);
    browser.sign_in("alice").await;
    let session = browser.cookie("logi_bff_session").unwrap();

    let forged = browser.send(Method::POST, "/api/auth/logout", &[("origin", "https://evil.example")], None).await;
    assert_eq!((forged.status, forged.json()), (StatusCode::FORBIDDEN, serde_json::json!({ "error": "cross_site_request" })));
    let unattributed = browser.send(Method::POST, "/api/auth/logout", &[], None).await;
    assert_eq!(unattributed.status, StatusCode::FORBIDDEN);
    let cross_site_get = browser.send(Method::GET, "/api/auth/logout", &[("sec-fetch-site", "cross-site")], None).await;
    assert_eq!((cross_site_get.status, cross_site_get.location()), (StatusCode::SEE_OTHER, "/"));
    assert_eq!(browser.me().await["sub"], "logi-user-alice", "a cross-site request signed the user out");

    let refresh_token = app.double.issued.lock().unwrap().iter().find(|t| t.starts_with("refresh-")).cloned().unwrap();
    let logout = browser.send(Method::POST, "/api/auth/logout", &[("origin", &app.url)], None).await;
    assert_eq!((logout.status, logout.json()), (StatusCode::OK, serde_json::json!({ "ok": true })));
    assert_eq!(logout.header("cache-control"), "no-store");
    assert!(eventually(|| app.double.revoked.lock().unwrap().contains(&refresh_token)).await, "logout did not revoke the refresh token");
    let old = Browser::new(&app.url);
    old.set_cookie("logi_bff_session", &session);
    assert_eq!(old.me().await, serde_json::Value::Null, "the old cookie still works after logout");
    assert_eq!(app.count("SELECT count(*) FROM logins").await, 0);
}

#[tokio::test]
async fn a_tampered_session_cookie_is_signed_out() {
    let app = spawn_app().await;
    let browser = app.browser();
    browser.sign_in("alice").await;
    let value = browser.cookie("logi_bff_session").unwrap();
    let replacement = if value.starts_with('A') { 'B' } else { 'A' };
    browser.set_cookie("logi_bff_session", &format!("{replacement}{}", &value[1..]));
    assert_eq!(browser.me().await, serde_json::Value::Null);
}

#[tokio::test]
async fn a_federated_logout_goes_to_logi_without_a_token_in_the_url() {
    let app = spawn_app().await;
    let browser = app.browser();
    browser.sign_in("alice").await;
    let body = Some(("application/x-www-form-urlencoded", Vec::new()));
    let answer = browser.send(Method::POST, "/api/auth/logout?federated=1", &[("origin", &app.url)], body).await;
    let location = answer.location();
    assert!(location.starts_with(&format!("{}/session/end?", app.double.issuer)), "{location}");
    let q = query(location);
    assert_eq!((q["client_id"].as_str(), q["post_logout_redirect_uri"].as_str()), ("logi-bff-test", format!("{}/", app.url).as_str()));
    assert!(!q.contains_key("id_token_hint"));
}

#[tokio::test]
async fn the_sessions_list_names_each_device_readably() {
    let app = spawn_app().await;
    let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
    let laptop = Browser::with_user_agent(&app.url, chrome);
    laptop.sign_in("alice").await;
    let tool = Browser::with_user_agent(&app.url, "curl/8.5.0");
    tool.sign_in("alice").await;
    let form = Some(("application/x-www-form-urlencoded", Vec::new()));
    let account = laptop.send(Method::POST, "/api/account", &[("origin", &app.url)], form).await.json();
    let mut devices: Vec<(String, bool)> =
        account["sessions"].as_array().unwrap().iter().map(|s| (s["device"].as_str().unwrap().to_owned(), s["this_device"].as_bool().unwrap())).collect();
    devices.sort();
    assert_eq!(devices, [("Chrome on Linux".to_owned(), true), ("curl/8.5.0".to_owned(), false)]);
    assert!(!account.to_string().contains("KHTML"), "the raw user agent reached the page");
}

/// A login past its lifetime ends like any other: the sweeper deletes it and revokes
/// its logi refresh token, so logi's grant does not outlive our login.
#[tokio::test]
async fn the_sweeper_ends_expired_logins_and_revokes_their_logi_refresh_tokens() {
    let app = spawn_app().await;
    let (stale, fresh) = (app.browser(), app.browser());
    stale.sign_in("alice").await;
    let stale_refresh = app.double.issued.lock().unwrap().iter().find(|t| t.starts_with("refresh-")).cloned().unwrap();
    fresh.sign_in("bob").await;
    // alice's browser was last seen longer ago than the idle lifetime (12 h by default).
    app.state.db.execute("UPDATE logins SET last_seen_at = last_seen_at - 13 * 3600 WHERE user_id = (SELECT min(user_id) FROM logins)").await.unwrap();
    app.state.logins.sweep().await.unwrap();
    assert!(eventually(|| app.double.revoked.lock().unwrap().contains(&stale_refresh)).await, "the expired login's refresh token is still live at logi");
    assert_eq!(app.double.revoked.lock().unwrap().len(), 1, "a live login's refresh token was revoked");
    assert_eq!(app.count("SELECT count(*) FROM logins").await, 1);
    assert_eq!(fresh.me().await["sub"], "logi-user-bob");
}

/// logi's guides document fixed endpoints and no discovery document: with
/// `ONE_PASS_DISCOVERY=off` the whole browser flow (and revocation) uses those paths.
#[tokio::test]
async fn without_discovery_the_documented_endpoints_and_the_configured_jwks_are_used() {
    let (double, upstream) = crate::provider::start().await;
    let jwks = format!("{}/jwks", double.issuer);
    let app = crate::support::spawn_app_against(double, &upstream, &[("ONE_PASS_DISCOVERY", "off"), ("ONE_PASS_JWKS_URL", &jwks)]).await;
    let browser = app.browser();
    let (_, hops) = browser.navigate("/api/auth/login?login_hint=alice").await;
    assert!(hops[0].starts_with(&format!("{}/oauth/authorize?", app.double.issuer)), "{hops:?}");
    assert_eq!(browser.me().await["sub"], "logi-user-alice");
    assert_eq!((app.double.hits("discovery"), app.double.hits("jwks")), (0, 1));
    let refresh_token = app.double.issued.lock().unwrap().iter().find(|t| t.starts_with("refresh-")).cloned().unwrap();
    browser.send(Method::POST, "/api/auth/logout", &[("origin", &app.url)], None).await;
    assert!(eventually(|| app.double.revoked.lock().unwrap().contains(&refresh_token)).await, "not revoked at /oauth/revoke");
}
