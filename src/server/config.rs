//! Typed configuration, parsed once from the environment at startup.
//!
//! Every variable is read through [`Config::from_lookup`], so the parsing rules
//! (including every fail-closed case of production mode) are unit-tested
//! without touching the process environment.

use super::client_ip::TrustedProxies;
use secrecy::{ExposeSecret, SecretString};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use url::Url;

pub const DEFAULT_SCOPES: &str = "openid profile:basic email";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/logi-bff.db";
const DEFAULT_SITE_ADDR: &str = "127.0.0.1:3000";
const MIN_SESSION_SECRET_BYTES: usize = 32;

/// How strictly the configuration is checked. Chosen by `APP_ENV`;
/// anything but `development` is production, so a forgotten variable fails closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Development,
    Production,
}

#[derive(Debug)]
pub struct Config {
    pub mode: Mode,
    /// The public origin, without a trailing slash (e.g. `https://app.example.com`).
    pub app_url: Url,
    pub listen_addr: SocketAddr,
    pub database_url: String,
    pub session_secret: SecretString,
    pub session_idle_timeout: Duration,
    pub session_absolute_timeout: Duration,
    /// `None` when `ONE_PASS_URL` is unset: the app runs with logi sign-in disabled.
    pub logi: Option<LogiConfig>,
    /// Where `/api/proxy/*` forwards to; `None` disables the proxy.
    pub upstream_api_url: Option<Url>,
    /// Bound on a proxied request's response head, then on each wait between two body frames.
    pub upstream_timeout: Duration,
    /// `API_ROUTES_FILE`: the declared APIs (TOML), reloaded on `SIGHUP`.
    pub api_routes_file: Option<std::path::PathBuf>,
    /// An access token this close to expiry is refreshed before use.
    pub token_refresh_skew_secs: i64,
    /// Native apps: the exchange and our own tokens.
    pub native: NativeConfig,
    /// Reverse proxies whose `X-Forwarded-For` names the client; none by default.
    pub trusted_proxies: TrustedProxies,
    /// Where Prometheus scrapes `/metrics`; `None` (the default) records nothing.
    pub metrics_addr: Option<SocketAddr>,
    /// `LOG_FORMAT`: readable lines (`text`, the default) or one JSON object per line.
    pub log_format: LogFormat,
    /// `LEPTOS_RELOAD_PORT`: where `cargo leptos watch` listens for live reload.
    pub reload_port: u32,
    pub shutdown: ShutdownConfig,
    /// `ACTIVITY_RETENTION_DAYS`: account events older than this are deleted by the sweeper.
    pub activity_retention: Duration,
}

/// How the process stops on SIGTERM (see `startup::serve_until`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShutdownConfig {
    /// `SHUTDOWN_DRAIN_SECS`: still serving, with `/readyz` failing, while a balancer notices.
    pub drain: Duration,
    /// `SHUTDOWN_GRACE_SECS`: then, at most this long for the requests in flight.
    pub grace: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Native apps (`POST /api/auth/logi/exchange` and our own tokens).
#[derive(Debug)]
pub struct NativeConfig {
    /// The exact redirect URIs apps may use; empty turns the native endpoints off (404).
    pub redirect_uris: Vec<String>,
    pub access_token_lifetime: Duration,
    /// A device login ends after this long without a refresh or an API call.
    pub refresh_idle: Duration,
    /// A device login ends this long after the exchange, whatever its use.
    pub refresh_absolute: Duration,
    /// `aud` of our access tokens.
    pub audience: String,
    /// Exchanges allowed per client address per minute.
    pub exchanges_per_minute: u32,
}

impl NativeConfig {
    pub fn enabled(&self) -> bool {
        !self.redirect_uris.is_empty()
    }
}

#[derive(Debug)]
pub struct LogiConfig {
    pub issuer_url: Url,
    pub client_id: String,
    /// `None` only in development; the callback then fails with `server_misconfigured_no_secret`.
    pub client_secret: Option<SecretString>,
    pub scopes: Vec<String>,
    /// `ONE_PASS_TIMEOUT_SECS`: the bound on each call to logi (connect included).
    pub timeout: Duration,
    /// Where logi's endpoints come from (`ONE_PASS_DISCOVERY`).
    pub endpoints: EndpointSource,
}

/// Where logi's endpoints come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndpointSource {
    /// `{ONE_PASS_URL}/.well-known/openid-configuration` (the default).
    Discovery,
    /// `ONE_PASS_DISCOVERY=off`: the paths logi's guides document under `ONE_PASS_URL`
    /// (`/oauth/authorize`, `/oauth/token`, `/oauth/userinfo`, `/oauth/revoke`) and the
    /// keys at `ONE_PASS_JWKS_URL`.
    Documented { jwks_url: Url },
}

