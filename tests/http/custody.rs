//! Token custody: sealing at rest and single-flight refresh, against the provider
//! double's token endpoint (rotating refresh tokens, revoking the family on reuse).

use crate::provider::{self, Consent, Double, CLIENT_ID, CLIENT_SECRET};
use logi_bff::auth::oidc::Provider;
use logi_bff::ids::LoginId;
use logi_bff::login::tokens::{AccessToken, Audience, Custody, CustodyError, HeldTokens, TokenAuthority};
use logi_bff::server::config::LogiConfig;
use logi_bff::server::db::{query, Db};
use secrecy::{ExposeSecret, SecretString};
use std::sync::atomic::Ordering;
use std::sync::Arc;

fn login(id: &str) -> LoginId {
    LoginId::from_untrusted(id)
}

fn now() -> i64 {
    provider::now()
}

async fn pool() -> (tempfile::TempDir, Db) {
    let (dir, pool) = crate::support::test_db().await;
    pool.execute("INSERT INTO users (id) VALUES (1)").await.unwrap();
    for id in ["login-1", "login-2"] {
        pool.execute(&format!("INSERT INTO logins (id, user_id, method) VALUES ('{id}', 1, 'logi')")).await.unwrap();
    }
    (dir, pool)
}

fn custody(secret: &str) -> Arc<Custody> {
    Arc::new(Custody::new(&SecretString::from(secret.to_owned())))
}

fn held(access: &str, refresh: Option<&str>, expires_at: i64) -> HeldTokens {
    HeldTokens {
        access: AccessToken { secret: access.into(), expires_at, lifetime_secs: 300, scope: Some("openid".into()) },
        refresh_token: refresh.map(Into::into),
        id_token: Some("id-token".into()),
        for_apis: Default::default(),
    }
}

/// The login's own token, as an API without `resource` or `scopes` takes it.
const OWN: Audience = Audience { resource: None, scopes: Vec::new() };
const DEFAULT: (&str, &Audience) = ("default", &OWN);

#[tokio::test]
async fn tokens_are_sealed_at_rest_and_open_only_for_their_login_and_key() {
    let (_dir, pool) = pool().await;
    let custody = custody("session-secret-0123456789abcdef-0123");
    custody.keep(&pool, &login("login-1"), &held("access-plain", Some("refresh-plain"), 42), None).await.unwrap();

    let sealed: Vec<u8> = query("SELECT sealed FROM login_tokens").scalar(&pool).await.unwrap();
    let as_text = String::from_utf8_lossy(&sealed);
    assert!(!as_text.contains("access-plain") && !as_text.contains("refresh-plain"), "a token is readable at rest");

    // A second custody with the same key has nothing cached: this opens the stored row.
    let loaded = self::custody("session-secret-0123456789abcdef-0123").load(&pool, &login("login-1")).await.unwrap().unwrap();
    assert_eq!(
        (loaded.access.secret.expose_secret(), loaded.refresh_token.unwrap().expose_secret(), loaded.access.expires_at),
        ("access-plain", "refresh-plain", 42)
    );

    let rotated_secret = self::custody("another-session-secret-0123456789abcdef");
    assert!(rotated_secret.load(&pool, &login("login-1")).await.unwrap().is_none(), "opened with another SESSION_SECRET");
    pool.execute("UPDATE login_tokens SET login_id = 'login-2'").await.unwrap();
    assert!(custody.load(&pool, &login("login-2")).await.unwrap().is_none(), "a row moved to another login opened");
}

#[tokio::test]
async fn ending_the_login_deletes_its_tokens() {
    let (_dir, pool) = pool().await;
    let custody = custody("session-secret-0123456789abcdef-0123");
    custody.keep(&pool, &login("login-1"), &held("a", Some("r"), 42), None).await.unwrap();
    pool.execute("DELETE FROM logins WHERE id = 'login-1'").await.unwrap();
    let rows = pool.count("SELECT count(*) FROM login_tokens").await.unwrap();
    assert_eq!(rows, 0);
}

async fn provider_with(rotate: bool) -> (Arc<Double>, Arc<dyn TokenAuthority>) {
    let (double, _) = provider::start().await;
    double.rotate.store(rotate, Ordering::SeqCst);
    double.access_token_ttl.store(60, Ordering::SeqCst);
    let config = LogiConfig {
        issuer_url: url::Url::parse(&double.issuer).unwrap(),
        client_id: CLIENT_ID.into(),
        client_secret: Some(CLIENT_SECRET.into()),
        scopes: vec!["openid".into()],
        timeout: std::time::Duration::from_secs(10),
        endpoints: logi_bff::server::config::EndpointSource::Discovery,
    };
    (double.clone(), Arc::new(Provider::new(&config, url::Url::parse("http://localhost/cb").unwrap()).unwrap()))
}

async fn expired_login(double: &Double, pool: &Db, custody: &Custody) {
    double.issue_refresh_token("refresh-0", "logi-user-alice");
    custody.keep(pool, &login("login-1"), &held("access-0", Some("refresh-0"), now() - 1), None).await.unwrap();
}

