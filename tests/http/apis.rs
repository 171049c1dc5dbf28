//! Several declared APIs (`API_ROUTES_FILE` next to `UPSTREAM_API_URL`): routing by path,
//! each token policy (what `Authorization` the upstream saw), methods refused before any
//! upstream call, CSRF only with our cookie, and `SIGHUP` reloading the file in the binary.

use crate::support::{spawn_app_declaring, Answer, Browser, Declared, TestApp};
use reqwest::{Method, StatusCode};
use std::path::Path;
use std::time::{Duration, Instant};

const CSRF: (&str, &str) = ("x-csrf", "1");

/// Every token policy, all on the provider double's upstream; the `/open/` ones answer callers
/// without a token. The client token's subject at the double is `client:<client id>`. (`UPSTREAM_API_URL` is the API `default` at `/api/proxy/`.)
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
websocket = true

[[api]]
name = "reports"
path = "/api/reports/"
upstream = "{upstream}"
token = "client"

[[api]]
name = "mixed"
path = "/api/mixed/"
upstream = "{upstream}"
token = "user_or_client"

[[api]]
name = "relay"
path = "/api/relay/"
upstream = "{upstream}"
token = "client"
public = true
"#
    )
}

async fn app_with_apis(extra: &[(&str, &str)]) -> Declared {
    spawn_app_declaring(|_, upstream| declarations(upstream), extra).await
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

const CLIENT: &str = "client:logi-bff-test";

/// A browser signed up with a password (a login without logi's tokens).
async fn password_user(app: &TestApp) -> Browser {
    let browser = app.browser();
    let form = b"email=pat%40example.com&name=&password=a-long-enough-passphrase&return_to=%2F".to_vec();
    let answer = browser.send(Method::POST, "/api/sign_up", &[("origin", &app.url)], Some(("application/x-www-form-urlencoded", form))).await;
    assert!(answer.status.is_success() || answer.status.is_redirection(), "{}", answer.body);
    browser
}

#[tokio::test]
async fn client_apis_get_the_apps_own_token_and_user_or_client_prefers_the_users() {
    let Declared { app, _dir: _keep, .. } = app_with_apis(&[]).await;
    let (anonymous, alice, pat) = (app.browser(), app.browser(), password_user(&app).await);
    alice.sign_in("alice").await;

    assert_eq!(seen(&get(&alice, "/api/reports/q3", true).await), (StatusCode::OK, Some(CLIENT.into()), true));
    assert_eq!(seen(&get(&pat, "/api/reports/q3", true).await), (StatusCode::OK, Some(CLIENT.into()), true));
    assert_eq!(error(&get(&anonymous, "/api/reports/q3", false).await), (StatusCode::UNAUTHORIZED, "not_signed_in".into()));
    assert_eq!(seen(&get(&anonymous, "/api/relay/q3", false).await), (StatusCode::OK, Some(CLIENT.into()), true));
    assert_eq!(seen(&get(&alice, "/api/mixed/q3", true).await), (StatusCode::OK, Some("logi-user-alice".into()), true));
    assert_eq!(seen(&get(&pat, "/api/mixed/q3", true).await), (StatusCode::OK, Some(CLIENT.into()), true));
    assert_eq!(error(&get(&anonymous, "/api/mixed/q3", false).await), (StatusCode::UNAUTHORIZED, "not_signed_in".into()));
    // A password login is no logi login: refused where the user's token is needed, anonymous-like where it is optional.
    assert_eq!(error(&get(&pat, "/api/orders/1", true).await), (StatusCode::FORBIDDEN, "logi_sign_in_required".into()));
    assert_eq!(seen(&get(&pat, "/api/feed/latest", true).await), (StatusCode::OK, None, false));
    assert_eq!(app.double.hits("client_credentials"), 1, "the client token is cached");
}

#[tokio::test]
async fn a_failed_client_grant_is_answered_at_once_then_fifty_concurrent_calls_cost_one_grant() {
    let Declared { app, _dir: _keep, .. } = app_with_apis(&[("ONE_PASS_TIMEOUT_SECS", "2")]).await;
    let alice = app.browser();
    alice.sign_in("alice").await;
    // logi refusing: one grant tried, every caller answered 502 at once, nothing forwarded.
    *app.double.token_failure.lock().unwrap() = Some((503, "temporarily_unavailable"));
    app.double.reset_hits();
    let started = Instant::now();
    let calls = (0..20).map(|_| get(&alice, "/api/reports/q3", true));
    for answer in futures_util::future::join_all(calls).await {
        assert_eq!(error(&answer), (StatusCode::BAD_GATEWAY, "client_token_failed".into()));
    }
    assert_eq!((app.double.hits("token"), app.double.hits("upstream")), (1, 0), "one grant tried, nothing forwarded");
    assert!(started.elapsed() < Duration::from_secs(2), "waiters were not answered at once: {:?}", started.elapsed());

    *app.double.token_failure.lock().unwrap() = None;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let calls = (0..50).map(|_| get(&alice, "/api/reports/q3", true));
    let statuses: Vec<StatusCode> = futures_util::future::join_all(calls).await.iter().map(|answer| answer.status).collect();
    assert_eq!(statuses, vec![StatusCode::OK; 50]);
    assert_eq!(app.double.hits("client_credentials"), 1);
}

#[tokio::test]
async fn the_client_token_is_fetched_again_once_it_expires() {
    let Declared { app, _dir: _keep, .. } = app_with_apis(&[]).await;
    let alice = app.browser();
    alice.sign_in("alice").await;
    app.double.access_token_ttl.store(1, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(get(&alice, "/api/reports/q3", true).await.status, StatusCode::OK);
    assert_eq!(get(&alice, "/api/reports/q3", true).await.status, StatusCode::OK);
    assert_eq!(app.double.hits("client_credentials"), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(get(&alice, "/api/reports/q3", true).await.status, StatusCode::OK);
    assert_eq!(app.double.hits("client_credentials"), 2, "an expired client token was used");
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

/// The demo page lists every API its caller may use, with an island each. A page's body may
/// be dropped by another thread than the one that rendered it (a `HEAD`, a client gone):
/// the islands keep no thread-bound values on the server, or that drop panics and the
/// connection dies unanswered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_page_lists_the_callers_apis_and_survives_being_dropped_on_any_thread() {
    let Declared { app, _dir: _keep, .. } = app_with_apis(&[]).await;
    let (anonymous, alice) = (app.browser(), app.browser());
    alice.sign_in("alice").await;
    let page = alice.get("/api-demo").await.body;
    for name in ["default", "orders", "catalogue", "feed", "internal", "reports", "mixed", "relay"] {
        assert!(page.contains(&format!("api-entry-{name}")), "{name} is missing");
    }
    assert!(page.contains("socket-connect-internal"), "the socket API has no socket island");
    let public = anonymous.get("/api-demo").await.body;
    assert!(public.contains("api-entry-catalogue") && public.contains("api-entry-feed") && !public.contains("api-entry-orders"));
    for _ in 0..10 {
        let heads = (0..20).map(|_| alice.try_send(Method::HEAD, "/api-demo", &[], None));
        for answer in futures_util::future::join_all(heads).await {
            assert_eq!(answer.expect("an answer").status, StatusCode::OK);
        }
    }
}
