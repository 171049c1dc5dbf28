//! Step-up (RFC 9470, OIDC `acr_values` / `max_age`): an API's requirement refuses a
//! login that does not meet it before anything goes upstream; an upstream's own challenge
//! gets the same answer; the login URL takes only declared values; a step-up that meets
//! the requirement upgrades the same login (browser and native device), and one that does
//! not changes nothing.

use crate::native::{authorize_with, body, refresh, signed_in_device};
use crate::sockets::{connect, greeting, refusal};
use crate::support::{spawn_app_declaring, Answer, Browser, Declared, TestApp};
use logi_bff::server::db::query;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;

const CSRF: (&str, &str) = ("x-csrf", "1");
const ORDERS: &str = "https://orders.test/";
const SESSION: &str = "logi_bff_session";

/// `payments` needs an `mfa` sign-in within 10 minutes, `recent` any sign-in within a
/// minute; `vault` declares nothing (its upstream may challenge); `orders` has a resource
/// of its own, so its token is one the login holds per API; `ticker`, a WebSocket, needs `mfa`.
fn declarations(upstream: &str, sockets: &str) -> String {
    format!(
        r#"
[[api]]
name = "payments"
path = "/api/payments/"
upstream = "{upstream}"
acr_values = "mfa"
max_age_secs = 600

[[api]]
name = "recent"
path = "/api/recent/"
upstream = "{upstream}"
token = "user_or_client"
max_age_secs = 60

[[api]]
name = "vault"
path = "/api/vault/"
upstream = "{upstream}"

[[api]]
name = "orders"
path = "/api/orders/"
upstream = "{upstream}"
resource = "{ORDERS}"

[[api]]
name = "ticker"
path = "/api/ticker/"
upstream = "{sockets}"
websocket = true
acr_values = "mfa"
"#
    )
}

async fn declared() -> Declared {
    spawn_app_declaring(|double, upstream| declarations(upstream, &double.socket_upstream), &[]).await
}

async fn call(browser: &Browser, app: &TestApp, path: &str) -> Answer {
    browser.send(Method::GET, path, &[CSRF, ("referer", &format!("{}/api-demo?tab=pay", app.url))], None).await
}

async fn bearer_call(app: &TestApp, access_token: &str, path: &str) -> Answer {
    Browser::new(&app.url).send(Method::GET, path, &[("authorization", &format!("Bearer {access_token}"))], None).await
}

const PAYMENTS_LOGIN_URL: &str = "/api/auth/login?acr_values=mfa&max_age=600&return_to=%2Fapi-demo%3Ftab%3Dpay";

/// The step-up answer for `payments`, checked whole.
fn assert_payments_step_up(answer: &Answer) {
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
    assert_eq!(answer.json(), json!({ "error": "step_up_required", "acr_values": "mfa", "max_age": 600, "login_url": PAYMENTS_LOGIN_URL }));
    let challenge = answer.header("www-authenticate");
    for part in [r#"Bearer error="insufficient_user_authentication""#, r#"acr_values="mfa""#, "max_age=600"] {
        assert!(challenge.contains(part), "{challenge}");
    }
}

/// Every login as `(id, client, acr)`.
async fn logins(app: &TestApp) -> Vec<(String, String, Option<String>)> {
    query("SELECT id, client, acr FROM logins ORDER BY id").fetch_all(&app.state.db).await.unwrap()
}

async fn step_ups(app: &TestApp) -> i64 {
    app.count("SELECT COUNT(*) FROM account_events WHERE kind = 'step_up'").await
}

#[tokio::test]
async fn a_login_short_of_the_requirement_is_refused_before_the_upstream() {
    let Declared { app, .. } = declared().await;
    let ada = app.browser();
    ada.sign_in("ada").await;
    app.double.reset_hits();
    assert_payments_step_up(&call(&ada, &app, "/api/payments/charge").await);
    let recent = call(&ada, &app, "/api/recent/x").await;
    assert_eq!(recent.status, StatusCode::OK, "a sign-in a moment ago is recent: {}", recent.body);
    assert_eq!((app.double.hits("upstream"), app.double.hits("token")), (1, 0), "only `recent` went upstream; no token was asked for");

    // A sign-in two minutes old is too old for `recent`; no Referer sends the step-up home.
    app.double.auth_age_secs.store(120, Ordering::SeqCst);
    let old = app.browser();
    old.sign_in("bob").await;
    let refused = old.send(Method::GET, "/api/recent/x", &[CSRF], None).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        refused.json(),
        json!({ "error": "step_up_required", "acr_values": null, "max_age": 60, "login_url": "/api/auth/login?max_age=60&return_to=%2F" })
    );
    assert_eq!(
        refused.header("www-authenticate"),
        r#"Bearer error="insufficient_user_authentication", error_description="A stronger or more recent sign-in is required", max_age=60"#
    );

    // A password login has no acr and no auth_time: it never meets a requirement.
    let form = b"email=pat%40example.com&password=correct-horse-battery&name=Pat&return_to=%2F".to_vec();
    let password = app.browser();
    let created = password.send(Method::POST, "/api/sign_up", &[("origin", &app.url)], Some(("application/x-www-form-urlencoded", form))).await;
    assert!(created.status.is_redirection() || created.status.is_success(), "{}", created.body);
    assert_eq!(call(&password, &app, "/api/recent/x").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.double.hits("upstream"), 1, "no refused call went upstream");
}

