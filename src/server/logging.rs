//! Log lines on stdout: readable text, or with `LOG_FORMAT=json` one JSON object per
//! line. A line written while serving a request names it (its id, client address, method
//! and path, from [`request_context`](super::request_context)): in text as a
//! `request{…}:` prefix, in JSON as the one entry of `spans` (the shape a `tracing` span
//! had, so log pipelines keep working).

use super::config::LogFormat;
use super::request_context::{self, LoggedRequest};
use std::fmt;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, Json, JsonFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// Dependencies that log or open spans on every request at INFO (tower-sessions opens a
/// span per request and one per session method it runs, each registered, formatted,
/// entered and closed): at `warn` unless `RUST_LOG` names them.
const QUIET_DEPENDENCIES: [&str; 3] = ["sqlx", "tower_sessions", "tower_sessions_core"];

/// Installs the global subscriber, filtered by [`filter`] of `RUST_LOG`.
pub fn init(format: LogFormat) {
    let filter = filter(std::env::var("RUST_LOG").ok().as_deref());
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => logs.event_format(TextLine).init(),
        LogFormat::Json => {
            let json = format::Format::default().json().with_current_span(false).with_span_list(false);
            logs.fmt_fields(JsonFields::new()).event_format(JsonLine(json)).init()
        }
    }
}

/// `RUST_LOG` (tracing's syntax; unset or invalid ⇒ `info`), with the
/// [`QUIET_DEPENDENCIES`] it does not name at `warn`.
fn filter(rust_log: Option<&str>) -> EnvFilter {
    let mut filter = rust_log.and_then(|directives| EnvFilter::try_new(directives).ok()).unwrap_or_else(|| EnvFilter::new("info"));
    for target in QUIET_DEPENDENCIES.into_iter().filter(|target| !rust_log.is_some_and(|directives| directives.contains(target))) {
        filter = filter.add_directive(format!("{target}=warn").parse().expect("a target and a level are a directive"));
    }
    filter
}

/// `2026-11-30T08:00:00.000000Z  INFO request{request_id=… client=… method=GET path=/x}: target: message fields`
struct TextLine;

impl<S, N> FormatEvent<S, N> for TextLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let metadata = event.metadata();
        SystemTime.format_time(&mut writer)?;
        write_level(&mut writer, *metadata.level())?;
        request_context::with_current(|request| write_request(&mut writer, request)).transpose()?;
        write!(writer, "{}: ", metadata.target())?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

fn write_level(writer: &mut Writer<'_>, level: Level) -> fmt::Result {
    if !writer.has_ansi_escapes() {
        return write!(writer, " {level:>5} ");
    }
    let color = match level {
        Level::ERROR => 31,
        Level::WARN => 33,
        Level::INFO => 32,
        Level::DEBUG => 34,
        Level::TRACE => 35,
    };
    write!(writer, " \x1b[{color}m{level:>5}\x1b[0m ")
}

fn write_request(writer: &mut Writer<'_>, request: &LoggedRequest) -> fmt::Result {
    write!(writer, "request{{request_id={}", request.id())?;
    if let Some(client) = request.client() {
        write!(writer, " client={client}")?;
    }
    write!(writer, " method={} path={}}}: ", request.method(), request.path())
}

/// tracing-subscriber's JSON line, with the request as `"spans":[{…,"name":"request"}]`.
struct JsonLine(format::Format<Json>);

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let Some(request) = request_context::with_current(request_json) else {
            return self.0.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        let object = line.trim_end().strip_suffix('}').ok_or(fmt::Error)?;
        writeln!(writer, "{object},\"spans\":[{request}]}}")
    }
}

fn request_json(request: &LoggedRequest) -> String {
    let mut span = serde_json::json!({ "name": "request", "request_id": request.id(), "method": request.method(), "path": request.path() });
    if let Some(client) = request.client() {
        span["client"] = client.to_string().into();
    }
    span.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::client_ip::TrustedProxies;
    use crate::server::request_context::RequestContextLayer;
    use axum::body::Body;
    use axum::extract::{ConnectInfo, Request};
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};
    use tower_layer::Layer;
    use tower_service::Service;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn lines(&self) -> Vec<String> {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap().lines().map(str::to_owned).collect()
        }
    }

    /// Serves one request whose handler logs `served`, then logs `outside` after it; the
    /// request id the response carries.
    async fn serve_one_logged_request() -> String {
        let handler = axum::Router::new().route("/api/x", axum::routing::get(|| async { tracing::info!(count = 1, "served") }));
        let mut service = RequestContextLayer::new(TrustedProxies::default()).layer(handler);
        let mut request = Request::get("/api/x?secret=1").body(Body::empty()).unwrap();
        request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([10, 0, 0, 1], 4321))));
        let response = service.call(request).await.unwrap();
        tracing::info!("outside");
        response.headers()["x-request-id"].to_str().unwrap().to_owned()
    }

    #[test]
    fn per_request_spans_of_dependencies_are_off_unless_rust_log_names_them() {
        let enabled = |rust_log: Option<&str>, target_is_sessions: bool| {
            let subscriber = tracing_subscriber::fmt().with_env_filter(filter(rust_log)).finish();
            tracing::subscriber::with_default(subscriber, || match target_is_sessions {
                true => tracing::span_enabled!(target: "tower_sessions::service", tracing::Level::INFO),
                false => tracing::span_enabled!(target: "logi_bff::proxy", tracing::Level::INFO),
            })
        };
        for rust_log in [None, Some("info"), Some("debug,hyper=warn"), Some("logi_bff=loud")] {
            assert!(!enabled(rust_log, true), "{rust_log:?}");
            assert!(enabled(rust_log, false), "{rust_log:?}");
        }
        assert!(enabled(Some("info,tower_sessions=debug"), true));
        assert!(!enabled(Some("warn"), false));
    }

    #[tokio::test]
    async fn a_text_line_written_while_serving_a_request_names_it_and_no_other_does() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).event_format(TextLine).finish();
        let _default = tracing::subscriber::set_default(subscriber);
        let id = serve_one_logged_request().await;
        let lines = captured.lines();
        assert_eq!(lines.len(), 2, "{lines:?}");
        let served = format!(" INFO request{{request_id={id} client=10.0.0.1 method=GET path=/api/x}}: logi_bff::server::logging::tests: served count=1");
        assert!(lines[0].ends_with(&served), "{lines:?}");
        assert!(lines[1].ends_with(" INFO logi_bff::server::logging::tests: outside"), "{lines:?}");
    }

    #[tokio::test]
    async fn a_json_line_carries_the_request_as_its_span() {
        let captured = Captured::default();
        let writer = captured.clone();
        let json = format::Format::default().json().with_current_span(false).with_span_list(false);
        let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).fmt_fields(JsonFields::new()).event_format(JsonLine(json)).finish();
        let _default = tracing::subscriber::set_default(subscriber);
        let id = serve_one_logged_request().await;
        let lines: Vec<serde_json::Value> = captured.lines().iter().map(|line| serde_json::from_str(line).unwrap()).collect();
        assert_eq!(lines[0]["fields"]["message"], "served");
        assert_eq!(lines[0]["spans"], serde_json::json!([{ "name": "request", "request_id": id, "client": "10.0.0.1", "method": "GET", "path": "/api/x" }]));
        assert_eq!(lines[1]["fields"]["message"], "outside");
        assert!(lines[1].get("spans").is_none(), "{}", lines[1]);
    }
}
