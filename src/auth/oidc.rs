//! logi as the backend sees it: discovery, the JWKS cache, the code exchange,
//! the id_token checks and userinfo. Server only.
//!
//! Discovery (with the JWKS it points to) is fetched once and cached, so a login
//! in steady state costs two provider calls: token and userinfo. An id_token
//! signed with a key we do not know triggers one JWKS refetch, at most once a minute.

use super::errors::AuthError;
use crate::ids::{Issuer, Subject};
use crate::login::step_up::{is_acr, Authentication, Requirement};
use crate::login::tokens::LogiSession;
use crate::login::tokens::{ApiConsent, Audience, RevocationError, TokenAuthority, TokenError, TokenSet};
use crate::server::config::{EndpointSource, LogiConfig};
use crate::server::crypto::CompactJws;
use crate::server::http::{self, error_chain};
use crate::server::metrics;
use async_trait::async_trait;
use openidconnect::core::{
    CoreGenderClaim, CoreIdTokenVerifier, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{AccessToken, AccessTokenHash, ClientId, ClientSecret, IssuerUrl, Nonce, NonceVerifier};
use openidconnect::{AdditionalClaims, IdToken, JsonWebKey};
use openidconnect::{ClaimsVerificationError, SignatureVerificationError};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::RwLock;
use url::Url;

const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// After a failed discovery, logi is not asked again for this long: the requests meanwhile
/// answer at once (from the stale endpoints, or `provider_unreachable`) instead of each
/// waiting out the timeout in turn.
const DISCOVERY_RETRY: Duration = Duration::from_secs(2);
const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(60);

/// The endpoints and algorithms discovery advertised.
#[derive(Debug)]
pub struct Endpoints {
    pub authorization: Url,
    pub token: Url,
    pub userinfo: Url,
    /// RFC 7009 token revocation, when advertised.
    pub revocation: Option<Url>,
    /// RP-initiated logout, when advertised.
    pub end_session: Option<Url>,
    jwks_uri: openidconnect::JsonWebKeySetUrl,
    /// The id_token algorithms the provider advertises, never `none`.
    id_token_algs: Vec<CoreJwsSigningAlgorithm>,
}

struct Discovered {
    endpoints: Arc<Endpoints>,
    fetched_at: Instant,
}

/// The discovery cache: the last endpoints found, and when discovery last failed.
#[derive(Default)]
struct Discovery {
    found: Option<Discovered>,
    failed_at: Option<Instant>,
}

impl Discovery {
    /// The answer without asking logi, if there is one: fresh endpoints, or (within
    /// [`DISCOVERY_RETRY`] of a failure) the stale ones or the failure.
    fn settled(&self) -> Option<Result<Arc<Endpoints>, AuthError>> {
        if let Some(found) = self.found.as_ref().filter(|d| d.fetched_at.elapsed() < DISCOVERY_TTL) {
            return Some(Ok(found.endpoints.clone()));
        }
        self.failed_at.filter(|at| at.elapsed() < DISCOVERY_RETRY)?;
        Some(self.found.as_ref().map(|stale| stale.endpoints.clone()).ok_or(AuthError::ProviderUnreachable))
    }
}

struct Keys {
    set: CoreJsonWebKeySet,
    last_refetch: Option<Instant>,
}

impl From<TokenError> for AuthError {
    fn from(error: TokenError) -> Self {
        match error {
            TokenError::Refused { error, .. } if error == "invalid_client" => AuthError::InvalidClient,
            TokenError::Refused { status, .. } | TokenError::Malformed(status) => AuthError::TokenExchange(status),
            TokenError::Unreachable => AuthError::ProviderUnreachable,
            TokenError::NoClientSecret => AuthError::ServerMisconfiguredNoSecret,
        }
    }
}

/// The userinfo claims logi-bff uses; absent or mistyped optional claims read as `None`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub sub: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub nickname: Option<String>,
    pub anonymous: bool,
}