#[tokio::test]
async fn twenty_concurrent_requests_after_expiry_share_one_refresh() {
    let (_dir, pool) = pool().await;
    let (double, provider) = provider_with(true).await;
    let custody = custody("session-secret-0123456789abcdef-0123");
    expired_login(&double, &pool, &custody).await;

    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (pool, provider, custody) = (pool.clone(), provider.clone(), custody.clone());
            tokio::spawn(async move { custody.access_token(&pool, &provider, &login("login-1"), 30, DEFAULT).await.map(|t| t.expose_secret().to_owned()) })
        })
        .collect();
    let mut tokens = Vec::new();
    for task in tasks {
        tokens.push(task.await.unwrap().unwrap());
    }
    assert!(tokens.iter().all(|t| t == &tokens[0] && t.starts_with("access-")), "{tokens:?}");
    assert_eq!(double.hits("token"), 1);
    let stored = custody.load(&pool, &login("login-1")).await.unwrap().unwrap();
    let rotated = stored.refresh_token.unwrap().expose_secret().to_owned();
    assert!(rotated != "refresh-0" && double.is_live_refresh_token(&rotated), "the rotated refresh token was not kept");
    assert_eq!(stored.id_token.unwrap().expose_secret(), "id-token");
}

#[tokio::test]
async fn a_refresh_completes_and_is_kept_even_when_its_caller_gives_up() {
    let (_dir, pool) = pool().await;
    let (double, provider) = provider_with(true).await;
    let custody = custody("session-secret-0123456789abcdef-0123");
    expired_login(&double, &pool, &custody).await;
    // The double answers refresh grants after 150 ms; the caller is dropped after 20.
    let dropped = tokio::time::timeout(std::time::Duration::from_millis(20), custody.access_token(&pool, &provider, &login("login-1"), 30, DEFAULT)).await;
    assert!(dropped.is_err(), "the refresh finished before the caller gave up");
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let stored = custody.load(&pool, &login("login-1")).await.unwrap().unwrap();
    let rotated = stored.refresh_token.unwrap().expose_secret().to_owned();
    assert!(rotated != "refresh-0" && double.is_live_refresh_token(&rotated), "the rotated refresh token was lost with the request");
    assert!(custody.access_token(&pool, &provider, &login("login-1"), 30, DEFAULT).await.is_ok());
    assert_eq!(double.hits("token"), 1);
}

#[tokio::test]
async fn tokens_shorter_than_the_skew_are_refreshed_once_not_on_every_call() {
    let (_dir, pool) = pool().await;
    let (double, provider) = provider_with(true).await;
    double.access_token_ttl.store(4, Ordering::SeqCst);
    let custody = custody("session-secret-0123456789abcdef-0123");
    expired_login(&double, &pool, &custody).await;
    // A 30 s skew against 4 s tokens: uncapped, every one of these calls would refresh.
    for _ in 0..5 {
        custody.access_token(&pool, &provider, &login("login-1"), 30, DEFAULT).await.unwrap();
    }
    assert_eq!(double.hits("token"), 1, "a refresh storm");
}

#[tokio::test]
async fn a_response_without_a_new_refresh_token_keeps_the_old_one() {
    let (_dir, pool) = pool().await;
    let (double, provider) = provider_with(false).await;
    let custody = custody("session-secret-0123456789abcdef-0123");
    expired_login(&double, &pool, &custody).await;
    custody.access_token(&pool, &provider, &login("login-1"), 30, DEFAULT).await.unwrap();
    let stored = custody.load(&pool, &login("login-1")).await.unwrap().unwrap();
    assert_eq!(stored.refresh_token.unwrap().expose_secret(), "refresh-0");
}

#[tokio::test]
async fn a_refused_refresh_token_means_expired_and_a_fresh_token_means_no_refresh() {
    let (_dir, pool) = pool().await;
    let (double, provider) = provider_with(true).await;
    let custody = custody("session-secret-0123456789abcdef-0123");
    custody.keep(&pool, &login("login-1"), &held("still-good", Some("unknown-refresh"), now() + 3600), None).await.unwrap();
    assert_eq!(custody.access_token(&pool, &provider, &login("login-1"), 30, DEFAULT).await.unwrap().expose_secret(), "still-good");
    assert_eq!(double.hits("token"), 0);

    custody.keep(&pool, &login("login-1"), &held("expiring", Some("unknown-refresh"), now() + 10), None).await.unwrap();
    assert_eq!(custody.access_token(&pool, &provider, &login("login-1"), 30, DEFAULT).await.err(), Some(CustodyError::Expired));
    assert_eq!(custody.access_token(&pool, &provider, &login("login-2"), 30, DEFAULT).await.err(), Some(CustodyError::NoTokens));
}

const ORDERS: &str = "https://orders.test/";
const BILLING: &str = "https://billing.test/";

fn audience(resource: Option<&str>, scopes: &[&str]) -> Audience {
    Audience { resource: resource.map(str::to_owned), scopes: scopes.iter().map(|s| s.to_string()).collect() }
}