/// A configuration problem; the message names the variable and how to fix it.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

/// `METRICS_ADDR`: a socket address other than the public listener's.
fn metrics_addr(value: Option<String>, listen_addr: SocketAddr) -> Result<Option<SocketAddr>, ConfigError> {
    let Some(value) = value else { return Ok(None) };
    let addr: SocketAddr = value.parse().map_err(|_| invalid("METRICS_ADDR", format!("`{value}` is not an address like 127.0.0.1:9100")))?;
    if addr.port() != 0 && addr.port() == listen_addr.port() {
        return Err(invalid("METRICS_ADDR", "must not be the public port: metrics are for the scraper only"));
    }
    Ok(Some(addr))
}

fn invalid(variable: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError { variable, problem: problem.into() }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |key: &str| lookup(key).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let mode = match var("APP_ENV").as_deref() {
            Some("development") => Mode::Development,
            None | Some("production") => Mode::Production,
            Some(other) => return Err(invalid("APP_ENV", format!("must be `production` or `development`, got `{other}`"))),
        };
        let listen_addr = listen_addr(var("LEPTOS_SITE_ADDR"), var("HOST"), var("PORT"))?;
        let app_url = app_url(mode, var("APP_URL"), listen_addr)?;
        let session_secret = session_secret(mode, lookup("SESSION_SECRET"))?;
        let native = native_config(&var, &app_url)?;
        Ok(Config {
            mode,
            app_url,
            listen_addr,
            database_url: var("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()),
            session_secret,
            session_idle_timeout: minutes(var("SESSION_IDLE_MINUTES"), "SESSION_IDLE_MINUTES", 12 * 60)?,
            session_absolute_timeout: minutes(var("SESSION_ABSOLUTE_MINUTES"), "SESSION_ABSOLUTE_MINUTES", 7 * 24 * 60)?,
            logi: logi_config(mode, &var)?,
            upstream_api_url: upstream_api_url(mode, var("UPSTREAM_API_URL"))?,
            upstream_timeout: Duration::from_secs(bounded(var("UPSTREAM_TIMEOUT_SECS"), "UPSTREAM_TIMEOUT_SECS", 15, 1..=300)?),
            api_routes_file: var("API_ROUTES_FILE").map(std::path::PathBuf::from),
            token_refresh_skew_secs: bounded(var("TOKEN_REFRESH_SKEW_SECS"), "TOKEN_REFRESH_SKEW_SECS", 30, 0..=600)? as i64,
            native,
            trusted_proxies: TrustedProxies::parse(var("TRUSTED_PROXIES").as_deref().unwrap_or_default())
                .map_err(|problem| invalid("TRUSTED_PROXIES", problem.to_string()))?,
            metrics_addr: metrics_addr(var("METRICS_ADDR"), listen_addr)?,
            log_format: match var("LOG_FORMAT").as_deref() {
                None | Some("text") => LogFormat::Text,
                Some("json") => LogFormat::Json,
                Some(other) => return Err(invalid("LOG_FORMAT", format!("must be `text` or `json`, got `{other}`"))),
            },
            reload_port: bounded(var("LEPTOS_RELOAD_PORT"), "LEPTOS_RELOAD_PORT", 3001, 1..=65535)? as u32,
            shutdown: ShutdownConfig {
                // A balancer's health check notices in a few seconds; nobody balances a developer's laptop.
                drain: Duration::from_secs(bounded(var("SHUTDOWN_DRAIN_SECS"), "SHUTDOWN_DRAIN_SECS", if mode == Mode::Production { 5 } else { 0 }, 0..=300)?),
                grace: Duration::from_secs(bounded(var("SHUTDOWN_GRACE_SECS"), "SHUTDOWN_GRACE_SECS", 20, 1..=600)?),
            },
            activity_retention: Duration::from_secs(86_400 * bounded(var("ACTIVITY_RETENTION_DAYS"), "ACTIVITY_RETENTION_DAYS", 180, 1..=3650)?),
        })
    }

    /// `iss` of our own tokens: the public origin, without a trailing slash.
    pub fn issuer(&self) -> String {
        self.app_url.origin().ascii_serialization()
    }

    /// The one redirect URI registered with logi; never derived from request headers.
    pub fn redirect_uri(&self) -> Url {
        self.app_url.join("/api/auth/callback").expect("a path joins onto an origin")
    }

    /// Cookies get `Secure` (and the `__Host-` prefix) whenever the public origin is https.
    pub fn secure_cookies(&self) -> bool {
        self.app_url.scheme() == "https"
    }
}

