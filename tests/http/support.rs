//! `spawn_app`: the real router on a random port over a fresh database (SQLite, or
//! Postgres when `LOGI_BFF_TEST_POSTGRES` is set), wired to
//! the provider double; and `Browser`, a cookie-keeping HTTP client that does not
//! follow redirects by itself, so each hop can be checked.

use crate::provider::{self, Double, CLIENT_ID, CLIENT_SECRET};
use logi_bff::server::config::Config;
use logi_bff::server::db::Db;
use logi_bff::startup::{router, serve_until, AppState, Stop};
use reqwest::header::{HeaderMap, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub const SESSION_SECRET: &str = "http-test-session-secret-0123456789abcdef";
pub const NATIVE_REDIRECT_URI: &str = "com.example.logibff:/oauth/callback";

pub struct TestApp {
    pub url: String,
    pub state: AppState,
    pub double: Arc<Double>,
    /// The metrics listener's `/metrics` URL, when `METRICS_ADDR` is set.
    pub metrics_url: Option<String>,
    /// Stops the app the way the binary stops on a signal (`startup::serve_until`).
    stop: Mutex<Option<Stopper>>,
    vars: BTreeMap<String, String>,
    _dir: Arc<tempfile::TempDir>,
}

/// A replica running as a process; killed (SIGKILL) when dropped.
pub struct ProcessReplica {
    pub url: String,
    child: std::process::Child,
}

impl ProcessReplica {
    /// SIGHUP: what an operator sends to reload `API_ROUTES_FILE`.
    pub fn hang_up(&self) {
        let status = std::process::Command::new("kill").arg("-HUP").arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success(), "kill -HUP failed");
    }

    /// SIGKILL: no shutdown, no rollback but what the database does for a dead connection.
    pub fn kill(&mut self) {
        self.child.kill().expect("the replica is killed");
        self.child.wait().expect("the replica is reaped");
    }
}

impl Drop for ProcessReplica {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

/// Options of one app: environment variables on top of the defaults.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

pub async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    let (double, upstream) = provider::start().await;
    spawn_app_against(double, &upstream, extra).await
}

/// A migrated database of the backend under test (SQLite unless `LOGI_BFF_TEST_POSTGRES` is set).
pub async fn test_db() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let url = logi_bff::server::db::scratch_database_url(dir.path()).await.expect("a scratch database");
    let db = logi_bff::server::db::connect(&url).await.expect("a migrated database");
    (dir, db)
}

pub async fn spawn_app_against(double: Arc<Double>, upstream: &str, extra: &[(&str, &str)]) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let url = format!("http://127.0.0.1:{}", addr.port());
    let database = logi_bff::server::db::scratch_database_url(dir.path()).await.expect("a scratch database");
    let mut vars: BTreeMap<String, String> = [
        ("APP_ENV", "production"),
        ("APP_URL", url.as_str()),
        ("SESSION_SECRET", SESSION_SECRET),
        ("DATABASE_URL", database.as_str()),
        ("ONE_PASS_URL", double.issuer.as_str()),
        ("ONE_PASS_CLIENT_ID", CLIENT_ID),
        ("ONE_PASS_CLIENT_SECRET", CLIENT_SECRET),
        ("UPSTREAM_API_URL", upstream),
        ("UPSTREAM_TIMEOUT_SECS", "2"),
        ("TOKEN_REFRESH_SKEW_SECS", "0"),
        ("NATIVE_REDIRECT_URIS", NATIVE_REDIRECT_URI),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (key, value) in extra {
        vars.insert((*key).to_owned(), (*value).to_owned());
    }
    vars.retain(|_, value| !value.is_empty());
    let (url, state, metrics_url, stop) = serve(listener, &vars).await;
    TestApp { url, state, double, metrics_url, stop: Mutex::new(Some(stop)), vars, _dir: Arc::new(dir) }
}

/// An app whose `API_ROUTES_FILE` holds what `declare` writes for the provider double (its
/// HTTP upstream's base URL given), next to `UPSTREAM_API_URL`; the file stays writable, for
/// reloads.
pub struct Declared {
    pub app: TestApp,
    pub file: std::path::PathBuf,
    pub upstream: String,
    pub _dir: tempfile::TempDir,
}

pub async fn spawn_app_declaring(declare: impl Fn(&Double, &str) -> String, extra: &[(&str, &str)]) -> Declared {
    let (double, upstream) = crate::provider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("apis.toml");
    std::fs::write(&file, declare(&double, &upstream)).unwrap();
    let mut vars = vec![("API_ROUTES_FILE", file.to_str().unwrap())];
    vars.extend_from_slice(extra);
    let app = spawn_app_against(double, &upstream, &vars).await;
    Declared { app, file, upstream, _dir: dir }
}

type Stopper = (tokio::sync::oneshot::Sender<Stop>, tokio::task::JoinHandle<std::io::Result<()>>);

