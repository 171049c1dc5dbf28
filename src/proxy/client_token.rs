//! The app's own access token from logi (the client-credentials grant), for APIs whose
//! `token` is `client` or `user_or_client`: one per process, fresh by the same rule as a
//! login's tokens (`HeldTokens::is_fresh`: `TOKEN_REFRESH_SKEW_SECS` before expiry, capped at
//! half the token's lifetime), fetched one grant at a time. A failed grant
//! is not retried for two seconds, so callers waiting behind it are answered at once
//! instead of each waiting out logi's timeout in turn.

use crate::login::tokens::{HeldTokens, TokenAuthority};
use secrecy::SecretString;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(2);

pub struct ClientToken {
    authority: Option<Arc<dyn TokenAuthority>>,
    skew_secs: i64,
    cached: RwLock<Option<HeldTokens>>,
    /// Held while a grant is in flight; what it guards is when the last grant failed.
    granting: tokio::sync::Mutex<Option<Instant>>,
}

/// Why there is no client token: logi is not configured, or it did not give one.
#[derive(Debug, PartialEq, Eq)]
pub struct Unavailable;

impl ClientToken {
    pub fn new(authority: Option<Arc<dyn TokenAuthority>>, skew_secs: i64) -> Self {
        Self { authority, skew_secs, cached: RwLock::default(), granting: tokio::sync::Mutex::default() }
    }

    pub async fn get(&self) -> Result<SecretString, Unavailable> {
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let authority = self.authority.as_ref().ok_or(Unavailable)?;
        let mut failed_at = self.granting.lock().await;
        // The grant this caller waited for may have succeeded, or failed just now.
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        if failed_at.is_some_and(|at| at.elapsed() < RETRY_AFTER_FAILURE) {
            return Err(Unavailable);
        }
        match authority.client_credentials().await {
            Ok(tokens) => {
                let held = HeldTokens::from_grant(tokens);
                let token = held.access_token.clone();
                *self.cached.write().unwrap_or_else(PoisonError::into_inner) = Some(held);
                *failed_at = None;
                Ok(token)
            }
            Err(error) => {
                tracing::warn!(?error, "client-credentials grant failed");
                *failed_at = Some(Instant::now());
                Err(Unavailable)
            }
        }
    }

    fn fresh(&self) -> Option<SecretString> {
        let cached = self.cached.read().unwrap_or_else(PoisonError::into_inner);
        cached.as_ref().filter(|held| held.is_fresh(self.skew_secs)).map(|held| held.access_token.clone())
    }
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
        async fn refresh(&self, _: &SecretString) -> Result<TokenSet, TokenError> {
            Err(TokenError::Unreachable)
        }
        async fn revoke(&self, _: &SecretString) -> Result<bool, RevocationError> {
            Ok(false)
        }
        async fn client_credentials(&self) -> Result<TokenSet, TokenError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(TokenSet {
                access_token: SecretString::from("client-token"),
                token_type: "Bearer".into(),
                id_token: None,
                refresh_token: None,
                expires_in: Some(20),
            })
        }
    }

    #[tokio::test]
    async fn a_token_shorter_than_the_skew_is_reused_for_half_its_lifetime() {
        let grants = Arc::new(Grants::default());
        let client = ClientToken::new(Some(grants.clone()), 30);
        for _ in 0..3 {
            assert!(client.get().await.is_ok());
        }
        assert_eq!(grants.0.load(Ordering::SeqCst), 1, "a 20 s token under a 30 s skew was fetched on every call");
    }
}
