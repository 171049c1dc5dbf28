//! Prometheus metrics, served on a listener of their own (`METRICS_ADDR`; never the
//! public port). Recording goes through the `metrics` facade: without `METRICS_ADDR` no
//! recorder is installed and every `counter!`/`histogram!` in the code is a no-op.
//!
//! Series: `http_requests_total{route,method,status}` and
//! `http_request_duration_seconds{route}`; `logi_bff_sign_ins_total{method,outcome}`,
//! `logi_bff_auth_errors_total{code}`, `logi_bff_logi_requests_total{endpoint,outcome}` and
//! `logi_bff_logi_request_duration_seconds{endpoint}`,
//! `logi_bff_token_refreshes_total{outcome}`, `logi_bff_upstream_responses_total{api,status}`
//! and `logi_bff_upstream_duration_seconds{api}`, `logi_bff_active_logins{client}`.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::future::Future;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Latency buckets, 1 ms to 10 s.
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// The process-wide recorder, installed on first use (tests start many apps in one
/// process; they share it).
pub fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().set_buckets(&BUCKETS).expect("non-empty buckets").build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed");
            }
            let upkeep = handle.clone();
            tokio::spawn(async move {
                let mut interval = tokio::time::interval(Duration::from_secs(5));
                loop {
                    interval.tick().await;
                    upkeep.run_upkeep();
                }
            });
            handle
        })
        .clone()
}

/// Middleware: counts each request by route (the router's pattern, so the series stay
/// bounded), method and status, and times it to its response head.
pub async fn track_requests(matched: Option<MatchedPath>, request: Request, next: Next) -> Response {
    let route = matched.map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!("http_request_duration_seconds", "route" => route.clone()).record(started.elapsed().as_secs_f64());
    metrics::counter!("http_requests_total", "route" => route, "method" => method, "status" => status).increment(1);
    response
}

/// Runs one call to logi, counting it by endpoint and outcome and timing it.
pub async fn logi_call<T, E>(endpoint: &'static str, call: impl Future<Output = Result<T, E>>) -> Result<T, E> {
    let started = Instant::now();
    let result = call.await;
    let outcome = if result.is_ok() { "ok" } else { "error" };
    metrics::histogram!("logi_bff_logi_request_duration_seconds", "endpoint" => endpoint).record(started.elapsed().as_secs_f64());
    metrics::counter!("logi_bff_logi_requests_total", "endpoint" => endpoint, "outcome" => outcome).increment(1);
    result
}

/// One sign-in attempt: `method` is `logi`, `password` or `native`.
pub fn sign_in(method: &'static str, succeeded: bool) {
    metrics::counter!("logi_bff_sign_ins_total", "method" => method, "outcome" => if succeeded { "success" } else { "failure" }).increment(1);
}
