//! Native apps: the exchange, our access and refresh tokens, revocation, bearer calls
//! to `/api/auth/me` and the proxy, and every way a bad input is refused.

use crate::provider::{self, CLIENT_ID};
use crate::support::{eventually, spawn_app, spawn_app_with, Answer, Browser, TestApp, NATIVE_REDIRECT_URI, SESSION_SECRET};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use futures_util::future::join_all;
use hmac::{Hmac, Mac};
use logi_bff::server::db::query;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::atomic::Ordering;
use std::time::Duration;

const CSRF: (&str, &str) = ("x-csrf", "1");
const TABLES: [&str; 4] = ["users", "logins", "login_tokens", "device_refresh_tokens"];

/// What the app got from logi's authorization endpoint, and what it kept to redeem it.
pub(crate) struct Authorization {
    code: String,
    verifier: String,
    nonce: String,
}

/// The app's side of PKCE against the provider: authorize as `logi-user-<hint>`.
async fn authorize(app: &TestApp, hint: &str) -> Authorization {
    authorize_with(app, hint, &[]).await
}

/// [`authorize`] with more parameters (a step-up's `acr_values`, `max_age`).
pub(crate) async fn authorize_with(app: &TestApp, hint: &str, extra: &[(&str, &str)]) -> Authorization {
    let verifier = B64.encode(rand::random::<[u8; 32]>());
    let nonce = B64.encode(rand::random::<[u8; 16]>());
    let challenge = B64.encode(Sha256::digest(verifier.as_bytes()));
    let mut url = url::Url::parse(&format!("{}/auth", app.double.issuer)).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", CLIENT_ID)
        .append_pair("redirect_uri", NATIVE_REDIRECT_URI)
        .append_pair("scope", "openid profile:basic email")
        .append_pair("state", "app-state")
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("login_hint", hint)
        .extend_pairs(extra);
    let answer = Browser::new(&app.url).get(url.as_str()).await;
    let location = url::Url::parse(answer.location()).unwrap();
    assert!(answer.location().starts_with(NATIVE_REDIRECT_URI), "{}", answer.location());
    let code = location.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    Authorization { code, verifier, nonce }
}

pub(crate) fn body(auth: &Authorization) -> Value {
    json!({ "code": auth.code, "code_verifier": auth.verifier, "redirect_uri": NATIVE_REDIRECT_URI, "nonce": auth.nonce, "device_name": "Ada's phone" })
}

/// A native app: no cookie jar of its own matters (it must never get a cookie).
fn device(app: &TestApp) -> Browser {
    Browser::new(&app.url)
}

async fn post_json(app: &TestApp, path: &str, body: &Value) -> Answer {
    device(app).send(Method::POST, path, &[], Some(("application/json", body.to_string().into_bytes()))).await
}

async fn exchange(app: &TestApp, body: &Value) -> Answer {
    post_json(app, "/api/auth/logi/exchange", body).await
}

