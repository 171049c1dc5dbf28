//! The benchmark's ceiling and fast upstream: bare axum handlers on the same runtime,
//! release profile and machine as the app, answering static bodies (nothing allocated
//! per request beyond what axum and hyper do). `GET /` answers what an anonymous
//! `/api/auth/me` does, `{"user":null}` (the ceiling); `GET /x` a signed-in user's JSON
//! (the upstream API behind the proxy); `GET /ws` a WebSocket that echoes every message.

use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::http::header::CONTENT_TYPE;
use axum::{routing::get, Router};

const CEILING: &str = r#"{"user":null}"#;
const UPSTREAM: &str = r#"{"user":{"sub":"bench-user","anonymous":false,"email":"bench@example.com","name":"Bench"}}"#;

#[tokio::main]
async fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:3399".to_owned());
    let app = Router::new()
        .route("/", get(|| async { ([(CONTENT_TYPE, "application/json")], CEILING) }))
        .route("/x", get(|| async { ([(CONTENT_TYPE, "application/json")], UPSTREAM) }))
        .route("/ws", get(|upgrade: WebSocketUpgrade| async { upgrade.on_upgrade(echo) }));
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind the ceiling server");
    axum::serve(listener, app).await.expect("serve");
}

async fn echo(mut socket: WebSocket) {
    while let Some(Ok(message)) = socket.recv().await {
        if socket.send(message).await.is_err() {
            return;
        }
    }
}
