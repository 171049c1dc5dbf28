//! Sealing and single-flight refresh, against a token endpoint double on loopback that
//! rotates refresh tokens and, like logi, revokes the family when an old one is reused.

use super::*;
use crate::auth::oidc::Provider;
use crate::server::config::LogiConfig;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::json;
use std::collections::HashSet;

fn login(id: &str) -> LoginId {
    LoginId::from_untrusted(id)
}

async fn pool() -> (tempfile::TempDir, SqlitePool) {
    let (dir, pool) = crate::server::db::temp_pool().await;
    sqlx::query("INSERT INTO users (id) VALUES (1)").execute(&pool).await.unwrap();
    for id in ["login-1", "login-2"] {
        sqlx::query("INSERT INTO logins (id, user_id, method) VALUES (?, 1, 'logi')").bind(id).execute(&pool).await.unwrap();
    }
    (dir, pool)
}

fn custody(secret: &str) -> Custody {
    Custody::new(&SecretString::from(secret.to_owned()))
}

fn held(access: &str, refresh: Option<&str>, expires_at: i64) -> HeldTokens {
    HeldTokens { access_token: access.into(), refresh_token: refresh.map(Into::into), id_token: Some("id-token".into()), expires_at }
}

#[tokio::test]
async fn tokens_are_sealed_at_rest_and_open_only_for_their_login_and_key() {
    let (_dir, pool) = pool().await;
    let custody = custody("session-secret-0123456789abcdef-0123");
    custody.keep(&pool, &login("login-1"), &held("access-plain", Some("refresh-plain"), 42)).await.unwrap();

    let sealed: Vec<u8> = sqlx::query_scalar("SELECT sealed FROM login_tokens").fetch_one(&pool).await.unwrap();
    let as_text = String::from_utf8_lossy(&sealed);
    assert!(!as_text.contains("access-plain") && !as_text.contains("refresh-plain"), "a token is readable at rest");

    let loaded = custody.load(&pool, &login("login-1")).await.unwrap().unwrap();
    assert_eq!((loaded.access_token.expose_secret(), loaded.refresh_token.unwrap().expose_secret(), loaded.expires_at), ("access-plain", "refresh-plain", 42));

    let rotated_secret = self::custody("another-session-secret-0123456789abcdef");
    assert!(rotated_secret.load(&pool, &login("login-1")).await.unwrap().is_none(), "opened with another SESSION_SECRET");
    sqlx::query("UPDATE login_tokens SET login_id = 'login-2'").execute(&pool).await.unwrap();
    assert!(custody.load(&pool, &login("login-2")).await.unwrap().is_none(), "a row moved to another login opened");
}

#[tokio::test]
async fn ending_the_login_deletes_its_tokens() {
    let (_dir, pool) = pool().await;
    let custody = custody("session-secret-0123456789abcdef-0123");
    custody.keep(&pool, &login("login-1"), &held("a", Some("r"), 42)).await.unwrap();
    sqlx::query("DELETE FROM logins WHERE id = ?").bind(&login("login-1")).execute(&pool).await.unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM login_tokens").fetch_one(&pool).await.unwrap();
    assert_eq!(rows, 0);
}

/// The token endpoint double: every refresh token works once; reusing one revokes all.
#[derive(Default)]
struct TokenEndpoint {
    live: Mutex<HashSet<String>>,
    refreshes: Mutex<usize>,
    rotate: bool,
}

async fn token(State(endpoint): State<Arc<TokenEndpoint>>, Form(form): Form<HashMap<String, String>>) -> (axum::http::StatusCode, Json<serde_json::Value>) {
    let n = {
        let mut refreshes = endpoint.refreshes.lock().unwrap();
        *refreshes += 1;
        *refreshes
    };
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let presented = form.get("refresh_token").cloned().unwrap_or_default();
    let mut live = endpoint.live.lock().unwrap();
    if !live.remove(&presented) {
        live.clear();
        return (axum::http::StatusCode::BAD_REQUEST, Json(json!({ "error": "invalid_grant" })));
    }
    let mut body = json!({ "access_token": format!("access-{n}"), "token_type": "Bearer", "expires_in": 60 });
    if endpoint.rotate {
        live.insert(format!("refresh-{n}"));
        body["refresh_token"] = json!(format!("refresh-{n}"));
    } else {
        live.insert(presented);
    }
    (axum::http::StatusCode::OK, Json(body))
}

