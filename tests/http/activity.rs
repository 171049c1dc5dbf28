//! The account activity record: each change writes its event in its own transaction and
//! nothing else writes one; users page their own record only.

use crate::backchannel::{claims, log_out, logout_header};
use crate::native::{refresh, signed_in_device};
use crate::provider::{rsa_key, sign};
use crate::support::{spawn_app, Browser, TestApp};
use logi_bff::server::db::{query, Db};
use reqwest::{Method, StatusCode};

/// Every event so far as `kind detail`, oldest first.
async fn events(app: &TestApp) -> Vec<String> {
    let rows: Vec<(String, String)> = query("SELECT kind, detail FROM account_events ORDER BY id").fetch_all(&app.state.db).await.unwrap();
    rows.into_iter().map(|(kind, detail)| format!("{kind} {detail}")).collect()
}

/// The events recorded since `before` (a count of [`events`]).
async fn new_events(app: &TestApp, before: &mut usize) -> Vec<String> {
    let all = events(app).await;
    let new = all[*before..].to_vec();
    *before = all.len();
    new
}

async fn post_form(browser: &Browser, app: &TestApp, function: &str, form: &str) -> StatusCode {
    let body = Some(("application/x-www-form-urlencoded", form.as_bytes().to_vec()));
    browser.send(Method::POST, &format!("/api/{function}"), &[("origin", &app.url)], body).await.status
}

fn ok(status: StatusCode) -> bool {
    status.is_success() || status.is_redirection()
}