/// A signed-in device: the exchange's answer.
pub(crate) async fn signed_in_device(app: &TestApp, hint: &str) -> Value {
    let answer = exchange(app, &body(&authorize(app, hint).await)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.json()
}

pub(crate) async fn refresh(app: &TestApp, refresh_token: &str) -> Answer {
    let form = format!("grant_type=refresh_token&refresh_token={refresh_token}").into_bytes();
    device(app).send(Method::POST, "/api/auth/token", &[], Some(("application/x-www-form-urlencoded", form))).await
}

async fn with_bearer(app: &TestApp, method: Method, path: &str, token: &str) -> Answer {
    device(app).send(method, path, &[("authorization", &format!("Bearer {token}"))], None).await
}

fn oauth_error(answer: &Answer) -> (StatusCode, String) {
    assert_eq!(answer.header("cache-control"), "no-store", "{}", answer.body);
    let body = answer.json();
    assert!(body["error_description"].is_string(), "{}", answer.body);
    (answer.status, body["error"].as_str().unwrap_or_default().to_owned())
}

fn decode(part: &str) -> Value {
    serde_json::from_slice(&B64.decode(part).unwrap()).unwrap()
}

async fn counts(app: &TestApp) -> Vec<i64> {
    let counts = app.row_counts().await;
    TABLES.iter().map(|table| counts[*table]).collect()
}

fn assert_no_logi_token(app: &TestApp, text: &str) {
    for token in app.double.issued.lock().unwrap().iter() {
        assert!(!text.contains(token.as_str()), "a logi token reached the device: {token}");
    }
}

#[tokio::test]
async fn the_exchange_answers_with_our_tokens_only_and_starts_a_device_login() {
    let app = spawn_app().await;
    let auth = authorize(&app, "ada").await;
    let answer = exchange(&app, &body(&auth)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.header("cache-control"), "no-store");
    assert!(answer.set_cookies().is_empty(), "a device got a cookie");
    assert_no_logi_token(&app, &answer.body);
    let tokens = answer.json();
    assert_eq!((tokens["token_type"].as_str(), tokens["expires_in"].as_i64()), (Some("Bearer"), Some(600)));
    assert_eq!(tokens["refresh_expires_in"].as_i64(), Some(30 * 24 * 3600));
    assert_eq!(tokens["refresh_token"].as_str().unwrap().len(), 43);
    assert_eq!(tokens["user"], json!({ "sub": "logi-user-ada", "anonymous": false, "email": "ada@example.com", "name": "ada" }));

    let jwt: Vec<&str> = tokens["access_token"].as_str().unwrap().split('.').collect();
    let (header, claims) = (decode(jwt[0]), decode(jwt[1]));
    assert_eq!((header["alg"].as_str(), header["typ"].as_str()), (Some("ES256"), Some("at+jwt")));
    let user_id: i64 = app.count("SELECT id FROM users").await;
    let sql = "SELECT id, client, user_agent FROM logins";
    let (login_id, client, name): (String, String, String) = query(sql).fetch_one(&app.state.db).await.unwrap();
    assert_eq!((client.as_str(), name.as_str()), ("device", "Ada's phone"));
    assert_eq!(claims["iss"].as_str(), Some(app.url.as_str()));
    assert_eq!(claims["aud"].as_str(), Some(app.url.as_str()));
    assert_eq!(claims["sub"].as_str(), Some(user_id.to_string().as_str()), "sub must be our user id, not logi's");
    assert_eq!((claims["sid"].as_str(), claims["client_id"].as_str()), (Some(login_id.as_str()), Some(CLIENT_ID)));
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 600);
    assert!(claims["jti"].as_str().is_some_and(|jti| jti.len() >= 16));

    // The signature verifies against the published key.
    let jwks = device(&app).get("/.well-known/jwks.json").await;
    assert_eq!(jwks.header("cache-control"), "public, max-age=300");
    let key = jwks.json()["keys"].as_array().unwrap().iter().find(|k| k["kid"] == header["kid"]).cloned().unwrap();
    assert_eq!((key["kty"].as_str(), key["crv"].as_str(), key["alg"].as_str(), key["use"].as_str()), (Some("EC"), Some("P-256"), Some("ES256"), Some("sig")));
    let point = [&[4u8][..], &B64.decode(key["x"].as_str().unwrap()).unwrap(), &B64.decode(key["y"].as_str().unwrap()).unwrap()].concat();
    let signature = Signature::from_slice(&B64.decode(jwt[2]).unwrap()).unwrap();
    VerifyingKey::from_sec1_bytes(&point).unwrap().verify(format!("{}.{}", jwt[0], jwt[1]).as_bytes(), &signature).expect("the signature verifies");

    // The same logi account in a browser is the same user; the account page lists the device.
    let browser = app.browser();
    browser.sign_in("ada").await;
    let account = browser.send(Method::POST, "/api/account", &[("origin", &app.url)], Some(("application/x-www-form-urlencoded", Vec::new()))).await.json();
    let app_row = account["sessions"].as_array().unwrap().iter().find(|s| s["app"] == json!(true)).cloned().unwrap();
    assert_eq!((app_row["device"].as_str(), app_row["id"].as_str()), (Some("Ada's phone"), Some(login_id.as_str())));
    assert_eq!(app.count("SELECT count(*) FROM users").await, 1);
}

