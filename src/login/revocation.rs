//! Revoking logi refresh tokens in the background: a sign-out, a back-channel logout or
//! a sweep of expired logins never waits for logi, and a token logi could not take now
//! is tried again. The queue is bounded and in memory: what a restart loses, or what
//! does not fit, lives on at logi only until its own expiry (logged, counted).

use super::tokens::{RevocationError, TokenAuthority};
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};

/// Tokens waiting for their first attempt, at most.
const QUEUE: usize = 10_000;
/// Revocations in flight at once.
const CONCURRENCY: usize = 4;
/// The waits before the second and third attempts (each attempt is bounded by logi's timeout).
const RETRY_AFTER: [Duration; 2] = [Duration::from_secs(2), Duration::from_secs(20)];

#[derive(Clone)]
pub struct Revocations {
    queue: mpsc::Sender<SecretString>,
}

impl Revocations {
    /// Starts the worker (it ends when every `Revocations` handle is dropped).
    pub fn start(authority: Arc<dyn TokenAuthority>) -> Self {
        let (queue, waiting) = mpsc::channel(QUEUE);
        tokio::spawn(work(authority, waiting));
        Self { queue }
    }

    /// Queues these tokens and returns at once.
    pub fn revoke(&self, refresh_tokens: Vec<SecretString>) {
        for token in refresh_tokens {
            if self.queue.try_send(token).is_err() {
                tracing::warn!("the revocation queue is full; a logi refresh token is left to expire at logi");
                count("dropped");
            }
        }
    }
}

async fn work(authority: Arc<dyn TokenAuthority>, mut waiting: mpsc::Receiver<SecretString>) {
    let slots = Arc::new(Semaphore::new(CONCURRENCY));
    while let Some(token) = waiting.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let authority = authority.clone();
        tokio::spawn(async move {
            revoke_with_retries(authority.as_ref(), &token).await;
            drop(slot);
        });
    }
}

async fn revoke_with_retries(authority: &dyn TokenAuthority, token: &SecretString) {
    for wait in std::iter::once(Duration::ZERO).chain(RETRY_AFTER) {
        tokio::time::sleep(wait).await;
        match authority.revoke(token).await {
            Ok(true) => return count("revoked"),
            Ok(false) => return tracing::debug!("logi advertises no revocation endpoint"),
            Err(error) if is_worth_retrying(&error) => tracing::warn!(%error, "could not revoke a refresh token at logi yet"),
            Err(error) => {
                tracing::warn!(%error, "logi refused to revoke a refresh token");
                return count("refused");
            }
        }
    }
    tracing::warn!("gave up revoking a refresh token at logi; it lives until its own expiry");
    count("failed");
}

/// logi down, slow or failing, or its endpoints not known yet: worth another try.
fn is_worth_retrying(error: &RevocationError) -> bool {
    match error {
        RevocationError::NoEndpoints | RevocationError::Unreachable(_) => true,
        RevocationError::Refused(status) => *status >= 500 || *status == 429,
        RevocationError::NoClientSecret => false,
    }
}

fn count(outcome: &'static str) {
    ::metrics::counter!("logi_bff_revocations_total", "outcome" => outcome).increment(1);
}