/// The confidential client of one logi issuer.
pub struct Provider {
    http: reqwest::Client,
    issuer: IssuerUrl,
    issuer_id: Issuer,
    client_id: ClientId,
    client_secret: Option<SecretString>,
    redirect_uri: Url,
    scopes: String,
    endpoint_source: EndpointSource,
    discovery: RwLock<Discovery>,
    keys: RwLock<Keys>,
}

impl Provider {
    pub fn new(config: &LogiConfig, redirect_uri: Url) -> Result<Self, SetupError> {
        let http = http::client(config.timeout, "logi")?;
        let issuer_id = config.issuer();
        let issuer = IssuerUrl::new(issuer_id.as_str().to_owned())?;
        Ok(Self {
            http,
            issuer_id,
            issuer,
            client_id: ClientId::new(config.client_id.clone()),
            client_secret: config.client_secret.clone(),
            redirect_uri,
            scopes: config.scopes.join(" "),
            endpoint_source: config.endpoints.clone(),
            discovery: RwLock::default(),
            keys: RwLock::new(Keys { set: CoreJsonWebKeySet::new(Vec::new()), last_refetch: None }),
        })
    }

    pub fn client_id(&self) -> &str {
        self.client_id.as_str()
    }

    pub fn issuer(&self) -> &Issuer {
        &self.issuer_id
    }

    /// The cached discovery result, fetched (with the JWKS) when missing or stale; one
    /// fetch at a time, so a request waits at most one logi timeout for it.
    pub async fn endpoints(&self) -> Result<Arc<Endpoints>, AuthError> {
        if let Some(settled) = self.discovery.read().await.settled() {
            return settled;
        }
        let mut discovery = self.discovery.write().await;
        if let Some(settled) = discovery.settled() {
            return settled;
        }
        match metrics::logi_call("discovery", self.discover()).await {
            Ok((endpoints, jwks)) => {
                self.keys.write().await.set = jwks;
                let endpoints = Arc::new(endpoints);
                *discovery = Discovery { found: Some(Discovered { endpoints: endpoints.clone(), fetched_at: Instant::now() }), failed_at: None };
                Ok(endpoints)
            }
            Err(error) => {
                discovery.failed_at = Some(Instant::now());
                match discovery.found.as_ref() {
                    Some(stale) => {
                        tracing::warn!(%error, "discovery refresh failed; using the cached endpoints");
                        Ok(stale.endpoints.clone())
                    }
                    None => {
                        tracing::error!(%error, issuer = %self.issuer.as_str(), "discovery failed");
                        Err(AuthError::ProviderUnreachable)
                    }
                }
            }
        }
    }

    /// The endpoints (from discovery, or the documented paths) and the JWKS.
    async fn discover(&self) -> Result<(Endpoints, CoreJsonWebKeySet), DiscoveryError> {
        match &self.endpoint_source {
            EndpointSource::Discovery => self.discovery_document().await,
            EndpointSource::Documented { jwks_url } => self.documented_endpoints(jwks_url).await,
        }
    }

    /// `ONE_PASS_DISCOVERY=off`: the paths logi's guides document, no end-session endpoint,
    /// and any asymmetric id_token algorithm (nothing advertises which; never `none` or a
    /// shared-secret `HS*`, and a key must still match the algorithm).
    async fn documented_endpoints(&self, jwks_url: &Url) -> Result<(Endpoints, CoreJsonWebKeySet), DiscoveryError> {
        let base = self.issuer.as_str().trim_end_matches('/');
        let at = |path: &str| Url::parse(&format!("{base}{path}")).map_err(|_| DiscoveryError::Missing("a URL for a documented path"));
        let jwks_uri = openidconnect::JsonWebKeySetUrl::from_url(jwks_url.clone());
        let jwks = CoreJsonWebKeySet::fetch_async(&jwks_uri, &self.http).await.map_err(|e| DiscoveryError::Jwks(error_chain(&e)))?;
        use CoreJwsSigningAlgorithm as Alg;
        let id_token_algs = vec![
            Alg::RsaSsaPkcs1V15Sha256,
            Alg::RsaSsaPkcs1V15Sha384,
            Alg::RsaSsaPkcs1V15Sha512,
            Alg::RsaSsaPssSha256,
            Alg::RsaSsaPssSha384,
            Alg::RsaSsaPssSha512,
            Alg::EcdsaP256Sha256,
            Alg::EcdsaP384Sha384,
            Alg::EcdsaP521Sha512,
            Alg::EdDsa,
        ];
        let endpoints = Endpoints {
            authorization: at("/oauth/authorize")?,
            token: at("/oauth/token")?,
            userinfo: at("/oauth/userinfo")?,
            revocation: Some(at("/oauth/revoke")?),
            end_session: None,
            jwks_uri,
            id_token_algs,
        };
        Ok((endpoints, jwks))
    }