async fn provider_with(endpoint: Arc<TokenEndpoint>) -> Provider {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let document = json!({
        "issuer": issuer, "authorization_endpoint": format!("{issuer}/auth"), "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/me"), "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"], "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": ["RS256"],
    });
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(move || async move { Json(document) }))
        .route("/jwks", get(|| async { Json(json!({ "keys": [] })) }))
        .route("/token", post(token))
        .with_state(endpoint);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let config = LogiConfig {
        issuer_url: url::Url::parse(&issuer).unwrap(),
        client_id: "client".into(),
        client_secret: Some("secret".into()),
        scopes: vec!["openid".into()],
    };
    Provider::new(&config, url::Url::parse("http://localhost/cb").unwrap()).unwrap()
}

async fn expired_login(endpoint: &TokenEndpoint, pool: &SqlitePool, custody: &Custody) {
    endpoint.live.lock().unwrap().insert("refresh-0".into());
    custody.keep(pool, &login("login-1"), &held("access-0", Some("refresh-0"), now() - 1)).await.unwrap();
}

#[tokio::test]
async fn twenty_concurrent_requests_after_expiry_share_one_refresh() {
    let (_dir, pool) = pool().await;
    let endpoint = Arc::new(TokenEndpoint { rotate: true, ..Default::default() });
    let provider = Arc::new(provider_with(endpoint.clone()).await);
    let custody = Arc::new(custody("session-secret-0123456789abcdef-0123"));
    expired_login(&endpoint, &pool, &custody).await;

    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (pool, provider, custody) = (pool.clone(), provider.clone(), custody.clone());
            tokio::spawn(async move { custody.access_token(&pool, &*provider, &login("login-1"), 30).await.map(|t| t.expose_secret().to_owned()) })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), Ok("access-1".to_owned()));
    }
    assert_eq!(*endpoint.refreshes.lock().unwrap(), 1);
    let stored = custody.load(&pool, &login("login-1")).await.unwrap().unwrap();
    assert_eq!(stored.refresh_token.unwrap().expose_secret(), "refresh-1", "the rotated refresh token was not kept");
    assert_eq!(stored.id_token.unwrap().expose_secret(), "id-token");
}

#[tokio::test]
async fn a_response_without_a_new_refresh_token_keeps_the_old_one() {
    let (_dir, pool) = pool().await;
    let endpoint = Arc::new(TokenEndpoint { rotate: false, ..Default::default() });
    let provider = provider_with(endpoint.clone()).await;
    let custody = custody("session-secret-0123456789abcdef-0123");
    expired_login(&endpoint, &pool, &custody).await;
    custody.access_token(&pool, &provider, &login("login-1"), 30).await.unwrap();
    let stored = custody.load(&pool, &login("login-1")).await.unwrap().unwrap();
    assert_eq!(stored.refresh_token.unwrap().expose_secret(), "refresh-0");
}

#[tokio::test]
async fn a_refused_refresh_token_means_expired_and_a_fresh_token_means_no_refresh() {
    let (_dir, pool) = pool().await;
    let endpoint = Arc::new(TokenEndpoint { rotate: true, ..Default::default() });
    let provider = provider_with(endpoint.clone()).await;
    let custody = custody("session-secret-0123456789abcdef-0123");
    custody.keep(&pool, &login("login-1"), &held("still-good", Some("unknown-refresh"), now() + 3600)).await.unwrap();
    assert_eq!(custody.access_token(&pool, &provider, &login("login-1"), 30).await.unwrap().expose_secret(), "still-good");
    assert_eq!(*endpoint.refreshes.lock().unwrap(), 0);

    custody.keep(&pool, &login("login-1"), &held("expiring", Some("unknown-refresh"), now() + 10)).await.unwrap();
    assert_eq!(custody.access_token(&pool, &provider, &login("login-1"), 30).await.err(), Some(CustodyError::Expired));
    assert_eq!(custody.access_token(&pool, &provider, &login("login-2"), 30).await.err(), Some(CustodyError::NoTokens));
}
