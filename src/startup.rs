//! The composition root: configuration in, then the database, the services, the
//! router with its middleware, the sweepers, and the server. The only module that
//! knows every feature; no feature imports it.

use crate::app::{shell, App};
use crate::auth::oidc::{Provider, SetupError};
use crate::login::session::{self, SessionCache, SessionRecords};
use crate::login::tokens::TokenAuthority;
use crate::login::Logins;
use crate::proxy::apis::{ApiFileError, Apis, Sources};
use crate::proxy::client_token::ClientToken;
use crate::server::config::Config;
use crate::server::db::Db;
use crate::server::request_context::RequestContextLayer;
use crate::server::{assets, csrf, db, headers, health, metrics};
use axum::extract::{FromRef, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Router;
use leptos::prelude::*;
use leptos_axum::{generate_route_list, AxumRouteListing, LeptosRoutes};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tower_sessions::ExpiredDeletion;

const SWEEP_INTERVAL: Duration = Duration::from_secs(300);

/// The one application state. Handlers take the parts they need (`State<Arc<Logins>>`,
/// the extractors of `login`); server functions get the same parts from context.
/// What every handler shares, behind one `Arc`: axum clones the state for every handler
/// call, so a clone is one reference count whatever the state holds.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub leptos_options: LeptosOptions,
    pub db: Db,
    pub config: Arc<Config>,
    pub logins: Arc<Logins>,
    /// The logi client; `None` when `ONE_PASS_URL` is not configured.
    pub logi: Option<Arc<Provider>>,
    /// The declared APIs behind the proxy (`API_ROUTES_FILE`, `UPSTREAM_API_URL`).
    pub apis: Arc<Apis>,
    /// Set when the process is stopping (`/readyz` fails first).
    pub draining: health::Draining,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts extractors take from the state (`State<Db>`, `Arc<Logins>: FromRef<S>`, …).
macro_rules! state_parts {
    ($($field:ident: $ty:ty),* $(,)?) => {$(
        impl FromRef<AppState> for $ty {
            fn from_ref(state: &AppState) -> Self {
                state.0.$field.clone()
            }
        }
    )*};
}

state_parts! {
    leptos_options: LeptosOptions,
    db: Db,
    config: Arc<Config>,
    logins: Arc<Logins>,
    logi: Option<Arc<Provider>>,
    apis: Arc<Apis>,
}

impl AppState {
    /// What server functions and pages find in context.
    fn provide_context(&self) {
        provide_context(self.db.clone());
        provide_context(self.config.clone());
        provide_context(self.logins.clone());
        provide_context(self.logi.clone());
        provide_context(self.apis.clone());
    }
}

/// Parses the configuration, opens the database and serves until Ctrl-C / SIGTERM; or,
/// as `logi-bff healthcheck`, asks the server this configuration describes for `/readyz`.
pub async fn run() -> ExitCode {
    return_large_blocks_to_the_os();
    let _ = dotenvy::dotenv();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("logi-bff: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    match std::env::args().nth(1).as_deref() {
        None => {}
        Some("healthcheck") => return healthcheck(config.listen_addr).await,
        Some(other) => {
            eprintln!("logi-bff: unknown command `{other}` (run it without arguments to serve, or `logi-bff healthcheck`)");
            return ExitCode::from(2);
        }
    }
    crate::server::logging::init(config.log_format);
    match serve(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("logi-bff: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let db = db::connect(&config.database_url).await?;
    let listener = tokio::net::TcpListener::bind(config.listen_addr).await?;
    if config.logi.is_none() {
        tracing::warn!("ONE_PASS_URL is not set: logi sign-in is not configured");
    }
    tracing::info!(addr = %listener.local_addr()?, app_url = %config.app_url, mode = ?config.mode, "logi-bff listening");
    let metrics_listener = match config.metrics_addr {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await?),
        None => None,
    };
    let (app, state) = router(config, db).await?;
    spawn_sweepers(&state);
    spawn_api_reloader(state.apis.clone())?;
    if let Some(listener) = metrics_listener {
        tracing::info!(addr = %listener.local_addr()?, "metrics listening");
        tokio::spawn(serve_metrics(listener, state.logins.clone()));
    }
    serve_until(listener, app, &state, shutdown_signal()).await?;
    Ok(())
}

/// `SIGHUP` reads `API_ROUTES_FILE` again: a valid file replaces the table for new requests,
/// an invalid one is logged and the table in use stays.
fn spawn_api_reloader(apis: Arc<Apis>) -> std::io::Result<()> {
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            let outcome = match apis.reload() {
                Ok(count) => {
                    tracing::info!(apis = count, "SIGHUP: API_ROUTES_FILE reloaded");
                    "reloaded"
                }
                Err(error) => {
                    tracing::error!(%error, "SIGHUP: API_ROUTES_FILE refused; the APIs in use stay");
                    "refused"
                }
            };
            ::metrics::counter!("logi_bff_api_reloads_total", "outcome" => outcome).increment(1);
        }
    });
    Ok(())
}

