//! A request id for every request: taken from `X-Request-Id` when a trusted proxy sent
//! it (and it is a plain token), else made here (see `request_context`). It is in every
//! log line of the request, on the response, and forwarded to the upstream API by the proxy.

use axum::http::{HeaderName, HeaderValue};

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const MAX_LENGTH: usize = 128;

/// This request's id, in its extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(pub HeaderValue);

/// 1 to 128 characters of `A-Z a-z 0-9 - _ . : / =` (enough for UUIDs and trace ids,
/// nothing that could forge a log line).
pub fn is_plain(id: &HeaderValue) -> bool {
    let bytes = id.as_bytes();
    (1..=MAX_LENGTH).contains(&bytes.len()) && bytes.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.:/=".contains(b))
}

pub fn generate() -> HeaderValue {
    let id = hex::encode(rand::random::<[u8; 16]>());
    HeaderValue::from_str(&id).expect("hex is a header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_ids_are_kept() {
        for plain in ["a", "0b6f1d8e-4c7a-4a8e-9f3e-1d2c3b4a5f60", "Root=1-5759e988-bd862e3fe1be46a994272793", &"x".repeat(128)] {
            assert!(is_plain(&HeaderValue::from_str(plain).unwrap()), "{plain}");
        }
        for odd in ["", "two words", "quote\"", "line\\nbreak", "{json}", &"x".repeat(129)] {
            assert!(!is_plain(&HeaderValue::from_str(odd).unwrap()), "{odd}");
        }
    }

    #[test]
    fn generated_ids_are_unique_hex() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(is_plain(&a));
    }
}