/// The app with this configuration, served on `listener`; its URL, state and metrics URL
/// (a listener of its own on a free port when `METRICS_ADDR` is set).
async fn serve(listener: tokio::net::TcpListener, vars: &BTreeMap<String, String>) -> (String, AppState, Option<String>, Stopper) {
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = Config::from_lookup(|key| vars.get(key).cloned()).expect("a valid test configuration");
    let db = logi_bff::server::db::connect(&config.database_url).await.expect("a migrated database");
    let (app, state) = router(config, db).await.expect("the router builds");
    let (stop, stopping) = tokio::sync::oneshot::channel();
    let serving = {
        let state = state.clone();
        tokio::spawn(async move {
            serve_until(listener, app, &state, async move {
                // A test that drops its app leaves it serving, as before.
                match stopping.await {
                    Ok(how) => how,
                    Err(_) => std::future::pending().await,
                }
            })
            .await
        })
    };
    let metrics_url = match vars.contains_key("METRICS_ADDR") {
        true => {
            let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let metrics_url = format!("http://{}/metrics", metrics.local_addr().unwrap());
            tokio::spawn(logi_bff::startup::serve_metrics(metrics, state.logins.clone()));
            Some(metrics_url)
        }
        false => None,
    };
    (url, state, metrics_url, (stop, serving))
}

impl TestApp {
    pub fn browser(&self) -> Browser {
        Browser::new(&self.url)
    }