    /// One discovery document (issuer checked), then the JWKS it points to.
    async fn discovery_document(&self) -> Result<(Endpoints, CoreJsonWebKeySet), DiscoveryError> {
        let url = format!("{}/.well-known/openid-configuration", self.issuer.as_str().trim_end_matches('/'));
        let fetched = async { self.http.get(url).header(reqwest::header::ACCEPT, "application/json").send().await?.error_for_status()?.json().await };
        let document: serde_json::Value = fetched.await.map_err(|e: reqwest::Error| DiscoveryError::Unreachable(error_chain(&e)))?;
        let metadata: CoreProviderMetadata = serde_json::from_value(document.clone()).map_err(DiscoveryError::Document)?;
        if metadata.issuer() != &self.issuer {
            return Err(DiscoveryError::IssuerChanged(metadata.issuer().as_str().to_owned()));
        }
        // Fields openidconnect's core metadata does not carry; absent means not supported.
        let logout: LogoutEndpoints = serde_json::from_value(document).unwrap_or_default();
        let jwks = CoreJsonWebKeySet::fetch_async(metadata.jwks_uri(), &self.http).await.map_err(|e| DiscoveryError::Jwks(error_chain(&e)))?;
        let token = metadata.token_endpoint().ok_or(DiscoveryError::Missing("token_endpoint"))?;
        let userinfo = metadata.userinfo_endpoint().ok_or(DiscoveryError::Missing("userinfo_endpoint"))?;
        let id_token_algs = metadata.id_token_signing_alg_values_supported().iter().filter(|alg| **alg != CoreJwsSigningAlgorithm::None).cloned().collect();
        let endpoints = Endpoints {
            authorization: metadata.authorization_endpoint().url().clone(),
            token: token.url().clone(),
            userinfo: userinfo.url().clone(),
            revocation: logout.revocation_endpoint,
            end_session: logout.end_session_endpoint,
            jwks_uri: metadata.jwks_uri().clone(),
            id_token_algs,
        };
        Ok((endpoints, jwks))
    }

