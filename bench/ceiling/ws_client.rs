//! The benchmark's WebSocket client: `bench_ws <url> <seconds> <connections> [name: value]...`
//! opens the connections (with those handshake headers), then on each, for the duration,
//! sends a 64-byte text message and waits for its echo before sending the next. Prints
//! `messages-per-second p50-ms p99-ms` of the round trips.

use futures_util::{SinkExt, StreamExt};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::Message;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (url, seconds, connections) = (&args[1], args[2].parse::<u64>().expect("seconds"), args[3].parse::<usize>().expect("connections"));
    let mut sockets = Vec::new();
    for _ in 0..connections {
        let mut request = url.as_str().into_client_request().expect("a ws:// URL");
        for header in &args[4..] {
            let (name, value) = header.split_once(": ").expect("name: value");
            request.headers_mut().insert(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
        }
        let (socket, _) = tokio_tungstenite::connect_async(request).await.expect("the WebSocket opens");
        sockets.push(socket);
    }
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|mut socket| {
            tokio::spawn(async move {
                let payload = "x".repeat(64);
                let mut round_trips = Vec::new();
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    socket.send(Message::text(payload.clone())).await.expect("send");
                    loop {
                        match socket.next().await.expect("the socket stays open").expect("a frame") {
                            Message::Text(echo) if echo.len() == payload.len() => break,
                            _ => continue,
                        }
                    }
                    round_trips.push(sent.elapsed());
                }
                _ = socket.close(None).await;
                round_trips
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("a connection's task"));
    }
    all.sort();
    let at = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)].as_secs_f64() * 1000.0;
    println!("{:.0} {:.3} {:.3}", all.len() as f64 / seconds as f64, at(0.5), at(0.99));
}
