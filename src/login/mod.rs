//! A signed-in client and everything it holds: the `logins` rows, the browser session,
//! logins in progress, logi's tokens (sealed, refreshed single-flight), the caches in
//! front of them, and the extractors that find the login of a request.
//!
//! One vocabulary, used in names, error texts and the README:
//! - a **login** is one signed-in client: a browser or a native app's device (a row of
//!   `logins`; the account page lists them as "sessions", what users call them);
//! - a login **ends** (`Logins::end*`, always with an [`EndReason`]): its row is deleted,
//!   its sealed tokens and refresh family go with it, and its logi refresh token is revoked
//!   (unless logi already refused it);
//! - the **browser session** is the cookie's server-side record (tower-sessions): it holds
//!   only the id of the browser's login; **signing out** a browser ends its login and
//!   deletes its browser session;
//! - a **pending login** is a sign-in started but not finished (its sealed cookie);
//! - logi's own session is the **logi session** (`sid`), ended by back-channel logout.
//!
//! Shared with the browser build: [`User`], what a page may know about the signed-in
//! person. It has no token fields, so no token can reach a page through it.

use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
mod cache;
#[cfg(feature = "ssr")]
pub mod device;
#[cfg(feature = "ssr")]
mod extract;
#[cfg(feature = "ssr")]
pub mod pending;
#[cfg(feature = "ssr")]
pub mod return_to;
#[cfg(feature = "ssr")]
mod revocation;
#[cfg(feature = "ssr")]
mod service;
#[cfg(feature = "ssr")]
pub mod session;
#[cfg(feature = "ssr")]
pub mod step_up;
#[cfg(feature = "ssr")]
pub mod store;
#[cfg(feature = "ssr")]
pub mod tokens;

#[cfg(feature = "ssr")]
pub use extract::{from_server_fn, invalid_token, ApiLogin, LoginRejection, MaybeLogin, RequiredLogin};
#[cfg(feature = "ssr")]
pub use service::{EndReason, Ended, Logins};
#[cfg(feature = "ssr")]
pub use session::BrowserSession;
#[cfg(feature = "ssr")]
pub use store::{Client, Login, Method};

/// The signed-in user as the browser sees it (also the body of `GET /api/auth/me`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The logi account id (`sub`), when a logi identity is linked.
    pub sub: Option<String>,
    pub anonymous: bool,
    pub email: Option<String>,
    pub name: Option<String>,
}

impl User {
    /// What to call the user: name, else email, else a neutral label.
    pub fn display_name(&self) -> String {
        match (&self.name, &self.email) {
            _ if self.anonymous => "Anonymous user".to_owned(),
            (Some(name), _) => name.clone(),
            (None, Some(email)) => email.clone(),
            (None, None) => "Signed-in user".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: Option<&str>, email: Option<&str>, anonymous: bool) -> User {
        User { sub: Some("s".into()), anonymous, email: email.map(Into::into), name: name.map(Into::into) }
    }

    #[test]
    fn display_name_prefers_name_then_email() {
        assert_eq!(user(Some("Ada"), Some("a@x"), false).display_name(), "Ada");
        assert_eq!(user(None, Some("a@x"), false).display_name(), "a@x");
        assert_eq!(user(None, None, false).display_name(), "Signed-in user");
        assert_eq!(user(Some("Ada"), None, true).display_name(), "Anonymous user");
    }
}
