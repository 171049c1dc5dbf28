//! Sign-in state shared by the server and the browser.
//!
//! [`User`] is what the browser may know about the signed-in person: it has no
//! token fields, so no token can travel to the page through it.

pub mod errors;
#[cfg(feature = "ssr")]
pub mod oidc;
#[cfg(feature = "ssr")]
pub(crate) mod return_to;
#[cfg(feature = "ssr")]
pub mod routes;

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

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

/// Everything a page needs to render the sign-in state on first paint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthState {
    pub user: Option<User>,
    /// False when `ONE_PASS_URL` is not configured.
    pub logi_enabled: bool,
}

/// The session's sign-in state, read server-side (during SSR through context, after hydration over HTTP).
#[server]
pub async fn load_auth_state() -> Result<AuthState, ServerFnError> {
    use crate::server::AppState;
    let state = expect_context::<AppState>();
    let session: tower_sessions::Session = leptos_axum::extract().await?;
    let user = crate::accounts::signed_in_user(&state, &session).await.map_err(|e| e.logged())?;
    Ok(AuthState { user, logi_enabled: state.config.logi.is_some() })
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