fn listen_addr(site_addr: Option<String>, host: Option<String>, port: Option<String>) -> Result<SocketAddr, ConfigError> {
    let site_addr = site_addr.as_deref().unwrap_or(DEFAULT_SITE_ADDR);
    let mut addr: SocketAddr = site_addr.parse().map_err(|_| invalid("LEPTOS_SITE_ADDR", format!("`{site_addr}` is not an ip:port address")))?;
    if let Some(host) = host {
        let ip: IpAddr = host.parse().map_err(|_| invalid("HOST", format!("`{host}` is not an IP address")))?;
        addr.set_ip(ip);
    }
    if let Some(port) = port {
        let port: u16 = port.parse().map_err(|_| invalid("PORT", format!("`{port}` is not a port number")))?;
        addr.set_port(port);
    }
    Ok(addr)
}

fn app_url(mode: Mode, value: Option<String>, listen_addr: SocketAddr) -> Result<Url, ConfigError> {
    let Some(value) = value else {
        return match mode {
            Mode::Production => Err(invalid("APP_URL", "is required in production (the public origin, e.g. https://app.example.com)")),
            Mode::Development => Ok(Url::parse(&format!("http://localhost:{}", listen_addr.port())).expect("valid url")),
        };
    };
    let url = http_url(mode, "APP_URL", &value)?;
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("APP_URL", "must be an origin only (scheme, host and optional port, no path)"));
    }
    Ok(url)
}

/// An http(s) URL with a host; in production https unless the host is loopback.
fn http_url(mode: Mode, variable: &'static str, value: &str) -> Result<Url, ConfigError> {
    check_http_url(mode, value).map_err(|problem| invalid(variable, problem))
}

fn check_http_url(mode: Mode, value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|e| format!("`{value}` is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("must be an http(s) URL with a host".into());
    }
    if mode == Mode::Production && url.scheme() == "http" && !is_loopback(&url) {
        return Err("must use https in production (plain http is allowed only on a loopback host)".into());
    }
    Ok(url)
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain == "localhost" || domain.ends_with(".localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn session_secret(mode: Mode, value: Option<String>) -> Result<SecretString, ConfigError> {
    match value.filter(|v| !v.is_empty()) {
        Some(secret) if secret.len() >= MIN_SESSION_SECRET_BYTES => Ok(SecretString::from(secret)),
        Some(_) => Err(invalid("SESSION_SECRET", format!("must be at least {MIN_SESSION_SECRET_BYTES} bytes (try `openssl rand -hex 32`)"))),
        None if mode == Mode::Development => Ok(random_secret()),
        None => Err(invalid("SESSION_SECRET", "is required in production (try `openssl rand -hex 32`)")),
    }
}

/// Development without `SESSION_SECRET`: a per-process secret, so sessions end on restart.
fn random_secret() -> SecretString {
    SecretString::from(hex::encode(rand::random::<[u8; 32]>()))
}

fn minutes(value: Option<String>, variable: &'static str, default: u64) -> Result<Duration, ConfigError> {
    let minutes = match value {
        None => default,
        Some(v) => v.parse::<u64>().ok().filter(|m| *m > 0).ok_or_else(|| invalid(variable, format!("`{v}` is not a positive number of minutes")))?,
    };
    Ok(Duration::from_secs(minutes * 60))
}

/// A whole number within `range`, or `default` when unset.
fn bounded(value: Option<String>, variable: &'static str, default: u64, range: std::ops::RangeInclusive<u64>) -> Result<u64, ConfigError> {
    let Some(v) = value else { return Ok(default) };
    v.parse::<u64>()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| invalid(variable, format!("`{v}` is not a whole number from {} to {}", range.start(), range.end())))
}

/// The upstream API's base URL: http(s), no credentials, query or fragment; https in
/// production unless on a loopback host (the access token travels to it).
fn upstream_api_url(mode: Mode, value: Option<String>) -> Result<Option<Url>, ConfigError> {
    let Some(value) = value else { return Ok(None) };
    upstream_base_url(mode, &value).map(Some).map_err(|problem| invalid("UPSTREAM_API_URL", problem))
}

/// An upstream API's base URL (`UPSTREAM_API_URL`, an `upstream` of `API_ROUTES_FILE`): http(s)
/// with a host, no credentials, query or fragment; https in production unless on loopback.
pub fn upstream_base_url(mode: Mode, value: &str) -> Result<Url, String> {
    let url = check_http_url(mode, value)?;
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err("must be a base URL without credentials, query or fragment".into());
    }
    Ok(url)
}

const DAY_SECS: u64 = 24 * 60 * 60;

