//! `POST /api/auth/backchannel-logout`: logi's logout tokens end the logins of a logi
//! session (by `sid`) or of a logi user (by `sub`), browsers and devices, and revoke
//! their refresh tokens; every bad token is `400 invalid_request` and ends nothing.

use crate::native::signed_in_device;
use crate::provider::{now, rs256, rsa_key, sign, CLIENT_ID, CLIENT_SECRET};
use crate::support::{eventually, Answer, Browser, TestApp};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::Sha256;

const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

pub fn claims(app: &TestApp, sub: Option<&str>, sid: Option<&str>) -> Value {
    let mut claims = json!({
        "iss": app.double.issuer, "aud": CLIENT_ID, "iat": now(), "exp": now() + 120,
        "jti": format!("jti-{:016x}", rand::random::<u64>()), "events": { EVENT: {} },
    });
    if let Some(sub) = sub {
        claims["sub"] = json!(sub);
    }
    if let Some(sid) = sid {
        claims["sid"] = json!(sid);
    }
    claims
}

pub fn logout_header() -> Value {
    let mut header = rs256("k1");
    header["typ"] = json!("logout+jwt");
    header
}

/// As logi sends it: a form post, server to server (a hostile Origin changes nothing).
async fn post(app: &TestApp, form: &str) -> Answer {
    let headers = [("origin", "https://evil.example")];
    Browser::new(&app.url)
        .send(Method::POST, "/api/auth/backchannel-logout", &headers, Some(("application/x-www-form-urlencoded", form.as_bytes().to_vec())))
        .await
}

pub async fn log_out(app: &TestApp, token: &str) -> Answer {
    post(app, &format!("logout_token={token}")).await
}

/// The logi sessions of the user's logins, as stored from their id_tokens.
async fn sids_of(app: &TestApp, sub: &str) -> Vec<String> {
    let sql = format!("SELECT logi_sid FROM login_tokens WHERE logi_sub = '{sub}'");
    match &app.state.db {
        logi_bff::server::db::Db::Sqlite(pool) => sqlx::query_scalar(&sql).fetch_all(pool).await.unwrap(),
        logi_bff::server::db::Db::Postgres(pool) => sqlx::query_scalar(&sql).fetch_all(pool).await.unwrap(),
    }
}

async fn bearer_me(app: &TestApp, access_token: &str) -> StatusCode {
    Browser::new(&app.url).send(Method::GET, "/api/auth/me", &[("authorization", &format!("Bearer {access_token}"))], None).await.status
}

fn assert_ok(answer: &Answer) {
    assert_eq!((answer.status, answer.header("cache-control")), (StatusCode::OK, "no-store"), "{}", answer.body);
}

#[tokio::test]
async fn a_token_with_sid_ends_the_logins_of_that_logi_session_only() {
    let app = crate::support::spawn_app().await;
    let (first, second) = (app.browser(), app.browser());
    // Each sign-in is a logi session of its own; in order: first, second, the device.
    let mut sids: Vec<String> = Vec::new();
    let learn_new_sid = async |sids: &mut Vec<String>| {
        let new = sids_of(&app, "logi-user-alice").await.into_iter().find(|sid| !sids.contains(sid)).expect("the new login has a logi session");
        sids.push(new);
    };
    first.sign_in("alice").await;
    learn_new_sid(&mut sids).await;
    second.sign_in("alice").await;
    learn_new_sid(&mut sids).await;
    let device = signed_in_device(&app, "alice").await;
    learn_new_sid(&mut sids).await;
    let before = app.double.revoked.lock().unwrap().len();

    let answer = log_out(&app, &sign(&logout_header(), &claims(&app, Some("logi-user-alice"), Some(&sids[0])), rsa_key(0))).await;
    assert_ok(&answer);
    assert!(answer.set_cookies().is_empty());
    assert_eq!(first.me().await, Value::Null, "the logged-out session still reads /me");
    assert_eq!(second.me().await["sub"], "logi-user-alice");
    assert_eq!(bearer_me(&app, device["access_token"].as_str().unwrap()).await, StatusCode::OK);
    assert!(eventually(|| app.double.revoked.lock().unwrap().len() == before + 1).await, "its logi refresh token was not revoked");

    // The device's logi session alone, by sid without sub.
    let answer = log_out(&app, &sign(&logout_header(), &claims(&app, None, Some(&sids[2])), rsa_key(0))).await;
    assert_ok(&answer);
    assert_eq!(bearer_me(&app, device["access_token"].as_str().unwrap()).await, StatusCode::UNAUTHORIZED);
    assert_eq!(second.me().await["sub"], "logi-user-alice");
}

#[tokio::test]
async fn a_token_with_only_sub_ends_every_login_of_that_logi_user() {
    let app = crate::support::spawn_app().await;
    let (alice, bob) = (app.browser(), app.browser());
    alice.sign_in("alice").await;
    bob.sign_in("bob").await;
    let device = signed_in_device(&app, "alice").await;

    let answer = log_out(&app, &sign(&logout_header(), &claims(&app, Some("logi-user-alice"), None), rsa_key(0))).await;
    assert_ok(&answer);
    assert_eq!(alice.me().await, Value::Null);
    assert_eq!(bearer_me(&app, device["access_token"].as_str().unwrap()).await, StatusCode::UNAUTHORIZED);
    assert_eq!(bob.me().await["sub"], "logi-user-bob");
    assert_eq!(sids_of(&app, "logi-user-alice").await.len(), 0);

    // Nothing left to end is still a success; typ is optional.
    let answer = log_out(&app, &sign(&json!({ "alg": "RS256", "kid": "k1" }), &claims(&app, Some("logi-user-nobody"), Some("unknown-sid")), rsa_key(0))).await;
    assert_ok(&answer);
}

