//! The benchmark's ceiling and fast upstream: a bare axum handler on the same runtime,
//! release profile and machine as the app. `GET /x` answers a small JSON body.

use axum::{routing::get, Json, Router};

#[tokio::main]
async fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:3399".to_owned());
    let body = serde_json::json!({ "user": { "sub": "bench-user", "anonymous": false, "email": "bench@example.com", "name": "Bench" } });
    let app = Router::new().route("/x", get(move || std::future::ready(Json(body.clone()))));
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind the ceiling server");
    axum::serve(listener, app).await.expect("serve");
}
