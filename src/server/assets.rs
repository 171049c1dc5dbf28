//! The site (wasm, js, css and `public/`) embedded in the server binary.
//!
//! Release builds embed `target/site` as cargo-leptos left it, including the
//! `.br`/`.gz` copies it writes with `precompress`; debug builds read the same
//! folder from disk, so `cargo leptos watch` picks up new front-end builds.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;

#[derive(rust_embed::Embed)]
#[folder = "target/site"]
#[allow_missing = true]
struct Site;

/// The embedded file at `path`, in the best encoding the client accepts; `None` if there is none.
pub fn response(path: &str, request_headers: &HeaderMap) -> Option<Response> {
    let path = path.trim_start_matches('/');
    if path.is_empty() || path.ends_with(".br") || path.ends_with(".gz") {
        return None;
    }
    let original = Site::get(path)?;
    let etag = format!("\"{}\"", hex::encode(original.metadata.sha256_hash()));
    let mut response = Response::builder()
        .header(header::CONTENT_TYPE, original.metadata.mimetype())
        .header(header::ETAG, &etag)
        .header(header::CACHE_CONTROL, "no-cache")
        .header(header::VARY, "accept-encoding");
    if request_headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == etag.as_bytes()) {
        return response.status(StatusCode::NOT_MODIFIED).body(Body::empty()).ok();
    }
    let (encoding, body) = precompressed(path, request_headers).unwrap_or((None, original.data));
    if let Some(encoding) = encoding {
        response = response.header(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    response.body(Body::from(body.into_owned())).ok()
}

fn precompressed(path: &str, request_headers: &HeaderMap) -> Option<(Option<&'static str>, std::borrow::Cow<'static, [u8]>)> {
    let accepted = request_headers.get(header::ACCEPT_ENCODING)?.to_str().ok()?;
    let accepts = |coding: &str| accepted.split(',').any(|part| part.split(';').next().is_some_and(|c| c.trim() == coding));
    [("br", ".br"), ("gzip", ".gz")]
        .into_iter()
        .filter(|(coding, _)| accepts(coding))
        .find_map(|(coding, suffix)| Site::get(&format!("{path}{suffix}")).map(|file| (Some(coding), file.data)))
}