/// A login whose sign-in asked for both resources, holding expired tokens for them.
async fn login_with_resources(double: &Double, pool: &Db, custody: &Custody, resources: &[&str]) {
    let consent = Consent { resources: resources.iter().map(|r| r.to_string()).collect(), scope: "openid orders:read billing:read".into(), acr: None };
    double.issue_refresh_token_with("refresh-0", "logi-user-alice", consent);
    let mut tokens = held("access-0", Some("refresh-0"), now() + 3600);
    for (api, resource, scope) in [("orders", ORDERS, "orders:read"), ("billing", BILLING, "billing:read")] {
        let expired = AccessToken { secret: format!("{api}-expired").into(), expires_at: now() - 1, lifetime_secs: 60, scope: Some(scope.into()) };
        tokens.for_apis.insert(api.into(), (audience(Some(resource), &[scope]), expired));
    }
    custody.keep(pool, &login("login-1"), &tokens, None).await.unwrap();
}

#[tokio::test]
async fn twenty_concurrent_calls_over_two_resource_apis_get_one_grant_per_api_and_keep_the_family() {
    let (_dir, pool) = pool().await;
    let (double, provider) = provider_with(true).await;
    let custody = custody("session-secret-0123456789abcdef-0123");
    login_with_resources(&double, &pool, &custody, &[ORDERS, BILLING]).await;

    let apis = [("orders", audience(Some(ORDERS), &["orders:read"])), ("billing", audience(Some(BILLING), &["billing:read"]))];
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (pool, provider, custody, (api, audience)) = (pool.clone(), provider.clone(), custody.clone(), apis[i % 2].clone());
            tokio::spawn(async move { (api, custody.access_token(&pool, &provider, &login("login-1"), 30, (api, &audience)).await) })
        })
        .collect();
    let mut seen: std::collections::HashMap<&str, std::collections::HashSet<String>> = Default::default();
    for task in tasks {
        let (api, token) = task.await.unwrap();
        seen.entry(api).or_default().insert(token.expect("no call may fail").expose_secret().to_owned());
    }
    assert_eq!((double.grants_for("refresh_token", Some(ORDERS)), double.grants_for("refresh_token", Some(BILLING))), (1, 1), "one grant per API");
    assert_eq!(double.grants_for("refresh_token", None), 0, "the login's own token was fresh");
    for (api, resource) in [("orders", ORDERS), ("billing", BILLING)] {
        assert_eq!(seen[api].len(), 1, "{api}: callers got different tokens");
        let token = seen[api].iter().next().unwrap();
        let issued = double.issued_access_token(token).expect("a live token");
        assert_eq!(issued.aud.as_deref(), Some(resource), "{api}'s token is for another audience");
    }
    assert!(seen["orders"].is_disjoint(&seen["billing"]));
    // The family is intact: exactly one live refresh token, the stored one.
    let stored = self::custody("session-secret-0123456789abcdef-0123").load(&pool, &login("login-1")).await.unwrap().unwrap();
    assert_eq!(double.live_refresh_tokens_of("logi-user-alice"), 1);
    assert!(double.is_live_refresh_token(stored.refresh_token.unwrap().expose_secret()));
    assert_eq!(stored.access.secret.expose_secret(), "access-0", "a resource grant replaced the login's own token");
    assert_eq!(stored.for_apis.len(), 2, "the API tokens were not sealed with the login");
}

#[tokio::test]
async fn a_resource_the_sign_in_did_not_ask_for_is_refused_and_the_login_is_kept() {
    let (_dir, pool) = pool().await;
    let (double, provider) = provider_with(true).await;
    let custody = custody("session-secret-0123456789abcdef-0123");
    login_with_resources(&double, &pool, &custody, &[ORDERS]).await;
    let billing = audience(Some(BILLING), &["billing:read"]);
    assert_eq!(custody.access_token(&pool, &provider, &login("login-1"), 30, ("billing", &billing)).await.err(), Some(CustodyError::ResourceNotGranted));
    assert!(double.is_live_refresh_token("refresh-0"), "the refused grant cost the login its refresh token");
    let orders = audience(Some(ORDERS), &["orders:read"]);
    assert!(custody.access_token(&pool, &provider, &login("login-1"), 30, ("orders", &orders)).await.is_ok());
}

#[tokio::test]
async fn a_scope_the_grant_lacks_is_insufficient_scope() {
    let (_dir, pool) = pool().await;
    let (double, provider) = provider_with(true).await;
    let custody = custody("session-secret-0123456789abcdef-0123");
    login_with_resources(&double, &pool, &custody, &[ORDERS]).await;
    // The login's own token was granted "openid": no grant is tried for what it lacks.
    let email = audience(None, &["email"]);
    assert_eq!(custody.access_token(&pool, &provider, &login("login-1"), 30, ("profile", &email)).await.err(), Some(CustodyError::InsufficientScope));
    assert_eq!(double.hits("token"), 0);
    // A resource token asked for a scope the sign-in's grant does not hold.
    let write = audience(Some(ORDERS), &["orders:write"]);
    assert_eq!(custody.access_token(&pool, &provider, &login("login-1"), 30, ("orders", &write)).await.err(), Some(CustodyError::InsufficientScope));
    assert!(double.is_live_refresh_token("refresh-0"));
}