fn native_config(var: &impl Fn(&str) -> Option<String>, app_url: &Url) -> Result<NativeConfig, ConfigError> {
    let redirect_uris = match var("NATIVE_REDIRECT_URIS") {
        Some(list) => list.split(',').map(str::trim).map(native_redirect_uri).collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let idle_days = bounded(var("NATIVE_REFRESH_IDLE_DAYS"), "NATIVE_REFRESH_IDLE_DAYS", 30, 1..=3650)?;
    let absolute_days = bounded(var("NATIVE_REFRESH_ABSOLUTE_DAYS"), "NATIVE_REFRESH_ABSOLUTE_DAYS", 90, 1..=3650)?;
    if absolute_days < idle_days {
        return Err(invalid("NATIVE_REFRESH_ABSOLUTE_DAYS", format!("must not be shorter than NATIVE_REFRESH_IDLE_DAYS ({idle_days})")));
    }
    let audience = var("NATIVE_TOKEN_AUDIENCE").unwrap_or_else(|| app_url.origin().ascii_serialization());
    if audience.len() > 512 || audience.chars().any(char::is_control) {
        return Err(invalid("NATIVE_TOKEN_AUDIENCE", "must be one line of at most 512 bytes"));
    }
    Ok(NativeConfig {
        redirect_uris,
        access_token_lifetime: Duration::from_secs(60 * bounded(var("NATIVE_ACCESS_TOKEN_MINUTES"), "NATIVE_ACCESS_TOKEN_MINUTES", 10, 1..=60)?),
        refresh_idle: Duration::from_secs(idle_days * DAY_SECS),
        refresh_absolute: Duration::from_secs(absolute_days * DAY_SECS),
        audience,
        exchanges_per_minute: bounded(var("NATIVE_EXCHANGE_PER_MINUTE"), "NATIVE_EXCHANGE_PER_MINUTE", 10, 1..=100_000)? as u32,
    })
}

/// One redirect URI a native app may use (RFC 8252): a private-use scheme in reverse-DNS
/// form (`com.example.app:/oauth/callback`), a claimed `https` URI, or `http` on a
/// loopback IP literal. Never a fragment, credentials, or a scheme a page could abuse.
fn native_redirect_uri(entry: &str) -> Result<String, ConfigError> {
    let problem = |why: &str| invalid("NATIVE_REDIRECT_URIS", format!("`{entry}` {why}"));
    let url = Url::parse(entry).map_err(|e| problem(&format!("is not a URI ({e})")))?;
    if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(problem("must not have a fragment or credentials"));
    }
    match url.scheme() {
        "https" if url.host().is_some() => {}
        "http" if matches!(url.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback()) => {}
        "http" if matches!(url.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback()) => {}
        "http" => return Err(problem("must use a loopback IP literal (127.0.0.1 or [::1]) with http")),
        scheme if scheme.contains('.') && url.host().is_none() => {}
        _ => return Err(problem("must be https, loopback http, or a reverse-DNS private-use scheme (com.example.app:/callback)")),
    }
    Ok(entry.to_owned())
}

fn logi_config(mode: Mode, var: &impl Fn(&str) -> Option<String>) -> Result<Option<LogiConfig>, ConfigError> {
    let Some(issuer) = var("ONE_PASS_URL") else { return Ok(None) };
    let issuer_url = http_url(mode, "ONE_PASS_URL", &issuer)?;
    let client_id = var("ONE_PASS_CLIENT_ID").ok_or_else(|| invalid("ONE_PASS_CLIENT_ID", "is required when ONE_PASS_URL is set"))?;
    let client_secret = var("ONE_PASS_CLIENT_SECRET").map(SecretString::from);
    if client_secret.is_none() && mode == Mode::Production {
        return Err(invalid("ONE_PASS_CLIENT_SECRET", "is required in production: logi-bff is a confidential client"));
    }
    let scopes: Vec<String> = var("ONE_PASS_SCOPES").as_deref().unwrap_or(DEFAULT_SCOPES).split_whitespace().map(str::to_owned).collect();
    if !scopes.iter().any(|s| s == "openid") {
        return Err(invalid("ONE_PASS_SCOPES", "must include `openid` (without it logi issues no id_token)"));
    }
    let timeout = Duration::from_secs(bounded(var("ONE_PASS_TIMEOUT_SECS"), "ONE_PASS_TIMEOUT_SECS", 10, 1..=60)?);
    let endpoints = match var("ONE_PASS_DISCOVERY").as_deref() {
        None | Some("on") => EndpointSource::Discovery,
        Some("off") => {
            let jwks = var("ONE_PASS_JWKS_URL").ok_or_else(|| invalid("ONE_PASS_JWKS_URL", "is required with ONE_PASS_DISCOVERY=off (logi's signing keys)"))?;
            EndpointSource::Documented { jwks_url: http_url(mode, "ONE_PASS_JWKS_URL", &jwks)? }
        }
        Some(other) => return Err(invalid("ONE_PASS_DISCOVERY", format!("must be `on` or `off`, got `{other}`"))),
    };
    Ok(Some(LogiConfig { issuer_url, client_id, client_secret, scopes, timeout, endpoints }))
}

