//! Server functions answer bad input with 4xx and a code, never 500.

use crate::support::spawn_app;
use reqwest::{Method, StatusCode};

/// Server functions with arguments, and those without (which read no form field).
const WITH_ARGUMENTS: [&str; 5] = ["sign_up", "sign_in", "set_password", "change_password", "end_session"];
const WITHOUT_ARGUMENTS: [&str; 4] = ["account", "unlink_logi", "sign_out_everywhere", "auth_state"];
const NOT_UTF8: &[u8] = b"\xff\xfe\x00";

#[tokio::test]
async fn garbage_posted_to_every_server_function_gets_a_4xx_with_a_code() {
    let app = spawn_app().await;
    let browser = app.browser();
    let malformed: [&[u8]; 4] =
        [b"%%%=&&&&email[=1", NOT_UTF8, b"email=a&email=b&password=x&password=y&return_to=/&name=n&id=1&current_password=1&new_password=2", b""];
    let cases = WITH_ARGUMENTS.iter().flat_map(|f| malformed.iter().map(move |body| (*f, *body))).chain(WITHOUT_ARGUMENTS.iter().map(|f| (*f, NOT_UTF8)));
    for (function, body) in cases {
        let answer =
            browser.send(Method::POST, &format!("/api/{function}"), &[("origin", &app.url)], Some(("application/x-www-form-urlencoded", body.to_vec()))).await;
        assert!(answer.status.is_client_error(), "{function} {:?}: {} {}", String::from_utf8_lossy(body), answer.status, answer.body);
        assert!(answer.json()["error"].is_string(), "{function}: {}", answer.body);
    }
}

#[tokio::test]
async fn account_errors_carry_their_status() {
    let app = spawn_app().await;
    let browser = app.browser();
    let form = b"email=nobody%40example.com&password=wrong-password-123&return_to=%2F".to_vec();
    let wrong = browser.send(Method::POST, "/api/sign_in", &[("origin", &app.url)], Some(("application/x-www-form-urlencoded", form))).await;
    assert_eq!((wrong.status, wrong.json()["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_credentials")));
    let signed_out =
        browser.send(Method::POST, "/api/sign_out_everywhere", &[("origin", &app.url)], Some(("application/x-www-form-urlencoded", Vec::new()))).await;
    assert_eq!((signed_out.status, signed_out.json()["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("not_signed_in")));
    let cross_site =
        browser.send(Method::POST, "/api/sign_in", &[("origin", "https://evil.example")], Some(("application/x-www-form-urlencoded", Vec::new()))).await;
    assert_eq!(cross_site.status, StatusCode::FORBIDDEN);
}
