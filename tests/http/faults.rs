//! logi slow, down, failing or talking nonsense: every request gets its documented code
//! within `ONE_PASS_TIMEOUT_SECS`, nothing is half written, signed-in users keep working
//! until a refresh is due, and everything recovers by itself when logi does.

use crate::provider::{jwk, rsa_key, Fault};
use crate::support::{eventually, spawn_app_with, Browser, TestApp};
use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const TIMEOUT_SECS: u64 = 1;
/// What a request may take beyond the timeout on a loaded machine.
const SLACK: Duration = Duration::from_millis(1500);
const SLOWER_THAN_THE_TIMEOUT: Fault = Fault::Slow(Duration::from_secs(3));
const DISCOVERY: &str = "/.well-known/openid-configuration";
const CSRF: (&str, &str) = ("x-csrf", "1");

async fn app() -> TestApp {
    spawn_app_with(&[("ONE_PASS_TIMEOUT_SECS", &TIMEOUT_SECS.to_string())]).await
}

fn in_time(started: Instant) -> bool {
    started.elapsed() < Duration::from_secs(TIMEOUT_SECS) + SLACK
}

/// A browser sign-in as `hint`: the `auth_error` it ended with (`None` when signed in)
/// and whether it was answered within the bound.
async fn sign_in(browser: &Browser, hint: &str) -> (Option<String>, bool) {
    let started = Instant::now();
    let landed = browser.sign_in(hint).await;
    let error = url::Url::parse("http://x").unwrap().join(&landed).unwrap().query_pairs().find(|(k, _)| k == "auth_error").map(|(_, v)| v.into_owned());
    (error, in_time(started))
}

/// What logi does wrong, and the code the sign-in must end with.
enum Trouble {
    Down,
    At(&'static str, Fault),
    IssuerChanged,
    EmptyJwks,
}

impl Trouble {
    async fn start(&self, app: &TestApp) {
        match self {
            Self::Down => app.double.go_down().await,
            Self::At(path, fault) => app.double.set_fault(path, Some(*fault)),
            Self::IssuerChanged => *app.double.discovery_issuer.lock().unwrap() = Some("https://impostor.example".into()),
            Self::EmptyJwks => app.double.set_jwks(json!({ "keys": [] })),
        }
    }