impl LogiConfig {
    /// The issuer identifier (`iss`): `ONE_PASS_URL` without a trailing slash.
    pub fn issuer(&self) -> crate::ids::Issuer {
        crate::ids::Issuer::new(self.issuer_url.as_str().trim_end_matches('/'))
    }

    pub fn client_secret(&self) -> Option<&str> {
        self.client_secret.as_ref().map(|s| s.expose_secret())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn parse(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    fn production(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut vars = vec![("APP_URL", "https://app.example.com"), ("SESSION_SECRET", SECRET)];
        vars.extend_from_slice(extra);
        vars
    }

    fn error_variable(vars: &[(&str, &str)]) -> &'static str {
        parse(vars).expect_err("config should be rejected").variable
    }

    #[test]
    fn production_is_the_default_mode() {
        assert_eq!(parse(&production(&[])).unwrap().mode, Mode::Production);
    }

    #[test]
    fn production_requires_a_session_secret() {
        assert_eq!(error_variable(&[("APP_URL", "https://app.example.com")]), "SESSION_SECRET");
    }

    #[test]
    fn session_secret_shorter_than_32_bytes_is_rejected_in_every_mode() {
        assert_eq!(error_variable(&[("APP_URL", "https://a.example"), ("SESSION_SECRET", "short")]), "SESSION_SECRET");
        assert_eq!(error_variable(&[("APP_ENV", "development"), ("SESSION_SECRET", &SECRET[..31])]), "SESSION_SECRET");
    }

    #[test]
    fn production_requires_app_url() {
        assert_eq!(error_variable(&[("SESSION_SECRET", SECRET)]), "APP_URL");
    }

    #[test]
    fn production_refuses_plain_http_on_a_public_host() {
        assert_eq!(error_variable(&[("APP_URL", "http://app.example.com"), ("SESSION_SECRET", SECRET)]), "APP_URL");
    }

    #[test]
    fn production_allows_plain_http_on_loopback() {
        for origin in ["http://localhost:3000", "http://127.0.0.1:8080", "http://[::1]:3000"] {
            let config = parse(&[("APP_URL", origin), ("SESSION_SECRET", SECRET)]).unwrap();
            assert!(!config.secure_cookies(), "{origin}");
        }
    }

    #[test]
    fn app_url_must_be_an_origin() {
        for bad in ["https://app.example.com/base", "https://app.example.com/?q=1", "ftp://app.example.com", "not a url", "https://u:p@app.example.com"] {
            assert_eq!(error_variable(&[("APP_URL", bad), ("SESSION_SECRET", SECRET)]), "APP_URL", "{bad}");
        }
    }

    #[test]
    fn redirect_uri_comes_from_app_url() {
        let config = parse(&production(&[])).unwrap();
        assert_eq!(config.redirect_uri().as_str(), "https://app.example.com/api/auth/callback");
        assert!(config.secure_cookies());
    }

    #[test]
    fn production_with_logi_requires_the_client_secret() {
        let vars = production(&[("ONE_PASS_URL", "https://logi.example"), ("ONE_PASS_CLIENT_ID", "logi_app")]);
        assert_eq!(error_variable(&vars), "ONE_PASS_CLIENT_SECRET");
    }

    #[test]
    fn logi_requires_a_client_id() {
        assert_eq!(error_variable(&production(&[("ONE_PASS_URL", "https://logi.example")])), "ONE_PASS_CLIENT_ID");
    }

    #[test]
    fn production_refuses_a_plain_http_provider() {
        let vars = production(&[("ONE_PASS_URL", "http://logi.example"), ("ONE_PASS_CLIENT_ID", "c"), ("ONE_PASS_CLIENT_SECRET", "s")]);
        assert_eq!(error_variable(&vars), "ONE_PASS_URL");
    }

    #[test]
    fn scopes_must_include_openid() {
        let vars = production(&[
            ("ONE_PASS_URL", "https://logi.example"),
            ("ONE_PASS_CLIENT_ID", "c"),
            ("ONE_PASS_CLIENT_SECRET", "s"),
            ("ONE_PASS_SCOPES", "profile:basic email"),
        ]);
        assert_eq!(error_variable(&vars), "ONE_PASS_SCOPES");
    }

    #[test]
    fn logi_config_with_defaults() {
        let vars = production(&[("ONE_PASS_URL", "https://logi.example"), ("ONE_PASS_CLIENT_ID", "c"), ("ONE_PASS_CLIENT_SECRET", "s3cret")]);
        let logi = parse(&vars).unwrap().logi.expect("logi configured");
        assert_eq!(logi.scopes, ["openid", "profile:basic", "email"]);
        assert_eq!(logi.client_secret(), Some("s3cret"));
        assert_eq!((logi.timeout, logi.endpoints), (Duration::from_secs(10), EndpointSource::Discovery));
        let with = |value: &'static str| {
            production(&[
                ("ONE_PASS_URL", "https://logi.example"),
                ("ONE_PASS_CLIENT_ID", "c"),
                ("ONE_PASS_CLIENT_SECRET", "s"),
                ("ONE_PASS_TIMEOUT_SECS", value),
            ])
        };
        assert_eq!(parse(&with("2")).unwrap().logi.unwrap().timeout, Duration::from_secs(2));
        assert_eq!(error_variable(&with("0")), "ONE_PASS_TIMEOUT_SECS");
        assert_eq!(error_variable(&with("61")), "ONE_PASS_TIMEOUT_SECS");
    }

