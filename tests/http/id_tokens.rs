//! The logi client's checks: id_token verification (signature, claims, JWKS caching and
//! rotation) and userinfo, against the provider double.

use crate::provider::{self, at_hash, jwk, now, rs256, rsa_key, sign, Double, CLIENT_ID, CLIENT_SECRET};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use logi_bff::auth::errors::AuthError;
use logi_bff::auth::oidc::{Provider, UserInfo};
use logi_bff::ids::Subject;
use logi_bff::login::tokens::TokenError;
use logi_bff::server::config::LogiConfig;
use secrecy::SecretString;
use serde_json::{json, Value};
use sha2::Sha256;
use std::sync::Arc;
use url::Url;

const NONCE: &str = "nonce-123";
const ACCESS_TOKEN: &str = "access-token-abc";

async fn provider_double() -> (Arc<Double>, Provider) {
    let (double, _) = provider::start().await;
    double.set_userinfo(json!({ "sub": "user-1", "email": "a@example.com" }));
    let config = LogiConfig {
        issuer_url: Url::parse(&double.issuer).unwrap(),
        client_id: CLIENT_ID.into(),
        client_secret: Some(SecretString::from(CLIENT_SECRET)),
        scopes: vec!["openid".into()],
        timeout: std::time::Duration::from_secs(10),
        endpoints: logi_bff::server::config::EndpointSource::Discovery,
    };
    let provider = Provider::new(&config, Url::parse("http://localhost:3000/api/auth/callback").unwrap()).unwrap();
    (double, provider)
}

fn claims(issuer: &str) -> Value {
    json!({ "iss": issuer, "sub": "user-1", "aud": CLIENT_ID, "exp": now() + 300, "iat": now(), "nonce": NONCE, "at_hash": at_hash(ACCESS_TOKEN) })
}

async fn verify(provider: &Provider, token: String) -> Result<Subject, AuthError> {
    provider.verify_id_token(&SecretString::from(token), Some(NONCE), &SecretString::from(ACCESS_TOKEN)).await.map(|verified| verified.subject)
}

/// Verifies `claims` after `edit`, signed by key 0 as "k1".
async fn verify_edited(edit: impl FnOnce(&mut Value)) -> Result<Subject, AuthError> {
    let (double, provider) = provider_double().await;
    let mut payload = claims(&double.issuer);
    edit(&mut payload);
    verify(&provider, sign(&rs256("k1"), &payload, rsa_key(0))).await
}

#[tokio::test]
async fn a_valid_id_token_yields_its_subject() {
    assert_eq!(verify_edited(|_| {}).await, Ok(Subject::new("user-1")));
}

#[tokio::test]
async fn the_logi_session_id_is_read_when_present() {
    let (double, provider) = provider_double().await;
    for (sid, expected) in [(json!("op-session-1"), Some("op-session-1".to_owned())), (json!(""), None), (Value::Null, None)] {
        let mut payload = claims(&double.issuer);
        payload["sid"] = sid;
        let token = SecretString::from(sign(&rs256("k1"), &payload, rsa_key(0)));
        let verified = provider.verify_id_token(&token, Some(NONCE), &SecretString::from(ACCESS_TOKEN)).await.unwrap();
        assert_eq!((verified.session.sub.as_str(), verified.session.sid), ("user-1", expected));
    }
}

#[tokio::test]
async fn a_token_without_at_hash_is_accepted() {
    // oidc-provider omits at_hash from token-endpoint id_tokens; it is checked only when present.
    assert_eq!(
        verify_edited(|c| {
            c.as_object_mut().unwrap().remove("at_hash");
        })
        .await,
        Ok(Subject::new("user-1"))
    );
}

#[tokio::test]
async fn each_claim_check_fails_closed() {
    type Edit = Box<dyn FnOnce(&mut Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        ("wrong iss", Box::new(|c| c["iss"] = json!("https://evil.example"))),
        ("wrong aud", Box::new(|c| c["aud"] = json!("someone-else"))),
        ("several audiences, no azp", Box::new(|c| c["aud"] = json!([CLIENT_ID, "other"]))),
        (
            "several audiences, wrong azp",
            Box::new(|c| {
                c["aud"] = json!([CLIENT_ID, "other"]);
                c["azp"] = json!("other");
            }),
        ),
        ("azp of another client", Box::new(|c| c["azp"] = json!("other"))),
        ("expired", Box::new(|c| c["exp"] = json!(now() - 10))),
        (
            "missing iat",
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("iat");
            }),
        ),
        (
            "missing sub",
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("sub");
            }),
        ),
        ("wrong nonce", Box::new(|c| c["nonce"] = json!("replayed"))),
        (
            "missing nonce",
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("nonce");
            }),
        ),
        ("wrong at_hash", Box::new(|c| c["at_hash"] = json!(at_hash("another-token")))),
    ];
    for (case, edit) in cases {
        assert_eq!(verify_edited(edit).await, Err(AuthError::IdTokenInvalid), "{case}");
    }
}

#[tokio::test]
async fn a_bad_signature_is_rejected() {
    let (double, provider) = provider_double().await;
    let forged = sign(&rs256("k1"), &claims(&double.issuer), rsa_key(1));
    assert_eq!(verify(&provider, forged).await, Err(AuthError::IdTokenInvalid));
    let mut tampered = sign(&rs256("k1"), &claims(&double.issuer), rsa_key(0));
    let payload = json!({ "sub": "admin" });
    let parts: Vec<&str> = tampered.split('.').collect();
    tampered = format!("{}.{}.{}", parts[0], B64.encode(payload.to_string()), parts[2]);
    assert_eq!(verify(&provider, tampered).await, Err(AuthError::IdTokenInvalid));
}