#[tokio::test]
async fn a_step_up_upgrades_the_same_login_and_drops_its_per_api_tokens() {
    let Declared { app, .. } = declared().await;
    let ada = app.browser();
    ada.sign_in("ada").await;
    let phone = signed_in_device(&app, "ada").await;
    assert_eq!(call(&ada, &app, "/api/orders/list").await.status, StatusCode::OK);
    let before = logins(&app).await;
    assert_eq!(before.iter().map(|(_, _, acr)| acr.as_deref()).collect::<Vec<_>>(), [Some("pwd"), Some("pwd")]);
    let session_before = ada.cookie(SESSION).unwrap();
    let orders_grants = app.double.grants_for("refresh_token", Some(ORDERS));

    let refused = call(&ada, &app, "/api/payments/charge").await;
    assert_payments_step_up(&refused);
    let (_, hops) = ada.navigate(&format!("{}&login_hint=ada", refused.json()["login_url"].as_str().unwrap())).await;
    assert_eq!(hops.last().map(String::as_str), Some("/api-demo?tab=pay"), "{hops:?}");
    let asked = app.double.authorizations.lock().unwrap().last().cloned().unwrap();
    assert_eq!((asked.get("acr_values").map(String::as_str), asked.get("max_age").map(String::as_str)), (Some("mfa"), Some("600")));

    let after = logins(&app).await;
    let browser_login = before.iter().find(|(_, client, _)| client == "browser").unwrap();
    assert_eq!(after.len(), 2, "no login was added or ended: {after:?}");
    assert!(after.contains(&(browser_login.0.clone(), "browser".into(), Some("mfa".into()))), "the same login, upgraded: {after:?}");
    assert!(after.iter().any(|(_, client, acr)| client == "device" && acr.as_deref() == Some("pwd")), "the device is untouched");
    assert_ne!(ada.cookie(SESSION).unwrap(), session_before, "the browser session id is renewed");
    assert_eq!(ada.me().await["sub"], "logi-user-ada");

    let charged = call(&ada, &app, "/api/payments/charge").await;
    assert_eq!((charged.status, charged.json()["acr"].as_str()), (StatusCode::OK, Some("mfa")), "{}", charged.body);
    assert_eq!(call(&ada, &app, "/api/orders/list").await.status, StatusCode::OK);
    assert_eq!(app.double.grants_for("refresh_token", Some(ORDERS)), orders_grants + 1, "the old grant's orders token was dropped");
    assert!(app.double.revoked.lock().unwrap().is_empty(), "a step-up revokes nothing: the new grant may continue the old one at logi");
    assert_eq!(step_ups(&app).await, 1);
    let activity = ada.get("/api/account/activity?limit=1").await.json();
    assert_eq!(activity["events"][0]["kind"], "step_up");
    assert_eq!(activity["events"][0]["summary"], "Signed in again with a stronger method");
    let device_calls = bearer_call(&app, phone["access_token"].as_str().unwrap(), "/api/auth/me").await;
    assert_eq!(device_calls.status, StatusCode::OK, "the device signed in before is still signed in");
}

