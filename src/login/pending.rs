//! Logins in progress, kept in the browser until their callback proves them.
//!
//! Starting a login costs the server nothing: the pending authorization (state, nonce,
//! PKCE verifier, where to return) travels in one sealed cookie (XChaCha20-Poly1305
//! under its own key derived from `SESSION_SECRET`), `HttpOnly`, `SameSite=Lax`,
//! `Path=/api/auth`, `Max-Age=600`, holding at most three logins (several tabs).
//! Only after a callback has opened the cookie and matched its `state` does the server
//! write anything: one row that marks that login used, so a replay of a copied cookie
//! is refused. With `https`, the name gets the `__Secure-` prefix (`__Host-` would
//! require `Path=/`, sending the cookie with every request).

use crate::ids::LoginId;
use crate::login::step_up::Requirement;
use crate::server::config::Config;
use crate::server::crypto::{sha256, Sealer};
use axum::http::{header, HeaderMap, HeaderValue};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use tower_sessions::cookie::{time::Duration, Cookie, SameSite};

/// A login must finish within this many seconds of starting.
pub const LIFETIME_SECS: i64 = 600;
/// Pending logins per browser; starting a fourth drops the oldest.
pub const MAX_PENDING: usize = 3;
const COOKIE_PATH: &str = "/api/auth";
const NAME: &str = "logi_bff_login";
const SECURE_NAME: &str = "__Secure-logi_bff_login";
/// Browsers drop cookies over 4096 bytes; the oldest logins give way before that.
const MAX_COOKIE_VALUE_BYTES: usize = 3800;

/// One login in flight. No `Debug`: it holds the PKCE verifier and nonce.
#[derive(Clone, Serialize, Deserialize)]
pub struct PendingLogin {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub return_to: String,
    pub started_at: i64,
    /// Set when this is a link, not a sign-in: the login that asked for it.
    pub link_for_login: Option<LoginId>,
    /// Set when this is a step-up: what the new sign-in must meet.
    #[serde(default)]
    pub step_up: Option<Requirement>,
}

impl PendingLogin {
    pub fn is_expired(&self, now: i64) -> bool {
        now - self.started_at > LIFETIME_SECS
    }

    /// What the single-use record stores: a digest, never the state itself.
    pub fn used_marker(&self) -> String {
        hex::encode(sha256(self.state.as_bytes()))
    }
}

/// Why a callback has no pending login to finish.
#[derive(Debug, PartialEq, Eq)]
pub enum PendingError {
    /// No pending login in this browser (none started, all used, or the cookie is unreadable), or it is too old.
    Expired,
    /// Pending logins exist, but none has this `state`.
    StateMismatch,
}

/// Reads and writes the sealed cookie.
pub struct PendingCookie {
    sealer: Sealer,
    name: &'static str,
    secure: bool,
}

impl PendingCookie {
    pub fn new(config: &Config) -> Self {
        let secure = config.secure_cookies();
        Self { sealer: Sealer::new(&config.session_secret, "logi-bff/pending-login-cookie/v1"), name: if secure { SECURE_NAME } else { NAME }, secure }
    }

    /// The `Set-Cookie` that adds `login` to this browser's pending logins.
    pub fn add(&self, request: &HeaderMap, login: PendingLogin, now: i64) -> HeaderValue {
        let mut logins: Vec<PendingLogin> = self.read(request).into_iter().filter(|l| !l.is_expired(now)).collect();
        logins.push(login);
        let excess = logins.len().saturating_sub(MAX_PENDING);
        logins.drain(..excess);
        self.set_cookie(logins)
    }

    /// Removes the login this `state` belongs to; also the `Set-Cookie` for what is left.
    pub fn take(&self, request: &HeaderMap, state: Option<&str>, now: i64) -> (Result<PendingLogin, PendingError>, Option<HeaderValue>) {
        let mut logins = self.read(request);
        if logins.is_empty() {
            return (Err(PendingError::Expired), self.present(request).then(|| self.set_cookie(Vec::new())));
        }
        let Some(position) = state.and_then(|state| logins.iter().position(|l| l.state == state)) else {
            return (Err(PendingError::StateMismatch), None);
        };
        let found = logins.remove(position);
        logins.retain(|l| !l.is_expired(now));
        let rest = self.set_cookie(logins);
        if found.is_expired(now) {
            return (Err(PendingError::Expired), Some(rest));
        }
        (Ok(found), Some(rest))
    }

