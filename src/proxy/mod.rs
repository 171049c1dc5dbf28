//! The API proxy: `ANY /api/proxy/{*path}` forwards to `UPSTREAM_API_URL` with the
//! signed-in user's logi access token, which never leaves the server.
//!
//! Shared: the anti-CSRF header the browser must send (the demo page uses it).
//! Server only: target resolution, header filtering, the upstream's pool and the route.
//! The token comes from the login (`crate::login`), which refreshes it single-flight.

/// Every proxied request, GET included, must carry `X-CSRF: 1`. A cross-site page
/// cannot add a custom header without a CORS preflight, which this app never grants.
pub const CSRF_HEADER: &str = "x-csrf";

#[cfg(feature = "ssr")]
pub mod routes;
#[cfg(feature = "ssr")]
mod target;
#[cfg(feature = "ssr")]
mod upstream;
#[cfg(feature = "ssr")]
pub use upstream::Upstream;