/// glibc raises its mmap threshold to the largest block freed (up to 32 MiB); after that,
/// every password hash's 19 MiB comes from a heap arena that keeps it, one arena per
/// thread that hashed (the soak saw RSS go from 18 MB to 667 MB in a minute of sign-ups).
/// A fixed threshold maps such blocks and unmaps them when they are freed.
fn return_large_blocks_to_the_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; glibc serialises it with the arenas' locks.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// `logi-bff healthcheck` (the container image's HEALTHCHECK, which has no curl): exit
/// status 0 when the local server's `/readyz` answers 200 within 3 s, else 1.
async fn healthcheck(listen_addr: std::net::SocketAddr) -> ExitCode {
    let mut addr = listen_addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() { std::net::Ipv4Addr::LOCALHOST.into() } else { std::net::Ipv6Addr::LOCALHOST.into() });
    }
    let answer = async {
        let client = crate::server::http::client(Duration::from_secs(3), "healthcheck")?;
        let response = client.get(format!("http://{addr}/readyz")).send().await?;
        Ok::<_, Box<dyn std::error::Error>>((response.status(), response.text().await?))
    };
    match answer.await {
        Ok((status, body)) if status.is_success() => {
            println!("{body}");
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            eprintln!("logi-bff healthcheck: {status} {body}");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("logi-bff healthcheck: {error}");
            ExitCode::FAILURE
        }
    }
}

/// What asked the process to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Ctrl-C in a terminal: nobody balances it, so no drain.
    Interrupt,
    /// SIGTERM, from an orchestrator.
    Terminate,
}

