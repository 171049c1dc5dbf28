//! Outgoing HTTP: one way to build a client, one way to describe its failures.

use std::time::Duration;

/// A client that never follows redirects, with a connect timeout and an overall `timeout`.
pub fn client(timeout: Duration, purpose: &str) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .user_agent(format!("logi-bff/{} ({purpose})", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the {purpose} HTTP client: {e}"))
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
