//! The step-up answer (RFC 9470): a caller whose login does not meet an API's requirement,
//! or whose upstream asked for a stronger sign-in, gets `401` with
//! `WWW-Authenticate: Bearer error="insufficient_user_authentication", acr_values="…", max_age=…`
//! and `{"error":"step_up_required","acr_values","max_age","login_url"}`; `login_url`
//! signs the browser in at logi again with the requirement and returns to the page it
//! called from.

use crate::login::step_up::Requirement;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

const INSUFFICIENT: &str = "insufficient_user_authentication";

/// A requirement the caller's login does not meet, and where the page it called from is.
#[derive(Debug, PartialEq, Eq)]
pub struct StepUp {
    pub requirement: Requirement,
    /// A path of ours (from a same-origin `Referer`), or `/`.
    pub return_to: String,
}

impl StepUp {
    /// For a caller of `headers`, whose page is on `app_origin` when it sent a `Referer`.
    pub fn new(requirement: Requirement, headers: &HeaderMap, app_origin: &str) -> Self {
        let referer = headers.get(header::REFERER).and_then(|value| value.to_str().ok());
        let return_to = referer.and_then(|url| url.strip_prefix(app_origin)).filter(|path| path.starts_with('/')).unwrap_or("/");
        Self { requirement, return_to: return_to.to_owned() }
    }

    fn login_url(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if let Some(acr_values) = self.requirement.acr_values_param() {
            query.append_pair("acr_values", &acr_values);
        }
        if let Some(max_age) = self.requirement.max_age {
            query.append_pair("max_age", &max_age.to_string());
        }
        query.append_pair("return_to", &self.return_to);
        format!("/api/auth/login?{}", query.finish())
    }

    fn challenge(&self) -> String {
        let mut challenge = format!("Bearer error=\"{INSUFFICIENT}\", error_description=\"A stronger or more recent sign-in is required\"");
        if let Some(acr_values) = self.requirement.acr_values_param() {
            challenge.push_str(&format!(", acr_values=\"{acr_values}\""));
        }
        if let Some(max_age) = self.requirement.max_age {
            challenge.push_str(&format!(", max_age={max_age}"));
        }
        challenge
    }
}

#[derive(Serialize)]
struct Body {
    error: &'static str,
    acr_values: Option<String>,
    max_age: Option<i64>,
    login_url: String,
}