    #[test]
    fn discovery_off_needs_the_jwks_url() {
        let logi = |extra: &[(&'static str, &'static str)]| {
            let mut vars = production(&[("ONE_PASS_URL", "https://logi.example"), ("ONE_PASS_CLIENT_ID", "c"), ("ONE_PASS_CLIENT_SECRET", "s")]);
            vars.extend_from_slice(extra);
            vars
        };
        let off = parse(&logi(&[("ONE_PASS_DISCOVERY", "off"), ("ONE_PASS_JWKS_URL", "https://logi.example/jwks")])).unwrap().logi.unwrap();
        assert_eq!(off.endpoints, EndpointSource::Documented { jwks_url: Url::parse("https://logi.example/jwks").unwrap() });
        assert_eq!(error_variable(&logi(&[("ONE_PASS_DISCOVERY", "off")])), "ONE_PASS_JWKS_URL");
        assert_eq!(error_variable(&logi(&[("ONE_PASS_DISCOVERY", "off"), ("ONE_PASS_JWKS_URL", "http://logi.example/jwks")])), "ONE_PASS_JWKS_URL");
        assert_eq!(error_variable(&logi(&[("ONE_PASS_DISCOVERY", "no")])), "ONE_PASS_DISCOVERY");
    }

    #[test]
    fn no_provider_means_logi_is_not_configured() {
        assert!(parse(&production(&[])).unwrap().logi.is_none());
    }

    #[test]
    fn development_fills_in_safe_local_defaults() {
        let config = parse(&[("APP_ENV", "development")]).unwrap();
        assert_eq!(config.mode, Mode::Development);
        assert_eq!(config.app_url.as_str(), "http://localhost:3000/");
        assert_eq!(config.listen_addr, "127.0.0.1:3000".parse().unwrap());
        assert!(config.session_secret.expose_secret().len() >= 32);
        assert_eq!(config.database_url, DEFAULT_DATABASE_URL);
    }

    #[test]
    fn development_allows_logi_without_secret() {
        let vars = [("APP_ENV", "development"), ("ONE_PASS_URL", "http://127.0.0.1:9090"), ("ONE_PASS_CLIENT_ID", "c")];
        assert!(parse(&vars).unwrap().logi.unwrap().client_secret.is_none());
    }

    #[test]
    fn unknown_app_env_is_rejected() {
        assert_eq!(error_variable(&[("APP_ENV", "prod")]), "APP_ENV");
    }

