//! The few cryptographic helpers every feature shares: purpose-bound keys derived
//! from `SESSION_SECRET`, authenticated sealing, SHA-256, compact JWS splitting, and the
//! JWT rules ours and logi's tokens share (`aud`, clock leeway).

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use secrecy::{ExposeSecret, ExposeSecretMut, SecretBox, SecretString};
use sha2::{Digest, Sha256};

const NONCE_LEN: usize = 24;

/// Clock skew allowed on the `iat` and `exp` of every JWT we check (ours and logi's).
pub const JWT_LEEWAY_SECS: i64 = 60;

/// A JWT's `aud`: one string or an array of them (RFC 7519 §4.1.3).
#[derive(serde::Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn contains(&self, audience: &str) -> bool {
        match self {
            Self::One(one) => one == audience,
            Self::Many(many) => many.iter().any(|one| one == audience),
        }
    }
}

/// A key for one purpose only (`label`), derived from the session secret with HKDF-SHA256.
pub fn derive_key<const N: usize>(secret: &SecretString, label: &str) -> SecretBox<[u8; N]> {
    let mut key = SecretBox::new(Box::new([0u8; N]));
    Hkdf::<Sha256>::new(None, secret.expose_secret().as_bytes())
        .expand(label.as_bytes(), key.expose_secret_mut())
        .expect("HKDF-SHA256 can produce keys of this length");
    key
}

/// XChaCha20-Poly1305 under a purpose-bound key: `nonce || ciphertext`. The associated
/// data binds a sealed value to its owner (a login id, a cookie name), so it cannot be moved.
pub struct Sealer(XChaCha20Poly1305);

impl Sealer {
    pub fn new(secret: &SecretString, label: &str) -> Self {
        Self(XChaCha20Poly1305::new(derive_key::<32>(secret, label).expose_secret().into()))
    }

    pub fn seal(&self, associated: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let ciphertext = self
            .0
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad: associated })
            .expect("XChaCha20-Poly1305 encryption does not fail for in-memory buffers");
        [nonce.as_slice(), &ciphertext].concat()
    }

    /// The plaintext, or `None` when the value was tampered with, truncated, moved or
    /// sealed under another key.
    pub fn open(&self, associated: &[u8], sealed: &[u8]) -> Option<SecretBox<[u8]>> {
        if sealed.len() <= NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let plaintext = self.0.decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad: associated }).ok()?;
        Some(SecretBox::new(plaintext.into_boxed_slice()))
    }
}

/// A compact JWS (RFC 7515 §7.1) split into its three parts and base64url-decoded;
/// nothing is checked yet. `None` unless there are exactly three decodable parts.
pub struct CompactJws<'a> {
    /// `header.payload`, what the signature covers.
    pub signing_input: &'a str,
    pub header: Vec<u8>,
    pub payload: Vec<u8>,
    pub signature: Vec<u8>,
}

impl<'a> CompactJws<'a> {
    pub fn split(token: &'a str) -> Option<Self> {
        use base64::engine::{general_purpose::URL_SAFE_NO_PAD, Engine};
        let (signing_input, signature) = token.rsplit_once('.')?;
        let (header, payload) = signing_input.split_once('.')?;
        Some(Self {
            signing_input,
            header: URL_SAFE_NO_PAD.decode(header).ok()?,
            payload: URL_SAFE_NO_PAD.decode(payload).ok()?,
            signature: URL_SAFE_NO_PAD.decode(signature).ok()?,
        })
    }
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(text: &str) -> SecretString {
        SecretString::from(text.to_owned())
    }

    #[test]
    fn sealed_values_open_only_with_their_key_label_and_owner() {
        let sealer = Sealer::new(&secret("a-session-secret-0123456789abcdef"), "test/v1");
        let sealed = sealer.seal(b"owner", b"plain");
        assert_eq!(sealer.open(b"owner", &sealed).unwrap().expose_secret(), b"plain");
        assert!(sealer.open(b"other", &sealed).is_none());
        assert!(Sealer::new(&secret("a-session-secret-0123456789abcdef"), "test/v2").open(b"owner", &sealed).is_none());
        assert!(Sealer::new(&secret("another-secret-0123456789abcdef!!"), "test/v1").open(b"owner", &sealed).is_none());
        assert!(sealer.open(b"owner", &sealed[..sealed.len() - 1]).is_none());
        assert!(sealer.open(b"owner", &sealed[..10]).is_none());
    }

    #[test]
    fn derived_keys_differ_by_label() {
        let s = secret("a-session-secret-0123456789abcdef");
        assert_ne!(derive_key::<32>(&s, "a").expose_secret(), derive_key::<32>(&s, "b").expose_secret());
    }

    proptest::proptest! {
        /// Any text splits or not without panicking; what splits re-joins to the input.
        #[test]
        fn a_compact_jws_splits_only_into_three_decodable_parts(token in "[A-Za-z0-9_.=+/-]{0,120}") {
            if let Some(jws) = CompactJws::split(&token) {
                use base64::engine::{general_purpose::URL_SAFE_NO_PAD, Engine};
                proptest::prop_assert_eq!(format!("{}.{}", jws.signing_input, URL_SAFE_NO_PAD.encode(&jws.signature)), token.clone());
                proptest::prop_assert_eq!(token.matches('.').count(), 2);
            }
        }

        /// Any bytes never open as a sealed value.
        #[test]
        fn forged_sealed_values_never_open(sealed in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let sealer = Sealer::new(&SecretString::from("0123456789abcdef0123456789abcdef"), "test");
            proptest::prop_assert!(sealer.open(b"ad", &sealed).is_none());
        }
    }
}