impl IntoResponse for StepUp {
    fn into_response(self) -> Response {
        let body =
            Body { error: "step_up_required", acr_values: self.requirement.acr_values_param(), max_age: self.requirement.max_age, login_url: self.login_url() };
        let mut response = (StatusCode::UNAUTHORIZED, Json(body)).into_response();
        let headers = response.headers_mut();
        // The values were checked to be printable ASCII without quotes.
        if let Ok(challenge) = HeaderValue::try_from(self.challenge()) {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// The requirement of an upstream's RFC 9470 challenge (`401` with a Bearer challenge whose
/// `error` is `insufficient_user_authentication`), when it names one.
pub fn upstream_requirement(status: StatusCode, headers: &HeaderMap) -> Option<Requirement> {
    if status != StatusCode::UNAUTHORIZED {
        return None;
    }
    headers.get_all(header::WWW_AUTHENTICATE).iter().filter_map(|value| value.to_str().ok()).find_map(|value| {
        let params = bearer_params(value)?;
        let param = |name: &str| params.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str());
        (param("error") == Some(INSUFFICIENT)).then_some(())?;
        Requirement::parse(param("acr_values"), param("max_age")).ok().flatten()
    })
}

/// The auth-params of a `Bearer` challenge (RFC 7235 §2.1: `name=token` or
/// `name="quoted string"`, comma-separated); `None` when it is not one.
fn bearer_params(value: &str) -> Option<Vec<(String, String)>> {
    let rest = value.trim_start();
    let (scheme, mut rest) = rest.split_at(rest.find(' ').unwrap_or(rest.len()));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params = Vec::new();
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        if rest.is_empty() {
            return Some(params);
        }
        let (name, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let (value, remaining) = match after.strip_prefix('"') {
            Some(quoted) => quoted_string(quoted)?,
            None => {
                let (token, remaining) = after.split_at(after.find([',', ' ']).unwrap_or(after.len()));
                (token.to_owned(), remaining)
            }
        };
        params.push((name.trim().to_owned(), value));
        rest = remaining;
    }
}

/// A quoted string's content (`\x` stands for `x`) and what follows its closing quote.
fn quoted_string(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Some((value, &text[at + 1..])),
            '\\' => value.push(chars.next()?.1),
            other => value.push(other),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenged(values: &[&str]) -> Option<Requirement> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::WWW_AUTHENTICATE, HeaderValue::from_str(value).unwrap());
        }
        upstream_requirement(StatusCode::UNAUTHORIZED, &headers)
    }

    #[test]
    fn an_rfc_9470_challenge_names_the_requirement() {
        let mfa = Requirement::new(vec!["mfa".into(), "hwk".into()], Some(300));
        assert_eq!(
            challenged(&[r#"Bearer error="insufficient_user_authentication", error_description="Need \"more\", please", acr_values="mfa hwk", max_age=300"#]),
            mfa
        );
        assert_eq!(challenged(&[r#"Basic realm="x""#, r#"bearer ERROR="insufficient_user_authentication",max_age="300",acr_values="mfa hwk""#]), mfa);
        assert_eq!(challenged(&[r#"Bearer error="insufficient_user_authentication", max_age=60"#]), Requirement::new(Vec::new(), Some(60)));
        for refused in [
            r#"Bearer error="invalid_token", acr_values="mfa""#,
            r#"Bearer error="insufficient_user_authentication""#,
            r#"Bearer error="insufficient_user_authentication", acr_values="mfa"#,
            r#"Bearer error="insufficient_user_authentication", max_age=-1"#,
            r#"Bearer error="insufficient_user_authentication", acr_values="a\"b""#,
            r#"DPoP error="insufficient_user_authentication", acr_values="mfa""#,
            "Bearer",
            "",
        ] {
            assert_eq!(challenged(&[refused]), None, "{refused}");
        }
        let mut headers = HeaderMap::new();
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(r#"Bearer error="insufficient_user_authentication", acr_values="mfa""#));
        assert_eq!(upstream_requirement(StatusCode::FORBIDDEN, &headers), None);
    }

    #[test]
    fn the_answer_has_the_challenge_the_body_and_a_login_url_back_to_the_calling_page() {
        let referer = HeaderMap::from_iter([(header::REFERER, HeaderValue::from_static("https://app.example/api-demo?tab=2"))]);
        let step_up = StepUp::new(Requirement::new(vec!["mfa".into()], Some(300)).unwrap(), &referer, "https://app.example");
        let response = step_up.into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let challenge = response.headers()[header::WWW_AUTHENTICATE].to_str().unwrap().to_owned();
        assert_eq!(challenged(&[&challenge]), Requirement::new(vec!["mfa".into()], Some(300)));
        let foreign = HeaderMap::from_iter([(header::REFERER, HeaderValue::from_static("https://app.example.evil/x"))]);
        assert_eq!(StepUp::new(Requirement::default(), &foreign, "https://app.example").return_to, "/");
        let step_up = StepUp::new(Requirement::new(vec!["mfa".into()], None).unwrap(), &referer, "https://app.example");
        assert_eq!(step_up.login_url(), "/api/auth/login?acr_values=mfa&return_to=%2Fapi-demo%3Ftab%3D2");
    }

    proptest::proptest! {
        /// Any header value parses or is refused; none panics.
        #[test]
        fn no_challenge_panics(value in "[ -~]{0,120}") {
            if let Ok(value) = HeaderValue::from_str(&value) {
                upstream_requirement(StatusCode::UNAUTHORIZED, &HeaderMap::from_iter([(header::WWW_AUTHENTICATE, value)]));
            }
        }
    }
}
