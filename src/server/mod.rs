//! Server-only machinery: configuration, database, sessions, embedded assets, errors.

pub mod assets;
pub mod cache;
pub mod config;
pub mod csrf;
pub mod db;
pub mod error;
pub mod request;
pub mod sessions;

pub use error::AppError;

use crate::app::{shell, App};
use axum::extract::{FromRef, Request, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Router;
use crate::auth::oidc::Provider;
use crate::proxy::custody::Custody;
use crate::proxy::routes::Upstream;
use config::Config;
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use sqlx::SqlitePool;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tower_sessions::ExpiredDeletion;
use tower_sessions_sqlx_store::SqliteStore;

/// The one application state; server functions get it from context.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub pool: SqlitePool,
    pub config: Arc<Config>,
    /// The logi client; `None` when `ONE_PASS_URL` is not configured.
    pub logi: Option<Arc<Provider>>,
    /// logi's tokens per login, sealed at rest.
    pub custody: Arc<Custody>,
    /// The API behind `/api/proxy/*`; `None` when `UPSTREAM_API_URL` is not configured.
    pub upstream: Option<Arc<Upstream>>,
}

/// Parses the configuration, opens the database and serves until Ctrl-C / SIGTERM.
pub async fn run() -> ExitCode {
    let _ = dotenvy::dotenv();
    init_tracing();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("logi-bff: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    match serve(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("logi-bff: {error}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,sqlx=warn".into());
    tracing_subscriber::fmt().with_env_filter(filter).init();
}

async fn serve(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let pool = db::connect(&config.database_url).await?;
    let listener = tokio::net::TcpListener::bind(config.listen_addr).await?;
    if config.logi.is_none() {
        tracing::warn!("ONE_PASS_URL is not set: logi sign-in is not configured");
    }
    tracing::info!(addr = %listener.local_addr()?, app_url = %config.app_url, mode = ?config.mode, "logi-bff listening");
    let app = router(config, pool)?;
    // Connection info gives server functions the peer address (per-address throttling).
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await?;
    Ok(())
}

/// The whole application: pages, server functions, assets, sessions.
pub fn router(config: Config, pool: SqlitePool) -> Result<Router, String> {
    let store = SqliteStore::new(pool.clone());
    tokio::spawn(store.clone().continuously_delete_expired(SWEEP_INTERVAL));
    let session_layer = sessions::layer(&config, store);
    let logi = match &config.logi {
        Some(logi) => Some(Arc::new(Provider::new(logi, config.redirect_uri())?)),
        None => None,
    };
    let upstream = match &config.upstream_api_url {
        Some(base) => Some(Arc::new(Upstream::new(base.clone(), config.upstream_timeout)?)),
        None => None,
    };
    let custody = Arc::new(Custody::new(&config.session_secret));
    let state = AppState { leptos_options: leptos_options(&config), pool, config: Arc::new(config), logi, custody, upstream };
    tokio::spawn(sweep_expired_rows(state.pool.clone(), state.config.clone()));
    let routes = generate_route_list(App);
    Ok(Router::new()
        .merge(crate::auth::routes::routes())
        .merge(crate::proxy::routes::routes())
        .leptos_routes(&state, routes, {
            let options = state.leptos_options.clone();
            move || shell(options.clone())
        })
        .fallback(asset_or_not_found)
        .layer(session_layer)
        .layer(axum::middleware::from_fn_with_state(state.config.clone(), csrf::reject_cross_site_mutations))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state))
}

const SWEEP_INTERVAL: Duration = Duration::from_secs(300);

/// Deletes ended logins and old sign-in attempts every few minutes.
async fn sweep_expired_rows(pool: SqlitePool, config: Arc<Config>) {
    let mut interval = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        interval.tick().await;
        let swept = sessions::delete_expired_logins(&pool, &config).await;
        let attempts = crate::accounts::throttle::delete_old_attempts(&pool).await;
        if let Err(error) = swept.and(attempts) {
            error.logged();
        }
    }
}

fn leptos_options(config: &Config) -> LeptosOptions {
    let reload_port = std::env::var("LEPTOS_RELOAD_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(3001);
    LeptosOptions::builder()
        .output_name("logi-bff")
        .site_root("target/site")
        .site_pkg_dir("pkg")
        .site_addr(config.listen_addr)
        .reload_port(reload_port)
        .build()
}

/// Serves an embedded file, or renders the app's "not found" page with status 404.
async fn asset_or_not_found(State(state): State<AppState>, request: Request) -> Response {
    if let Some(response) = assets::response(request.uri().path(), request.headers()) {
        return response;
    }
    let options = state.leptos_options.clone();
    let render = leptos_axum::render_app_to_stream_with_context(
        move || provide_context(state.clone()),
        move || shell(options.clone()),
    );
    render(request).await.into_response()
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

async fn shutdown_signal() {
    let ctrl_c = async { tokio::signal::ctrl_c().await.ok() };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => signal.recv().await,
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
}
