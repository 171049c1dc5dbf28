//! Several declared APIs (`API_ROUTES_FILE` next to `UPSTREAM_API_URL`): routing by path,
//! each token policy (what `Authorization` the upstream saw), methods refused before any
//! upstream call, CSRF only with our cookie, and `SIGHUP` reloading the file in the binary.

use crate::provider;
use crate::support::{spawn_app_against, Answer, Browser, TestApp};
use reqwest::{Method, StatusCode};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const CSRF: (&str, &str) = ("x-csrf", "1");

/// Every token policy, all on the provider double's upstream; the `/open/` ones answer callers
/// without a token. (`UPSTREAM_API_URL` is the API `default` at `/api/proxy/`.)
fn declarations(upstream: &str) -> String {
    format!(
        r#"
[[api]]
name = "orders"
path = "/api/orders/"
upstream = "{upstream}"
methods = ["GET", "POST"]

[[api]]
name = "catalogue"
path = "/api/catalogue/"
upstream = "{upstream}/open"
token = "none"
public = true

[[api]]
name = "feed"
path = "/api/feed/"
upstream = "{upstream}/open"
token = "user_or_none"

[[api]]
name = "internal"
path = "/api/internal/"
upstream = "{upstream}/open"
token = "none"
timeout_secs = 1
"#
    )
}

struct Declared {
    app: TestApp,
    file: PathBuf,
    upstream: String,
    _dir: tempfile::TempDir,
}

async fn app_with_apis(extra: &[(&str, &str)]) -> Declared {
    let (double, upstream) = provider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("apis.toml");
    std::fs::write(&file, declarations(&upstream)).unwrap();
    let mut vars = vec![("API_ROUTES_FILE", file.to_str().unwrap())];
    vars.extend_from_slice(extra);
    let app = spawn_app_against(double, &upstream, &vars).await;
    Declared { app, file, upstream, _dir: dir }
}

async fn get(browser: &Browser, path: &str, csrf: bool) -> Answer {
    browser.send(Method::GET, path, if csrf { &[CSRF] } else { &[] }, None).await
}

/// What the upstream saw: the subject of a live token (`None` without one) and whether any
/// `Authorization` came at all.
fn seen(answer: &Answer) -> (StatusCode, Option<String>, bool) {
    let body = answer.json();
    (answer.status, body["sub"].as_str().map(str::to_owned), body["headers"].get("authorization").is_some())
}

