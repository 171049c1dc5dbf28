//! The app's own access token from logi (the client-credentials grant), for APIs whose
//! `token` is `client` or `user_or_client`: one per process, cached until
//! `TOKEN_REFRESH_SKEW_SECS` before it expires, fetched one grant at a time. A failed grant
//! is not retried for two seconds, so callers waiting behind it are answered at once
//! instead of each waiting out logi's timeout in turn.

use crate::login::tokens::{HeldTokens, TokenAuthority};
use crate::server::unix_now as now;
use secrecy::SecretString;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(2);

pub struct ClientToken {
    authority: Option<Arc<dyn TokenAuthority>>,
    skew_secs: i64,
    cached: RwLock<Option<Cached>>,
    /// Held while a grant is in flight; what it guards is when the last grant failed.
    granting: tokio::sync::Mutex<Option<Instant>>,
}

struct Cached {
    token: SecretString,
    expires_at: i64,
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
                *self.cached.write().unwrap_or_else(PoisonError::into_inner) = Some(Cached { token: held.access_token.clone(), expires_at: held.expires_at });
                *failed_at = None;
                Ok(held.access_token)
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
        cached.as_ref().filter(|cached| cached.expires_at - self.skew_secs > now()).map(|cached| cached.token.clone())
    }
}