#[tokio::test]
async fn each_change_records_its_event_and_reads_record_nothing() {
    let app = spawn_app().await;
    let mut seen = 0;
    let (laptop, phone) = (Browser::with_user_agent(&app.url, "Laptop/1.0"), app.browser());
    laptop.sign_in("ada").await;
    phone.sign_in("ada").await;
    assert_eq!(new_events(&app, &mut seen).await, [r#"sign_in {"method":"logi"}"#; 2]);

    for _ in 0..3 {
        laptop.me().await;
        laptop.get("/account").await;
        laptop.get("/api/account/activity").await;
    }
    assert_eq!(new_events(&app, &mut seen).await, Vec::<String>::new(), "a read recorded an event");

    assert!(ok(post_form(&laptop, &app, "set_password", "email=ada%40example.com&password=first-password-123").await));
    assert_eq!(new_events(&app, &mut seen).await, ["password_set {}"]);
    let (device,): (Option<String>,) = query("SELECT device FROM account_events WHERE kind = 'password_set'").fetch_one(&app.state.db).await.unwrap();
    assert_eq!(device.as_deref(), Some("Laptop/1.0"), "an account change names the device of the login that made it");

    let stranger = app.browser();
    assert_eq!(post_form(&stranger, &app, "sign_in", "email=ada%40example.com&password=wrong-password-123&return_to=%2F").await, StatusCode::UNAUTHORIZED);
    assert_eq!(post_form(&stranger, &app, "sign_in", "email=nobody%40example.com&password=wrong-password-123&return_to=%2F").await, StatusCode::UNAUTHORIZED);
    assert_eq!(new_events(&app, &mut seen).await, [r#"sign_in_failed {"method":"password"}"#], "only an existing account's failure is recorded");
    assert!(ok(post_form(&stranger, &app, "sign_in", "email=ada%40example.com&password=first-password-123&return_to=%2F").await));
    assert_eq!(new_events(&app, &mut seen).await, [r#"sign_in {"method":"password"}"#]);

    assert!(ok(post_form(&laptop, &app, "change_password", "current_password=first-password-123&new_password=second-password-456").await));
    assert_eq!(
        new_events(&app, &mut seen).await,
        ["password_changed {}", r#"login_ended {"reason":"password_change"}"#, r#"login_ended {"reason":"password_change"}"#],
        "the phone's and the stranger's logins end with the change"
    );

    let device = signed_in_device(&app, "ada").await;
    assert_eq!(new_events(&app, &mut seen).await, [r#"sign_in {"method":"native"}"#, "device_added {}"]);
    let first_refresh = device["refresh_token"].as_str().unwrap();
    assert_eq!(refresh(&app, first_refresh).await.status, StatusCode::OK);
    assert_eq!(new_events(&app, &mut seen).await, Vec::<String>::new(), "a rotation is no event");
    app.execute("UPDATE device_refresh_tokens SET rotated_at = rotated_at - 11 WHERE rotated_at IS NOT NULL").await;
    assert_eq!(refresh(&app, first_refresh).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(new_events(&app, &mut seen).await, ["refresh_reuse_detected {}", r#"login_ended {"reason":"refresh_reuse"}"#]);

    assert!(ok(post_form(&laptop, &app, "unlink_logi", "").await));
    assert_eq!(new_events(&app, &mut seen).await, ["identity_unlinked {}"]);
    let form = Some(("application/x-www-form-urlencoded", b"login_hint=ada".to_vec()));
    let to_logi = laptop.send(Method::POST, "/api/auth/link", &[("origin", &app.url)], form).await;
    let (_, hops) = laptop.navigate(to_logi.location()).await;
    assert!(hops.last().is_some_and(|hop| hop.starts_with("/account")), "{hops:?}");
    assert_eq!(new_events(&app, &mut seen).await, ["identity_linked {}"]);

    let second = app.browser();
    assert!(ok(post_form(&second, &app, "sign_in", "email=ada%40example.com&password=second-password-456&return_to=%2F").await));
    assert_eq!(new_events(&app, &mut seen).await, [r#"sign_in {"method":"password"}"#]);
    let sessions = laptop.send(Method::POST, "/api/account", &[("origin", &app.url)], Some(("application/x-www-form-urlencoded", Vec::new()))).await.json();
    let other = sessions["sessions"].as_array().unwrap().iter().find(|s| s["this_device"] == false).unwrap()["id"].as_str().unwrap().to_owned();
    assert!(ok(post_form(&laptop, &app, "end_session", &format!("id={other}")).await));
    assert_eq!(new_events(&app, &mut seen).await, [r#"login_ended {"reason":"by_user"}"#]);

    laptop.send(Method::POST, "/api/auth/logout", &[("origin", &app.url)], None).await;
    assert_eq!(new_events(&app, &mut seen).await, ["sign_out {}"]);
}

async fn activity(browser: &Browser, query: &str) -> (StatusCode, serde_json::Value) {
    let answer = browser.get(&format!("/api/account/activity{query}")).await;
    (answer.status, answer.json())
}

fn ids(page: &serde_json::Value) -> Vec<i64> {
    page["events"].as_array().unwrap().iter().map(|event| event["id"].as_i64().unwrap()).collect()
}

#[tokio::test]
async fn activity_pages_newest_first_and_only_for_its_user() {
    let app = spawn_app().await;
    let ada = app.browser();
    for _ in 0..5 {
        ada.sign_in("ada").await; // each sign-in replaces the last: sign_in, login_ended (replaced)
    }
    let bob = app.browser();
    bob.sign_in("bob").await;

    let (status, all) = activity(&ada, "?limit=200").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let all_ids = ids(&all);
    assert_eq!(all_ids.len(), 9, "{all}");
    assert!(all_ids.windows(2).all(|pair| pair[0] > pair[1]), "not newest first: {all_ids:?}");
    assert_eq!(all["next_before"], serde_json::Value::Null);
    let newest = &all["events"][0];
    assert_eq!((newest["kind"].as_str(), newest["summary"].as_str()), (Some("sign_in"), Some("Signed in with logi")));
    assert_eq!(all["events"][1]["summary"], "Session ended (signed in again)");

    let mut paged = Vec::new();
    let mut query = "?limit=4".to_owned();
    loop {
        let (status, page) = activity(&ada, &query).await;
        assert_eq!(status, StatusCode::OK);
        paged.extend(ids(&page));
        match page["next_before"].as_i64() {
            Some(before) => query = format!("?limit=4&before={before}"),
            None => break,
        }
    }
    assert_eq!(paged, all_ids, "paging lost or repeated an event");

    let (_, bobs) = activity(&bob, "").await;
    assert_eq!(ids(&bobs).len(), 1);
    assert!(ids(&bobs).iter().all(|id| !all_ids.contains(id)), "another user's events are visible");

    for bad in ["?limit=0", "?limit=201", "?limit=x", "?before=-1", "?before=1&before=2", "?page=2"] {
        let (status, body) = activity(&ada, bad).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")), "{bad}");
    }
    let (status, body) = activity(&app.browser(), "").await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("not_signed_in")));

    let device = signed_in_device(&app, "ada").await;
    let bearer = format!("Bearer {}", device["access_token"].as_str().unwrap());
    let answer = Browser::new(&app.url).send(Method::GET, "/api/account/activity?limit=2", &[("authorization", &bearer)], None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.json()["events"][0]["kind"], "device_added");
}

/// Makes the database refuse to record events of `kind` (a trigger), as a failure between
/// the change and its event would.
async fn refuse_events(db: &Db, kind: &str) {
    let statements = match db {
        Db::Sqlite(_) => {
            vec![format!("CREATE TRIGGER refuse_{kind} BEFORE INSERT ON account_events WHEN NEW.kind = '{kind}' BEGIN SELECT RAISE(ABORT, 'refused'); END")]
        }
        Db::Postgres(_) => vec![
            format!("CREATE FUNCTION refuse_{kind}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$"),
            format!("CREATE TRIGGER refuse_{kind} BEFORE INSERT ON account_events FOR EACH ROW WHEN (NEW.kind = '{kind}') EXECUTE FUNCTION refuse_{kind}()"),
        ],
    };
    for sql in statements {
        db.execute(&sql).await.unwrap();
    }
}

#[tokio::test]
async fn a_change_whose_event_fails_does_not_happen() {
    let app = spawn_app().await;
    let laptop = app.browser();
    laptop.sign_in("ada").await;
    assert!(ok(post_form(&laptop, &app, "set_password", "email=ada%40example.com&password=first-password-123").await));
    let before = events(&app).await;

    refuse_events(&app.state.db, "password_changed").await;
    let status = post_form(&laptop, &app, "change_password", "current_password=first-password-123&new_password=second-password-456").await;
    assert!(!ok(status), "{status}");
    let stranger = app.browser();
    assert!(ok(post_form(&stranger, &app, "sign_in", "email=ada%40example.com&password=first-password-123&return_to=%2F").await), "the password changed");

    refuse_events(&app.state.db, "sign_out").await;
    laptop.send(Method::POST, "/api/auth/logout", &[("origin", &app.url)], None).await;
    assert_eq!(app.count("SELECT count(*) FROM logins").await, 2, "a login ended without its event");

    refuse_events(&app.state.db, "identity_unlinked").await;
    let after_sign_in = events(&app).await;
    assert!(!ok(post_form(&stranger, &app, "unlink_logi", "").await));
    assert_eq!(app.count("SELECT count(*) FROM identities").await, 1, "logi was unlinked without its event");
    assert_eq!(events(&app).await, after_sign_in);
    assert_eq!(&after_sign_in[..before.len()], &before[..]);
    assert_eq!(&after_sign_in[before.len()..], [r#"sign_in {"method":"password"}"#]);

    let updated = app.state.db.execute("UPDATE account_events SET kind = 'sign_out'").await;
    assert!(updated.is_err(), "an event was rewritten");
}

#[tokio::test]
async fn a_password_change_and_the_logins_it_ends_land_together_or_not_at_all() {
    let app = spawn_app().await;
    let (laptop, phone) = (app.browser(), app.browser());
    laptop.sign_in("ada").await;
    phone.sign_in("ada").await;
    assert!(ok(post_form(&laptop, &app, "set_password", "email=ada%40example.com&password=first-password-123").await));
    let before = events(&app).await;

    refuse_events(&app.state.db, "login_ended").await;
    let status = post_form(&laptop, &app, "change_password", "current_password=first-password-123&new_password=second-password-456").await;
    assert!(!ok(status), "{status}");
    assert_eq!(phone.me().await["sub"], "logi-user-ada", "the phone's login ended without the change");
    assert_eq!(events(&app).await, before, "no password_changed without the ends it causes");
    let stranger = app.browser();
    assert!(ok(post_form(&stranger, &app, "sign_in", "email=ada%40example.com&password=first-password-123&return_to=%2F").await), "the password changed");
}

#[tokio::test]
async fn the_sweeper_deletes_events_past_their_retention_only() {
    let app = spawn_app().await;
    app.browser().sign_in("ada").await;
    let now = logi_bff::server::unix_now();
    let sql = format!("INSERT INTO account_events (user_id, kind, at) SELECT user_id, 'sign_out', {} FROM account_events", now - 181 * 86_400);
    app.execute(&sql).await;
    assert_eq!(app.state.config.activity_retention.as_secs(), 180 * 86_400, "the default retention");
    logi_bff::startup::sweep(&app.state).await;
    assert_eq!(events(&app).await, [r#"sign_in {"method":"logi"}"#]);
}

#[tokio::test]
async fn ended_logins_record_why_and_events_are_counted_by_kind() {
    let app = crate::support::spawn_app_with(&[("METRICS_ADDR", "127.0.0.1:0")]).await;
    let metrics_url = app.metrics_url.clone().expect("a metrics listener");
    let ended_series = ["logi_bff_account_events_total{", "kind=\"login_ended\""];
    let scrape = || async { reqwest::get(&metrics_url).await.unwrap().text().await.unwrap() };
    let counted_before = crate::operations::series(&scrape().await, &ended_series);
    let mut seen = 0;

    app.browser().sign_in("alice").await;
    let token = sign(&logout_header(), &claims(&app, Some("logi-user-alice"), None), rsa_key(0));
    assert!(log_out(&app, &token).await.status.is_success());
    app.browser().sign_in("bob").await;
    app.execute("UPDATE logins SET created_at = created_at - 100000000, last_seen_at = last_seen_at - 100000000").await;
    logi_bff::startup::sweep(&app.state).await;
    let (carol, carols_phone) = (app.browser(), app.browser());
    carol.sign_in("carol").await;
    carols_phone.sign_in("carol").await;
    assert!(ok(post_form(&carol, &app, "sign_out_everywhere", "").await));
    let sign_in = r#"sign_in {"method":"logi"}"#;
    assert_eq!(
        new_events(&app, &mut seen).await,
        [
            sign_in,
            r#"login_ended {"reason":"backchannel_logout"}"#,
            sign_in,
            r#"login_ended {"reason":"expired"}"#,
            sign_in,
            sign_in,
            r#"login_ended {"reason":"everywhere"}"#,
            r#"login_ended {"reason":"everywhere"}"#,
        ]
    );
    // The recorder is shared by every app of this process: at least these four.
    assert!(crate::operations::series(&scrape().await, &ended_series) >= counted_before + 4.0);
}