fn error(answer: &Answer) -> (StatusCode, String) {
    (answer.status, answer.json()["error"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn each_api_gets_the_token_its_policy_names_and_only_its_callers() {
    let Declared { app, _dir: _keep, .. } = app_with_apis(&[]).await;
    let anonymous = app.browser();
    let alice = app.browser();
    alice.sign_in("alice").await;
    // user: a logi login's token; anyone else is refused before the upstream.
    assert_eq!(seen(&get(&alice, "/api/orders/42", true).await), (StatusCode::OK, Some("logi-user-alice".into()), true));
    app.double.reset_hits();
    assert_eq!(error(&get(&anonymous, "/api/orders/42", false).await), (StatusCode::UNAUTHORIZED, "not_signed_in".into()));
    // public, no token: anyone, and no Authorization even for a signed-in caller.
    assert_eq!(seen(&get(&anonymous, "/api/catalogue/items", false).await), (StatusCode::OK, None, false));
    assert_eq!(seen(&get(&alice, "/api/catalogue/items", true).await), (StatusCode::OK, None, false));
    // user_or_none: the token with a logi login, nothing without.
    assert_eq!(seen(&get(&alice, "/api/feed/latest", true).await), (StatusCode::OK, Some("logi-user-alice".into()), true));
    assert_eq!(seen(&get(&anonymous, "/api/feed/latest", false).await), (StatusCode::OK, None, false));
    // none, not public: signed-in callers only, without a token.
    assert_eq!(seen(&get(&alice, "/api/internal/jobs", true).await), (StatusCode::OK, None, false));
    assert_eq!(app.double.hits("upstream"), 5);
    assert_eq!(error(&get(&anonymous, "/api/internal/jobs", false).await), (StatusCode::UNAUTHORIZED, "not_signed_in".into()));
    // Our cookie needs X-CSRF on every API, public ones included.
    assert_eq!(error(&get(&alice, "/api/catalogue/items", false).await), (StatusCode::FORBIDDEN, "missing_csrf_header".into()));
    assert_eq!(error(&get(&alice, "/api/feed/latest", false).await), (StatusCode::FORBIDDEN, "missing_csrf_header".into()));
    assert_eq!(app.double.hits("upstream"), 5, "a refused call reached the upstream");
    // The default API is still at /api/proxy/.
    assert_eq!(seen(&get(&alice, "/api/proxy/hello", true).await), (StatusCode::OK, Some("logi-user-alice".into()), true));
}

#[tokio::test]
async fn methods_an_api_does_not_take_and_paths_of_no_api_are_refused_before_any_upstream_call() {
    let Declared { app, _dir: _keep, .. } = app_with_apis(&[]).await;
    let alice = app.browser();
    alice.sign_in("alice").await;
    app.double.reset_hits();
    for method in [Method::DELETE, Method::PUT, Method::OPTIONS, Method::TRACE] {
        let answer = alice.send(method.clone(), "/api/orders/42", &[CSRF, ("origin", &app.url)], None).await;
        assert_eq!(error(&answer), (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed".into()), "{method}");
        assert_eq!(answer.header("allow"), "GET, POST");
    }
    let answer = alice.send(Method::OPTIONS, "/api/proxy/hello", &[CSRF], None).await;
    assert_eq!((answer.status, answer.header("allow")), (StatusCode::METHOD_NOT_ALLOWED, "GET, HEAD, POST, PUT, PATCH, DELETE"));
    for path in ["/api/unknown/1", "/api/orders", "/api/ordersx/1"] {
        assert_eq!(error(&alice.send(Method::GET, path, &[CSRF], None).await), (StatusCode::NOT_FOUND, "not_found".into()), "{path}");
    }
    assert_eq!(app.double.hits("upstream"), 0);
    // Path checks are per API, against its own base.
    assert_eq!(error(&alice.send(Method::GET, "/api/orders/..%2f..%2fadmin", &[CSRF], None).await), (StatusCode::BAD_REQUEST, "invalid_proxy_path".into()));
}

#[tokio::test]
async fn an_api_waits_for_its_own_upstream_timeout() {
    let Declared { app, _dir: _keep, .. } = app_with_apis(&[("UPSTREAM_TIMEOUT_SECS", "10")]).await;
    let alice = app.browser();
    alice.sign_in("alice").await;
    let started = Instant::now();
    assert_eq!(error(&alice.send(Method::GET, "/api/internal/slow?ms=3000", &[CSRF], None).await), (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout".into()));
    assert!(started.elapsed() < Duration::from_secs(2), "internal's timeout_secs = 1 was not used: {:?}", started.elapsed());
}

fn write(file: &Path, text: &str) {
    std::fs::write(file, text).unwrap();
}

/// The binary reloads the file on SIGHUP: a valid one serves at once, an invalid one is
/// refused and the table in use keeps serving; the process keeps running throughout.
#[tokio::test]
async fn sighup_reloads_the_file_and_an_invalid_file_leaves_the_table_in_use() {
    let Declared { app, file, upstream, _dir: _keep } = app_with_apis(&[]).await;
    let upstream = upstream.as_str();
    let replica = app.process_replica().await;
    let anonymous = Browser::new(&replica.url);
    let status = |path: &'static str| {
        let anonymous = anonymous.clone();
        async move { anonymous.get(path).await.status }
    };
    assert_eq!(status("/api/catalogue/items").await, StatusCode::OK);
    assert_eq!(status("/api/shop/items").await, StatusCode::NOT_FOUND);

    write(
        &file,
        &format!(
            "{}\n[[api]]\nname = \"shop\"\npath = \"/api/shop/\"\nupstream = \"{upstream}/open\"\ntoken = \"none\"\npublic = true\n",
            declarations(upstream)
        ),
    );
    replica.hang_up();
    assert!(eventually_status(&anonymous, "/api/shop/items", StatusCode::OK).await, "the new API was not served after SIGHUP");

    write(&file, &format!("{}\n[[api]]\nname = \"Shop\"\n", declarations(upstream)));
    replica.hang_up();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status("/api/shop/items").await, StatusCode::OK, "an invalid file replaced the table");
    assert_eq!(status("/api/catalogue/items").await, StatusCode::OK);
}

async fn eventually_status(browser: &Browser, path: &str, expected: StatusCode) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if browser.get(path).await.status == expected {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn the_binary_refuses_to_start_with_an_invalid_file_and_says_which_line_of_it() {
    let Declared { app, file, _dir: _keep, .. } = app_with_apis(&[]).await;
    write(&file, "[[api]]\nname = \"orders\"\npath = \"/api/auth/orders/\"\nupstream = \"http://127.0.0.1:9\"\n");
    let (status, stderr) = app.run_binary_to_exit().await;
    assert!(!status.success());
    assert!(stderr.contains(&format!("API_ROUTES_FILE {}: api \"orders\": path: must not be under /api/auth/", file.display())), "{stderr}");
}
