//! Outgoing HTTP: one way to build a client, one way to describe its failures.

use std::time::Duration;

/// An HTTP client that could not be built (no TLS roots, say).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the {purpose} HTTP client: {source}")]
pub struct ClientError {
    purpose: &'static str,
    source: reqwest::Error,
}

/// A client that never follows redirects, with a connect timeout and an overall `timeout`.
pub fn client(timeout: Duration, purpose: &'static str) -> Result<reqwest::Client, ClientError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .timeout(timeout)
        // Below the 5 s keep-alive of Node's HTTP server (oidc-provider's): a connection the
        // server is closing must not be reused (seen: "connection closed before message
        // completed" on a refresh grant, answered 502).
        .pool_idle_timeout(Duration::from_secs(4))
        .user_agent(format!("logi-bff/{} ({purpose})", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|source| ClientError { purpose, source })
}

/// An error and all its causes on one line (reqwest hides the useful part in `source`).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
