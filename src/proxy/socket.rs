//! WebSockets through a declared API (`websocket = true`).
//!
//! The upgrade is admitted like any request of its API (the token policy; a browser cannot
//! send `X-CSRF` on an upgrade, so one that carries our cookie must come from `APP_URL`'s
//! origin). The upstream's handshake goes first, over the API's pool with its token; only
//! when the upstream has switched protocols is the caller's upgrade accepted. Then frames
//! are relayed both ways as they come (text, binary, ping, pong, close with its code), each
//! direction on its own, a frame written before the next is read: backpressure, and nothing
//! held beyond one message of at most 1 MiB.
//!
//! A socket ends with its login: [`Sockets`] asks the database every 400 ms which logins
//! behind open sockets are still alive, on every replica, so a login ended anywhere (sign-out,
//! `/account`, password change, back-channel logout, refresh refused, expiry) closes its
//! sockets with 4401 within a second. A socket without a frame either way for the API's
//! `timeout_secs` is closed with 4408; at shutdown every socket gets 1001.

use crate::ids::LoginId;
use crate::login::Logins;
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::handshake::{client::generate_key, derive_accept_key};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The largest frame, and message, relayed either way; a larger one closes the socket (1009).
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// The close code of a socket whose login ended.
pub const LOGIN_ENDED: u16 = 4401;
/// The close code of a socket idle for its API's `timeout_secs`.
pub const IDLE: u16 = 4408;
const CHECK_INTERVAL: Duration = Duration::from_millis(400);
/// How long closing a socket may take once it is decided.
const CLOSE_BOUND: Duration = Duration::from_secs(1);

type Stream = WebSocketStream<TokioIo<Upgraded>>;

/// Whether the request asks to become a WebSocket (RFC 6455 §4.2.1).
pub fn is_upgrade(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::GET && headers.get(header::UPGRADE).and_then(|value| value.to_str().ok()).is_some_and(|value| value.eq_ignore_ascii_case("websocket"))
}

/// Why the upstream's side of a socket could not be had.
#[derive(Debug)]
pub enum SocketError {
    /// The upstream answered but did not switch protocols: its answer goes to the caller.
    Refused(Box<Response<Body>>),
    /// The upstream switched protocols without a valid `Sec-WebSocket-Accept`.
    BadUpstreamHandshake,
}

/// The caller's side of an upgrade, checked, before anything is sent upstream.
pub struct Upgrade {
    key: HeaderValue,
    on_upgrade: OnUpgrade,
    protocols: Option<HeaderValue>,
}

impl Upgrade {
    /// RFC 6455 §4.2.1: `Connection: Upgrade`, version 13, a key, and a connection hyper can
    /// hand over; `None` for a handshake we cannot accept.
    pub fn of(parts: &mut axum::http::request::Parts) -> Option<Self> {
        let headers = &parts.headers;
        let connection_upgrade = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
        let version_13 = headers.get(header::SEC_WEBSOCKET_VERSION).is_some_and(|version| version == "13");
        let key = headers.get(header::SEC_WEBSOCKET_KEY).filter(|key| key.len() == 24).cloned();
        let protocols = headers.get(header::SEC_WEBSOCKET_PROTOCOL).cloned();
        match (connection_upgrade && version_13, key, parts.extensions.remove::<OnUpgrade>()) {
            (true, Some(key), Some(on_upgrade)) => Some(Self { key, on_upgrade, protocols }),
            _ => None,
        }
    }

    /// The upstream's handshake request for `uri`: what the caller asked for (its
    /// subprotocols), with a key of our own. `headers` are the forwarded ones.
    pub fn upstream_request(&self, uri: axum::http::Uri, mut headers: HeaderMap) -> (Request<Body>, String) {
        let key = generate_key();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        headers.insert(header::SEC_WEBSOCKET_KEY, HeaderValue::try_from(key.as_str()).expect("a base64 key is a header value"));
        if let Some(protocols) = &self.protocols {
            headers.insert(header::SEC_WEBSOCKET_PROTOCOL, protocols.clone());
        }
        let mut request = Request::new(Body::empty());
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        (request, key)
    }
}