    async fn end(&self, app: &TestApp) {
        match self {
            Self::Down => app.double.come_back().await,
            Self::At(path, _) => app.double.set_fault(path, None),
            Self::IssuerChanged => *app.double.discovery_issuer.lock().unwrap() = None,
            Self::EmptyJwks => app.double.set_jwks(json!({ "keys": [jwk(rsa_key(0), "k1")] })),
        }
    }
}

/// One fresh app per case (discovery is cached once it succeeds), all cases at once.
#[tokio::test]
async fn a_broken_logi_during_sign_in_gets_its_code_in_time_writes_nothing_and_recovery_needs_no_restart() {
    // The last column: logi's tokens reached the app before the failure.
    let cases = [
        (Trouble::Down, "provider_unreachable", false),
        (Trouble::At(DISCOVERY, SLOWER_THAN_THE_TIMEOUT), "provider_unreachable", false),
        (Trouble::At(DISCOVERY, Fault::Unavailable), "provider_unreachable", false),
        (Trouble::At(DISCOVERY, Fault::Garbage), "provider_unreachable", false),
        (Trouble::IssuerChanged, "provider_unreachable", false),
        (Trouble::At("/jwks", Fault::Garbage), "provider_unreachable", false),
        (Trouble::At("/jwks", Fault::Unavailable), "provider_unreachable", false),
        (Trouble::EmptyJwks, "id_token_invalid", true),
        (Trouble::At("/token", SLOWER_THAN_THE_TIMEOUT), "provider_unreachable", false),
        (Trouble::At("/token", Fault::Unavailable), "token_exchange_503", false),
        (Trouble::At("/token", Fault::Garbage), "token_exchange_200", false),
        (Trouble::At("/userinfo", SLOWER_THAN_THE_TIMEOUT), "provider_unreachable", true),
        (Trouble::At("/userinfo", Fault::Unavailable), "userinfo_failed", true),
        (Trouble::At("/userinfo", Fault::Garbage), "userinfo_failed", true),
    ];
    let outcomes = join_all(cases.iter().map(|(trouble, code, got_tokens)| async move {
        let app = app().await;
        let rows = app.row_counts().await;
        trouble.start(&app).await;
        let browser = app.browser();
        let (error, answered_in_time) = sign_in(&browser, "alice").await;
        let written = without_markers(app.row_counts().await) != without_markers(rows) || browser.cookie("logi_bff_session").is_some();
        // A sign-in that failed after logi issued tokens leaves no live refresh token there.
        let live_grant = || app.double.issued.lock().unwrap().iter().any(|t| t.starts_with("refresh-") && app.double.is_live_refresh_token(t));
        assert!(!*got_tokens || eventually(|| !live_grant()).await, "{code}: the failed sign-in's refresh token is live at logi");
        trouble.end(&app).await;
        // A failed discovery is not retried for 2 s; an empty JWKS is refetched once a minute,
        // so that case recovers on the next discovery (a fresh app stands in for it here).
        if matches!(trouble, Trouble::EmptyJwks) {
            return (error, *code, answered_in_time, written, true);
        }
        let recovered = eventually_signed_in(&app, &browser).await;
        (error, *code, answered_in_time, written, recovered)
    }))
    .await;
    for (error, code, answered_in_time, written, recovered) in outcomes {
        assert_eq!(error.as_deref(), Some(code));
        assert!(answered_in_time, "{code}: not answered within the timeout");
        assert!(!written, "{code}: a failed sign-in wrote rows or a session");
        assert!(recovered, "{code}: sign-in did not recover by itself");
    }
}

/// The single-use marker of an answered authorization response is kept on purpose (a
/// replay of that response must fail), whatever happened next.
fn without_markers(mut rows: std::collections::BTreeMap<String, i64>) -> std::collections::BTreeMap<String, i64> {
    rows.remove("used_logins");
    rows
}

/// Signs in within a few seconds of logi behaving again.
async fn eventually_signed_in(app: &TestApp, browser: &Browser) -> bool {
    let deadline = Instant::now() + Duration::from_secs(6);
    while Instant::now() < deadline {
        if sign_in(browser, "alice").await.0.is_none() {
            return browser.me().await["sub"] == "logi-user-alice" && app.count("SELECT count(*) FROM logins").await == 1;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

/// Before discovery had a bound per attempt, each waiting request fetched it again in turn.
#[tokio::test]
async fn twenty_sign_ins_while_discovery_hangs_are_all_answered_within_one_timeout() {
    let app = app().await;
    app.double.set_fault(DISCOVERY, Some(Fault::Slow(Duration::from_secs(30))));
    let started = Instant::now();
    let outcomes = join_all((0..20).map(|_| async { app.browser().get("/api/auth/login").await })).await;
    for answer in &outcomes {
        assert_eq!((answer.status, answer.location()), (StatusCode::SEE_OTHER, "/?auth_error=provider_unreachable"));
    }
    assert!(in_time(started), "20 sign-ins took {:?}", started.elapsed());
}

#[tokio::test]
async fn signed_in_users_keep_working_while_logi_is_down_then_a_due_refresh_is_502_and_the_login_is_kept() {
    let app = app().await;
    app.double.access_token_ttl.store(2, Ordering::SeqCst);
    let browser = app.browser();
    assert_eq!(sign_in(&browser, "alice").await.0, None);
    app.double.access_token_ttl.store(300, Ordering::SeqCst);
    let proxied = || browser.send(Method::GET, "/api/proxy/hello", &[CSRF], None);

    for trouble in
        [Trouble::Down, Trouble::At("/token", SLOWER_THAN_THE_TIMEOUT), Trouble::At("/token", Fault::Unavailable), Trouble::At("/token", Fault::Garbage)]
    {
        trouble.start(&app).await;
        assert_eq!(browser.me().await["sub"], "logi-user-alice", "/me needs no logi");
        // Wait until the access token is due for a refresh.
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let started = Instant::now();
        let answer = proxied().await;
        assert_eq!((answer.status, answer.json()["error"].clone()), (StatusCode::BAD_GATEWAY, json!("token_refresh_failed")));
        assert!(in_time(started), "the refresh was not cut off in time");
        assert_eq!(browser.me().await["sub"], "logi-user-alice", "a refresh logi could not answer ended the login");
        trouble.end(&app).await;
        app.double.access_token_ttl.store(2, Ordering::SeqCst);
        assert_eq!(proxied().await.status, StatusCode::OK, "the proxy did not recover when logi did");
        app.double.access_token_ttl.store(300, Ordering::SeqCst);
    }
    assert_eq!(app.count("SELECT count(*) FROM logins").await, 1);
}

#[tokio::test]
async fn signing_out_never_waits_for_logi_and_the_revocation_is_retried_when_logi_is_back() {
    let app = app().await;
    let browser = app.browser();
    assert_eq!(sign_in(&browser, "alice").await.0, None);
    let refresh_token = app.double.issued.lock().unwrap().iter().find(|t| t.starts_with("refresh-")).cloned().unwrap();
    app.double.set_fault("/revoke", Some(Fault::Slow(Duration::from_secs(30))));
    let started = Instant::now();
    let logout = browser.send(Method::POST, "/api/auth/logout", &[("origin", &app.url)], None).await;
    assert_eq!(logout.status, StatusCode::OK);
    assert!(started.elapsed() < Duration::from_millis(500), "sign-out waited for logi: {:?}", started.elapsed());
    assert_eq!(browser.me().await, serde_json::Value::Null);
    // The first attempt times out after 1 s; the retry 2 s later finds logi answering.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    app.double.set_fault("/revoke", None);
    assert!(eventually(|| app.double.revoked.lock().unwrap().contains(&refresh_token)).await, "the revocation was not retried");
}

#[tokio::test]
async fn a_back_channel_logout_while_logi_is_down_checks_with_the_keys_it_has_or_asks_logi_to_retry() {
    use crate::backchannel::{claims, log_out, logout_header};
    use crate::provider::sign;
    let app = app().await;
    let browser = app.browser();
    assert_eq!(sign_in(&browser, "alice").await.0, None);
    app.double.go_down().await;
    let started = Instant::now();
    let answer = log_out(&app, &sign(&logout_header(), &claims(&app, Some("logi-user-alice"), None), rsa_key(0))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(in_time(started));
    assert_eq!(browser.me().await, serde_json::Value::Null);

    // A replica that never reached logi has no keys to check a token with: logi should retry.
    let cold = crate::support::spawn_app_against(app.double.clone(), "http://127.0.0.1:9", &[("ONE_PASS_TIMEOUT_SECS", "1")]).await;
    let started = Instant::now();
    let answer = log_out(&cold, &sign(&logout_header(), &claims(&cold, Some("logi-user-alice"), None), rsa_key(0))).await;
    assert_eq!((answer.status, answer.json()["error"].clone()), (StatusCode::SERVICE_UNAVAILABLE, json!("provider_unreachable")));
    assert!(in_time(started));
    app.double.come_back().await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let answer = log_out(&cold, &sign(&logout_header(), &claims(&cold, Some("logi-user-alice"), None), rsa_key(0))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
}

/// Every connection of the app's SQLite pool refuses writes (`PRAGMA query_only`), with
/// the error a read-only file or file system gives (`SQLITE_READONLY`).
async fn make_sqlite_read_only(app: &TestApp, read_only: bool) {
    let logi_bff::server::db::Db::Sqlite(pool) = &app.state.db else { unreachable!("a SQLite test") };
    let mut connections = Vec::new();
    while let Ok(connection) = tokio::time::timeout(Duration::from_millis(200), pool.acquire()).await {
        connections.push(connection.unwrap());
    }
    for connection in &mut connections {
        sqlx::query(&format!("PRAGMA query_only = {read_only}")).execute(&mut **connection).await.unwrap();
    }
}

#[tokio::test]
async fn a_read_only_sqlite_database_refuses_writes_with_503_while_signed_in_users_keep_reading() {
    let app = app().await;
    if app.state.db.is_postgres() {
        return;
    }
    let alice = app.browser();
    assert_eq!(sign_in(&alice, "alice").await.0, None);
    // Her last use is due to be recorded: that write fails too, and must not fail her reads.
    app.execute("UPDATE logins SET last_seen_at = last_seen_at - 120").await;
    make_sqlite_read_only(&app, true).await;
    let bob = writes_are_refused_while_reads_serve(&app, &alice).await;
    make_sqlite_read_only(&app, false).await;
    writes_work_again(&app, &bob).await;
}

const SIGN_UP_FORM: &[u8] = b"email=carol%40example.com&name=&password=a-long-enough-passphrase&return_to=%2F";

/// With the database refusing writes: alice (signed in) still reads, bob's sign-in and a
/// sign-up answer `database_unavailable`, and no row is left behind. Returns bob.
async fn writes_are_refused_while_reads_serve(app: &TestApp, alice: &Browser) -> Browser {
    let rows = app.row_counts().await;
    assert_eq!(alice.me().await["sub"], "logi-user-alice");
    assert_eq!(alice.send(Method::GET, "/api/proxy/hello", &[CSRF], None).await.status, StatusCode::OK);
    let bob = app.browser();
    assert_eq!(sign_in(&bob, "bob").await.0.as_deref(), Some("database_unavailable"));
    let signed_up =
        app.browser().send(Method::POST, "/api/sign_up", &[("origin", &app.url)], Some(("application/x-www-form-urlencoded", SIGN_UP_FORM.to_vec()))).await;
    assert_eq!((signed_up.status, signed_up.json()["error"].clone()), (StatusCode::SERVICE_UNAVAILABLE, json!("database_unavailable")));
    assert_eq!(signed_up.header("retry-after"), "2");
    assert_eq!(without_markers(app.row_counts().await), without_markers(rows), "a refused write left rows behind");
    bob
}

async fn writes_work_again(app: &TestApp, bob: &Browser) {
    assert_eq!(sign_in(bob, "bob").await.0, None, "writes did not recover");
    let signed_up =
        app.browser().send(Method::POST, "/api/sign_up", &[("origin", &app.url)], Some(("application/x-www-form-urlencoded", SIGN_UP_FORM.to_vec()))).await;
    assert!(signed_up.status.is_success(), "{}", signed_up.body);
}

/// A file system of 8 MiB (a tmpfs mounted for the test), which the test fills.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount").args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"]).arg(dir.path()).status();
        assert!(mounted.is_ok_and(|status| status.success()), "mounting a tmpfs needs root (scripts/test.sh runs as root)");
        Self { dir }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a filler file until the file system has no byte left.
    fn fill(&self) {
        use std::io::Write;
        let mut filler = std::fs::File::create(self.path("filler")).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        loop {
            match filler.write(&chunk) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        assert!(filler.write(&[0]).is_err(), "the disk is not full");
    }

    fn free(&self) {
        std::fs::remove_file(self.path("filler")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        _ = std::process::Command::new("umount").arg("--lazy").arg(self.dir.path()).status();
    }
}

/// Root only (it mounts a tmpfs; the Postgres lane of `scripts/test.sh`, which runs as root,
/// runs it). The SQLite file on a disk that is full, its write-ahead log emptied first so that
/// the next write must grow it: writes answer `503 database_unavailable` and leave nothing
/// behind, signed-in users keep reading, and writes work again once space is freed.
#[tokio::test]
#[ignore = "needs root to mount a tmpfs; the Postgres lane (run as root) runs it"]
async fn a_full_disk_under_sqlite_refuses_writes_with_503_while_signed_in_users_keep_reading() {
    let disk = SmallDisk::mount();
    let database = format!("sqlite://{}", disk.path("app.db").display());
    let app = spawn_app_with(&[("ONE_PASS_TIMEOUT_SECS", &TIMEOUT_SECS.to_string()), ("DATABASE_URL", &database)]).await;
    let alice = app.browser();
    assert_eq!(sign_in(&alice, "alice").await.0, None);
    app.execute("UPDATE logins SET last_seen_at = last_seen_at - 120").await;
    app.execute("PRAGMA wal_checkpoint(TRUNCATE)").await;
    disk.fill();
    let bob = writes_are_refused_while_reads_serve(&app, &alice).await;
    disk.free();
    writes_work_again(&app, &bob).await;
}

/// A Postgres server of this test's own, so restarting it disturbs no other test.
struct OwnPostgres {
    dir: tempfile::TempDir,
    url: String,
}

impl OwnPostgres {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = postgres_script("start", dir.path());
        Self { dir, url }
    }

    fn run(&self, command: &str) {
        postgres_script(command, self.dir.path());
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        self.run("stop");
    }
}

fn postgres_script(command: &str, dir: &std::path::Path) -> String {
    let out = std::process::Command::new("scripts/postgres.sh").arg(command).arg(dir).output().expect("scripts/postgres.sh runs");
    assert!(out.status.success(), "postgres.sh {command}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// One request of the mixed load: its outcome (`Ok` or the error code) and how long it took.
/// `app_url` is the public origin (what a browser's `Origin` says, whichever replica serves).
async fn one_call(browser: &Browser, app_url: &str, n: usize) -> (Result<(), String>, Duration) {
    let started = Instant::now();
    let outcome = match n % 3 {
        0 => code_of(browser.get("/api/auth/me").await),
        1 => code_of(browser.send(Method::GET, "/api/proxy/hello", &[CSRF], None).await),
        _ => {
            // A new account: a write on this replica.
            let form = format!("email=load{n}-{:x}%40example.com&name=&password=a-long-enough-passphrase&return_to=%2F", rand::random::<u32>());
            let fresh = Browser::new(browser.origin());
            code_of(fresh.send(Method::POST, "/api/sign_up", &[("origin", app_url)], Some(("application/x-www-form-urlencoded", form.into_bytes()))).await)
        }
    };
    (outcome, started.elapsed())
}

fn code_of(answer: crate::support::Answer) -> Result<(), String> {
    match answer.status.is_success() {
        true => Ok(()),
        false => Err(format!(
            "{} {}",
            answer.status.as_u16(),
            serde_json::from_str::<serde_json::Value>(&answer.body).map(|b| b["error"].to_string()).unwrap_or(answer.body)
        )),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Postgres (LOGI_BFF_TEST_POSTGRES); the Postgres lane runs it"]
async fn postgres_restarted_under_load_answers_503_in_bounded_time_and_every_replica_recovers_without_losing_a_login() {
    assert!(std::env::var(logi_bff::server::db::TEST_POSTGRES_VAR).is_ok(), "this test needs a Postgres installation");
    let postgres = OwnPostgres::start();
    let first = spawn_app_with(&[("DATABASE_URL", &postgres.url), ("ONE_PASS_TIMEOUT_SECS", "1")]).await;
    let replicas = [first.replica().await, first.replica().await];
    let replicas: Vec<&TestApp> = std::iter::once(&first).chain(&replicas).collect();
    // Signed in where APP_URL points (logi sends every callback there), then served by
    // one replica each.
    let mut users = Vec::new();
    for (i, replica) in replicas.iter().enumerate() {
        let browser = first.browser();
        assert_eq!(sign_in(&browser, &format!("user{i}")).await.0, None);
        users.push(browser.at(&replica.url));
    }
    let refresh_tokens: Vec<String> = first.double.issued.lock().unwrap().iter().filter(|t| t.starts_with("refresh-")).cloned().collect();
    let rows_before = first.row_counts().await;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = users
        .iter()
        .map(|browser| {
            let (browser, stop, app_url) = (browser.clone(), stop.clone(), first.url.clone());
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for n in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    outcomes.push(one_call(&browser, &app_url, n).await);
                }
                outcomes
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    postgres.run("halt");
    let halted = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    for replica in &replicas {
        let ready = replica.browser().get("/readyz").await;
        assert_eq!((ready.status, ready.json()["status"].clone()), (StatusCode::SERVICE_UNAVAILABLE, json!("not_ready")));
    }
    postgres.run("resume");
    let resumed = Instant::now();
    let outage = resumed - halted;
    for replica in &replicas {
        loop {
            let (written, ready) = (one_call(&replica.browser(), &first.url, 2).await.0, replica.browser().get("/readyz").await);
            if written.is_ok() && ready.status == StatusCode::OK {
                break;
            }
            assert!(resumed.elapsed() < Duration::from_secs(10), "a replica did not recover within 10 s of Postgres: {written:?}, {}", ready.body);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let recovery = resumed.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    let outcomes: Vec<_> = join_all(load).await.into_iter().flat_map(Result::unwrap).collect();

    let unavailable = outcomes.iter().filter(|(outcome, _)| outcome.as_ref().is_err_and(|code| code.contains("database_unavailable"))).count();
    let others: Vec<_> = outcomes.iter().filter_map(|(outcome, _)| outcome.as_ref().err()).filter(|code| !code.contains("database_unavailable")).collect();
    let slowest = outcomes.iter().map(|(_, took)| *took).max().unwrap();
    println!(
        "postgres restart under load over 3 replicas: {} calls, {unavailable} answered database_unavailable, other errors {others:?}, slowest {slowest:?}, outage {outage:?}, every replica serving {recovery:?} after Postgres",
        outcomes.len()
    );
    assert!(others.is_empty(), "errors other than database_unavailable: {others:?}");
    assert!(unavailable > 0, "the outage was not seen");
    // A request waits at most ACQUIRE_TIMEOUT (5 s) for a connection.
    assert!(slowest < Duration::from_secs(7), "a call took {slowest:?}");
    for (browser, i) in users.iter().zip(0..) {
        assert_eq!(browser.me().await["sub"], format!("logi-user-user{i}"), "a login made before the outage was lost");
        assert_eq!(browser.send(Method::GET, "/api/proxy/hello", &[CSRF], None).await.status, StatusCode::OK);
    }
    assert!(refresh_tokens.iter().all(|t| first.double.is_live_refresh_token(t)), "a refresh token was lost or revoked");
    let rows_after = first.row_counts().await;
    for table in ["users", "logins", "login_tokens", "tower_sessions", "identities"] {
        assert!(rows_after[table] >= rows_before[table], "{table}: {} rows before, {} after", rows_before[table], rows_after[table]);
    }
}

/// SIGTERM: `/readyz` fails at once while the app still serves for the drain period, then
/// no new connection is taken, a request in flight finishes, and one slower than the grace
/// period is not waited for: the server is done within drain + grace.
#[tokio::test]
async fn sigterm_fails_readiness_first_drains_then_finishes_requests_in_flight_within_the_grace_period() {
    let app = spawn_app_with(&[("SHUTDOWN_DRAIN_SECS", "1"), ("SHUTDOWN_GRACE_SECS", "2"), ("UPSTREAM_TIMEOUT_SECS", "30")]).await;
    let browser = app.browser();
    assert_eq!(sign_in(&browser, "alice").await.0, None);
    assert_eq!(browser.get("/readyz").await.status, StatusCode::OK);
    let in_time_call = tokio::spawn({
        let browser = browser.clone();
        async move { browser.send(Method::GET, "/api/proxy/slow?ms=1800", &[CSRF], None).await.status }
    });
    let too_slow = tokio::spawn({
        let (request, cookie) = (reqwest::Client::new().get(format!("{}/api/proxy/slow?ms=10000", app.url)), browser.cookie_header());
        async move { request.header("cookie", cookie).header("x-csrf", "1").send().await.map(|r| r.status()) }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    let stopped = app.stop(logi_bff::startup::Stop::Terminate);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let draining = app.browser().get("/readyz").await;
    assert_eq!((draining.status, draining.json()["status"].clone()), (StatusCode::SERVICE_UNAVAILABLE, json!("draining")));
    assert_eq!(browser.me().await["sub"], "logi-user-alice", "the app stopped serving before the balancer could notice");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(reqwest::Client::new().get(format!("{}/healthz", app.url)).send().await.is_err(), "a new connection was taken after the drain");
    assert_eq!(in_time_call.await.unwrap(), StatusCode::OK, "a request in flight was cut off within the grace period");
    stopped.await.unwrap().unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(3800), "stopping took {took:?} (drain 1 s + grace 2 s)");
    // The binary exits here, closing that connection; in this test process it lives on.
    assert!(!too_slow.is_finished(), "stopping waited for a request past the grace period");
    println!("SIGTERM: readyz draining at once, stopped after {took:?}");
}
