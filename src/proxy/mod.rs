//! The API proxy: the declared APIs (`API_ROUTES_FILE`, and `UPSTREAM_API_URL` at
//! `/api/proxy/`), each forwarded to its upstream with the token its policy names; logi's
//! access token never leaves the server.
//!
//! Shared: the anti-CSRF header the browser must send (the demo page uses it).
//! Server only: the API table, target resolution, header filtering, the upstreams' pools,
//! the route and the WebSocket relay.
//! The token comes from the login (`crate::login`), which refreshes it single-flight.

/// Every proxied request, GET included, must carry `X-CSRF: 1`. A cross-site page
/// cannot add a custom header without a CORS preflight, which this app never grants.
pub const CSRF_HEADER: &str = "x-csrf";

#[cfg(feature = "ssr")]
pub mod apis;
#[cfg(feature = "ssr")]
pub mod client_token;
#[cfg(feature = "ssr")]
pub mod routes;
#[cfg(feature = "ssr")]
pub mod socket;
#[cfg(feature = "ssr")]
mod step_up;
#[cfg(feature = "ssr")]
mod target;
#[cfg(feature = "ssr")]
mod upstream;
