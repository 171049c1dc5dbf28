//! Headers on our answers: the security headers every response carries, and the
//! Content-Security-Policy of each rendered page with that render's nonce.

use super::config::Config;
use axum::http::{header, HeaderMap, HeaderValue};
use std::sync::Arc;

/// On every response. HSTS only when the public origin is https (a plain-http
/// development origin must stay reachable).
pub fn add_security_headers(headers: &mut HeaderMap, https: bool) {
    headers.reserve(4); // one allocation instead of growing on the way
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if https {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    }
}

/// A page's policy: scripts only from us or inline with this response's `nonce` (the
/// islands loader), wasm compilation allowed, nothing embedded or embedding us. Forms
/// post to us; the link and "sign out of logi too" forms end in a redirect to logi, so
/// its origin is a form target too when it is configured.
pub fn content_security_policy(nonce: &str, logi_origin: Option<&str>) -> String {
    let form_targets = logi_origin.map_or_else(|| "'self'".to_owned(), |origin| format!("'self' {origin}"));
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action {form_targets}"
    )
}

/// While a page renders on the server: its CSP header, with the nonce leptos_axum made
/// for this render (every inline script leptos writes carries it).
pub fn set_page_policy() {
    use leptos::prelude::use_context;
    let (Some(nonce), Some(response)) = (leptos::nonce::use_nonce(), use_context::<leptos_axum::ResponseOptions>()) else { return };
    let logi_origin = use_context::<Arc<Config>>().and_then(|config| config.logi.as_ref().map(|logi| logi.issuer_url.origin().ascii_serialization()));
    if let Ok(policy) = HeaderValue::from_str(&content_security_policy(&nonce, logi_origin.as_deref())) {
        response.insert_header(header::CONTENT_SECURITY_POLICY, policy);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_names_the_nonce_and_logi_as_a_form_target() {
        let policy = content_security_policy("abc123", Some("https://logi.example.com"));
        assert!(policy.contains("script-src 'self' 'nonce-abc123' 'wasm-unsafe-eval';"), "{policy}");
        assert!(policy.ends_with("form-action 'self' https://logi.example.com"), "{policy}");
        for directive in ["default-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"] {
            assert!(policy.contains(directive), "{directive} missing from {policy}");
        }
        assert!(content_security_policy("n", None).ends_with("form-action 'self'"));
    }

    #[test]
    fn hsts_only_for_https() {
        let mut headers = HeaderMap::new();
        add_security_headers(&mut headers, false);
        assert!(!headers.contains_key(header::STRICT_TRANSPORT_SECURITY));
        add_security_headers(&mut headers, true);
        assert_eq!(headers[header::STRICT_TRANSPORT_SECURITY], "max-age=31536000");
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
    }
}
