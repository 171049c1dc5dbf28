//! WebSockets through a declared API (`websocket = true`): the upgrade is admitted like any
//! call of the API (our cookie needs our own `Origin`), the upstream sees the API's token,
//! frames go both ways, and the socket closes with 4401 within a second of its login ending
//! on any replica, with 4408 when idle, and with 1009 on a frame over 1 MiB.

use crate::provider::Double;
use crate::support::{spawn_app_declaring, Browser, Declared, TestApp};
use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const MIB: usize = 1024 * 1024;

/// A `live` socket API for signed-in callers (idle after `timeout_secs`) and a public
/// `lobby`, both on the double's WebSocket upstream.
async fn app_with_sockets(timeout_secs: u64) -> Declared {
    let declare = |double: &Double, _: &str| {
        let sockets = &double.socket_upstream;
        format!(
            "[[api]]\nname = \"live\"\npath = \"/api/live/\"\nupstream = \"{sockets}\"\nwebsocket = true\ntimeout_secs = {timeout_secs}\n\n\
             [[api]]\nname = \"lobby\"\npath = \"/api/lobby/\"\nupstream = \"{sockets}/open\"\ntoken = \"none\"\npublic = true\nwebsocket = true\n"
        )
    };
    spawn_app_declaring(declare, &[]).await
}

/// Opens `path` on the app as `browser` would (its cookies), with these extra headers.
pub(crate) async fn connect(app_url: &str, path: &str, browser: Option<&Browser>, headers: &[(&str, &str)]) -> Result<Socket, WsError> {
    let mut request = format!("{}{path}", app_url.replacen("http", "ws", 1)).into_client_request().unwrap();
    if let Some(browser) = browser {
        request.headers_mut().insert("cookie", browser.cookie_header().parse().unwrap());
    }
    for (name, value) in headers {
        request.headers_mut().insert(reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
    }
    tokio_tungstenite::connect_async(request).await.map(|(socket, _)| socket)
}

/// A browser's socket: its cookies and its page's origin.
async fn browser_socket(app: &TestApp, browser: &Browser, path: &str) -> Socket {
    connect(&app.url, path, Some(browser), &[("origin", &app.url)]).await.expect("the upgrade is accepted")
}

/// The upstream's first message: whom the token it got spoke for.
pub(crate) async fn greeting(socket: &mut Socket) -> serde_json::Value {
    match next(socket).await {
        Some(Message::Text(text)) => serde_json::from_str(&text).unwrap(),
        other => panic!("no greeting: {other:?}"),
    }
}

/// The next text or binary message (pings and pongs are skipped).
async fn next(socket: &mut Socket) -> Option<Message> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), socket.next()).await.expect("a frame within 5 s").map(|frame| frame.expect("a valid frame"));
        if !matches!(frame, Some(Message::Ping(_) | Message::Pong(_))) {
            return frame;
        }
    }
}

/// The close code the socket ends with (reading past other frames), within `within`.
async fn close_code(socket: &mut Socket, within: Duration) -> Option<u16> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => panic!("the socket was not closed within {within:?}"),
            Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|frame| u16::from(frame.code)),
            Ok(Some(Ok(_))) => continue,
            Ok(None | Some(Err(_))) => return None,
        }
    }
}

/// The HTTP answer to an upgrade that was refused.
pub(crate) fn refusal(result: Result<Socket, WsError>) -> (StatusCode, String) {
    match result {
        Err(WsError::Http(response)) => {
            let body = response.body().as_ref().map(|body| String::from_utf8_lossy(body).into_owned()).unwrap_or_default();
            let error = serde_json::from_str::<serde_json::Value>(&body).ok().and_then(|json| json["error"].as_str().map(str::to_owned)).unwrap_or(body);
            (StatusCode::from_u16(response.status().as_u16()).unwrap(), error)
        }
        Err(other) => panic!("refused without an HTTP answer: {other}"),
        Ok(_) => panic!("the upgrade was accepted"),
    }
}

/// Alice signed in to an app whose `live` API idles out after `timeout_secs`, her socket
/// open at `path`, and what the upstream greeted it with.
struct Alice {
    declared: Declared,
    browser: Browser,
    socket: Socket,
    hello: serde_json::Value,
}

async fn alices_socket(timeout_secs: u64, path: &str) -> Alice {
    let declared = app_with_sockets(timeout_secs).await;
    let browser = declared.app.browser();
    browser.sign_in("alice").await;
    let mut socket = browser_socket(&declared.app, &browser, path).await;
    let hello = greeting(&mut socket).await;
    Alice { declared, browser, socket, hello }
}