#[tokio::test]
async fn a_step_up_that_falls_short_changes_nothing() {
    let Declared { app, .. } = declared().await;
    let ada = app.browser();
    ada.sign_in("ada").await;
    let before = logins(&app).await;
    let session = ada.cookie(SESSION).unwrap();
    let login_url = format!("{PAYMENTS_LOGIN_URL}&login_hint=ada");
    // A weaker acr than asked, a sign-in older than max_age, another logi account.
    *app.double.acr_override.lock().unwrap() = Some("pwd".into());
    let weaker = ada.navigate(&login_url).await.1;
    *app.double.acr_override.lock().unwrap() = None;
    app.double.auth_age_secs.store(601, Ordering::SeqCst);
    let older = ada.navigate(&login_url).await.1;
    app.double.auth_age_secs.store(0, Ordering::SeqCst);
    let other = ada.navigate(&login_url.replace("login_hint=ada", "login_hint=bob")).await.1;
    for hops in [weaker, older, other] {
        assert_eq!(hops.last().map(String::as_str), Some("/?auth_error=step_up_failed"), "{hops:?}");
    }
    assert_eq!(logins(&app).await, before, "the login is as it was");
    assert_eq!(ada.cookie(SESSION).unwrap(), session, "and so is the browser session");
    assert_payments_step_up(&call(&ada, &app, "/api/payments/charge").await);
    assert_eq!(step_ups(&app).await, 0);
    let refresh = call(&ada, &app, "/api/vault/x").await;
    assert_eq!(refresh.status, StatusCode::OK, "the login's own grant still works");
    assert!(app.double.revoked.lock().unwrap().is_empty(), "a refused step-up revokes nothing: its grant may be the login's own, continued");
}

#[tokio::test]
async fn the_login_url_takes_only_declared_requirements_and_stores_nothing_otherwise() {
    let Declared { app, .. } = declared().await;
    let browser = app.browser();
    app.double.reset_hits();
    for query in
        ["acr_values=hwk", "acr_values=mfa%20hwk", "acr_values=", "acr_values=a%22b", "max_age=601", "max_age=0", "max_age=ten", "acr_values=mfa&max_age=61"]
    {
        let answer = browser.get(&format!("/api/auth/login?{query}")).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}: {}", answer.body);
        assert_eq!(answer.json()["error"], "step_up_not_declared", "{query}");
        assert!(answer.set_cookies().is_empty(), "{query}: nothing is stored");
    }
    assert!(browser.cookies.lock().unwrap().is_empty());
    for (query, acr_values, max_age) in
        [("acr_values=mfa&max_age=600", Some("mfa"), Some("600")), ("max_age=60", None, Some("60")), ("acr_values=mfa", Some("mfa"), None)]
    {
        let answer = browser.get(&format!("/api/auth/login?{query}")).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{query}");
        let location = url::Url::parse(answer.location()).unwrap();
        let param = |name: &str| location.query_pairs().find(|(key, _)| key == name).map(|(_, value)| value.into_owned());
        assert_eq!((param("acr_values").as_deref(), param("max_age").as_deref()), (acr_values, max_age), "{query}");
    }
    assert_eq!(app.double.hits("auth"), 0, "logi saw none of it: the browser was only sent there");
}

#[tokio::test]
async fn an_upstreams_own_challenge_gets_the_same_answer_when_a_sign_in_can_meet_it() {
    let Declared { app, .. } = declared().await;
    let ada = app.browser();
    ada.sign_in("ada").await;
    let challenged = call(&ada, &app, "/api/vault/challenge-mfa").await;
    assert_eq!(challenged.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenged.json(),
        json!({ "error": "step_up_required", "acr_values": "mfa", "max_age": null, "login_url": "/api/auth/login?acr_values=mfa&return_to=%2Fapi-demo%3Ftab%3Dpay" })
    );
    // `hwk` is declared by no API: not ours to satisfy, so the upstream's 401 comes as it was.
    let foreign = call(&ada, &app, "/api/vault/challenge-hwk").await;
    assert_eq!((foreign.status, foreign.json()), (StatusCode::UNAUTHORIZED, json!({ "error": "insufficient_user_authentication" })));

    let login_url = challenged.json()["login_url"].as_str().unwrap().to_owned();
    ada.navigate(&format!("{login_url}&login_hint=ada")).await;
    let passed = call(&ada, &app, "/api/vault/challenge-mfa").await;
    assert_eq!((passed.status, passed.json()["acr"].as_str()), (StatusCode::OK, Some("mfa")), "{}", passed.body);
}

#[tokio::test]
async fn a_websocket_upgrade_is_held_to_the_apis_requirement_too() {
    let Declared { app, .. } = declared().await;
    let ada = app.browser();
    ada.sign_in("ada").await;
    let origin = [("origin", app.url.as_str())];
    app.double.reset_hits();
    let refused = connect(&app.url, "/api/ticker/feed", Some(&ada), &origin).await;
    assert_eq!(refusal(refused), (StatusCode::UNAUTHORIZED, "step_up_required".to_owned()));
    assert_eq!(app.double.hits("socket_handshake"), 0, "the upstream saw no handshake");

    ada.navigate("/api/auth/login?acr_values=mfa&login_hint=ada").await;
    let mut socket = connect(&app.url, "/api/ticker/feed", Some(&ada), &origin).await.expect("the upgrade is accepted");
    assert_eq!(greeting(&mut socket).await["sub"], "logi-user-ada");
}

