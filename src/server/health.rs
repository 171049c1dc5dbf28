//! Probes for orchestrators: `GET /healthz` (the process serves; no I/O) and
//! `GET /readyz`: `503` when the database does not answer or the process is stopping;
//! `200 ready`, or `200 degraded` naming a dependency that fails (logi): every replica
//! shares logi, so taking them all out of a balancer would turn a logi outage into a
//! full one, while signed-in users keep working without logi. Neither reads a session
//! or sets a cookie: the routes are added outside the session layer.

use super::db::Db;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicBool, Ordering};
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

/// Set once the process is asked to stop: from then on `/readyz` answers `503 draining`,
/// so a balancer stops sending traffic before the listener closes.
#[derive(Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    pub fn start(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    fn is_on(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
struct Probes {
    db: Db,
    dependencies: Arc<[Arc<dyn Dependency>]>,
    draining: Draining,
}

pub fn routes<S: Clone + Send + Sync + 'static>(db: Db, dependencies: Vec<Arc<dyn Dependency>>, draining: Draining) -> Router<S> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).with_state(Probes { db, dependencies: dependencies.into(), draining })
}

async fn healthz() -> Response {
    answer(StatusCode::OK, json!({ "status": "ok" }))
}

async fn readyz(State(probes): State<Probes>) -> Response {
    if probes.draining.is_on() {
        return answer(StatusCode::SERVICE_UNAVAILABLE, json!({ "status": "draining" }));
    }
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
    let (status, summary) = match (database, checks.values().all(|state| state == "ok")) {
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
        (true, true) => (StatusCode::OK, "ready"),
        (true, false) => (StatusCode::OK, "degraded"),
    };
    answer(status, json!({ "status": summary, "checks": checks }))
}

fn answer(status: StatusCode, body: Value) -> Response {
    super::no_store((status, Json(body)).into_response())
}
