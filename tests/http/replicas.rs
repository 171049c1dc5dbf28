//! Several replicas on one database (Postgres when the suite runs against it): a login
//! started on one finishes on another, what one ends the others refuse within a second,
//! concurrent refreshes spread over replicas cost one refresh grant, and a replica killed
//! in the middle of a refresh leaves the login to the others.

use crate::support::{spawn_app, Answer, Browser};
use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const CSRF: (&str, &str) = ("x-csrf", "1");

#[tokio::test]
async fn a_login_started_on_one_replica_finishes_on_another() {
    let a = spawn_app().await;
    let b = a.replica().await;
    let browser = a.browser();
    let to_logi = browser.get("/api/auth/login?login_hint=alice").await;
    let at_provider = browser.get(to_logi.location()).await;
    // logi sends the browser back to APP_URL; the load balancer picks replica B.
    let callback = at_provider.location().replacen(&a.url, "", 1);
    let finished = browser.at(&b.url).get(&callback).await;
    assert_eq!((finished.status, finished.location()), (StatusCode::SEE_OTHER, "/"), "{}", finished.body);
    assert_eq!(browser.me().await["sub"].as_str(), Some("logi-user-alice"), "replica A does not see the session");
}

#[tokio::test]
async fn a_login_ended_on_one_replica_is_refused_on_the_others_within_a_second() {
    let a = spawn_app().await;
    let b = a.replica().await;
    let on_a = a.browser();
    on_a.sign_in("alice").await;
    let on_b = on_a.at(&b.url);
    assert_eq!(on_b.me().await["sub"].as_str(), Some("logi-user-alice"));
    // A copy of the cookie (say, a second tab) keeps asking B while A signs out.
    let copy = Browser::new(&b.url);
    copy.set_cookie("logi_bff_session", &on_a.cookie("logi_bff_session").unwrap());
    let ended = Instant::now();
    let out = on_a.send(Method::POST, "/api/auth/logout", &[("origin", &a.url)], None).await;
    assert_eq!(out.status, StatusCode::OK);
    while !copy.me().await.is_null() {
        assert!(ended.elapsed() < Duration::from_secs(1), "replica B still accepts an ended login");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("ended login refused on the other replica after {:?}", ended.elapsed());
}

/// Postgres only (one SQLite file serves one process; the cross-replica lock is
/// Postgres's row lock): reported as ignored on the SQLite lane, run by the Postgres lane
/// (`scripts/test.sh` passes `--include-ignored` with `LOGI_BFF_TEST_POSTGRES` set).
#[tokio::test]
#[ignore = "needs Postgres (LOGI_BFF_TEST_POSTGRES); the Postgres lane runs it"]
async fn twenty_concurrent_calls_over_two_replicas_after_expiry_cost_one_refresh_grant() {
    let a = spawn_app().await;
    assert!(a.state.db.is_postgres(), "this test needs LOGI_BFF_TEST_POSTGRES");
    let b = a.replica().await;
    a.double.access_token_ttl.store(1, Ordering::SeqCst);
    let on_a = a.browser();
    on_a.sign_in("alice").await;
    let on_b = on_a.at(&b.url);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    a.double.access_token_ttl.store(300, Ordering::SeqCst);
    a.double.reset_hits();
    let calls = (0..20).map(|n| {
        let browser = if n % 2 == 0 { on_a.clone() } else { on_b.clone() };
        async move { browser.send(Method::GET, "/api/proxy/hello", &[CSRF], None).await.status }
    });
    assert_eq!(join_all(calls).await, vec![StatusCode::OK; 20]);
    assert_eq!(a.double.hits("token"), 1, "replicas refreshed the same login twice");
}

/// Postgres only. A replica in a process of its own is killed (SIGKILL) at a random moment
/// in the first 250 ms of 20 calls that wait on one refresh: 10 sent to it (one of them holds
/// the refresh, with the login's token row locked `FOR UPDATE`), 30 ms later 10 to the other
/// replica (queued on that row lock). Each call the killed replica drops is retried once on the other,
/// as a balancer would. Whatever the moment: every caller sees at most that one failed call,
/// the other replica takes over within 5 s (Postgres released the lock of the dead
/// connection; the lock timeout is 30 s), and nothing answers 5xx. The login survives with its
/// refresh family intact — one refresh grant — unless the kill landed in the window the
/// README documents: the killed replica's refresh had reached logi (which rotated the token)
/// and its answer died with the process; then the other replica's refresh is a reuse, logi
/// revokes the family (two grants or more), and the callers get `401`. `LOGI_BFF_CRASH_TRIES`
/// (default 3) sets the tries; `scripts/crash-window.sh` runs 100 and reports how many hit it.
#[tokio::test]
#[ignore = "needs Postgres (LOGI_BFF_TEST_POSTGRES); the Postgres lane runs it"]
async fn a_replica_killed_while_it_holds_a_refresh_leaves_the_login_to_the_others() {
    let b = spawn_app().await;
    assert!(b.state.db.is_postgres(), "this test needs LOGI_BFF_TEST_POSTGRES");
    let tries: u32 = std::env::var("LOGI_BFF_CRASH_TRIES").ok().and_then(|n| n.parse().ok()).unwrap_or(3);
    let (mut kept, mut lost) = (Vec::new(), Vec::new());
    for attempt in 0..tries {
        let mut a = b.process_replica().await;
        let user = format!("crash{attempt}");
        b.double.access_token_ttl.store(1, Ordering::SeqCst);
        let on_b = b.browser();
        on_b.sign_in(&user).await;
        b.double.access_token_ttl.store(300, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        b.double.reset_hits();
        let on_a = on_b.at(&a.url);
        let kill_after = Duration::from_millis(rand::random::<u64>() % 250);
        assert_eq!(on_a.me().await["sub"].as_str(), Some(format!("logi-user-{user}").as_str()), "the replica reads the session");
        // The killed replica's calls go first, so it is the one holding the refresh.
        let calls = (0..20).map(|n| {
            let (first, delay) = if n % 2 == 0 { (on_a.clone(), 0) } else { (on_b.clone(), 30) };
            let fallback = on_b.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(delay)).await;
                call_with_one_retry(first, fallback).await
            }
        });
        let killer = async {
            tokio::time::sleep(kill_after).await;
            a.kill();
            Instant::now()
        };
        let (answers, killed_at) = futures_util::future::join(join_all(calls), killer).await;
        let grants = b.double.hits("token");
        let statuses: Vec<StatusCode> = answers.iter().map(|(_, answer, _)| answer.status).collect();
        let failed_first: usize = answers.iter().filter(|(failed, _, _)| *failed).count();
        for (n, (failed, answer, at)) in answers.iter().enumerate() {
            assert!(!failed || n % 2 == 0, "a call to the surviving replica failed");
            assert!(at.saturating_duration_since(killed_at) < Duration::from_secs(5), "answered {:?} after the kill", at.duration_since(killed_at));
            assert!(matches!(answer.status, StatusCode::OK | StatusCode::UNAUTHORIZED), "{} {}", answer.status, answer.body);
        }
        let live = b.double.live_refresh_tokens_of(&format!("logi-user-{user}"));
        if statuses.iter().all(|s| *s == StatusCode::OK) {
            assert_eq!((grants, live), (1, 1), "a kept login costs one grant and keeps one live refresh token (killed after {kill_after:?})");
            kept.push(kill_after.as_millis());
        } else {
            assert_eq!(statuses, vec![StatusCode::UNAUTHORIZED; 20], "a lost login is lost for every caller");
            // The dead replica's grant, then the survivor's reuse (a caller that came in before
            // the login was ended may try once more).
            assert!(grants >= 2 && live == 0, "only a refresh that reached logi before the kill loses the login: {grants} grant(s), {live} live");
            lost.push(kill_after.as_millis());
        }
        let taken_over = answers.iter().map(|(_, _, at)| at.saturating_duration_since(killed_at)).max().unwrap_or_default();
        println!(
            "try {attempt}: killed after {kill_after:?}, {failed_first} calls retried, all answered {taken_over:?} after the kill, {grants} grant(s), login {}",
            if live == 1 { "kept" } else { "lost" }
        );
    }
    let span = |ms: &Vec<u128>| format!("{}..{} ms", ms.iter().min().unwrap_or(&0), ms.iter().max().unwrap_or(&0));
    println!("crash window: {} of {tries} tries lost the login (killed at {}); {} kept (killed at {})", lost.len(), span(&lost), kept.len(), span(&kept));
}

/// A proxied call; a call the replica drops (connection closed) is retried once on `fallback`.
/// Whether it was retried, the answer, and when it came.
async fn call_with_one_retry(first: Browser, fallback: Browser) -> (bool, Answer, Instant) {
    let answer = match first.try_send(Method::GET, "/api/proxy/hello", &[CSRF], None).await {
        Ok(answer) => return (false, answer, Instant::now()),
        Err(_) => fallback.send(Method::GET, "/api/proxy/hello", &[CSRF], None).await,
    };
    (true, answer, Instant::now())
}