    /// The pending logins in the request's cookie; none when it is absent, tampered
    /// with, truncated or sealed under another key.
    fn read(&self, request: &HeaderMap) -> Vec<PendingLogin> {
        let Some(value) = self.value(request) else { return Vec::new() };
        let Ok(sealed) = B64.decode(value) else { return Vec::new() };
        let Some(plain) = self.sealer.open(self.name.as_bytes(), &sealed) else { return Vec::new() };
        serde_json::from_slice(plain.expose_secret()).unwrap_or_default()
    }

    fn present(&self, request: &HeaderMap) -> bool {
        self.value(request).is_some()
    }

    fn value(&self, request: &HeaderMap) -> Option<String> {
        request
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(Cookie::split_parse)
            .filter_map(Result::ok)
            .find(|cookie| cookie.name() == self.name)
            .map(|cookie| cookie.value().to_owned())
    }

    /// The cookie holding `logins` (oldest dropped until it fits), or clearing it when none are left.
    fn set_cookie(&self, mut logins: Vec<PendingLogin>) -> HeaderValue {
        let value = loop {
            if logins.is_empty() {
                break String::new();
            }
            let json = serde_json::to_vec(&logins).expect("pending logins serialise");
            let value = B64.encode(self.sealer.seal(self.name.as_bytes(), &json));
            if value.len() <= MAX_COOKIE_VALUE_BYTES {
                break value;
            }
            logins.remove(0);
        };
        let max_age = if value.is_empty() { Duration::ZERO } else { Duration::seconds(LIFETIME_SECS) };
        let cookie = Cookie::build((self.name, value)).path(COOKIE_PATH).http_only(true).same_site(SameSite::Lax).secure(self.secure).max_age(max_age).build();
        HeaderValue::from_str(&cookie.to_string()).expect("a cookie of base64 text is a valid header value")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(app_url: &str, secret: &str) -> Config {
        let vars = [("APP_URL", app_url), ("SESSION_SECRET", secret)];
        Config::from_lookup(|k| vars.iter().find(|(key, _)| *key == k).map(|(_, v)| v.to_string())).unwrap()
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn login(state: &str, started_at: i64) -> PendingLogin {
        PendingLogin {
            state: state.into(),
            nonce: "n".into(),
            pkce_verifier: "v".into(),
            return_to: "/".into(),
            started_at,
            link_for_login: None,
            step_up: None,
        }
    }

    /// The request headers a browser sends back after receiving `set_cookie`.
    fn echo(set_cookie: &HeaderValue) -> HeaderMap {
        let pair = set_cookie.to_str().unwrap().split(';').next().unwrap().to_owned();
        HeaderMap::from_iter([(header::COOKIE, HeaderValue::from_str(&pair).unwrap())])
    }

    #[test]
    fn the_cookie_is_http_only_lax_scoped_to_the_auth_routes_and_short_lived() {
        let jar = PendingCookie::new(&config("http://localhost:3000", SECRET));
        // A state long enough that random base64 cannot contain it by chance.
        let cookie = jar.add(&HeaderMap::new(), login("readable-state-value", 100), 100);
        let text = cookie.to_str().unwrap();
        assert!(text.starts_with("logi_bff_login="), "{text}");
        for attribute in ["HttpOnly", "SameSite=Lax", "Path=/api/auth", "Max-Age=600"] {
            assert!(text.contains(attribute), "{attribute} missing: {text}");
        }
        assert!(!text.contains("readable-state-value") && !text.contains("Secure"), "{text}");
        let secure = PendingCookie::new(&config("https://app.example.com", SECRET)).add(&HeaderMap::new(), login("s1", 100), 100);
        assert!(secure.to_str().unwrap().starts_with("__Secure-logi_bff_login=") && secure.to_str().unwrap().contains("Secure"));
    }

    #[test]
    fn a_callback_takes_its_own_login_once_and_keeps_the_others() {
        let jar = PendingCookie::new(&config("http://localhost:3000", SECRET));
        let one = jar.add(&HeaderMap::new(), login("s1", 100), 100);
        let two = jar.add(&echo(&one), login("s2", 101), 101);
        let (taken, rest) = jar.take(&echo(&two), Some("s1"), 102);
        assert_eq!(taken.ok().unwrap().state, "s1");
        let rest = rest.unwrap();
        assert_eq!(jar.take(&echo(&rest), Some("s1"), 103).0.err(), Some(PendingError::StateMismatch));
        let (last, cleared) = jar.take(&echo(&rest), Some("s2"), 103);
        assert_eq!(last.ok().unwrap().state, "s2");
        assert!(cleared.unwrap().to_str().unwrap().contains("Max-Age=0"));
    }

    #[test]
    fn at_most_three_logins_are_pending_and_the_oldest_gives_way() {
        let jar = PendingCookie::new(&config("http://localhost:3000", SECRET));
        let mut headers = HeaderMap::new();
        for n in 0..5 {
            headers = echo(&jar.add(&headers, login(&format!("s{n}"), 100 + n), 100 + n));
        }
        let states: Vec<String> = jar.read(&headers).into_iter().map(|l| l.state).collect();
        assert_eq!(states, ["s2", "s3", "s4"]);
    }

    #[test]
    fn long_return_paths_never_make_the_cookie_too_big() {
        let jar = PendingCookie::new(&config("http://localhost:3000", SECRET));
        let mut headers = HeaderMap::new();
        for n in 0..3 {
            let long = PendingLogin { return_to: format!("/{}", "x".repeat(2000)), ..login(&format!("s{n}"), 100) };
            let cookie = jar.add(&headers, long, 100);
            assert!(cookie.len() < 4096, "{}", cookie.len());
            headers = echo(&cookie);
        }
        assert_eq!(jar.take(&headers, Some("s2"), 101).0.ok().unwrap().state, "s2");
    }

    #[test]
    fn expired_tampered_truncated_and_foreign_cookies_start_no_login() {
        let jar = PendingCookie::new(&config("http://localhost:3000", SECRET));
        let cookie = echo(&jar.add(&HeaderMap::new(), login("s1", 100), 100));
        assert_eq!(jar.take(&cookie, Some("s1"), 100 + LIFETIME_SECS + 1).0.err(), Some(PendingError::Expired));

        let pair = cookie.get(header::COOKIE).unwrap().to_str().unwrap().to_owned();
        let (name, value) = pair.split_once('=').unwrap();
        let flipped = format!("{name}={}{}", if value.starts_with('A') { 'B' } else { 'A' }, &value[1..]);
        let truncated = format!("{name}={}", &value[..value.len() / 2]);
        for bad in [flipped, truncated, format!("{name}=not-base64!")] {
            let headers = HeaderMap::from_iter([(header::COOKIE, HeaderValue::from_str(&bad).unwrap())]);
            assert_eq!(jar.take(&headers, Some("s1"), 101).0.err(), Some(PendingError::Expired), "{bad}");
        }
        let foreign = PendingCookie::new(&config("http://localhost:3000", "another-secret-0123456789abcdef!!"));
        assert_eq!(foreign.take(&cookie, Some("s1"), 101).0.err(), Some(PendingError::Expired));
    }

    proptest::proptest! {
        /// Any cookie value (any name of ours, any state) never opens and never panics.
        #[test]
        fn no_forged_cookie_starts_a_login(value in "[ -~]{0,600}", state in proptest::option::of(".{0,40}")) {
            let jar = PendingCookie::new(&config("http://localhost:3000", SECRET));
            if let Ok(cookie) = HeaderValue::from_str(&format!("logi_bff_login={value}")) {
                let headers = HeaderMap::from_iter([(header::COOKIE, cookie)]);
                proptest::prop_assert!(jar.take(&headers, state.as_deref(), 100).0.is_err());
            }
        }
    }
}