    /// Another replica: the same configuration (`APP_URL` included) and database, its
    /// own process state (caches, locks), on a port of its own.
    pub async fn replica(&self) -> TestApp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (url, state, metrics_url, stop) = serve(listener, &self.vars).await;
        TestApp { url, state, double: self.double.clone(), metrics_url, stop: Mutex::new(Some(stop)), vars: self.vars.clone(), _dir: self._dir.clone() }
    }

    /// Another replica in a process of its own (the binary this suite was built with), for
    /// what only a process can show: being killed. Answers once it is ready (logi's
    /// discovery and keys fetched, the database answering).
    pub async fn process_replica(&self) -> ProcessReplica {
        let (port, mut command) = self.binary();
        let child = command.stdout(std::process::Stdio::null()).spawn().expect("the app's binary starts");
        let replica = ProcessReplica { url: format!("http://127.0.0.1:{port}"), child };
        let probe = reqwest::Client::new();
        for _ in 0..300 {
            if let Ok(answer) = probe.get(format!("{}/readyz", replica.url)).send().await {
                if answer.text().await.unwrap_or_default().contains(r#""status":"ready""#) {
                    return replica;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the replica process was not ready within 15 s");
    }

    /// Runs the binary with this app's configuration until it exits by itself (at most
    /// 15 s): its exit status and what it wrote to stderr.
    pub async fn run_binary_to_exit(&self) -> (std::process::ExitStatus, String) {
        let (_, mut command) = self.binary();
        let mut child = command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().expect("the app's binary starts");
        for _ in 0..300 {
            if let Some(status) = child.try_wait().unwrap() {
                let mut stderr = String::new();
                std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
                return (status, stderr);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        _ = child.kill();
        panic!("the binary did not exit within 15 s");
    }

    /// The suite's binary with this app's configuration, on a free port of its own.
    fn binary(&self) -> (u16, std::process::Command) {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_logi-bff"));
        command.envs(&self.vars).env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}")).env("RUST_LOG", "error");
        (port, command)
    }

    /// Asks the app to stop as `how` says; what it returns ends when the app has stopped.
    pub fn stop(&self, how: Stop) -> tokio::task::JoinHandle<std::io::Result<()>> {
        let (stop, serving) = self.stop.lock().unwrap().take().expect("the app is running");
        stop.send(how).unwrap();
        serving
    }

    /// Rows in every table of the schema, by table (the sessions' table is `tower_sessions`).
    pub async fn row_counts(&self) -> BTreeMap<String, i64> {
        let tables: Vec<(String, String)> = match &self.state.db {
            Db::Sqlite(pool) => {
                let sql =
                    "SELECT name, '\"' || name || '\"' FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' AND name <> '_sqlx_migrations'";
                sqlx::query_as(sql).fetch_all(pool).await.unwrap()
            }
            Db::Postgres(pool) => {
                let sql = "SELECT CASE table_schema WHEN 'public' THEN table_name ELSE table_schema END, table_schema || '.' || table_name
                             FROM information_schema.tables
                            WHERE table_schema IN ('public', 'tower_sessions') AND table_type = 'BASE TABLE' AND table_name <> '_sqlx_migrations'";
                sqlx::query_as(sql).fetch_all(pool).await.unwrap()
            }
        };
        let mut counts = BTreeMap::new();
        for (name, qualified) in tables {
            counts.insert(name, self.count(&format!("SELECT count(*) FROM {qualified}")).await);
        }
        counts
    }

    pub async fn count(&self, sql: &str) -> i64 {
        self.state.db.count(sql).await.unwrap()
    }

    pub async fn execute(&self, sql: &str) -> u64 {
        self.state.db.execute(sql).await.unwrap()
    }
}

/// True once `condition` holds (checked every 20 ms), false if it still does not after
/// 5 s: for what the app does in the background, such as revocation at logi.
pub async fn eventually(condition: impl Fn() -> bool) -> bool {
    for _ in 0..250 {
        if condition() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    condition()
}

/// One answer, read whole.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn location(&self) -> &str {
        self.headers.get(LOCATION).map(|v| v.to_str().unwrap()).unwrap_or("")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers.get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect()
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
    }
}

/// A browser for one origin: keeps the cookies the app sets (name → value), sends them back.
#[derive(Clone)]
pub struct Browser {
    origin: String,
    http: reqwest::Client,
    pub cookies: Arc<Mutex<BTreeMap<String, String>>>,
}

impl Browser {
    pub fn new(origin: &str) -> Self {
        Self::with_user_agent(origin, "")
    }

    /// A browser that sends this `User-Agent` with every request (none when empty).
    pub fn with_user_agent(origin: &str, user_agent: &str) -> Self {
        // A request the app never answers fails its test instead of hanging the suite
        // (seen once in CI: an idle connection, the server never answered a sign-in hop).
        let mut http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(std::time::Duration::from_secs(30));
        if !user_agent.is_empty() {
            http = http.user_agent(user_agent.to_owned());
        }
        Self { origin: origin.to_owned(), http: http.build().unwrap(), cookies: Arc::default() }
    }

    /// The same browser (the same cookie jar) talking to another replica of the app, as a
    /// load balancer without stickiness would send it.
    pub fn at(&self, origin: &str) -> Browser {
        Browser { origin: origin.to_owned(), http: self.http.clone(), cookies: self.cookies.clone() }
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn cookie_header(&self) -> String {
        self.cookies.lock().unwrap().iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.lock().unwrap().get(name).cloned()
    }

    pub fn set_cookie(&self, name: &str, value: &str) {
        self.cookies.lock().unwrap().insert(name.to_owned(), value.to_owned());
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, &[], None).await
    }

    /// A request to the app (`path` relative to its origin) or anywhere else (absolute URL,
    /// sent without the app's cookies).
    pub async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)], body: Option<(&str, Vec<u8>)>) -> Answer {
        self.try_send(method, path, headers, body).await.expect("the request is answered")
    }

    /// `send`, for a server that may be gone (a killed replica): the error instead of a panic.
    pub async fn try_send(&self, method: Method, path: &str, headers: &[(&str, &str)], body: Option<(&str, Vec<u8>)>) -> reqwest::Result<Answer> {
        let ours = !path.starts_with("http") || path.starts_with(&self.origin);
        let url = if path.starts_with("http") { path.to_owned() } else { format!("{}{path}", self.origin) };
        let mut request = self.http.request(method, url);
        if ours && !self.cookies.lock().unwrap().is_empty() {
            request = request.header(COOKIE, self.cookie_header());
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some((content_type, bytes)) = body {
            request = request.header("content-type", content_type).body(bytes);
        }
        let response = request.send().await?;
        let (status, headers) = (response.status(), response.headers().clone());
        if ours {
            self.remember(&headers);
        }
        Ok(Answer { status, headers, body: response.text().await.unwrap_or_default() })
    }

    fn remember(&self, headers: &HeaderMap) {
        let mut cookies = self.cookies.lock().unwrap();
        for value in headers.get_all(SET_COOKIE) {
            let text = value.to_str().unwrap();
            let (name, value) = text.split(';').next().unwrap().split_once('=').unwrap();
            if text.contains("Max-Age=0") || text.contains("max-age=0") || value.is_empty() {
                cookies.remove(name);
            } else {
                cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    /// Follows redirects (to the provider and back) until a page of the app answers.
    pub async fn navigate(&self, path: &str) -> (Answer, Vec<String>) {
        let mut hops = Vec::new();
        let mut answer = self.get(path).await;
        while answer.status.is_redirection() {
            let next = answer.location().to_owned();
            hops.push(next.clone());
            answer = self.get(&next).await;
            if hops.len() > 10 {
                panic!("redirect loop: {hops:?}");
            }
        }
        (answer, hops)
    }

    /// Signs in with logi as `logi-user-<hint>`; the final hop is where the app sent the browser.
    pub async fn sign_in(&self, hint: &str) -> String {
        let (_, hops) = self.navigate(&format!("/api/auth/login?login_hint={hint}")).await;
        hops.last().cloned().unwrap_or_default()
    }

    pub async fn me(&self) -> serde_json::Value {
        self.get("/api/auth/me").await.json()["user"].clone()
    }
}