#[tokio::test]
async fn a_bearer_reads_me_and_calls_the_proxy_without_csrf_and_never_with_a_cookie() {
    let app = spawn_app().await;
    let tokens = signed_in_device(&app, "ada").await;
    let access = tokens["access_token"].as_str().unwrap();
    let me = with_bearer(&app, Method::GET, "/api/auth/me", access).await;
    assert_eq!((me.status, me.json()["user"]["sub"].as_str()), (StatusCode::OK, Some("logi-user-ada")));
    assert!(me.set_cookies().is_empty());
    let echoed = with_bearer(&app, Method::POST, "/api/proxy/echo", access).await;
    assert_eq!(echoed.status, StatusCode::OK, "{}", echoed.body);
    assert_eq!(echoed.json()["sub"].as_str(), Some("logi-user-ada"));
    assert_no_logi_token(&app, &format!("{}{}", me.body, echoed.body));

    let browser = app.browser();
    browser.sign_in("bob").await;
    let both = browser.send(Method::GET, "/api/auth/me", &[("authorization", &format!("Bearer {access}"))], None).await;
    assert_eq!((both.status, both.json()["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")));
    let both = browser.send(Method::POST, "/api/proxy/echo", &[("authorization", &format!("Bearer {access}")), CSRF], None).await;
    assert_eq!(both.status, StatusCode::BAD_REQUEST);
}

/// A token signed with the app's real current key (read the way a replica would).
async fn forge(app: &TestApp, header: Value, claims: Value) -> String {
    let sql = "SELECT kid, sealed FROM signing_keys WHERE retired_at IS NULL";
    let (kid, sealed): (String, Vec<u8>) = query(sql).fetch_one(&app.state.db).await.unwrap();
    let sealer = logi_bff::server::crypto::Sealer::new(&SESSION_SECRET.to_owned().into(), "logi-bff/native-signing-keys/v1");
    let scalar = sealer.open(kid.as_bytes(), &sealed).unwrap();
    let key = SigningKey::from_slice(secrecy::ExposeSecret::expose_secret(&scalar)).unwrap();
    let mut header = header;
    if header.get("kid").is_none() {
        header["kid"] = json!(kid);
    }
    let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
    let signature: Signature = key.sign(input.as_bytes());
    format!("{input}.{}", B64.encode(signature.to_bytes()))
}

