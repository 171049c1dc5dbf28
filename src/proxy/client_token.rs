//! The app's own access tokens from logi (the client-credentials grant), for APIs whose
//! `token` is `client` or `user_or_client`: one per process and audience (resource, scopes),
//! fresh by the same rule as a login's tokens (`AccessToken::is_fresh`:
//! `TOKEN_REFRESH_SKEW_SECS` before expiry, capped at half the token's lifetime), fetched
//! one grant at a time. A failed grant is not retried for two seconds, so callers waiting
//! behind it are answered at once instead of each waiting out logi's timeout in turn.

use crate::login::tokens::{AccessToken, Audience, TokenAuthority};
use secrecy::SecretString;
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(2);

/// The app's tokens, one per audience (resource and scopes) some API names.
pub struct ClientToken {
    authority: Option<Arc<dyn TokenAuthority>>,
    skew_secs: i64,
    cached: RwLock<HashMap<Audience, AccessToken>>,
    /// Held while a grant is in flight; what it guards is when a grant last failed, by audience.
    granting: tokio::sync::Mutex<HashMap<Audience, Instant>>,
}

/// Why there is no client token for an API.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientTokenError {
    /// logi is not configured, or it did not give one.
    Unavailable,
    /// logi granted it without a scope the API needs.
    InsufficientScope,
}

impl ClientToken {
    pub fn new(authority: Option<Arc<dyn TokenAuthority>>, skew_secs: i64) -> Self {
        Self { authority, skew_secs, cached: RwLock::default(), granting: tokio::sync::Mutex::default() }
    }

    pub async fn get(&self, audience: &Audience) -> Result<SecretString, ClientTokenError> {
        if let Some(token) = self.fresh(audience) {
            return usable(&token, audience);
        }
        let authority = self.authority.as_ref().ok_or(ClientTokenError::Unavailable)?;
        let mut failed_at = self.granting.lock().await;
        // The grant this caller waited for may have succeeded, or failed just now.
        if let Some(token) = self.fresh(audience) {
            return usable(&token, audience);
        }
        if failed_at.get(audience).is_some_and(|at| at.elapsed() < RETRY_AFTER_FAILURE) {
            return Err(ClientTokenError::Unavailable);
        }
        match authority.client_credentials(audience).await {
            Ok(tokens) => {
                let token = AccessToken::granted(&tokens, audience.scope_param());
                self.cached.write().unwrap_or_else(PoisonError::into_inner).insert(audience.clone(), token.clone());
                failed_at.remove(audience);
                usable(&token, audience)
            }
            Err(error) => {
                tracing::warn!(?error, resource = ?audience.resource, "client-credentials grant failed");
                failed_at.insert(audience.clone(), Instant::now());
                Err(ClientTokenError::Unavailable)
            }
        }
    }

    fn fresh(&self, audience: &Audience) -> Option<AccessToken> {
        let cached = self.cached.read().unwrap_or_else(PoisonError::into_inner);
        cached.get(audience).filter(|token| token.is_fresh(self.skew_secs)).cloned()
    }
}

fn usable(token: &AccessToken, audience: &Audience) -> Result<SecretString, ClientTokenError> {
    token.secret_for(&audience.scopes).ok_or(ClientTokenError::InsufficientScope)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::login::tokens::{RevocationError, TokenError, TokenSet};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A provider that grants 20-second client tokens and counts the grants.
    #[derive(Default)]
    struct Grants(AtomicUsize);

    #[async_trait::async_trait]
    impl TokenAuthority for Grants {
        async fn refresh(&self, _: &SecretString, _: &Audience) -> Result<TokenSet, TokenError> {
            Err(TokenError::Unreachable)
        }
        async fn revoke(&self, _: &SecretString) -> Result<bool, RevocationError> {
            Ok(false)
        }
        async fn client_credentials(&self, _: &Audience) -> Result<TokenSet, TokenError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(TokenSet {
                access_token: SecretString::from("client-token"),
                token_type: "Bearer".into(),
                id_token: None,
                refresh_token: None,
                expires_in: Some(20),
                scope: None,
            })
        }
    }

    #[tokio::test]
    async fn a_token_shorter_than_the_skew_is_reused_for_half_its_lifetime() {
        let grants = Arc::new(Grants::default());
        let client = ClientToken::new(Some(grants.clone()), 30);
        for _ in 0..3 {
            assert!(client.get(&Audience::default()).await.is_ok());
        }
        assert_eq!(grants.0.load(Ordering::SeqCst), 1, "a 20 s token under a 30 s skew was fetched on every call");
    }
}