/// Finishes the upstream's handshake: the socket, and the subprotocol it chose.
pub async fn upstream_socket(answer: Response<Body>, key: &str) -> Result<(Stream, Option<HeaderValue>), SocketError> {
    if answer.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Err(SocketError::Refused(Box::new(answer)));
    }
    let accepted = answer.headers().get(header::SEC_WEBSOCKET_ACCEPT).is_some_and(|accept| accept.as_bytes() == derive_accept_key(key.as_bytes()).as_bytes());
    if !accepted {
        return Err(SocketError::BadUpstreamHandshake);
    }
    let protocol = answer.headers().get(header::SEC_WEBSOCKET_PROTOCOL).cloned();
    let upgraded = hyper::upgrade::on(answer).await.map_err(|error| {
        tracing::warn!(%error, "the upstream's connection could not be taken over");
        SocketError::BadUpstreamHandshake
    })?;
    Ok((WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, Some(config())).await, protocol))
}

fn config() -> WebSocketConfig {
    WebSocketConfig::default().max_message_size(Some(MAX_MESSAGE_BYTES)).max_frame_size(Some(MAX_MESSAGE_BYTES))
}

/// One relayed socket as [`Sockets`] sees it.
pub struct Relay {
    pub api: String,
    pub login: Option<LoginId>,
    pub idle: Duration,
}

/// The open sockets of one app: whose login each serves, and the task that closes those
/// whose login ended.
pub struct Sockets {
    logins: Arc<Logins>,
    /// `APP_URL`'s origin, the only one a cookie-authenticated upgrade may come from.
    app_origin: String,
    open: Mutex<HashMap<u64, (LoginId, CancellationToken)>>,
    next_id: AtomicU64,
    relays: TaskTracker,
    shutdown: CancellationToken,
}

impl Sockets {
    /// Starts watching the logins behind open sockets (the watch stops with the app).
    pub fn start(logins: Arc<Logins>, app_origin: String) -> Arc<Self> {
        let sockets = Arc::new(Self {
            logins,
            app_origin,
            open: Mutex::default(),
            next_id: AtomicU64::new(0),
            relays: TaskTracker::new(),
            shutdown: CancellationToken::new(),
        });
        tokio::spawn(watch_logins(Arc::downgrade(&sockets)));
        sockets
    }

    /// Whether a cookie-authenticated upgrade came from our own pages.
    pub fn is_own_origin(&self, headers: &HeaderMap) -> bool {
        headers.get(header::ORIGIN).is_some_and(|origin| origin.as_bytes() == self.app_origin.as_bytes())
    }

    /// Accepts the caller's upgrade (the upstream's socket is open) and relays until either
    /// side closes, the login ends, the socket idles or the app stops.
    pub fn accept(self: &Arc<Self>, upgrade: Upgrade, upstream: Stream, protocol: Option<HeaderValue>, relay: Relay) -> Response<Body> {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        let accept = derive_accept_key(upgrade.key.as_bytes());
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, HeaderValue::try_from(accept).expect("a base64 digest is a header value"));
        if let Some(protocol) = protocol {
            headers.insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
        }
        let sockets = self.clone();
        self.relays.spawn(async move {
            let Ok(upgraded) = upgrade.on_upgrade.await else { return };
            let client = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config())).await;
            sockets.relay(client, upstream, relay).await;
        });
        response
    }

    async fn relay(&self, client: Stream, upstream: Stream, relay: Relay) {
        let ended = CancellationToken::new();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Some(login) = &relay.login {
            self.open.lock().unwrap_or_else(PoisonError::into_inner).insert(id, (login.clone(), ended.clone()));
        }
        let gauge = metrics::gauge!("logi_bff_websockets_open", "api" => relay.api.clone());
        gauge.increment(1.0);
        let end = pipe(client, upstream, &ended, &self.shutdown, relay.idle).await;
        gauge.decrement(1.0);
        metrics::counter!("logi_bff_websocket_closes_total", "api" => relay.api, "reason" => end.label()).increment(1);
        self.open.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
    }

    /// Closes every socket with 1001 (the app is stopping); see [`Sockets::finished`].
    pub fn close_all(&self) {
        self.shutdown.cancel();
        self.relays.close();
    }

    /// Waits up to `bound` for the sockets to finish closing; true when all did.
    pub async fn finished(&self, bound: Duration) -> bool {
        tokio::time::timeout(bound, self.relays.wait()).await.is_ok()
    }

    /// Closes the sockets whose login is no longer alive.
    async fn close_ended(&self) {
        let watched: HashSet<LoginId> = self.open.lock().unwrap_or_else(PoisonError::into_inner).values().map(|(login, _)| login.clone()).collect();
        if watched.is_empty() {
            return;
        }
        let ids: Vec<LoginId> = watched.into_iter().collect();
        let live: HashSet<LoginId> = match self.logins.live_among(&ids).await {
            Ok(live) => live.into_iter().collect(),
            // Unknown is not ended: the sockets stay until the database answers.
            Err(error) => return tracing::warn!(error = %error, "could not check the logins behind open sockets"),
        };
        for (login, ended) in self.open.lock().unwrap_or_else(PoisonError::into_inner).values() {
            if !live.contains(login) {
                ended.cancel();
            }
        }
    }
}

