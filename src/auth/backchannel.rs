//! OpenID Connect Back-Channel Logout 1.0: `POST /api/auth/backchannel-logout`, where
//! logi tells us a user signed out there. The logout token is checked like an
//! id_token (logi's JWKS, never `none`) plus the logout rules (§2.6); a token with
//! `sid` ends the logins of that logi session, one with only `sub` every login of that
//! logi user, browsers and native devices alike, and their refresh tokens are revoked.
//!
//! Outside the session and cross-site layers: logi calls it server to server, with no
//! cookie and no same-origin header. Answers `200` (also when nothing was signed in)
//! or `400 {"error":"invalid_request"}`, never cached.

use super::flow::Auth;
use super::oidc::JwsRejection;
use super::store;
use crate::server::crypto::{Audience, JWT_LEEWAY_SECS};
use crate::server::{json_error, no_store, request, unix_now, AppError};
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use serde_json::Value;

pub const BACKCHANNEL_LOGOUT: &str = "/api/auth/backchannel-logout";
const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// A logout token is meant to be used at once (logi's live for minutes); a longer one
/// would also make us remember its `jti` for longer.
const MAX_LIFETIME_SECS: i64 = 3600;
const MAX_CLAIM_CHARS: usize = 255;

pub fn routes<S>() -> Router<S>
where
    Auth: axum::extract::FromRequestParts<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new().route(BACKCHANNEL_LOGOUT, post(backchannel_logout))
}

#[derive(Debug)]
enum LogoutError {
    Invalid(String),
    /// logi's keys could not be fetched to check the token: `503`, so logi may try again.
    ProviderUnreachable,
    Internal(AppError),
}

impl From<AppError> for LogoutError {
    fn from(error: AppError) -> Self {
        Self::Internal(error)
    }
}

impl IntoResponse for LogoutError {
    fn into_response(self) -> Response {
        match self {
            Self::Invalid(reason) => {
                tracing::warn!(%reason, "back-channel logout refused");
                json_error(StatusCode::BAD_REQUEST, "invalid_request")
            }
            Self::ProviderUnreachable => json_error(StatusCode::SERVICE_UNAVAILABLE, "provider_unreachable"),
            Self::Internal(error) => error.into_response(),
        }
    }
}

fn invalid(reason: impl Into<String>) -> LogoutError {
    LogoutError::Invalid(reason.into())
}

async fn backchannel_logout(auth: Auth, headers: HeaderMap, body: Body) -> Response {
    match log_out(&auth, &headers, body).await {
        Ok(ended) => {
            tracing::info!(ended, "back-channel logout");
            no_store(StatusCode::OK.into_response())
        }
        Err(error) => error.into_response(),
    }
}

async fn log_out(auth: &Auth, headers: &HeaderMap, body: Body) -> Result<u64, LogoutError> {
    let token = logout_token(headers, body).await?;
    // Without logi configured no token can be checked (and no login holds logi's tokens).
    let provider = auth.logi.as_ref().ok_or_else(|| invalid("logi is not configured"))?;
    let (header, claims) = provider.verify_jws(&token).await.map_err(|rejection| match rejection {
        JwsRejection::ProviderUnreachable => LogoutError::ProviderUnreachable,
        other => invalid(other.to_string()),
    })?;
    check_type(&header)?;
    let logout = LogoutClaims::check(&claims, provider.issuer().as_str(), provider.client_id(), unix_now())?;
    let mut tx = auth.db.begin_locked("backchannel-logout").await.map_err(AppError::from)?;
    if !store::first_use_of_logout_token(&mut tx, &logout.jti, logout.expires_at).await? {
        return Err(invalid("logout token replayed (jti already used)"));
    }
    Ok(auth.logins.end_logi_session(tx, logout.sub.as_deref(), logout.sid.as_deref()).await?)
}

/// The `logout_token` field of the form body.
async fn logout_token(headers: &HeaderMap, body: Body) -> Result<String, LogoutError> {
    if !request::is_media_type(headers, request::FORM) {
        return Err(invalid("not a form post"));
    }
    let bytes = request::small_body(body).await.ok_or_else(|| invalid("body too large or unreadable"))?;
    let mut tokens = form_urlencoded::parse(&bytes).filter(|(name, _)| name == "logout_token").map(|(_, value)| value.into_owned());
    match (tokens.next(), tokens.next()) {
        (Some(token), None) if !token.is_empty() => Ok(token),
        (Some(_), Some(_)) => Err(invalid("logout_token given twice")),
        _ => Err(invalid("logout_token is missing")),
    }
}

/// `typ`, when present, must say this is a logout token (§2.4), so an id_token or an
/// access token is never taken for one.
fn check_type(header: &Value) -> Result<(), LogoutError> {
    match header.get("typ") {
        None => Ok(()),
        Some(Value::String(typ)) if typ.eq_ignore_ascii_case("logout+jwt") || typ.eq_ignore_ascii_case("application/logout+jwt") => Ok(()),
        Some(other) => Err(invalid(format!("typ {other} is not logout+jwt"))),
    }
}

/// The claims of a valid logout token (OpenID Connect Back-Channel Logout 1.0 §2.6).
#[derive(Debug, PartialEq, Eq)]
struct LogoutClaims {
    sub: Option<String>,
    sid: Option<String>,
    jti: String,
    /// Until when its `jti` is remembered.
    expires_at: i64,
}

