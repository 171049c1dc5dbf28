//! Sign-in error codes: the only thing about a failed sign-in the browser is told.
//! The server logs the detail; the page turns a code into a readable message. Each
//! code is declared once, with its message, in the table below.

/// Declares [`AuthError`] (the fixed codes plus the two that carry data), its `code()`
/// and [`describe`], from one table of `Variant = "code" => ("what happened", "what to do")`.
macro_rules! auth_errors {
    ($($(#[$doc:meta])* $variant:ident = $code:literal => ($what:literal, $next:literal),)*) => {
        /// A failed sign-in, as `/?auth_error=<code>`.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum AuthError {
            $($(#[$doc])* $variant,)*
            /// The token endpoint answered with this HTTP status.
            TokenExchange(u16),
            /// The provider's own `error` (e.g. `access_denied`), already sanitised.
            Provider(String),
        }

        impl AuthError {
            pub fn code(&self) -> String {
                match self {
                    $(Self::$variant => $code.to_owned(),)*
                    Self::TokenExchange(status) => format!("token_exchange_{status}"),
                    Self::Provider(code) => code.clone(),
                }
            }

            /// The code as a metrics label, from a fixed set: a provider's `error` is a
            /// label only if OAuth or OpenID Connect defines it (anyone can forge a
            /// callback with any `error`), else `provider_other`.
            pub fn label(&self) -> &'static str {
                match self {
                    $(Self::$variant => $code,)*
                    Self::TokenExchange(status) if *status >= 500 => "token_exchange_5xx",
                    Self::TokenExchange(_) => "token_exchange_4xx",
                    Self::Provider(code) => PROVIDER_ERRORS.iter().find(|known| **known == code.as_str()).copied().unwrap_or("provider_other"),
                }
            }
        }

        /// What the page says for an error code: a sentence on what happened and one on what to do.
        pub fn describe(code: &str) -> (&'static str, &'static str) {
            match code {
                $($code => ($what, $next),)*
                "access_denied" => ("Sign-in was cancelled at logi.", "Sign in again and approve the request to continue."),
                code if code.starts_with("token_exchange_") => {
                    ("logi refused to complete the sign-in.", "Start again; an authorization code can be used only once and expires quickly.")
                }
                _ => ("logi reported an error during sign-in.", "Try signing in again."),
            }
        }
    };
}

auth_errors! {
    /// The `state` returned by the provider is not one this browser started.
    StateMismatch = "state_mismatch" => (
        "This sign-in response does not belong to a sign-in started in this browser.",
        "Start again from this page. If it keeps happening, make sure cookies are allowed for this site."
    ),
    /// No sign-in was pending in this browser, it was already used, or it is older than 10 minutes.
    SessionExpired = "session_expired" => ("The sign-in took too long or was already used.", "Start again: a sign-in must finish within 10 minutes."),
    MissingCode = "missing_code" => ("logi did not return an authorization code.", "Start the sign-in again."),
    NoSubjectInIdToken = "no_subject_in_id_token" => (
        "logi did not identify the account (no id_token subject).",
        "The server must request the `openid` scope; check ONE_PASS_SCOPES."
    ),
    ServerMisconfiguredNoSecret = "server_misconfigured_no_secret" => (
        "This server is missing its logi client secret.",
        "An administrator must set ONE_PASS_CLIENT_SECRET."
    ),
    InvalidClient = "invalid_client" => (
        "logi did not accept this server's client credentials.",
        "An administrator must check ONE_PASS_CLIENT_ID and ONE_PASS_CLIENT_SECRET."
    ),
    IdTokenInvalid = "id_token_invalid" => (
        "logi's answer failed our security checks, so you were not signed in.",
        "Try again; if it persists, contact the administrator."
    ),
    UserinfoSubMismatch = "userinfo_sub_mismatch" => (
        "logi's profile answer was for a different account, so you were not signed in.",
        "Try again; if it persists, contact the administrator."
    ),
    UserinfoFailed = "userinfo_failed" => ("Your logi profile could not be read.", "Try again in a moment."),
    ProviderUnreachable = "provider_unreachable" => ("logi could not be reached.", "Try again in a moment."),
    /// A malformed `/api/auth/login` request (e.g. an unsupported `prompt`).
    InvalidRequest = "invalid_request" => ("The sign-in link was malformed.", "Use the “Sign in with logi” button on this page."),
    NotConfigured = "logi_not_configured" => ("logi sign-in is not configured on this server.", "An administrator must set ONE_PASS_URL."),
    /// Linking needs a signed-in account, and the same session that started the link.
    NotSignedIn = "not_signed_in" => ("Linking a logi account needs the session that started it.", "Sign in, then link logi from your account page."),
    /// Linking: this logi account already belongs to another local account.
    IdentityLinkedElsewhere = "identity_linked_elsewhere" => (
        "That logi account is already linked to another account here, so nothing was changed.",
        "Sign in with logi to use that account, or unlink it there first."
    ),
    /// Linking: this account already has a different logi account linked.
    AnotherLogiAccountLinked = "another_logi_account_linked" => ("Your account already has a logi account linked.", "Unlink it first to link a different one."),
    /// A step-up whose new sign-in did not meet what was asked (a weaker `acr`, an older
    /// `auth_time`) or was another logi account; the existing login is untouched.
    StepUpFailed = "step_up_failed" => (
        "The new sign-in at logi was not the stronger one this page asked for, so nothing changed.",
        "Try again, complete logi's extra step, and use the same logi account."
    ),
    /// Our database could not be reached or written; nothing was changed.
    DatabaseUnavailable = "database_unavailable" => ("Our database could not be reached, so you were not signed in.", "Try again in a moment."),
    /// Too much work queued (password hashing); nothing was changed.
    ServerBusy = "server_busy" => ("The server is very busy, so you were not signed in.", "Try again in a moment."),
    /// Our own failure (database, session store); details are in the server log.
    Internal = "internal_error" => ("Something went wrong on our side.", "Try again; the details are in the server log."),
}

/// The `error` values of an authorization response that OAuth 2.0 (RFC 6749 §4.1.2.1)
/// and OpenID Connect Core (§3.1.2.6) define.
const PROVIDER_ERRORS: [&str; 14] = [
    "access_denied",
    "invalid_request",
    "unauthorized_client",
    "unsupported_response_type",
    "invalid_scope",
    "server_error",
    "temporarily_unavailable",
    "interaction_required",
    "login_required",
    "account_selection_required",
    "consent_required",
    "invalid_request_uri",
    "invalid_request_object",
    "request_not_supported",
];

#[cfg(feature = "ssr")]
impl From<crate::server::Failure> for AuthError {
    fn from(failure: crate::server::Failure) -> Self {
        match failure {
            crate::server::Failure::DatabaseUnavailable => Self::DatabaseUnavailable,
            crate::server::Failure::Busy => Self::ServerBusy,
            crate::server::Failure::Internal => Self::Internal,
        }
    }
}

impl AuthError {
    /// Accepts a provider's `error` value only if it looks like an OAuth error code.
    pub fn from_provider(code: &str) -> Self {
        let well_formed = !code.is_empty() && code.len() <= 64 && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        Self::Provider(if well_formed { code.to_owned() } else { "provider_error".to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_error_codes_are_sanitised() {
        assert_eq!(AuthError::from_provider("access_denied").code(), "access_denied");
        for hostile in ["<script>", "Access_Denied", "", &"a".repeat(65), "a b"] {
            assert_eq!(AuthError::from_provider(hostile).code(), "provider_error", "{hostile}");
        }
    }

    #[test]
    fn every_fixed_code_has_its_own_message() {
        let fallback = describe("no_such_code");
        for error in [AuthError::StateMismatch, AuthError::SessionExpired, AuthError::IdentityLinkedElsewhere, AuthError::Internal] {
            assert_ne!(describe(&error.code()), fallback, "{error:?}");
        }
        assert_eq!(describe("access_denied").0, "Sign-in was cancelled at logi.");
    }

    #[test]
    fn metric_labels_come_from_a_fixed_set() {
        assert_eq!(AuthError::from_provider("access_denied").label(), "access_denied");
        assert_eq!(AuthError::from_provider("made_up_by_a_forger").label(), "provider_other");
        assert_eq!(AuthError::TokenExchange(401).label(), "token_exchange_4xx");
        assert_eq!(AuthError::TokenExchange(503).label(), "token_exchange_5xx");
        assert_eq!(AuthError::StateMismatch.label(), "state_mismatch");
    }

    #[test]
    fn token_exchange_codes_carry_the_status() {
        assert_eq!(AuthError::TokenExchange(400).code(), "token_exchange_400");
        assert_eq!(describe("token_exchange_400").0, "logi refused to complete the sign-in.");
    }
}