    /// The authorization request URL for one login transaction.
    pub fn authorization_url(&self, endpoints: &Endpoints, request: &AuthorizationRequest<'_>) -> Url {
        let mut url = endpoints.authorization.clone();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", self.client_id.as_str())
                .append_pair("redirect_uri", self.redirect_uri.as_str())
                .append_pair("scope", &self.scope_with(&request.consent.scopes))
                .append_pair("state", request.state)
                .append_pair("nonce", request.nonce)
                .append_pair("code_challenge", request.code_challenge)
                .append_pair("code_challenge_method", "S256");
            if let Some(hint) = request.login_hint {
                query.append_pair("login_hint", hint);
            }
            if let Some(prompt) = request.prompt {
                query.append_pair("prompt", prompt);
            }
            for resource in &request.consent.resources {
                query.append_pair("resource", resource);
            }
            if let Some(acr_values) = request.step_up.and_then(Requirement::acr_values_param) {
                query.append_pair("acr_values", &acr_values);
            }
            if let Some(max_age) = request.step_up.and_then(|requirement| requirement.max_age) {
                query.append_pair("max_age", &max_age.to_string());
            }
        }
        url
    }

    /// `ONE_PASS_SCOPES` and, after them, the APIs' scopes it does not already name.
    pub fn scope_with(&self, extra: &[String]) -> String {
        let mut scope = self.scopes.clone();
        for wanted in extra {
            if !scope.split(' ').any(|s| s == wanted) {
                scope.push(' ');
                scope.push_str(wanted);
            }
        }
        scope
    }

    /// The browser sign-in's redirect URI (`APP_URL` + `/api/auth/callback`).
    pub fn redirect_uri(&self) -> &str {
        self.redirect_uri.as_str()
    }

    /// Exchanges an authorization code at the token endpoint (client_secret_basic + PKCE
    /// verifier), with the redirect URI the authorization request used.
    pub async fn exchange_code(&self, code: &str, code_verifier: &str, redirect_uri: &str) -> Result<TokenSet, TokenError> {
        let form = [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirect_uri), ("code_verifier", code_verifier)];
        metrics::logi_call("token", self.token_request(&form)).await
    }

    async fn token_request(&self, form: &(impl Serialize + ?Sized)) -> Result<TokenSet, TokenError> {
        let (user, password) = self.basic_credentials().ok_or(TokenError::NoClientSecret)?;
        let endpoints = self.endpoints().await.map_err(|_| TokenError::Unreachable)?;
        let response = self
            .http
            .post(endpoints.token.clone())
            .basic_auth(user, Some(password))
            .header(reqwest::header::ACCEPT, "application/json")
            .form(form)
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(endpoint = "token", error = %error_chain(&e), "provider unreachable");
                TokenError::Unreachable
            })?;
        let status = response.status();
        if !status.is_success() {
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            let error = body.get("error").and_then(|e| e.as_str()).unwrap_or("").to_owned();
            tracing::warn!(status = status.as_u16(), error, description = ?body.get("error_description"), "token request refused");
            return Err(TokenError::Refused { status: status.as_u16(), error });
        }
        let tokens: TokenSet = response.json().await.map_err(|e| {
            tracing::warn!(error = %e, "token response is not a valid token set");
            TokenError::Malformed(status.as_u16())
        })?;
        if !tokens.token_type.eq_ignore_ascii_case("bearer") {
            tracing::warn!(token_type = %tokens.token_type, "token response is not a bearer token");
            return Err(TokenError::Malformed(status.as_u16()));
        }
        Ok(tokens)
    }

    /// The client_secret_basic user and password; `None` without a client secret.
    /// RFC 6749 §2.3.1: both are form-encoded before Basic encoding.
    fn basic_credentials(&self) -> Option<(String, String)> {
        let secret = self.client_secret.as_ref()?;
        Some((form_encode(self.client_id.as_str()), form_encode(secret.expose_secret())))
    }

    /// The provider's RP-initiated logout URL, if it advertises one. Identified by
    /// `client_id` only: an `id_token_hint` would put the id_token in the browser's
    /// address bar and history, and no token ever goes to the browser. The provider
    /// then asks the user to confirm.
    pub async fn end_session_url(&self, post_logout_redirect_uri: &str) -> Option<Url> {
        let mut url = self.endpoints().await.ok()?.end_session.clone()?;
        url.query_pairs_mut().append_pair("client_id", self.client_id.as_str()).append_pair("post_logout_redirect_uri", post_logout_redirect_uri);
        Some(url)
    }

    /// Verifies the id_token and returns its subject and logi session. See [`IdTokenCheck`]
    /// for the checks. With `nonce`, the id_token's must equal it; without, the id_token
    /// must have none.
    pub async fn verify_id_token(&self, raw: &SecretString, nonce: Option<&str>, access_token: &SecretString) -> Result<VerifiedIdToken, AuthError> {
        let endpoints = self.endpoints().await?;
        let token: LogiIdToken = raw.expose_secret().parse().map_err(|e| rejected("malformed id_token", &e))?;
        let check =
            IdTokenCheck { client_id: &self.client_id, client_secret: self.client_secret.as_ref(), issuer: &self.issuer, algs: &endpoints.id_token_algs };
        let nonce = nonce.map(|nonce| Nonce::new(nonce.to_owned()));
        let access_token = AccessToken::new(access_token.expose_secret().to_owned());
        let first = check.verify(&token, &self.keys.read().await.set, nonce.as_ref(), &access_token);
        match first {
            Err(IdTokenRejection::UnknownKey) if self.refetch_keys(&endpoints).await => {
                check.verify(&token, &self.keys.read().await.set, nonce.as_ref(), &access_token).map_err(IdTokenRejection::into_auth_error)
            }
            other => other.map_err(IdTokenRejection::into_auth_error),
        }
    }

    /// Checks a compact JWS signed by logi (a logout token): `alg` one discovery allows
    /// for id_tokens (never `none` or a shared-secret `HS*`), a key of the JWKS (by
    /// `kid` when given; an unknown `kid` refetches the JWKS once), the signature.
    /// Returns the protected header and the payload, both JSON objects, unchecked.
    pub async fn verify_jws(&self, compact: &str) -> Result<(serde_json::Value, serde_json::Value), JwsRejection> {
        let endpoints = self.endpoints().await.map_err(|_| JwsRejection::ProviderUnreachable)?;
        let jws = Jws::parse(compact)?;
        let alg = jws.algorithm(&endpoints.id_token_algs)?;
        let first = jws.verify(&self.keys.read().await.set, &alg);
        match first {
            Err(JwsRejection::UnknownKey) if self.refetch_keys(&endpoints).await => jws.verify(&self.keys.read().await.set, &alg),
            other => other,
        }?;
        Ok((jws.header, jws.payload))
    }

    /// Refetches the JWKS after an unknown `kid`; at most once per [`JWKS_REFETCH_INTERVAL`].
    async fn refetch_keys(&self, endpoints: &Endpoints) -> bool {
        let mut keys = self.keys.write().await;
        if keys.last_refetch.is_some_and(|at| at.elapsed() < JWKS_REFETCH_INTERVAL) {
            tracing::warn!("id_token signed with an unknown key; JWKS refetch is rate-limited");
            return false;
        }
        keys.last_refetch = Some(Instant::now());
        match metrics::logi_call("jwks", CoreJsonWebKeySet::fetch_async(&endpoints.jwks_uri, &self.http)).await {
            Ok(set) => {
                tracing::info!("JWKS refetched after an unknown key id");
                keys.set = set;
                true
            }
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "JWKS refetch failed");
                false
            }
        }
    }

    /// Reads userinfo with the access token; its `sub` must be the id_token's (OIDC Core 5.3.2).
    pub async fn userinfo(&self, access_token: &SecretString, expected_sub: &Subject) -> Result<UserInfo, AuthError> {
        let endpoints = self.endpoints().await?;
        let request = self.http.get(endpoints.userinfo.clone()).bearer_auth(access_token.expose_secret()).header(reqwest::header::ACCEPT, "application/json");
        let response = metrics::logi_call("userinfo", request.send()).await.map_err(|e| unreachable("userinfo", &e))?;
        if !response.status().is_success() {
            tracing::warn!(status = response.status().as_u16(), "userinfo refused");
            return Err(AuthError::UserinfoFailed);
        }
        let body: serde_json::Value = response.json().await.map_err(|e| {
            tracing::warn!(error = %e, "userinfo is not JSON");
            AuthError::UserinfoFailed
        })?;
        let info = UserInfo::from_json(&body).ok_or_else(|| {
            tracing::warn!("userinfo has no string sub");
            AuthError::UserinfoFailed
        })?;
        if info.sub != expected_sub.as_str() {
            tracing::warn!(userinfo_sub = %info.sub, id_token_sub = %expected_sub.as_str(), "userinfo sub differs from the id_token's");
            return Err(AuthError::UserinfoSubMismatch);
        }
        Ok(info)
    }
}