/// Serves until `stop`, then shuts down in this order: `/readyz` answers `503 draining`
/// at once; on SIGTERM the listener keeps serving for `SHUTDOWN_DRAIN_SECS` while the
/// balancer's health check notices; then it stops accepting, the requests in flight get up
/// to `SHUTDOWN_GRACE_SECS` to finish (then their connections close), and refreshes still
/// running get logi's timeout, so no rotated refresh token is lost by stopping.
pub async fn serve_until(
    listener: tokio::net::TcpListener,
    app: Router,
    state: &AppState,
    stop: impl std::future::Future<Output = Stop> + Send + 'static,
) -> std::io::Result<()> {
    let shutdown = state.config.shutdown;
    let (draining, closing) = (state.draining.clone(), Arc::new(tokio::sync::Notify::new()));
    let sockets = state.apis.sockets.clone();
    let stop_accepting = {
        let (closing, sockets) = (closing.clone(), sockets.clone());
        async move {
            let stop = stop.await;
            draining.start();
            if stop == Stop::Terminate && !shutdown.drain.is_zero() {
                tracing::info!(drain_secs = shutdown.drain.as_secs(), "stopping: /readyz fails now; still serving while the balancer notices");
                tokio::time::sleep(shutdown.drain).await;
            }
            tracing::info!(grace_secs = shutdown.grace.as_secs(), "stopping: no new connections; finishing the requests in flight");
            // A WebSocket is no request in flight: it would never finish by itself.
            sockets.close_all();
            closing.notify_one();
        }
    };
    // Connection info gives server functions the peer address (per-address throttling).
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = std::future::IntoFuture::into_future(axum::serve(listener, app).with_graceful_shutdown(stop_accepting));
    let overdue = async {
        closing.notified().await;
        tokio::time::sleep(shutdown.grace).await;
    };
    tokio::select! {
        served = server => served?,
        () = overdue => tracing::warn!("stopping: requests still in flight after the grace period are cut off"),
    }
    if !sockets.finished(Duration::from_secs(2)).await {
        tracing::warn!("stopping: a WebSocket was still closing at exit");
    }
    let refresh_bound = state.config.logi.as_ref().map_or(Duration::ZERO, |logi| logi.timeout) + Duration::from_secs(1);
    if !state.logins.finish_refreshes(refresh_bound).await {
        tracing::warn!("stopping: a refresh was still in flight at exit");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Why the application could not be put together.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Provider(#[from] SetupError),
    #[error("signing keys: {0:?}")]
    SigningKeys(crate::server::AppError),
    #[error(transparent)]
    Apis(#[from] ApiFileError),
}

/// The whole application (pages, server functions, routes, assets, sessions) and its
/// state; loads (or makes) the signing keys of native apps' tokens.
pub async fn router(config: Config, db: Db) -> Result<(Router, AppState), StartupError> {
    let logi = match &config.logi {
        Some(logi) => Some(Arc::new(Provider::new(logi, config.redirect_uri())?)),
        None => None,
    };
    let session_cache = SessionCache::default();
    let session_layer = session::layer(&config, session_cache.clone(), SessionRecords::new(&db));
    let authority = logi.clone().map(|provider| provider as Arc<dyn TokenAuthority>);
    let client_token = ClientToken::new(authority.clone(), config.token_refresh_skew_secs);
    let logins = Arc::new(Logins::new(db.clone(), &config, authority, session_cache));
    let apis = Arc::new(Apis::load(Sources::of(&config), client_token, logins.clone())?);
    logins.devices().maintain_keys(&db, crate::server::unix_now()).await.map_err(StartupError::SigningKeys)?;
    let logi_dependency = logi.iter().map(|provider| provider.clone() as Arc<dyn health::Dependency>).collect();
    let draining = health::Draining::default();
    let state = AppState(Arc::new(Shared { leptos_options: leptos_options(&config), db, config: Arc::new(config), logins, logi, apis, draining }));
    let routes = route_list();
    let metrics_on = state.config.metrics_addr.is_some();
    let app = Router::new()
        .merge(crate::auth::routes::routes())
        .merge(crate::proxy::routes::routes())
        .merge(crate::accounts::activity::routes())
        .leptos_routes_with_context(
            &state,
            routes,
            {
                let state = state.clone();
                move || state.provide_context()
            },
            {
                let options = state.leptos_options.clone();
                move || shell(options.clone())
            },
        )
        .fallback(asset_or_not_found)
        .layer(session_layer)
        .layer(axum::middleware::from_fn_with_state(state.config.clone(), csrf::reject_cross_site_mutations))
        // Native apps' token routes and logi's back-channel logout ignore cookies and
        // carry no ambient credential, and the probes touch no session: added after the
        // session and cross-site layers, so neither applies to them.
        .merge(crate::auth::native::routes())
        .merge(crate::auth::backchannel::routes())
        .merge(health::routes(state.db.clone(), logi_dependency, state.draining.clone()));
    // Only with METRICS_ADDR: otherwise the hot path pays nothing for metrics.
    let app = if metrics_on {
        metrics::recorder();
        app.layer(axum::middleware::from_fn(metrics::track_requests))
    } else {
        app
    };
    let app = app
        .layer(RequestContextLayer::new(state.config.trusted_proxies.clone()))
        .layer(axum::middleware::map_response_with_state(state.config.app_url.scheme() == "https", finish_response))
        .with_state(state.clone());
    Ok((app, state))
}

/// The app's routes, generated once per process. Generating them renders the app with a
/// process-global flag set (leptos_server 0.8's `SuppressResourceLoad`) that leaves every
/// resource first polled meanwhile pending forever (leptos-rs/leptos#4773): where several
/// routers live in one process (the HTTP tests), a page rendered by one while another was
/// being built was never answered. Once, before any router exists, nothing is rendering.
fn route_list() -> Vec<AxumRouteListing> {
    static ROUTES: std::sync::OnceLock<Vec<AxumRouteListing>> = std::sync::OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(App)).clone()
}

/// `GET /metrics` on the metrics listener: the recorder's series, with the live logins
/// counted at scrape time.
pub async fn serve_metrics(listener: tokio::net::TcpListener, logins: Arc<Logins>) {
    let handle = metrics::recorder();
    let scrape = move || {
        let (handle, logins) = (handle.clone(), logins.clone());
        async move {
            match logins.count_live().await {
                Ok(counts) => {
                    for (client, count) in counts {
                        ::metrics::gauge!("logi_bff_active_logins", "client" => client).set(count as f64);
                    }
                }
                Err(error) => _ = error.logged(),
            }
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render())
        }
    };
    let app = Router::new().route("/metrics", axum::routing::get(scrape));
    if let Err(error) = axum::serve(listener, app).await {
        tracing::error!(%error, "the metrics listener stopped");
    }
}

/// Expired sessions every few minutes, and [`sweep`]. Each is one idempotent `DELETE`
/// (or a few), so running them on several replicas is harmless.
pub fn spawn_sweepers(state: &AppState) {
    tokio::spawn(SessionRecords::new(&state.db).continuously_delete_expired(SWEEP_INTERVAL));
    let state = state.clone();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(SWEEP_INTERVAL);
        loop {
            interval.tick().await;
            sweep(&state).await;
        }
    });
}