#[tokio::test]
async fn alg_none_and_unadvertised_algorithms_are_rejected() {
    let (double, provider) = provider_double().await;
    let payload = claims(&double.issuer);
    let unsigned = format!("{}.{}.", B64.encode(json!({ "alg": "none" }).to_string()), B64.encode(payload.to_string()));
    assert_eq!(verify(&provider, unsigned).await, Err(AuthError::IdTokenInvalid));

    // HS256 keyed with the client secret: valid for a confidential client, but logi does not advertise it.
    use hmac::{Hmac, Mac};
    let input = format!("{}.{}", B64.encode(json!({ "alg": "HS256" }).to_string()), B64.encode(payload.to_string()));
    let mut mac = Hmac::<Sha256>::new_from_slice(CLIENT_SECRET.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    let hs256 = format!("{input}.{}", B64.encode(mac.finalize().into_bytes()));
    assert_eq!(verify(&provider, hs256).await, Err(AuthError::IdTokenInvalid));
}

#[tokio::test]
async fn an_unknown_kid_refetches_the_jwks_once_then_fails_closed() {
    let (double, provider) = provider_double().await;
    let token = sign(&rs256("k-unknown"), &claims(&double.issuer), rsa_key(1));
    assert_eq!(verify(&provider, token.clone()).await, Err(AuthError::IdTokenInvalid));
    assert_eq!((double.hits("discovery"), double.hits("jwks")), (1, 2), "discovery + one refetch");
    assert_eq!(verify(&provider, token).await, Err(AuthError::IdTokenInvalid));
    assert_eq!(double.hits("jwks"), 2, "the refetch is rate-limited");
}

#[tokio::test]
async fn a_rotated_key_is_found_by_the_refetch() {
    let (double, provider) = provider_double().await;
    provider.endpoints().await.unwrap();
    double.set_jwks(json!({ "keys": [jwk(rsa_key(0), "k1"), jwk(rsa_key(1), "k2")] }));
    let token = sign(&rs256("k2"), &claims(&double.issuer), rsa_key(1));
    assert_eq!(verify(&provider, token).await, Ok(Subject::new("user-1")));
}

#[tokio::test]
async fn discovery_and_jwks_are_cached() {
    let (double, provider) = provider_double().await;
    for _ in 0..3 {
        assert_eq!(verify(&provider, sign(&rs256("k1"), &claims(&double.issuer), rsa_key(0))).await, Ok(Subject::new("user-1")));
    }
    assert_eq!((double.hits("discovery"), double.hits("jwks")), (1, 1));
}

#[tokio::test]
async fn userinfo_for_another_subject_is_rejected() {
    let (double, provider) = provider_double().await;
    double.set_userinfo(json!({ "sub": "someone-else", "email": "x@example.com" }));
    let result = provider.userinfo(&SecretString::from(ACCESS_TOKEN), &Subject::new("user-1")).await;
    assert_eq!(result, Err(AuthError::UserinfoSubMismatch));
}

#[tokio::test]
async fn userinfo_claims_are_read_leniently_but_sub_is_required() {
    let (double, provider) = provider_double().await;
    double.set_userinfo(json!({ "sub": "user-1", "email": 42, "name": "  ", "nickname": "nick", "anonymous": "yes" }));
    let info = provider.userinfo(&SecretString::from(ACCESS_TOKEN), &Subject::new("user-1")).await.unwrap();
    assert_eq!(info, UserInfo { sub: "user-1".into(), email: None, name: None, nickname: Some("nick".into()), anonymous: false });
    double.set_userinfo(json!({ "email": "a@example.com" }));
    assert_eq!(provider.userinfo(&SecretString::from(ACCESS_TOKEN), &Subject::new("user-1")).await, Err(AuthError::UserinfoFailed));
}

#[tokio::test]
async fn an_unreachable_provider_is_reported_as_such() {
    let config = LogiConfig {
        issuer_url: Url::parse("http://127.0.0.1:9").unwrap(),
        client_id: "c".into(),
        client_secret: None,
        scopes: vec![],
        timeout: std::time::Duration::from_secs(10),
        endpoints: logi_bff::server::config::EndpointSource::Discovery,
    };
    let provider = Provider::new(&config, Url::parse("http://localhost/cb").unwrap()).unwrap();
    assert_eq!(provider.endpoints().await.err(), Some(AuthError::ProviderUnreachable));
}

#[tokio::test]
async fn without_a_client_secret_no_code_is_sent_to_the_provider() {
    let (double, _) = provider_double().await;
    let config = LogiConfig {
        issuer_url: Url::parse(&double.issuer).unwrap(),
        client_id: CLIENT_ID.into(),
        client_secret: None,
        scopes: vec![],
        timeout: std::time::Duration::from_secs(10),
        endpoints: logi_bff::server::config::EndpointSource::Discovery,
    };
    let provider = Provider::new(&config, Url::parse("http://localhost/cb").unwrap()).unwrap();
    assert_eq!(provider.exchange_code("code", "verifier", "http://localhost/cb").await.err(), Some(TokenError::NoClientSecret));
    assert_eq!(double.hits("discovery"), 0);
}