async fn watch_logins(sockets: Weak<Sockets>) {
    let mut every = tokio::time::interval(CHECK_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(sockets) = sockets.upgrade() else { return };
        sockets.close_ended().await;
    }
}

/// How a relayed socket ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// One side closed (its close frame went to the other) or went away.
    Closed,
    /// A side sent a message over the limit (`true`: the caller).
    TooBig {
        by_caller: bool,
    },
    LoginEnded,
    Idle,
    ShutDown,
}

impl End {
    fn label(&self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::TooBig { .. } => "too_big",
            Self::LoginEnded => "login_ended",
            Self::Idle => "idle",
            Self::ShutDown => "shut_down",
        }
    }

    /// The close frames the caller and the upstream get (`None`: the side closed already).
    fn close_frames(&self) -> (Option<CloseFrame>, Option<CloseFrame>) {
        let frame = |code: u16, reason: &'static str| Some(CloseFrame { code: CloseCode::from(code), reason: reason.into() });
        match self {
            Self::Closed => (None, None),
            Self::TooBig { by_caller: true } => (frame(1009, "message too big"), frame(1001, "the caller went away")),
            Self::TooBig { by_caller: false } => (frame(1001, "the upstream went away"), frame(1009, "message too big")),
            Self::LoginEnded => (frame(LOGIN_ENDED, "login ended"), frame(1001, "login ended")),
            Self::Idle => (frame(IDLE, "idle"), frame(1001, "idle")),
            Self::ShutDown => (frame(1001, "server shutting down"), frame(1001, "server shutting down")),
        }
    }
}

/// Relays both ways until something ends the socket, then closes both sides.
async fn pipe(client: Stream, upstream: Stream, ended: &CancellationToken, shutdown: &CancellationToken, idle: Duration) -> End {
    let (mut to_client, mut from_client) = client.split();
    let (mut to_upstream, mut from_upstream) = upstream.split();
    let started = Instant::now();
    let last_frame = AtomicU64::new(0);
    let end = {
        let up = forward(&mut from_client, &mut to_upstream, &last_frame, started);
        let down = forward(&mut from_upstream, &mut to_client, &last_frame, started);
        tokio::select! {
            result = up => ended_by(result, true),
            result = down => ended_by(result, false),
            () = ended.cancelled() => End::LoginEnded,
            () = shutdown.cancelled() => End::ShutDown,
            () = idled(idle, &last_frame, started) => End::Idle,
        }
    };
    let (for_client, for_upstream) = end.close_frames();
    let goodbye = async {
        tokio::join!(say_goodbye(&mut to_client, for_client), say_goodbye(&mut to_upstream, for_upstream));
    };
    _ = tokio::time::timeout(CLOSE_BOUND, goodbye).await;
    end
}

fn ended_by(result: Result<(), WsError>, by_caller: bool) -> End {
    match result {
        Err(WsError::Capacity(_)) => End::TooBig { by_caller },
        _ => End::Closed,
    }
}

/// Sends a close frame (if one is due) and closes the sink.
async fn say_goodbye(sink: &mut SplitSink<Stream, Message>, frame: Option<CloseFrame>) {
    if let Some(frame) = frame {
        _ = sink.send(Message::Close(Some(frame))).await;
    }
    _ = sink.close().await;
}

/// One direction: each message as it comes, written before the next is read. Ends after a
/// close frame went through, when the source ends, or on the first error either way.
async fn forward(from: &mut SplitStream<Stream>, to: &mut SplitSink<Stream, Message>, last_frame: &AtomicU64, started: Instant) -> Result<(), WsError> {
    while let Some(message) = from.next().await {
        let message = message?;
        last_frame.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        let closing = matches!(message, Message::Close(_));
        to.send(message).await?;
        if closing {
            return Ok(());
        }
    }
    Ok(())
}

/// Resolves once no frame went either way for `idle`.
async fn idled(idle: Duration, last_frame: &AtomicU64, started: Instant) {
    loop {
        let quiet_for = started.elapsed().saturating_sub(Duration::from_millis(last_frame.load(Ordering::Relaxed)));
        if quiet_for >= idle {
            return;
        }
        tokio::time::sleep(idle - quiet_for).await;
    }
}
