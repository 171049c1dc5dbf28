//! The upstream API's connection pool: hyper's pooled HTTP/1.1 client (keep-alive,
//! `TCP_NODELAY`), TLS by rustls with the webpki roots for `https` upstreams.
//!
//! Not reqwest (which the provider calls use): per proxied request it parsed the URL a
//! second time, merged default headers, armed a total-timeout timer and adapted both
//! bodies to streams; on two cores that was most of the proxy's own cost (issue 12).

use axum::body::Body;
use axum::http::{HeaderValue, Request, Response};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::time::Duration;
use tower_http::timeout::TimeoutBody;
use url::Url;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

pub struct Upstream {
    pub(super) base: Url,
    client: Client<Connector, Body>,
    /// For the response head, and again for each wait between two body frames.
    timeout: Duration,
    pub(super) user_agent: HeaderValue,
}

/// Why an upstream exchange failed.
#[derive(Debug)]
pub enum UpstreamError {
    Timeout,
    /// Connecting, TLS, or the exchange itself; the request body's own errors included.
    Failed(hyper_util::client::legacy::Error),
}

impl UpstreamError {
    /// Its label in the upstream metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Failed(_) => "unreachable",
        }
    }
}

impl Upstream {
    pub fn new(base: Url, timeout: Duration) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(5)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new().with_webpki_roots().https_or_http().enable_http1().wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(90)).pool_timer(TokioTimer::new()).build(connector);
        let user_agent = HeaderValue::from_static(concat!("logi-bff/", env!("CARGO_PKG_VERSION"), " (proxy)"));
        Self { base, client, timeout, user_agent }
    }

    /// Sends `request` and answers with the upstream's response, its body streamed.
    pub async fn send(&self, request: Request<Body>) -> Result<Response<Body>, UpstreamError> {
        let answer =
            tokio::time::timeout(self.timeout, self.client.request(request)).await.map_err(|_| UpstreamError::Timeout)?.map_err(UpstreamError::Failed)?;
        let timeout = self.timeout;
        Ok(answer.map(|body| Body::new(TimeoutBody::new(timeout, body))))
    }
}