#[tokio::test]
async fn bad_bearers_get_401_with_the_bearer_challenge() {
    let app = spawn_app().await;
    let tokens = signed_in_device(&app, "ada").await;
    let good = tokens["access_token"].as_str().unwrap().to_owned();
    let parts: Vec<&str> = good.split('.').collect();
    let (header, claims) = (decode(parts[0]), decode(parts[1]));
    let with = |key: &str, value: Value| {
        let mut changed = claims.clone();
        changed[key] = value;
        changed
    };
    let now = provider::now();
    let es256 = json!({ "alg": "ES256", "typ": "at+jwt" });

    // HS256 "signed" with our public key as the secret: the classic algorithm confusion.
    let jwks = device(&app).get("/.well-known/jwks.json").await.body;
    let hs_header = json!({ "alg": "HS256", "typ": "at+jwt", "kid": header["kid"] });
    let hs_input = format!("{}.{}", B64.encode(hs_header.to_string()), parts[1]);
    let mut mac = Hmac::<Sha256>::new_from_slice(jwks.as_bytes()).unwrap();
    mac.update(hs_input.as_bytes());
    let hs256 = format!("{hs_input}.{}", B64.encode(mac.finalize().into_bytes()));
    let none = format!("{}.{}.", B64.encode(json!({ "alg": "none", "typ": "at+jwt" }).to_string()), parts[1]);
    let tampered = format!("{}.{}.{}", parts[0], B64.encode(with("sub", json!("999")).to_string()), parts[2]);

    let mut bad = vec![
        ("tampered", tampered),
        ("alg none", none),
        ("HS256 with the public key", hs256),
        ("truncated", good[..good.len() - 4].to_owned()),
        ("garbage", "not-a-token".to_owned()),
        ("empty", String::new()),
        ("too long", "a".repeat(5000)),
    ];
    for (name, header, claims) in [
        ("expired", es256.clone(), with("exp", json!(now - 61))),
        ("wrong aud", es256.clone(), with("aud", json!("https://other.example"))),
        ("wrong iss", es256.clone(), with("iss", json!("https://evil.example"))),
        ("wrong client_id", es256.clone(), with("client_id", json!("another-client"))),
        ("from the future", es256.clone(), with("iat", json!(now + 3600))),
        ("wrong typ", json!({ "alg": "ES256", "typ": "JWT" }), claims.clone()),
        ("no typ", json!({ "alg": "ES256" }), claims.clone()),
        ("crit", json!({ "alg": "ES256", "typ": "at+jwt", "crit": ["exp"] }), claims.clone()),
        ("unknown kid", json!({ "alg": "ES256", "typ": "at+jwt", "kid": "nope" }), claims.clone()),
        ("no exp", es256.clone(), {
            let mut c = claims.clone();
            c.as_object_mut().unwrap().remove("exp");
            c
        }),
        ("another user", es256.clone(), with("sub", json!("999"))),
        ("an unknown login", es256.clone(), with("sid", json!("0123456789abcdef0123456789abcdef"))),
    ] {
        bad.push((name, forge(&app, header, claims).await));
    }
    // Within the 60 s leeway an expired token still passes (proves `forge` signs validly).
    let lenient = forge(&app, es256.clone(), with("exp", json!(now - 30))).await;
    assert_eq!(with_bearer(&app, Method::GET, "/api/auth/me", &lenient).await.status, StatusCode::OK);

    let cached = app.state.logins.cached_entries();
    for (name, token) in bad {
        for (method, path) in [(Method::GET, "/api/auth/me"), (Method::POST, "/api/proxy/echo")] {
            let answer = with_bearer(&app, method, path, &token).await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{name} {path}: {}", answer.body);
            assert_eq!(answer.header("www-authenticate"), r#"Bearer error="invalid_token""#, "{name}");
        }
    }
    assert_eq!(app.double.hits("upstream"), 0, "a bad bearer reached the upstream");
    // Only the two tokens our key signed ("another user", "an unknown login") are remembered
    // as verified; the login check still refuses them at every use.
    assert_eq!(app.state.logins.cached_entries(), cached + 2, "a token we did not sign was cached");
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_ends_the_family_and_revokes_logi() {
    let app = spawn_app().await;
    let first = signed_in_device(&app, "ada").await;
    let first_refresh = first["refresh_token"].as_str().unwrap();
    let second = refresh(&app, first_refresh).await;
    assert_eq!((second.status, second.header("cache-control")), (StatusCode::OK, "no-store"), "{}", second.body);
    let second = second.json();
    assert!(second.get("user").is_none());
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_ne!(second["access_token"], first["access_token"]);
    // JSON works as well as a form.
    let body = json!({ "grant_type": "refresh_token", "refresh_token": second["refresh_token"] });
    let third = post_json(&app, "/api/auth/token", &body).await;
    assert_eq!(third.status, StatusCode::OK, "{}", third.body);
    let third = third.json();
    assert_eq!(with_bearer(&app, Method::GET, "/api/auth/me", third["access_token"].as_str().unwrap()).await.status, StatusCode::OK);

    // The first token, rotated away long ago (more than 10 s): someone else holds the family.
    app.execute("UPDATE device_refresh_tokens SET rotated_at = rotated_at - 11 WHERE rotated_at IS NOT NULL").await;
    let logi_refresh = app.double.issued.lock().unwrap().iter().find(|t| t.starts_with("refresh-")).cloned().unwrap();
    assert!(app.double.is_live_refresh_token(&logi_refresh));
    assert_eq!(oauth_error(&refresh(&app, first_refresh).await), (StatusCode::BAD_REQUEST, "invalid_grant".into()));
    assert_eq!(counts(&app).await, [1, 0, 0, 0], "the family outlived a reuse");
    assert!(eventually(|| !app.double.is_live_refresh_token(&logi_refresh)).await, "logi's refresh token was not revoked");
    assert_eq!(oauth_error(&refresh(&app, third["refresh_token"].as_str().unwrap()).await).1, "invalid_grant");
    assert_eq!(with_bearer(&app, Method::GET, "/api/auth/me", third["access_token"].as_str().unwrap()).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_lost_refresh_response_can_be_retried_within_ten_seconds() {
    let app = spawn_app().await;
    let first = signed_in_device(&app, "ada").await;
    let first_refresh = first["refresh_token"].as_str().unwrap();
    let lost = refresh(&app, first_refresh).await.json();
    let retried = refresh(&app, first_refresh).await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.body);
    let retried = retried.json();
    assert_ne!(retried["refresh_token"], lost["refresh_token"]);
    assert_eq!(refresh(&app, retried["refresh_token"].as_str().unwrap()).await.status, StatusCode::OK);
    // The lost successor never reached the app; if it shows up, someone else has it.
    assert_eq!(oauth_error(&refresh(&app, lost["refresh_token"].as_str().unwrap()).await).1, "invalid_grant");
    assert_eq!(app.count("SELECT count(*) FROM logins").await, 0);
}

#[tokio::test]
async fn revocation_ends_the_device_and_its_logi_tokens_and_always_answers_200() {
    let app = spawn_app().await;
    let tokens = signed_in_device(&app, "ada").await;
    let logi_refresh = app.double.issued.lock().unwrap().iter().find(|t| t.starts_with("refresh-")).cloned().unwrap();
    let form = |token: &str| Some(("application/x-www-form-urlencoded", format!("token={token}&token_type_hint=refresh_token").into_bytes()));
    for token in ["unknown-token", tokens["refresh_token"].as_str().unwrap(), tokens["refresh_token"].as_str().unwrap()] {
        let answer = device(&app).send(Method::POST, "/api/auth/revoke", &[], form(token)).await;
        assert_eq!((answer.status, answer.header("cache-control")), (StatusCode::OK, "no-store"));
    }
    assert_eq!(counts(&app).await, [1, 0, 0, 0]);
    assert!(eventually(|| app.double.revoked.lock().unwrap().contains(&logi_refresh)).await);
    assert_eq!(with_bearer(&app, Method::GET, "/api/auth/me", tokens["access_token"].as_str().unwrap()).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(oauth_error(&refresh(&app, tokens["refresh_token"].as_str().unwrap()).await).1, "invalid_grant");
    let missing = device(&app).send(Method::POST, "/api/auth/revoke", &[], Some(("application/x-www-form-urlencoded", Vec::new()))).await;
    assert_eq!(oauth_error(&missing), (StatusCode::BAD_REQUEST, "invalid_request".into()));
}

#[tokio::test]
async fn twenty_concurrent_bearer_calls_after_expiry_share_one_logi_refresh() {
    let app = spawn_app().await;
    app.double.access_token_ttl.store(1, Ordering::SeqCst);
    let tokens = signed_in_device(&app, "ada").await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The refreshed token outlives the 20 calls however slow the machine; then expires again.
    app.double.access_token_ttl.store(3, Ordering::SeqCst);
    app.double.reset_hits();
    let calls = (0..20).map(|_| with_bearer(&app, Method::GET, "/api/proxy/hello", &access));
    let answers = join_all(calls).await;
    assert_eq!(answers.iter().map(|a| a.status).collect::<Vec<_>>(), vec![StatusCode::OK; 20]);
    assert_eq!(app.double.hits("token"), 1);
    assert_no_logi_token(&app, &answers.iter().map(|a| a.body.as_str()).collect::<String>());

    // logi refuses the next refresh: the device login ends, and so does its family.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    *app.double.token_failure.lock().unwrap() = Some((400, "invalid_grant"));
    let refused = with_bearer(&app, Method::GET, "/api/proxy/hello", &access).await;
    assert_eq!((refused.status, refused.json()["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("session_expired")));
    assert_eq!(refused.header("www-authenticate"), r#"Bearer error="invalid_token""#);
    assert_eq!(oauth_error(&refresh(&app, tokens["refresh_token"].as_str().unwrap()).await).1, "invalid_grant");
}

#[tokio::test]
async fn the_account_page_can_end_a_device_and_signing_out_everywhere_ends_them_all() {
    let app = spawn_app().await;
    let phone = signed_in_device(&app, "ada").await;
    let tablet = signed_in_device(&app, "ada").await;
    let browser = app.browser();
    browser.sign_in("ada").await;
    let phone_login = decode(phone["access_token"].as_str().unwrap().split('.').nth(1).unwrap())["sid"].as_str().unwrap().to_owned();
    let form = Some(("application/x-www-form-urlencoded", format!("id={phone_login}").into_bytes()));
    let ended = browser.send(Method::POST, "/api/end_session", &[("origin", &app.url)], form).await;
    assert!(ended.status.is_success() || ended.status.is_redirection(), "{} {}", ended.status, ended.body);
    assert_eq!(with_bearer(&app, Method::GET, "/api/auth/me", phone["access_token"].as_str().unwrap()).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(with_bearer(&app, Method::GET, "/api/auth/me", tablet["access_token"].as_str().unwrap()).await.status, StatusCode::OK);

    let form = Some(("application/x-www-form-urlencoded", Vec::new()));
    browser.send(Method::POST, "/api/sign_out_everywhere", &[("origin", &app.url)], form).await;
    assert_eq!(with_bearer(&app, Method::GET, "/api/auth/me", tablet["access_token"].as_str().unwrap()).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(oauth_error(&refresh(&app, tablet["refresh_token"].as_str().unwrap()).await).1, "invalid_grant");
}

#[tokio::test]
async fn every_bad_exchange_gets_its_code_and_leaves_no_row() {
    let app = spawn_app_with(&[("NATIVE_EXCHANGE_PER_MINUTE", "1000")]).await;
    let auth = authorize(&app, "ada").await;
    let good = body(&auth);
    let with = |key: &str, value: Value| {
        let mut body = good.clone();
        body[key] = value;
        body
    };
    let without = |key: &str| {
        let mut body = good.clone();
        body.as_object_mut().unwrap().remove(key);
        body
    };
    // Refused before logi is asked anything.
    app.double.reset_hits();
    for (name, answer) in [
        ("unknown redirect_uri", exchange(&app, &with("redirect_uri", json!("com.evil.app:/cb"))).await),
        ("no code", exchange(&app, &without("code")).await),
        ("no verifier", exchange(&app, &without("code_verifier")).await),
        ("short verifier", exchange(&app, &with("code_verifier", json!("abc"))).await),
        ("not a string", exchange(&app, &with("code", json!(1))).await),
        ("oversized", exchange(&app, &with("device_name", json!("x".repeat(17 * 1024)))).await),
        ("not JSON", device(&app).send(Method::POST, "/api/auth/logi/exchange", &[], Some(("application/json", b"{".to_vec()))).await),
        ("a form", device(&app).send(Method::POST, "/api/auth/logi/exchange", &[], Some(("application/x-www-form-urlencoded", b"code=x".to_vec()))).await),
    ] {
        assert_eq!(oauth_error(&answer), (StatusCode::BAD_REQUEST, "invalid_request".into()), "{name}");
    }
    assert_eq!(app.double.hits("token"), 0, "logi was asked about an invalid request");

    // The nonce must match both ways.
    assert_eq!(oauth_error(&exchange(&app, &with("nonce", json!("another-nonce"))).await).1, "invalid_id_token");
    let auth = authorize(&app, "ada").await;
    let mut no_nonce = body(&auth);
    no_nonce.as_object_mut().unwrap().remove("nonce");
    assert_eq!(oauth_error(&exchange(&app, &no_nonce).await).1, "invalid_id_token");
    // A used or unknown code, or the wrong verifier: logi refuses the grant.
    assert_eq!(oauth_error(&exchange(&app, &body(&auth)).await).1, "invalid_grant", "a replayed code");
    let auth = authorize(&app, "ada").await;
    let mut wrong_verifier = body(&auth);
    wrong_verifier["code_verifier"] = json!(B64.encode([7u8; 32]));
    assert_eq!(oauth_error(&exchange(&app, &wrong_verifier).await), (StatusCode::BAD_REQUEST, "invalid_grant".into()));
    // userinfo for another account.
    app.double.set_userinfo(json!({ "sub": "someone-else" }));
    assert_eq!(oauth_error(&exchange(&app, &body(&authorize(&app, "ada").await)).await), (StatusCode::BAD_REQUEST, "userinfo_failed".into()));
    // logi down.
    *app.double.token_failure.lock().unwrap() = Some((503, "temporarily_unavailable"));
    assert_eq!(oauth_error(&exchange(&app, &body(&authorize(&app, "ada").await)).await), (StatusCode::BAD_GATEWAY, "provider_unavailable".into()));
    assert_eq!(counts(&app).await, [0, 0, 0, 0], "an error left a row behind");
}

#[tokio::test]
async fn the_exchange_is_rate_limited_per_address() {
    let app = spawn_app_with(&[("NATIVE_EXCHANGE_PER_MINUTE", "2")]).await;
    for _ in 0..2 {
        assert_eq!(exchange(&app, &json!({})).await.status, StatusCode::BAD_REQUEST);
    }
    let limited = exchange(&app, &body(&authorize(&app, "ada").await)).await;
    assert_eq!(oauth_error(&limited), (StatusCode::TOO_MANY_REQUESTS, "slow_down".into()));
    let wait: i64 = limited.header("retry-after").parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
}

#[tokio::test]
async fn cookies_and_origins_mean_nothing_to_the_exchange() {
    let app = spawn_app().await;
    let browser = app.browser();
    browser.sign_in("bob").await;
    let auth = authorize(&app, "ada").await;
    let answer = browser
        .send(Method::POST, "/api/auth/logi/exchange", &[("origin", "https://evil.example")], Some(("application/json", body(&auth).to_string().into_bytes())))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.json()["user"]["sub"].as_str(), Some("logi-user-ada"));
    assert!(answer.set_cookies().is_empty());
    assert_eq!(browser.me().await["sub"].as_str(), Some("logi-user-bob"), "the exchange touched the browser's session");
}

#[tokio::test]
async fn native_endpoints_are_off_without_redirect_uris_and_need_logi() {
    let off = spawn_app_with(&[("NATIVE_REDIRECT_URIS", "")]).await;
    for (method, path) in [
        (Method::POST, "/api/auth/logi/exchange"),
        (Method::POST, "/api/auth/token"),
        (Method::POST, "/api/auth/revoke"),
        (Method::GET, "/.well-known/jwks.json"),
    ] {
        let answer = device(&off).send(method, path, &[], Some(("application/json", b"{}".to_vec()))).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(off.count("SELECT count(*) FROM signing_keys").await, 0);
    let no_logi = spawn_app_with(&[("ONE_PASS_URL", "")]).await;
    let body = json!({ "code": "c", "code_verifier": B64.encode([1u8; 32]), "redirect_uri": NATIVE_REDIRECT_URI });
    assert_eq!(oauth_error(&exchange(&no_logi, &body).await), (StatusCode::SERVICE_UNAVAILABLE, "logi_not_configured".into()));
}

#[tokio::test]
async fn a_key_rotation_keeps_earlier_tokens_valid_and_published() {
    let app = spawn_app().await;
    let before = signed_in_device(&app, "ada").await;
    app.state.logins.devices().rotate_keys(&app.state.db, provider::now()).await.unwrap();
    let after = signed_in_device(&app, "ada").await;
    let kid = |tokens: &Value| decode(tokens["access_token"].as_str().unwrap().split('.').next().unwrap())["kid"].as_str().unwrap().to_owned();
    assert_ne!(kid(&before), kid(&after));
    let jwks = device(&app).get("/.well-known/jwks.json").await.json();
    let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert!(kids.contains(&kid(&before).as_str()) && kids.contains(&kid(&after).as_str()), "{kids:?}");
    for tokens in [&before, &after] {
        assert_eq!(with_bearer(&app, Method::GET, "/api/auth/me", tokens["access_token"].as_str().unwrap()).await.status, StatusCode::OK);
    }
}