/// A grant's form with the audience's `resource` (RFC 8707 §2.2) and `scope`, when it names them.
fn with_audience<'a>(form: Vec<(&'static str, &'a str)>, audience: &'a Audience) -> Vec<(&'static str, std::borrow::Cow<'a, str>)> {
    let mut form: Vec<_> = form.into_iter().map(|(key, value)| (key, value.into())).collect();
    if let Some(resource) = &audience.resource {
        form.push(("resource", resource.as_str().into()));
    }
    if let Some(scope) = audience.scope_param() {
        form.push(("scope", scope.into()));
    }
    form
}

/// logi as custody sees it: refresh grants and revocation.
#[async_trait]
impl TokenAuthority for Provider {
    /// logi rotates refresh tokens: the answer carries a new one, and the old one must never be used again.
    async fn refresh(&self, refresh_token: &SecretString, audience: &Audience) -> Result<TokenSet, TokenError> {
        let form = with_audience(vec![("grant_type", "refresh_token"), ("refresh_token", refresh_token.expose_secret())], audience);
        metrics::logi_call("token", self.token_request(&form)).await
    }

    async fn client_credentials(&self, audience: &Audience) -> Result<TokenSet, TokenError> {
        let form = with_audience(vec![("grant_type", "client_credentials")], audience);
        metrics::logi_call("token", self.token_request(&form)).await
    }

