//! The first thing every request meets: its client address ([`ClientIp`], behind
//! `TRUSTED_PROXIES`) and its [`RequestId`], set in its extensions; the request then runs
//! with a [`LoggedRequest`] naming both in a task-local (every log line written while
//! serving it says which request it belongs to, see `logging`), and the id goes back as
//! `X-Request-Id`.
//!
//! A task-local rather than a `tracing` span: a span is registered, its fields formatted
//! and it is entered and left on every poll whether or not a line is ever written
//! (issue 20's profile put it at ~20 % of `/api/auth/me`); the task-local costs a swap per poll
//! and is read only when a line is written. A tower layer rather than
//! `axum::middleware::from_fn`: `from_fn` boxes the inner service and its future each
//! time (issue 13: two such layers cost ~5 µs of CPU per proxied request).

use super::client_ip::{ClientIp, TrustedProxies};
use super::request_id::{self, RequestId, X_REQUEST_ID};
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, Method, Uri};
use axum::response::Response;
use pin_project_lite::pin_project;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::task::futures::TaskLocalFuture;
use tower_layer::Layer;
use tower_service::Service;

tokio::task_local! {
    static CURRENT: LoggedRequest;
}

/// What log lines say about the request being served.
pub struct LoggedRequest {
    id: HeaderValue,
    client: Option<IpAddr>,
    method: Method,
    uri: Uri,
}

impl LoggedRequest {
    /// A plain token (see [`request_id::is_plain`]).
    pub fn id(&self) -> &str {
        self.id.to_str().unwrap_or_default()
    }

    pub fn client(&self) -> Option<IpAddr> {
        self.client
    }

    pub fn method(&self) -> &str {
        self.method.as_str()
    }

    pub fn path(&self) -> &str {
        self.uri.path()
    }
}

/// `f` of the request this task is serving, if it is serving one.
pub fn with_current<R>(f: impl FnOnce(&LoggedRequest) -> R) -> Option<R> {
    CURRENT.try_with(f).ok()
}

#[derive(Clone)]
pub struct RequestContextLayer {
    trusted: Arc<TrustedProxies>,
}

impl RequestContextLayer {
    pub fn new(trusted: TrustedProxies) -> Self {
        Self { trusted: Arc::new(trusted) }
    }
}

impl<S> Layer<S> for RequestContextLayer {
    type Service = RequestContext<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestContext { inner, trusted: self.trusted.clone() }
    }
}

#[derive(Clone)]
pub struct RequestContext<S> {
    inner: S,
    trusted: Arc<TrustedProxies>,
}

impl<S> Service<Request> for RequestContext<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = WithRequestId<TaskLocalFuture<LoggedRequest, S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| peer.ip());
        let trusted_peer = peer.is_some_and(|peer| self.trusted.trusts(peer));
        let client = peer.map(|peer| self.trusted.client_ip(peer, request.headers()));
        let forwarded = request.headers().get(X_REQUEST_ID).filter(|id| trusted_peer && request_id::is_plain(id));
        let id = forwarded.cloned().unwrap_or_else(request_id::generate);
        if let Some(client) = client {
            request.extensions_mut().insert(ClientIp(client));
        }
        request.extensions_mut().insert(RequestId(id.clone()));
        let logged = LoggedRequest { id: id.clone(), client, method: request.method().clone(), uri: request.uri().clone() };
        WithRequestId { inner: CURRENT.scope(logged, self.inner.call(request)), id: Some(id) }
    }
}

pin_project! {
    /// The inner response, with `X-Request-Id` added.
    pub struct WithRequestId<F> {
        #[pin]
        inner: F,
        id: Option<HeaderValue>,
    }
}

impl<F, E> Future for WithRequestId<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut answer = ready!(this.inner.poll(cx));
        if let (Ok(response), Some(id)) = (&mut answer, this.id.take()) {
            response.headers_mut().insert(X_REQUEST_ID, id);
        }
        Poll::Ready(answer)
    }
}