    #[test]
    fn host_and_port_override_the_site_address() {
        let config = parse(&production(&[("LEPTOS_SITE_ADDR", "127.0.0.1:3000"), ("HOST", "0.0.0.0"), ("PORT", "8080")])).unwrap();
        assert_eq!(config.listen_addr, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(error_variable(&production(&[("PORT", "eighty")])), "PORT");
        assert_eq!(error_variable(&production(&[("LEPTOS_SITE_ADDR", "localhost")])), "LEPTOS_SITE_ADDR");
    }

    #[test]
    fn session_timeouts_are_positive_minutes() {
        let config = parse(&production(&[("SESSION_IDLE_MINUTES", "30")])).unwrap();
        assert_eq!(config.session_idle_timeout, Duration::from_secs(1800));
        assert_eq!(error_variable(&production(&[("SESSION_ABSOLUTE_MINUTES", "0")])), "SESSION_ABSOLUTE_MINUTES");
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let vars = production(&[("ONE_PASS_URL", "https://logi.example"), ("ONE_PASS_CLIENT_ID", "c"), ("ONE_PASS_CLIENT_SECRET", "very-secret-client-value")]);
        let printed = format!("{:?}", parse(&vars).unwrap());
        assert!(!printed.contains(SECRET) && !printed.contains("very-secret-client-value"), "{printed}");
    }

    #[test]
    fn native_apps_are_off_by_default_with_safe_lifetimes() {
        let native = parse(&production(&[])).unwrap().native;
        assert!(!native.enabled());
        assert_eq!(native.access_token_lifetime, Duration::from_secs(600));
        assert_eq!((native.refresh_idle.as_secs(), native.refresh_absolute.as_secs()), (30 * DAY_SECS, 90 * DAY_SECS));
        assert_eq!((native.audience.as_str(), native.exchanges_per_minute), ("https://app.example.com", 10));
    }

    #[test]
    fn native_redirect_uris_follow_rfc_8252() {
        let list = "com.example.app:/oauth/callback, https://app.example.com/native, http://127.0.0.1:8765/cb,http://[::1]:9/cb";
        let native = parse(&production(&[("NATIVE_REDIRECT_URIS", list)])).unwrap().native;
        assert_eq!(native.redirect_uris.len(), 4);
        assert_eq!(native.redirect_uris[0], "com.example.app:/oauth/callback");
        for bad in [
            "http://localhost:8765/cb",
            "http://app.example.com/cb",
            "javascript:alert(1)",
            "myapp:/cb",
            "com.example.app:/cb#frag",
            "https://u:p@app.example.com/cb",
            "not a uri",
            "com.example.app:/cb,,https://x.example/cb",
        ] {
            let error = parse(&production(&[("NATIVE_REDIRECT_URIS", bad)])).expect_err(bad);
            assert_eq!(error.variable, "NATIVE_REDIRECT_URIS", "{bad}");
        }
        // Development is no more lenient.
        assert!(parse(&[("APP_ENV", "development"), ("NATIVE_REDIRECT_URIS", "myapp:/cb")]).is_err());
    }

    #[test]
    fn native_token_settings_are_bounded() {
        let vars = production(&[
            ("NATIVE_ACCESS_TOKEN_MINUTES", "60"),
            ("NATIVE_TOKEN_AUDIENCE", "https://api.example.com"),
            ("NATIVE_EXCHANGE_PER_MINUTE", "100000"),
        ]);
        let native = parse(&vars).unwrap().native;
        assert_eq!((native.access_token_lifetime.as_secs(), native.audience.as_str(), native.exchanges_per_minute), (3600, "https://api.example.com", 100_000));
        for (variable, value) in [
            ("NATIVE_ACCESS_TOKEN_MINUTES", "0"),
            ("NATIVE_ACCESS_TOKEN_MINUTES", "61"),
            ("NATIVE_EXCHANGE_PER_MINUTE", "0"),
            ("NATIVE_EXCHANGE_PER_MINUTE", "100001"),
            ("NATIVE_REFRESH_IDLE_DAYS", "0"),
            ("NATIVE_REFRESH_ABSOLUTE_DAYS", "7"),
        ] {
            assert_eq!(error_variable(&production(&[(variable, value)])), variable, "{variable}={value}");
        }
    }

    #[test]
    fn the_proxy_is_off_by_default_and_its_upstream_is_checked() {
        let config = parse(&production(&[])).unwrap();
        assert_eq!((config.upstream_api_url, config.upstream_timeout, config.token_refresh_skew_secs), (None, Duration::from_secs(15), 30));
        let config =
            parse(&production(&[("UPSTREAM_API_URL", "https://api.example.com/v1"), ("UPSTREAM_TIMEOUT_SECS", "3"), ("TOKEN_REFRESH_SKEW_SECS", "0")]))
                .unwrap();
        assert_eq!(config.upstream_api_url.unwrap().as_str(), "https://api.example.com/v1");
        assert_eq!((config.upstream_timeout, config.token_refresh_skew_secs), (Duration::from_secs(3), 0));
        assert!(parse(&production(&[("UPSTREAM_API_URL", "http://127.0.0.1:9191")])).is_ok());
        for bad in ["http://api.example.com", "ftp://api.example.com", "https://user:pw@api.example.com", "https://api.example.com/?a=1", "not a url"] {
            assert_eq!(error_variable(&production(&[("UPSTREAM_API_URL", bad)])), "UPSTREAM_API_URL", "{bad}");
        }
        assert_eq!(error_variable(&production(&[("UPSTREAM_TIMEOUT_SECS", "0")])), "UPSTREAM_TIMEOUT_SECS");
        assert_eq!(error_variable(&production(&[("TOKEN_REFRESH_SKEW_SECS", "-1")])), "TOKEN_REFRESH_SKEW_SECS");
    }

    #[test]
    fn trusted_proxies_default_to_none_and_a_bad_entry_fails_startup() {
        assert_eq!(parse(&production(&[])).unwrap().trusted_proxies, TrustedProxies::default());
        let config = parse(&production(&[("TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1")])).unwrap();
        assert_eq!(config.trusted_proxies, TrustedProxies::parse("10.0.0.0/8,127.0.0.1/32").unwrap());
        assert_eq!(error_variable(&production(&[("TRUSTED_PROXIES", "10.0.0.0/8, proxy.internal")])), "TRUSTED_PROXIES");
    }

    #[test]
    fn shutdown_drains_in_production_only_by_default_and_is_bounded() {
        let shutdown = parse(&production(&[])).unwrap().shutdown;
        assert_eq!((shutdown.drain, shutdown.grace), (Duration::from_secs(5), Duration::from_secs(20)));
        assert_eq!(parse(&[("APP_ENV", "development")]).unwrap().shutdown.drain, Duration::ZERO);
        assert_eq!(parse(&production(&[("SHUTDOWN_DRAIN_SECS", "0")])).unwrap().shutdown.drain, Duration::ZERO);
        assert_eq!(error_variable(&production(&[("SHUTDOWN_GRACE_SECS", "0")])), "SHUTDOWN_GRACE_SECS");
        assert_eq!(error_variable(&production(&[("SHUTDOWN_DRAIN_SECS", "301")])), "SHUTDOWN_DRAIN_SECS");
    }

    #[test]
    fn metrics_are_off_by_default_and_never_on_the_public_port() {
        assert_eq!(parse(&production(&[])).unwrap().metrics_addr, None);
        let config = parse(&production(&[("METRICS_ADDR", "127.0.0.1:9100")])).unwrap();
        assert_eq!(config.metrics_addr, Some("127.0.0.1:9100".parse().unwrap()));
        assert_eq!(error_variable(&production(&[("METRICS_ADDR", "localhost:9100")])), "METRICS_ADDR");
        let public_port = parse(&production(&[])).unwrap().listen_addr.port().to_string();
        assert_eq!(error_variable(&production(&[("METRICS_ADDR", Box::leak(format!("0.0.0.0:{public_port}").into_boxed_str()))])), "METRICS_ADDR");
    }

    #[test]
    fn activity_is_kept_180_days_by_default_and_bounded() {
        assert_eq!(parse(&production(&[])).unwrap().activity_retention, Duration::from_secs(180 * 86_400));
        assert_eq!(parse(&production(&[("ACTIVITY_RETENTION_DAYS", "7")])).unwrap().activity_retention, Duration::from_secs(7 * 86_400));
        for bad in ["0", "3651", "-1", "a week"] {
            assert_eq!(error_variable(&production(&[("ACTIVITY_RETENTION_DAYS", bad)])), "ACTIVITY_RETENTION_DAYS", "{bad}");
        }
    }

    const VARIABLES: [&str; 23] = [
        "APP_ENV",
        "APP_URL",
        "SESSION_SECRET",
        "DATABASE_URL",
        "LEPTOS_SITE_ADDR",
        "HOST",
        "PORT",
        "SESSION_IDLE_MINUTES",
        "ONE_PASS_URL",
        "ONE_PASS_CLIENT_ID",
        "ONE_PASS_CLIENT_SECRET",
        "ONE_PASS_SCOPES",
        "ONE_PASS_TIMEOUT_SECS",
        "ONE_PASS_DISCOVERY",
        "UPSTREAM_API_URL",
        "UPSTREAM_TIMEOUT_SECS",
        "NATIVE_REDIRECT_URIS",
        "NATIVE_EXCHANGE_PER_MINUTE",
        "TRUSTED_PROXIES",
        "METRICS_ADDR",
        "LOG_FORMAT",
        "SHUTDOWN_GRACE_SECS",
        "ACTIVITY_RETENTION_DAYS",
    ];

    proptest::proptest! {
        /// Any values for any variables: a configuration, or an error naming one of them;
        /// never a panic.
        #[test]
        fn any_environment_parses_or_names_the_bad_variable(values in proptest::collection::vec((proptest::sample::select(VARIABLES.to_vec()), ".{0,40}"), 0..10)) {
            let mut vars = production(&[]).into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect::<HashMap<_, _>>();
            vars.extend(values.into_iter().map(|(k, v)| (k.to_owned(), v)));
            if let Err(error) = Config::from_lookup(|k| vars.get(k).cloned()) {
                proptest::prop_assert!(VARIABLES.contains(&error.variable) || error.variable.starts_with("NATIVE_") || error.variable.starts_with("ONE_PASS_"), "{}", error.variable);
            }
        }
    }
}