    /// Revokes a refresh token (RFC 7009) if the provider advertises revocation; true when it did.
    async fn revoke(&self, refresh_token: &SecretString) -> Result<bool, RevocationError> {
        let (user, password) = self.basic_credentials().ok_or(RevocationError::NoClientSecret)?;
        let endpoints = self.endpoints().await.map_err(|_| RevocationError::NoEndpoints)?;
        let Some(revocation) = endpoints.revocation.clone() else { return Ok(false) };
        let request =
            self.http.post(revocation).basic_auth(user, Some(password)).form(&[("token", refresh_token.expose_secret()), ("token_type_hint", "refresh_token")]);
        let response = metrics::logi_call("revocation", request.send()).await.map_err(|e| RevocationError::Unreachable(error_chain(&e)))?;
        match response.status().is_success() {
            true => Ok(true),
            false => Err(RevocationError::Refused(response.status().as_u16())),
        }
    }
}

#[derive(Default, Deserialize)]
struct LogoutEndpoints {
    revocation_endpoint: Option<Url>,
    end_session_endpoint: Option<Url>,
}

/// What one login request asks the provider for.
pub struct AuthorizationRequest<'a> {
    pub state: &'a str,
    pub nonce: &'a str,
    pub code_challenge: &'a str,
    pub login_hint: Option<&'a str>,
    pub prompt: Option<&'a str>,
    /// The declared APIs' resources and scopes, so one consent covers them.
    pub consent: &'a ApiConsent,
    /// A step-up's requirement (OIDC `acr_values`, `max_age`).
    pub step_up: Option<&'a Requirement>,
}

impl UserInfo {
    fn from_json(body: &serde_json::Value) -> Option<Self> {
        let text = |key: &str| body.get(key).and_then(|v| v.as_str()).map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
        Some(Self {
            sub: body.get("sub")?.as_str().filter(|s| !s.is_empty())?.to_owned(),
            email: text("email"),
            name: text("name"),
            nickname: text("nickname"),
            anonymous: body.get("anonymous").and_then(|v| v.as_bool()) == Some(true),
        })
    }
}

/// The id_token checks: signature with a JWKS key and an advertised algorithm (never
/// `none`), `iss` exact, `aud` only our client id, `azp` (when present) our client id,
/// `exp` in the future, `iat` present (required to parse), `nonce` as expected, a non-empty
/// `sub`, and `at_hash` (when present) matching the access token.
struct IdTokenCheck<'a> {
    client_id: &'a ClientId,
    client_secret: Option<&'a SecretString>,
    issuer: &'a IssuerUrl,
    algs: &'a [CoreJwsSigningAlgorithm],
}

#[derive(Debug)]
enum IdTokenRejection {
    UnknownKey,
    Invalid(String),
    NoSubject,
}

impl IdTokenRejection {
    fn into_auth_error(self) -> AuthError {
        match self {
            Self::NoSubject => AuthError::NoSubjectInIdToken,
            Self::UnknownKey => rejected("id_token signed with an unknown key", &"no matching JWK"),
            Self::Invalid(reason) => rejected("id_token rejected", &reason),
        }
    }
}