#[tokio::test]
async fn every_bad_logout_token_is_refused_and_ends_nothing() {
    let app = crate::support::spawn_app().await;
    let browser = app.browser();
    browser.sign_in("alice").await;
    let sid = sids_of(&app, "logi-user-alice").await.remove(0);
    let valid = || claims(&app, Some("logi-user-alice"), Some(&sid));
    let signed = |claims: &Value| sign(&logout_header(), claims, rsa_key(0));
    let edited = |edit: &dyn Fn(&mut Value)| {
        let mut claims = valid();
        edit(&mut claims);
        signed(&claims)
    };
    let unsigned = |header: &Value, claims: &Value| format!("{}.{}.", B64.encode(header.to_string()), B64.encode(claims.to_string()));
    let hs256 = {
        let header = json!({ "alg": "HS256", "typ": "logout+jwt" });
        let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(valid().to_string()));
        let mut mac = Hmac::<Sha256>::new_from_slice(CLIENT_SECRET.as_bytes()).unwrap();
        mac.update(input.as_bytes());
        format!("{input}.{}", B64.encode(mac.finalize().into_bytes()))
    };
    let tampered = {
        let token = signed(&valid());
        let parts: Vec<&str> = token.split('.').collect();
        let mut other = valid();
        other["sub"] = json!("logi-user-bob");
        format!("{}.{}.{}", parts[0], B64.encode(other.to_string()), parts[2])
    };
    let replayed = signed(&valid());
    assert_ok(&log_out(&app, &signed(&claims(&app, Some("logi-user-nobody"), None))).await);
    let mut refused: Vec<(&str, String)> = vec![
        ("alg none", unsigned(&json!({ "alg": "none", "typ": "logout+jwt" }), &valid())),
        ("HS256 with our client secret", hs256),
        ("unknown kid", sign(&json!({ "alg": "RS256", "kid": "k9", "typ": "logout+jwt" }), &valid(), rsa_key(0))),
        ("another key", sign(&logout_header(), &valid(), rsa_key(1))),
        ("tampered payload", tampered),
        ("typ JWT (an id_token's)", sign(&rs256("k1"), &valid(), rsa_key(0))),
        ("garbage", "not-a-jwt".to_owned()),
        ("wrong iss", edited(&|c| c["iss"] = json!("https://evil.example"))),
        ("wrong aud", edited(&|c| c["aud"] = json!("another-client"))),
        (
            "no exp",
            edited(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
        ),
        ("expired", edited(&|c| c["exp"] = json!(now() - 120))),
        (
            "no iat",
            edited(&|c| {
                c.as_object_mut().unwrap().remove("iat");
            }),
        ),
        ("no event", edited(&|c| c["events"] = json!({}))),
        ("a nonce", edited(&|c| c["nonce"] = json!("n"))),
        (
            "neither sub nor sid",
            edited(&|c| {
                let c = c.as_object_mut().unwrap();
                c.remove("sub");
                c.remove("sid");
            }),
        ),
        (
            "no jti",
            edited(&|c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
        ),
    ];
    // Used once (it ends nothing: another sid), then replayed.
    let mut other_session = valid();
    other_session["sid"] = json!("another-session");
    let once = signed(&other_session);
    assert_ok(&log_out(&app, &once).await);
    refused.push(("replayed jti", once));
    for (what, token) in &refused {
        let answer = log_out(&app, token).await;
        assert_eq!((*what, answer.status, answer.json()), (*what, StatusCode::BAD_REQUEST, json!({ "error": "invalid_request" })));
        assert_eq!(answer.header("cache-control"), "no-store");
    }
    for (what, form, content_type) in [
        ("no logout_token", "token=x", "application/x-www-form-urlencoded"),
        ("empty logout_token", "logout_token=", "application/x-www-form-urlencoded"),
        ("two logout_tokens", "logout_token=a&logout_token=b", "application/x-www-form-urlencoded"),
    ] {
        let answer = Browser::new(&app.url).send(Method::POST, "/api/auth/backchannel-logout", &[], Some((content_type, form.as_bytes().to_vec()))).await;
        assert_eq!((what, answer.status), (what, StatusCode::BAD_REQUEST));
    }
    let json_body = Browser::new(&app.url)
        .send(Method::POST, "/api/auth/backchannel-logout", &[], Some(("application/json", format!(r#"{{"logout_token":"{replayed}"}}"#).into_bytes())))
        .await;
    assert_eq!(json_body.status, StatusCode::BAD_REQUEST);
    assert_eq!(browser.me().await["sub"], "logi-user-alice", "a refused token ended the session");
    // The genuine token still works after all that.
    assert_ok(&log_out(&app, &replayed).await);
    assert_eq!(browser.me().await, Value::Null);
}
