//! Probes for orchestrators: `GET /healthz` (the process serves; no I/O) and
//! `GET /readyz` (`200` when the database answers and every dependency is ready, else
//! `503` naming what is not). Neither reads a session or sets a cookie: the routes are
//! added outside the session layer.

use super::db::Db;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// Each check's bound: a probe must answer well within an orchestrator's timeout.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// Something the app needs before it can serve (logi's discovery, for one).
#[async_trait::async_trait]
pub trait Dependency: Send + Sync {
    /// Its key in `/readyz`'s `checks`.
    fn name(&self) -> &'static str;
    async fn is_ready(&self) -> bool;
}

#[derive(Clone)]
struct Probes {
    db: Db,
    dependencies: Arc<[Arc<dyn Dependency>]>,
}

pub fn routes<S: Clone + Send + Sync + 'static>(db: Db, dependencies: Vec<Arc<dyn Dependency>>) -> Router<S> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).with_state(Probes { db, dependencies: dependencies.into() })
}

async fn healthz() -> Response {
    answer(StatusCode::OK, json!({ "status": "ok" }))
}

async fn readyz(State(probes): State<Probes>) -> Response {
    // Concurrently: each dependency in a task of its own, the database here.
    let pending: Vec<_> = probes
        .dependencies
        .iter()
        .cloned()
        .map(|dependency| (dependency.name(), tokio::spawn(async move { tokio::time::timeout(CHECK_TIMEOUT, dependency.is_ready()).await == Ok(true) })))
        .collect();
    let database = match tokio::time::timeout(CHECK_TIMEOUT, probes.db.ping()).await {
        Ok(Ok(_)) => true,
        Ok(Err(error)) => {
            tracing::warn!(%error, "database check failed");
            false
        }
        Err(_) => {
            tracing::warn!("database check timed out");
            false
        }
    };
    let mut results = vec![("database", database)];
    for (name, task) in pending {
        results.push((name, task.await.unwrap_or(false)));
    }
    let mut checks = Map::new();
    for (name, ready) in results {
        if !ready {
            tracing::warn!(check = name, "not ready");
        }
        checks.insert(name.to_owned(), Value::from(if ready { "ok" } else { "failing" }));
    }
    let ready = checks.values().all(|state| state == "ok");
    let (status, summary) = if ready { (StatusCode::OK, "ready") } else { (StatusCode::SERVICE_UNAVAILABLE, "not_ready") };
    answer(status, json!({ "status": summary, "checks": checks }))
}

fn answer(status: StatusCode, body: Value) -> Response {
    super::no_store((status, Json(body)).into_response())
}
