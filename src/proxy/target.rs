//! Where a proxied request goes, and which headers travel each way.

use axum::http::{header, HeaderMap, HeaderName};
use url::Url;

/// The upstream URL for the part of our path after `/api/proxy/` (still percent-encoded,
/// as the browser sent it) and the query. Refused: dot segments (also encoded), empty
/// segments, encoded slashes or backslashes, control characters; and anything that
/// would resolve outside the upstream's origin and base path.
pub fn resolve(base: &Url, raw_path: &str, query: Option<&str>) -> Option<Url> {
    let segments: Vec<&str> = raw_path.split('/').collect();
    let last = segments.len() - 1;
    for (index, segment) in segments.iter().enumerate() {
        if segment.is_empty() && index != last {
            return None;
        }
        if !is_safe_segment(segment) {
            return None;
        }
    }
    if query.is_some_and(|q| q.chars().any(|c| c.is_control() || c == '#')) {
        return None;
    }
    let base_path = base.path().trim_end_matches('/');
    let mut url = base.clone();
    url.set_path(&format!("{base_path}/{raw_path}"));
    url.set_query(query);
    let stays_inside = url.origin() == base.origin() && url.path().starts_with(&format!("{base_path}/"));
    stays_inside.then_some(url)
}

fn is_safe_segment(segment: &str) -> bool {
    let Some(decoded) = decode_strictly(segment) else { return false };
    decoded != "."
        && decoded != ".."
        && !decoded.chars().any(|c| c == '/' || c == '\\' || c.is_control())
        && !segment.chars().any(|c| c == '\\' || c.is_control() || c.is_whitespace())
}

/// Percent-decoding that refuses a `%` not followed by two hex digits, and non-UTF-8 results.
fn decode_strictly(segment: &str) -> Option<String> {
    let escapes_valid = segment.split('%').skip(1).all(|rest| rest.as_bytes().get(..2).is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit)));
    let decoded = percent_encoding::percent_decode_str(segment).decode_utf8().ok()?;
    escapes_valid.then(|| decoded.into_owned())
}

/// Request headers the browser may pass to the upstream; everything else (cookies,
/// authorization, hop-by-hop, forwarding headers, our own X-CSRF) stays here.
const FORWARDED_REQUEST_HEADERS: [HeaderName; 9] = [
    header::ACCEPT,
    header::ACCEPT_LANGUAGE,
    header::CONTENT_TYPE,
    header::IF_MATCH,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_UNMODIFIED_SINCE,
    header::RANGE,
    header::CACHE_CONTROL,
];

