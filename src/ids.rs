//! Typed ids, so a user id cannot be passed where a login id is expected, nor an
//! issuer where a subject is (server only; the browser sees plain strings).

use serde::{Deserialize, Serialize};
use std::fmt;

/// A local user (`users.id`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[sqlx(transparent)]
pub struct UserId(pub i64);

/// One signed-in client (`logins.id`): 128 random bits as hex, never reused.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[sqlx(transparent)]
pub struct LoginId(String);

impl LoginId {
    /// A new id: 128 random bits as hex.
    pub fn random() -> Self {
        Self(hex::encode(rand::random::<[u8; 16]>()))
    }

    /// An id that came from outside (a form field); only ever compared or looked up.
    pub fn from_untrusted(raw: &str) -> Self {
        Self(raw.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LoginId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An OpenID provider's issuer identifier (`iss`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, sqlx::Type)]
#[sqlx(transparent)]
pub struct Issuer(String);

/// A provider's account id (`sub`), unique per issuer.
#[derive(Clone, Debug, PartialEq, Eq, Hash, sqlx::Type)]
#[sqlx(transparent)]
pub struct Subject(String);

macro_rules! string_id {
    ($($name:ident),*) => {$(
        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
    )*};
}
string_id!(Issuer, Subject);