#[tokio::test]
async fn frames_are_relayed_both_ways_with_the_users_token_on_the_upstream_handshake() {
    let Alice { mut socket, hello, declared: _app, .. } = alices_socket(30, "/api/live/echo?room=1").await;
    assert_eq!((hello["sub"].as_str(), hello["path"].as_str()), (Some("logi-user-alice"), Some("/echo")));
    socket.send(Message::text("hello, upstream")).await.unwrap();
    assert_eq!(next(&mut socket).await, Some(Message::text("hello, upstream")));
    let bytes: Vec<u8> = (0..=255).collect();
    socket.send(Message::binary(bytes.clone())).await.unwrap();
    assert_eq!(next(&mut socket).await, Some(Message::binary(bytes)));
    // A full 1 MiB message is within the limit.
    socket.send(Message::binary(vec![7u8; MIB])).await.unwrap();
    assert_eq!(next(&mut socket).await.map(|message| message.len()), Some(MIB));
    // The upstream's close code reaches the caller.
    socket.send(Message::text("close:4000")).await.unwrap();
    assert_eq!(close_code(&mut socket, Duration::from_secs(2)).await, Some(4000));
}

#[tokio::test]
async fn upgrades_are_admitted_like_calls_our_cookie_needing_our_own_origin() {
    let Declared { app, _dir: _keep, .. } = app_with_sockets(30).await;
    let browser = app.browser();
    browser.sign_in("alice").await;
    app.double.reset_hits();
    assert_eq!(
        refusal(connect(&app.url, "/api/live/echo", Some(&browser), &[("origin", "https://evil.example")]).await),
        (StatusCode::FORBIDDEN, "bad_origin".into())
    );
    assert_eq!(refusal(connect(&app.url, "/api/live/echo", Some(&browser), &[]).await), (StatusCode::FORBIDDEN, "bad_origin".into()));
    assert_eq!(refusal(connect(&app.url, "/api/live/echo", None, &[]).await), (StatusCode::UNAUTHORIZED, "not_signed_in".into()));
    assert_eq!(app.double.hits("socket_handshake"), 0, "a refused upgrade reached the upstream");
    // A public socket API takes anonymous callers, and sends no token.
    let mut lobby = connect(&app.url, "/api/lobby/chat", None, &[]).await.expect("anonymous lobby");
    assert_eq!(greeting(&mut lobby).await["sub"], serde_json::Value::Null);
    // An API without `websocket = true` does not upgrade: the request goes on as a plain GET.
    let plain = browser.send(Method::GET, "/api/proxy/hello", &[("x-csrf", "1"), ("upgrade", "websocket"), ("sec-websocket-version", "13")], None).await;
    assert_eq!((plain.status, plain.json()["sub"].as_str()), (StatusCode::OK, Some("logi-user-alice")));
}

#[tokio::test]
async fn a_native_app_upgrades_with_its_bearer_token_and_no_origin() {
    let Declared { app, _dir: _keep, .. } = app_with_sockets(30).await;
    let device = crate::native::signed_in_device(&app, "alice").await;
    let bearer = format!("Bearer {}", device["access_token"].as_str().unwrap());
    let mut socket = connect(&app.url, "/api/live/feed", None, &[("authorization", &bearer)]).await.expect("the bearer upgrade");
    assert_eq!(greeting(&mut socket).await["sub"].as_str(), Some("logi-user-alice"));
    assert_eq!(refusal(connect(&app.url, "/api/live/feed", None, &[("authorization", "Bearer forged")]).await).0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_socket_closes_with_4401_within_a_second_of_its_login_ending_on_another_replica() {
    let Declared { app, _dir: _keep, .. } = app_with_sockets(30).await;
    let other = app.replica().await;
    let browser = app.browser();
    browser.sign_in("alice").await;
    let on_other = browser.at(&other.url);
    let mut socket = connect(&other.url, "/api/live/echo", Some(&on_other), &[("origin", &app.url)]).await.expect("the upgrade on the other replica");
    greeting(&mut socket).await;
    let signed_out = Instant::now();
    let out = browser.send(Method::POST, "/api/auth/logout", &[("origin", &app.url)], None).await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(close_code(&mut socket, Duration::from_secs(1)).await, Some(4401));
    println!("socket closed {:?} after the sign-out on the other replica", signed_out.elapsed());
}

#[tokio::test]
async fn an_idle_socket_is_closed_with_4408_unless_frames_flow() {
    let Alice { mut socket, declared: _app, .. } = alices_socket(1, "/api/live/echo").await;
    // Pings every 400 ms keep it open past its 1 s timeout.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        socket.send(Message::Ping(vec![1].into())).await.unwrap();
    }
    socket.send(Message::text("still here")).await.unwrap();
    assert_eq!(next(&mut socket).await, Some(Message::text("still here")));
    let quiet = Instant::now();
    assert_eq!(close_code(&mut socket, Duration::from_secs(3)).await, Some(4408));
    assert!(quiet.elapsed() >= Duration::from_millis(900), "closed after {:?}", quiet.elapsed());
}

#[tokio::test]
async fn a_frame_over_1_mib_closes_the_socket_with_1009() {
    let Alice { declared, browser, mut socket, .. } = alices_socket(30, "/api/live/echo").await;
    let app = &declared.app;
    socket.send(Message::binary(vec![0u8; MIB + 1])).await.unwrap();
    assert_eq!(close_code(&mut socket, Duration::from_secs(2)).await, Some(u16::from(CloseCode::Size)));
    // The app is fine: another socket works.
    let mut again = browser_socket(app, &browser, "/api/live/echo").await;
    assert_eq!(greeting(&mut again).await["sub"].as_str(), Some("logi-user-alice"));
}