impl IdTokenCheck<'_> {
    fn verify(
        &self,
        token: &LogiIdToken,
        keys: &CoreJsonWebKeySet,
        nonce: Option<&Nonce>,
        access_token: &AccessToken,
    ) -> Result<VerifiedIdToken, IdTokenRejection> {
        let verifier = match self.client_secret {
            Some(secret) => CoreIdTokenVerifier::new_confidential_client(
                self.client_id.clone(),
                ClientSecret::new(secret.expose_secret().to_owned()),
                self.issuer.clone(),
                keys.clone(),
            ),
            None => CoreIdTokenVerifier::new_public_client(self.client_id.clone(), self.issuer.clone(), keys.clone()),
        }
        .set_allowed_algs(self.algs.iter().cloned());
        let nonce_check = |claimed: Option<&Nonce>| match (nonce, claimed) {
            (Some(expected), _) => expected.verify(claimed),
            (None, None) => Ok(()),
            (None, Some(_)) => Err("the id_token has a nonce the request did not send".to_owned()),
        };
        let claims = token.claims(&verifier, nonce_check).map_err(|error| match error {
            ClaimsVerificationError::SignatureVerification(SignatureVerificationError::NoMatchingKey) => IdTokenRejection::UnknownKey,
            other => IdTokenRejection::Invalid(other.to_string()),
        })?;
        if claims.authorized_party().is_some_and(|azp| azp.as_str() != self.client_id.as_str()) {
            return Err(IdTokenRejection::Invalid("azp is not our client id".into()));
        }
        if let Some(expected) = claims.access_token_hash() {
            let alg = token.signing_alg().map_err(|e| IdTokenRejection::Invalid(e.to_string()))?;
            let key = token.signing_key(&verifier).map_err(|e| IdTokenRejection::Invalid(e.to_string()))?;
            let actual = AccessTokenHash::from_token(access_token, alg, key).map_err(|e| IdTokenRejection::Invalid(e.to_string()))?;
            if actual != *expected {
                return Err(IdTokenRejection::Invalid("at_hash does not match the access token".into()));
            }
        }
        let subject = claims.subject().as_str();
        if subject.is_empty() {
            return Err(IdTokenRejection::NoSubject);
        }
        let sid = claims.additional_claims().sid.clone().filter(|sid| !sid.is_empty());
        let acr = claims.auth_context_ref().map(|acr| acr.as_str().to_owned());
        if acr.as_deref().is_some_and(|acr| !is_acr(acr)) {
            return Err(IdTokenRejection::Invalid("acr is not a short printable value".into()));
        }
        let authentication = Authentication { acr, auth_time: claims.auth_time().map(|at| at.timestamp()) };
        Ok(VerifiedIdToken { subject: Subject::new(subject), session: LogiSession { sub: subject.to_owned(), sid }, authentication })
    }
}

/// Who signed in, in which logi session (what a back-channel logout names), and how
/// (`acr`, `auth_time`: what step-up requirements are checked against).
#[derive(Debug)]
pub struct VerifiedIdToken {
    pub subject: Subject,
    pub session: LogiSession,
    pub authentication: Authentication,
}

/// The one claim we read beyond the standard ones: logi's session id.
#[derive(Clone, Debug, Deserialize, Serialize)]
struct SessionClaim {
    sid: Option<String>,
}

impl AdditionalClaims for SessionClaim {}

type LogiIdToken = IdToken<SessionClaim, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>;

/// A logout token: its JWS parts, header and payload as JSON objects; nothing checked yet.
struct Jws<'a> {
    parts: CompactJws<'a>,
    header: serde_json::Value,
    payload: serde_json::Value,
}

/// Why a JWS from logi (a logout token) was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwsRejection {
    #[error("logi is unreachable")]
    ProviderUnreachable,
    #[error("not a compact JWS of base64url parts")]
    NotCompact,
    #[error("the {0} is not a JSON object")]
    NotAnObject(&'static str),
    #[error("crit header parameters are not supported")]
    Crit,
    #[error("no alg")]
    NoAlg,
    #[error("alg {0} is not allowed")]
    AlgNotAllowed(String),
    #[error("no key of logi's JWKS matches")]
    UnknownKey,
    #[error("bad signature")]
    BadSignature,
}