impl LogoutClaims {
    fn check(claims: &Value, issuer: &str, client_id: &str, now: i64) -> Result<Self, LogoutError> {
        if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
            return Err(invalid("iss is not logi's"));
        }
        let audience_ok = claims.get("aud").and_then(|aud| Audience::deserialize(aud).ok()).is_some_and(|aud| aud.contains(client_id));
        if !audience_ok {
            return Err(invalid("aud is not our client id"));
        }
        let time = |name: &str| claims.get(name).and_then(Value::as_i64).ok_or_else(|| invalid(format!("{name} is missing or not a number")));
        let (iat, exp) = (time("iat")?, time("exp")?);
        if iat > now + JWT_LEEWAY_SECS {
            return Err(invalid("iat is in the future"));
        }
        if exp < now - JWT_LEEWAY_SECS {
            return Err(invalid("expired"));
        }
        if exp > now + MAX_LIFETIME_SECS {
            return Err(invalid("exp is too far in the future"));
        }
        if !claims.get("events").and_then(|events| events.get(EVENT)).is_some_and(Value::is_object) {
            return Err(invalid("events has no back-channel logout event"));
        }
        if claims.get("nonce").is_some() {
            return Err(invalid("a logout token must not have a nonce"));
        }
        let text = |name: &str| -> Result<Option<String>, LogoutError> {
            match claims.get(name) {
                None => Ok(None),
                Some(Value::String(value)) if !value.is_empty() && value.chars().count() <= MAX_CLAIM_CHARS => Ok(Some(value.clone())),
                Some(_) => Err(invalid(format!("{name} is not a string of 1 to {MAX_CLAIM_CHARS} characters"))),
            }
        };
        let (sub, sid) = (text("sub")?, text("sid")?);
        if sub.is_none() && sid.is_none() {
            return Err(invalid("neither sub nor sid"));
        }
        let jti = text("jti")?.ok_or_else(|| invalid("jti is missing"))?;
        Ok(Self { sub, sid, jti, expires_at: exp + JWT_LEEWAY_SECS })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ISSUER: &str = "https://logi.example.com";
    const NOW: i64 = 1_800_000_000;

    fn valid() -> Value {
        json!({
            "iss": ISSUER, "aud": "logi-bff", "iat": NOW, "exp": NOW + 120, "jti": "jti-1",
            "sub": "user-1", "sid": "session-1", "events": { EVENT: {} },
        })
    }

    fn check(claims: &Value) -> Result<LogoutClaims, String> {
        LogoutClaims::check(claims, ISSUER, "logi-bff", NOW).map_err(|error| match error {
            LogoutError::Invalid(reason) => reason,
            other => panic!("{other:?}"),
        })
    }

    fn with(changes: &[(&str, Value)]) -> Value {
        let mut claims = valid();
        for (name, value) in changes {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(*name);
            } else {
                claims[*name] = value.clone();
            }
        }
        claims
    }

    #[test]
    fn a_valid_token_names_the_session_and_is_remembered_past_its_expiry() {
        let expected = LogoutClaims { sub: Some("user-1".into()), sid: Some("session-1".into()), jti: "jti-1".into(), expires_at: NOW + 180 };
        assert_eq!(check(&valid()), Ok(expected));
        let sid_only = check(&with(&[("sub", Value::Null), ("aud", json!(["other", "logi-bff"]))])).unwrap();
        assert_eq!((sid_only.sub, sid_only.sid.as_deref()), (None, Some("session-1")));
        assert_eq!(check(&with(&[("sid", Value::Null), ("iat", json!(NOW + 30))])).unwrap().sid, None);
    }

    #[test]
    fn every_rule_of_the_spec_refuses_a_token() {
        let refused = [
            ("iss", with(&[("iss", json!("https://evil.example.com"))])),
            ("no iss", with(&[("iss", Value::Null)])),
            ("aud", with(&[("aud", json!("another-client"))])),
            ("aud list", with(&[("aud", json!(["a", "b"]))])),
            ("no aud", with(&[("aud", Value::Null)])),
            ("no iat", with(&[("iat", Value::Null)])),
            ("iat in the future", with(&[("iat", json!(NOW + 61))])),
            ("iat as text", with(&[("iat", json!("1800000000"))])),
            ("no exp", with(&[("exp", Value::Null)])),
            ("expired", with(&[("exp", json!(NOW - 61))])),
            ("exp too far", with(&[("exp", json!(NOW + MAX_LIFETIME_SECS + 1))])),
            ("no events", with(&[("events", Value::Null)])),
            ("another event", with(&[("events", json!({ "http://schemas.openid.net/event/other": {} }))])),
            ("event not an object", with(&[("events", json!({ EVENT: "yes" }))])),
            ("nonce", with(&[("nonce", json!("n-1"))])),
            ("neither sub nor sid", with(&[("sub", Value::Null), ("sid", Value::Null)])),
            ("empty sid", with(&[("sub", Value::Null), ("sid", json!(""))])),
            ("sid not text", with(&[("sid", json!(7))])),
            ("no jti", with(&[("jti", Value::Null)])),
            ("jti too long", with(&[("jti", json!("j".repeat(MAX_CLAIM_CHARS + 1)))])),
        ];
        for (what, claims) in refused {
            assert!(check(&claims).is_err(), "{what} was accepted");
        }
    }

    #[test]
    fn typ_when_present_must_be_logout_jwt() {
        for accepted in [json!({}), json!({ "typ": "logout+jwt" }), json!({ "typ": "application/logout+jwt" })] {
            assert!(check_type(&accepted).is_ok(), "{accepted}");
        }
        for refused in [json!({ "typ": "JWT" }), json!({ "typ": "at+jwt" }), json!({ "typ": 1 })] {
            assert!(check_type(&refused).is_err(), "{refused}");
        }
    }
}
