//! Infrastructure only: configuration, database, errors, crypto helpers, embedded
//! assets, the cross-site check and request details. No feature types live here.

pub mod assets;
pub mod client_ip;
pub mod config;
pub mod crypto;
pub mod csrf;
pub mod db;
pub mod error;
pub mod headers;
pub mod health;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod request;
pub mod request_context;
pub mod request_id;

pub use error::{json_error, no_store, oauth_error, AppError, Failure};

/// The current time in Unix seconds: every stored time and every comparison with one.
pub fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