/// Why logi's discovery document could not be used.
#[derive(Debug, thiserror::Error)]
enum DiscoveryError {
    #[error("{0}")]
    Unreachable(String),
    #[error("discovery document: {0}")]
    Document(serde_json::Error),
    #[error("discovery names another issuer: {0}")]
    IssuerChanged(String),
    #[error("discovery has no {0}")]
    Missing(&'static str),
    #[error("JWKS: {0}")]
    Jwks(String),
}

/// Why the logi client could not be set up (at startup).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Client(#[from] http::ClientError),
    #[error("ONE_PASS_URL: {0}")]
    Issuer(#[from] url::ParseError),
}

impl<'a> Jws<'a> {
    fn parse(compact: &'a str) -> Result<Self, JwsRejection> {
        let parts = CompactJws::split(compact).ok_or(JwsRejection::NotCompact)?;
        let json = |bytes: &[u8], what: &'static str| {
            serde_json::from_slice::<serde_json::Value>(bytes).ok().filter(serde_json::Value::is_object).ok_or(JwsRejection::NotAnObject(what))
        };
        Ok(Self { header: json(&parts.header, "header")?, payload: json(&parts.payload, "payload")?, parts })
    }

    /// `alg`, if it is one of `allowed` and not a shared-secret algorithm; no `crit`.
    fn algorithm(&self, allowed: &[CoreJwsSigningAlgorithm]) -> Result<CoreJwsSigningAlgorithm, JwsRejection> {
        if self.header.get("crit").is_some() {
            return Err(JwsRejection::Crit);
        }
        let name = self.header.get("alg").and_then(|alg| alg.as_str()).ok_or(JwsRejection::NoAlg)?;
        let alg: CoreJwsSigningAlgorithm = serde_json::from_value(serde_json::Value::from(name)).map_err(|_| JwsRejection::AlgNotAllowed(name.to_owned()))?;
        let shared_secret = matches!(
            alg,
            CoreJwsSigningAlgorithm::HmacSha256 | CoreJwsSigningAlgorithm::HmacSha384 | CoreJwsSigningAlgorithm::HmacSha512 | CoreJwsSigningAlgorithm::None
        );
        if shared_secret || !allowed.contains(&alg) {
            return Err(JwsRejection::AlgNotAllowed(name.to_owned()));
        }
        Ok(alg)
    }

    fn verify(&self, keys: &CoreJsonWebKeySet, alg: &CoreJwsSigningAlgorithm) -> Result<(), JwsRejection> {
        let kid = self.header.get("kid").and_then(|kid| kid.as_str());
        let mut candidates = keys.keys().iter().filter(|key| kid.is_none_or(|kid| key.key_id().is_some_and(|id| id.as_str() == kid))).peekable();
        if candidates.peek().is_none() {
            return Err(JwsRejection::UnknownKey);
        }
        let message = self.parts.signing_input.as_bytes();
        candidates.any(|key| key.verify_signature(alg, message, &self.parts.signature).is_ok()).then_some(()).ok_or(JwsRejection::BadSignature)
    }
}

fn rejected(what: &str, reason: &dyn std::fmt::Display) -> AuthError {
    tracing::warn!(%reason, "{what}");
    AuthError::IdTokenInvalid
}

fn unreachable(endpoint: &str, error: &reqwest::Error) -> AuthError {
    tracing::warn!(endpoint, error = %error_chain(error), "provider unreachable");
    AuthError::ProviderUnreachable
}

fn form_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[async_trait::async_trait]
impl crate::server::health::Dependency for Provider {
    fn name(&self) -> &'static str {
        "logi"
    }

    /// Ready when discovery (and the JWKS) is cached or can be fetched now.
    async fn is_ready(&self) -> bool {
        self.endpoints().await.is_ok()
    }
}