/// The exchange of a step-up authorization, with the device's bearer token.
async fn upgrade(app: &TestApp, access_token: &str, hint: &str, extra: Value) -> Answer {
    let authorization = authorize_with(app, hint, &[("acr_values", "mfa"), ("max_age", "600")]).await;
    let mut request = body(&authorization);
    request.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let json = Some(("application/json", request.to_string().into_bytes()));
    Browser::new(&app.url).send(Method::POST, "/api/auth/logi/exchange", &[("authorization", &format!("Bearer {access_token}"))], json).await
}

#[tokio::test]
async fn a_native_app_steps_up_its_own_device_login_and_keeps_its_tokens() {
    let Declared { app, .. } = declared().await;
    let phone = signed_in_device(&app, "ada").await;
    let access = phone["access_token"].as_str().unwrap();
    assert_payments_step_up_for_bearer(&bearer_call(&app, access, "/api/payments/charge").await);
    let before = logins(&app).await;

    let requirement = json!({ "acr_values": "mfa", "max_age": 600 });
    for (extra, status, error) in [
        (json!({}), StatusCode::BAD_REQUEST, "invalid_request"),
        (json!({ "acr_values": "hwk" }), StatusCode::BAD_REQUEST, "invalid_request"),
        (json!({ "acr_values": "mfa", "max_age": "600" }), StatusCode::BAD_REQUEST, "invalid_request"),
    ] {
        let answer = upgrade(&app, access, "ada", extra.clone()).await;
        assert_eq!((answer.status, answer.json()["error"].as_str()), (status, Some(error)), "{extra}: {}", answer.body);
    }
    assert_eq!(upgrade(&app, "not-a-token", "ada", requirement.clone()).await.status, StatusCode::UNAUTHORIZED);
    *app.double.acr_override.lock().unwrap() = Some("pwd".into());
    let weaker = upgrade(&app, access, "ada", requirement.clone()).await;
    *app.double.acr_override.lock().unwrap() = None;
    let other_account = upgrade(&app, access, "bob", requirement.clone()).await;
    for refused in [weaker, other_account] {
        assert_eq!((refused.status, refused.json()["error"].as_str()), (StatusCode::BAD_REQUEST, Some("step_up_failed")), "{}", refused.body);
    }
    assert_eq!(logins(&app).await, before, "nothing changed");
    assert!(app.double.revoked.lock().unwrap().is_empty(), "nor was anything revoked");

    let upgraded = upgrade(&app, access, "ada", requirement).await;
    assert_eq!(upgraded.status, StatusCode::OK, "{}", upgraded.body);
    assert_eq!((upgraded.json()["upgraded"].as_bool(), upgraded.json()["acr"].as_str()), (Some(true), Some("mfa")));
    for secret in ["access_token", "refresh_token", "id_token"] {
        assert!(upgraded.json().get(secret).is_none(), "{}", upgraded.body);
    }
    let after = logins(&app).await;
    assert_eq!((after.len(), &after[0].0, after[0].2.as_deref()), (1, &before[0].0, Some("mfa")), "the same device login, upgraded");
    let charged = bearer_call(&app, access, "/api/payments/charge").await;
    assert_eq!((charged.status, charged.json()["acr"].as_str()), (StatusCode::OK, Some("mfa")), "the same access token now meets it");
    let rotated = refresh(&app, phone["refresh_token"].as_str().unwrap()).await;
    assert_eq!(rotated.status, StatusCode::OK, "the refresh family goes on: {}", rotated.body);
    assert_eq!(bearer_call(&app, rotated.json()["access_token"].as_str().unwrap(), "/api/payments/charge").await.status, StatusCode::OK);
    assert_eq!(step_ups(&app).await, 1);
}

fn assert_payments_step_up_for_bearer(answer: &Answer) {
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
    assert_eq!(answer.json()["error"], "step_up_required");
    assert_eq!((answer.json()["acr_values"].as_str(), answer.json()["max_age"].as_i64()), (Some("mfa"), Some(600)));
    assert!(answer.header("www-authenticate").contains(r#"error="insufficient_user_authentication""#));
}