/// Ended logins, used login markers, old sign-in attempts, used logout tokens and account
/// events past `ACTIVITY_RETENTION_DAYS`; a failure is logged and the next sweep tries again.
pub async fn sweep(state: &AppState) {
    let now = crate::server::unix_now();
    let swept = state.logins.sweep().await;
    let attempts = crate::accounts::throttle::delete_old_attempts(&state.db).await;
    let logout_tokens = crate::auth::store::delete_expired_logout_tokens(&state.db, now).await;
    let events = crate::activity::store::delete_older_than(&state.db, now - state.config.activity_retention.as_secs() as i64).await;
    if let Err(error) = swept.and(attempts).and(logout_tokens).and(events) {
        error.logged();
    }
}

/// The site as `[package.metadata.leptos]` in Cargo.toml builds it (the binary embeds
/// it, so these are fixed at build time; a test holds them to Cargo.toml), served where
/// the configuration says.
const OUTPUT_NAME: &str = "logi-bff";
const SITE_ROOT: &str = "target/site";
const SITE_PKG_DIR: &str = "pkg";

fn leptos_options(config: &Config) -> LeptosOptions {
    LeptosOptions::builder()
        .output_name(OUTPUT_NAME)
        .site_root(SITE_ROOT)
        .site_pkg_dir(SITE_PKG_DIR)
        .site_addr(config.listen_addr)
        .reload_port(config.reload_port)
        .build()
}

/// Serves an embedded file, or renders the app's "not found" page with status 404.
async fn asset_or_not_found(State(state): State<AppState>, request: Request) -> Response {
    if let Some(response) = assets::response(request.uri().path(), request.headers()) {
        return response;
    }
    let options = state.leptos_options.clone();
    let render = leptos_axum::render_app_to_stream_with_context(move || state.provide_context(), move || shell(options.clone()));
    render(request).await.into_response()
}

/// The last touch on every response: security headers, and the status of a
/// server-function error (one layer, so the hot path pays for one).
async fn finish_response(State(https): State<bool>, response: Response) -> Response {
    let mut response = crate::accounts::server_fn_error_status(response).await;
    headers::add_security_headers(response.headers_mut(), https);
    response
}

async fn shutdown_signal() -> Stop {
    let ctrl_c = async { tokio::signal::ctrl_c().await.ok() };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => signal.recv().await,
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => Stop::Interrupt,
        _ = terminate => Stop::Terminate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_site_options_are_the_ones_cargo_leptos_builds() {
        let manifest = include_str!("../Cargo.toml");
        for (key, value) in [("output-name", OUTPUT_NAME), ("site-root", SITE_ROOT), ("site-pkg-dir", SITE_PKG_DIR)] {
            assert!(manifest.lines().any(|line| line == format!("{key} = \"{value}\"")), "Cargo.toml's {key} is not `{value}`");
        }
    }
}