pub fn request_headers(incoming: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in FORWARDED_REQUEST_HEADERS {
        for value in incoming.get_all(&name) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// Response headers that never reach the browser: cookies and hop-by-hop headers
/// (RFC 9110 §7.6.1), including any the upstream names in `Connection`.
pub fn response_headers(upstream: &HeaderMap) -> HeaderMap {
    let named_in_connection: Vec<String> = upstream
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|name| name.trim().to_ascii_lowercase()))
        .collect();
    let dropped = |name: &HeaderName| {
        matches!(
            name.as_str(),
            "set-cookie" | "connection" | "keep-alive" | "proxy-authenticate" | "proxy-authorization" | "te" | "trailer" | "transfer-encoding" | "upgrade"
        ) || named_in_connection.iter().any(|n| n == name.as_str())
    };
    upstream.iter().filter(|(name, _)| !dropped(name)).map(|(name, value)| (name.clone(), value.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://api.example.com/v1").unwrap()
    }

    fn target(path: &str, query: Option<&str>) -> Option<String> {
        resolve(&base(), path, query).map(String::from)
    }

    #[test]
    fn plain_paths_and_queries_are_appended_to_the_base_path() {
        assert_eq!(target("hello", None).as_deref(), Some("https://api.example.com/v1/hello"));
        assert_eq!(target("users/42/", Some("a=1&b=x%20y")).as_deref(), Some("https://api.example.com/v1/users/42/?a=1&b=x%20y"));
        assert_eq!(target("", None).as_deref(), Some("https://api.example.com/v1/"));
        assert_eq!(target("caf%C3%A9", None).as_deref(), Some("https://api.example.com/v1/caf%C3%A9"));
        let root = Url::parse("http://127.0.0.1:9191").unwrap();
        assert_eq!(resolve(&root, "hello", None).map(String::from).as_deref(), Some("http://127.0.0.1:9191/hello"));
    }

    #[test]
    fn escapes_from_the_upstream_are_refused() {
        for path in [
            "..",
            "../admin",
            "a/../../admin",
            "a/./b",
            "%2e%2e/admin",
            "%2E%2E",
            ".%2e/x",
            "a%2fb",
            "a%2F..%2Fb",
            "a%5cb",
            "a\\b",
            "//evil.example/x",
            "a//b",
            "%00",
            "a%0d%0aHost:%20evil",
            "%zz",
            "%c3%28",
            "a b",
            "\u{7f}",
        ] {
            assert_eq!(target(path, None), None, "{path:?} was let through");
        }
        assert_eq!(target("x", Some("a=1#frag")), None);
        assert_eq!(target("x", Some("a=\r\n")), None);
    }

    #[test]
    fn absolute_urls_in_the_path_stay_on_the_upstream() {
        // "http:" is a harmless segment name under the base path, never a new origin.
        for path in ["http:/evil.example", "http:evil.example", "https:%2F%2Fevil.example", "@evil.example"] {
            if let Some(kept) = target(path, None) {
                assert!(kept.starts_with("https://api.example.com/v1/"), "{path:?} became {kept}");
            }
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap())).collect()
    }

    #[test]
    fn only_safe_request_headers_are_forwarded() {
        let incoming = headers(&[
            ("accept", "application/json"),
            ("content-type", "application/json"),
            ("cookie", "logi_bff_session=secret"),
            ("authorization", "Bearer smuggled"),
            ("x-csrf", "1"),
            ("host", "evil.example"),
            ("x-forwarded-for", "1.2.3.4"),
            ("connection", "keep-alive, x-secret"),
            ("transfer-encoding", "chunked"),
            ("origin", "http://localhost:3000"),
        ]);
        let out = request_headers(&incoming);
        let mut names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        names.sort();
        assert_eq!(names, ["accept", "content-type"]);
    }

    #[test]
    fn cookies_and_hop_by_hop_headers_never_come_back() {
        let upstream = headers(&[
            ("content-type", "application/json"),
            ("set-cookie", "tracker=1"),
            ("connection", "close, x-internal"),
            ("x-internal", "secret"),
            ("keep-alive", "timeout=5"),
            ("etag", "\"abc\""),
        ]);
        let out = response_headers(&upstream);
        let mut names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        names.sort();
        assert_eq!(names, ["content-type", "etag"]);
    }

    use proptest::strategy::Strategy;

    proptest::proptest! {
        /// Whatever the path and query, a resolved URL keeps the upstream's origin and base
        /// path and has no dot segment.
        #[test]
        fn a_resolved_url_never_leaves_the_base(
            segments in proptest::collection::vec(proptest::prop_oneof![
                proptest::sample::select(vec!["..", ".", "%2e%2E", "%2e.", "%2f", "%5C", "", "a", "%", "%zz", "%252e%252e", "\\", "%00", "é"]).prop_map(str::to_owned),
                ".{0,12}",
            ], 0..6),
            query in proptest::option::of(".{0,20}"),
        ) {
            let base = Url::parse("https://api.example.com/v1/").unwrap();
            let raw = segments.join("/");
            if let Some(url) = resolve(&base, &raw, query.as_deref()) {
                proptest::prop_assert_eq!(url.origin(), base.origin());
                proptest::prop_assert!(url.path().starts_with("/v1/"), "{}", url);
                proptest::prop_assert!(url.path_segments().unwrap().all(|s| s != ".." && s != "."), "{}", url);
            }
        }
    }
}
