//! The declared APIs: `API_ROUTES_FILE` (TOML, one `[[api]]` table per API) and
//! `UPSTREAM_API_URL` (the API `default` at `/api/proxy/`, `token = "user"`). The whole table is
//! checked before it is used, at startup and at every reload (`SIGHUP`), so the table that
//! serves is always a valid one; a bad file names itself, the API and the field in one line.

use super::client_token::ClientToken;
use super::socket::Sockets;
use super::upstream::Upstream;
use crate::login::step_up::Requirement;
use crate::login::tokens::{ApiConsent, Audience};
use crate::login::Logins;
use crate::server::config::{upstream_base_url, Config, Mode};
use axum::http::Method;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;
use url::Url;

/// Where `UPSTREAM_API_URL` is mounted, under the name `default`.
pub const DEFAULT_PATH: &str = "/api/proxy/";
const DEFAULT_NAME: &str = "default";
const ALL_METHODS: [Method; 6] = [Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::PATCH, Method::DELETE];

/// Which token goes to the upstream, and who may call it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenPolicy {
    /// The caller's logi access token; a caller without a logi login is refused.
    User,
    /// The caller's logi access token when there is a logi login; anyone else (anonymous
    /// callers included) is forwarded without `Authorization`.
    UserOrNone,
    /// No `Authorization`; the caller must be signed in, unless the API is `public`.
    None,
    /// The app's own client-credentials token; the caller must be signed in (any method),
    /// unless the API is `public` (then it is an open relay with our credentials).
    Client,
    /// The caller's logi access token with a logi login, the client token for any other
    /// signed-in caller.
    UserOrClient,
}

/// One API as declared, checked (no connection pool yet: what tests compare).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Declaration {
    pub name: String,
    pub path: String,
    pub upstream: Url,
    pub methods: Vec<Method>,
    pub token: TokenPolicy,
    pub public: bool,
    pub timeout: Duration,
    /// The `resource` its tokens are for, and the `scopes` it needs.
    pub audience: Audience,
    /// Whether a `GET` may become a WebSocket (`super::socket`).
    pub websocket: bool,
    /// How strongly and recently the caller must have signed in at logi (step-up).
    pub step_up: Option<Requirement>,
}

impl TokenPolicy {
    const ALL: [Self; 5] = [Self::User, Self::UserOrNone, Self::None, Self::Client, Self::UserOrClient];

    /// Its name in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::UserOrNone => "user_or_none",
            Self::None => "none",
            Self::Client => "client",
            Self::UserOrClient => "user_or_client",
        }
    }

    /// Whether a user's token may go to the API (so sign-ins ask for its resource and scopes).
    fn takes_user_tokens(self) -> bool {
        matches!(self, Self::User | Self::UserOrNone | Self::UserOrClient)
    }
}

/// One API, ready to forward to.
pub struct Api {
    pub declaration: Declaration,
    pub upstream: Upstream,
}

impl Api {
    pub fn name(&self) -> &str {
        &self.declaration.name
    }

    pub fn allows(&self, method: &Method) -> bool {
        self.declaration.methods.contains(method)
    }

    /// The `Allow` header of a `405`.
    pub fn allow(&self) -> String {
        self.declaration.methods.iter().map(Method::as_str).collect::<Vec<_>>().join(", ")
    }
}

/// The APIs in use. No API's path is a prefix of another's, so at most one matches.
#[derive(Default)]
pub struct ApiTable {
    apis: Vec<Api>,
}

impl ApiTable {
    fn new(declarations: Vec<Declaration>) -> Self {
        let apis = declarations
            .into_iter()
            .map(|declaration| Api { upstream: Upstream::new(declaration.upstream.clone(), declaration.timeout), declaration })
            .collect();
        Self { apis }
    }

    /// What a sign-in asks for so that one consent covers every API taking a user's token.
    pub fn consent(&self) -> ApiConsent {
        let mut consent = ApiConsent::default();
        for declaration in self.declarations().filter(|declaration| declaration.token.takes_user_tokens()) {
            consent.resources.extend(declaration.audience.resource.clone());
            consent.scopes.extend(declaration.audience.scopes.iter().cloned());
        }
        for list in [&mut consent.resources, &mut consent.scopes] {
            list.sort();
            list.dedup();
        }
        for step_up in self.declarations().filter_map(|declaration| declaration.step_up.as_ref()) {
            if !consent.step_ups.contains(step_up) {
                consent.step_ups.push(step_up.clone());
            }
        }
        consent
    }

    pub fn declarations(&self) -> impl Iterator<Item = &Declaration> {
        self.apis.iter().map(|api| &api.declaration)
    }

    /// The API mounted at the start of `path`, and what follows its mount path.
    pub fn route<'a>(&self, path: &'a str) -> Option<(&Api, &'a str)> {
        self.apis.iter().find_map(|api| Some((api, path.strip_prefix(api.declaration.path.as_str())?)))
    }
}

/// What the table is made of: the file (read again at each reload) and `UPSTREAM_API_URL`.
#[derive(Clone, Debug)]
pub struct Sources {
    pub mode: Mode,
    /// `APP_URL`'s origin: where a cookie-authenticated WebSocket must come from.
    pub app_origin: String,
    pub file: Option<PathBuf>,
    pub default_upstream: Option<Url>,
    pub default_timeout: Duration,
}

impl Sources {
    pub fn of(config: &Config) -> Self {
        Self {
            mode: config.mode,
            app_origin: config.app_url.origin().ascii_serialization(),
            file: config.api_routes_file.clone(),
            default_upstream: config.upstream_api_url.clone(),
            default_timeout: config.upstream_timeout,
        }
    }

    /// Every API, checked as a whole.
    pub fn declarations(&self) -> Result<Vec<Declaration>, ApiFileError> {
        let mut declarations: Vec<Declaration> = self.default_upstream.iter().map(|upstream| self.default_api(upstream.clone())).collect();
        if let Some(file) = &self.file {
            let text = std::fs::read_to_string(file).map_err(|error| ApiFileError::new(file, format!("cannot be read ({error})")))?;
            for declared in parse(&text).map_err(|problem| ApiFileError::new(file, problem))? {
                let declaration = self.check(declared, &declarations).map_err(|problem| ApiFileError::new(file, problem))?;
                declarations.push(declaration);
            }
        }
        Ok(declarations)
    }

    fn default_api(&self, upstream: Url) -> Declaration {
        Declaration {
            name: DEFAULT_NAME.into(),
            path: DEFAULT_PATH.into(),
            upstream,
            methods: ALL_METHODS.to_vec(),
            token: TokenPolicy::User,
            public: false,
            timeout: self.default_timeout,
            audience: Audience::default(),
            websocket: false,
            step_up: None,
        }
    }

    /// One `[[api]]` against the rules and the APIs before it.
    fn check(&self, declared: Declared, before: &[Declaration]) -> Result<Declaration, String> {
        let fail = |field: &str, problem: &str| format!("api \"{}\": {field}: {problem}", declared.name);
        if !is_api_name(&declared.name) {
            return Err(fail("name", "must match [a-z0-9][a-z0-9_-]{0,31}"));
        }
        if before.iter().any(|other| other.name == declared.name) {
            let why = if declared.name == DEFAULT_NAME { "is taken by UPSTREAM_API_URL" } else { "is declared twice" };
            return Err(fail("name", why));
        }
        check_path(&declared.path).map_err(|problem| fail("path", problem))?;
        if let Some(other) = before.iter().find(|other| other.path.starts_with(&declared.path) || declared.path.starts_with(&other.path)) {
            return Err(fail("path", &format!("overlaps the path {} of api \"{}\"", other.path, other.name)));
        }
        let upstream = upstream_base_url(self.mode, &declared.upstream).map_err(|problem| fail("upstream", &problem))?;
        let methods = match &declared.methods {
            None => ALL_METHODS.to_vec(),
            Some(names) => methods(names).map_err(|problem| fail("methods", &problem))?,
        };
        let token_name = declared.token.as_deref().unwrap_or("user");
        let Some(token) = TokenPolicy::ALL.into_iter().find(|policy| policy.as_str() == token_name) else {
            return Err(fail("token", "must be one of user, user_or_none, none, client, user_or_client"));
        };
        if declared.public && !matches!(token, TokenPolicy::None | TokenPolicy::Client) {
            return Err(fail("public", "only an API with token = \"none\" or \"client\" may be public"));
        }
        let timeout = match declared.timeout_secs {
            None => self.default_timeout,
            Some(secs @ 1..=300) => Duration::from_secs(secs),
            Some(_) => return Err(fail("timeout_secs", "must be between 1 and 300")),
        };
        let sends_a_token = token != TokenPolicy::None;
        let resource = declared.resource.as_deref().map(check_resource).transpose().map_err(|problem| fail("resource", problem))?;
        let scopes = declared.scopes.as_deref().map(check_scopes).transpose().map_err(|problem| fail("scopes", problem))?.unwrap_or_default();
        if !sends_a_token && (resource.is_some() || !scopes.is_empty()) {
            let field = if resource.is_some() { "resource" } else { "scopes" };
            return Err(fail(field, "means nothing for an API with token = \"none\" (no token is sent)"));
        }
        if declared.websocket && !methods.contains(&Method::GET) {
            return Err(fail("websocket", "needs GET in methods (a WebSocket starts as a GET)"));
        }
        let step_up = step_up(&declared, token).map_err(|(field, problem)| fail(field, problem))?;
        let audience = Audience { resource, scopes };
        let websocket = declared.websocket;
        Ok(Declaration { name: declared.name, path: declared.path, upstream, methods, token, public: declared.public, timeout, audience, websocket, step_up })
    }
}

/// A file that cannot be used: one line naming the file, and the API and field when the
/// problem is one API's.
#[derive(Debug, thiserror::Error)]
#[error("API_ROUTES_FILE {file}: {problem}")]
pub struct ApiFileError {
    file: String,
    problem: String,
}

impl ApiFileError {
    fn new(file: &Path, problem: impl Into<String>) -> Self {
        let problem: String = problem.into();
        Self { file: file.display().to_string(), problem: problem.split_whitespace().collect::<Vec<_>>().join(" ") }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    api: Vec<Declared>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Declared {
    name: String,
    path: String,
    upstream: String,
    methods: Option<Vec<String>>,
    token: Option<String>,
    #[serde(default)]
    public: bool,
    timeout_secs: Option<u64>,
    resource: Option<String>,
    scopes: Option<String>,
    #[serde(default)]
    websocket: bool,
    acr_values: Option<String>,
    max_age_secs: Option<i64>,
}

/// The `[[api]]` tables; an error is toml's first line (where) and last (what), without
/// the excerpt between.
fn parse(text: &str) -> Result<Vec<Declared>, String> {
    toml::from_str::<File>(text).map(|file| file.api).map_err(|error| {
        let message = error.to_string();
        let mut lines = message.lines().map(str::trim).filter(|line| !line.is_empty());
        let first = lines.next().unwrap_or_default();
        match lines.next_back() {
            Some(last) => format!("{first}: {last}"),
            None => first.to_owned(),
        }
    })
}

fn is_api_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=32).contains(&bytes.len())
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-')
}

/// A mount path: `/api/<segments>/`, plain characters, no empty or dot segment, not ours.
fn check_path(path: &str) -> Result<(), &'static str> {
    let Some(rest) = path.strip_prefix("/api/").filter(|_| path.ends_with('/')) else {
        return Err("must start with /api/ and end with /");
    };
    let inner = rest.strip_suffix('/').unwrap_or_default();
    if inner.is_empty() || inner.split('/').any(|segment| segment.is_empty() || segment == "." || segment == "..") {
        return Err("must name at least one segment after /api/, without empty or dot segments");
    }
    if !inner.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~/".contains(&b)) {
        return Err("may hold only letters, digits, - . _ ~ and /");
    }
    if path.starts_with("/api/auth/") {
        return Err("must not be under /api/auth/ (logi-bff's own routes)");
    }
    Ok(())
}

/// An RFC 8707 resource indicator: an absolute URI without a fragment.
fn check_resource(resource: &str) -> Result<String, &'static str> {
    match Url::parse(resource) {
        Ok(url) if url.fragment().is_none() && !resource.contains('#') => Ok(resource.to_owned()),
        Ok(_) => Err("must not have a fragment (RFC 8707)"),
        Err(_) => Err("must be an absolute URI"),
    }
}

/// Space-separated scope tokens (RFC 6749 §3.3), at least one.
fn check_scopes(scopes: &str) -> Result<Vec<String>, &'static str> {
    let scopes: Vec<String> = scopes.split(' ').filter(|scope| !scope.is_empty()).map(str::to_owned).collect();
    if scopes.is_empty() {
        return Err("must name at least one scope");
    }
    if scopes.iter().any(|scope| !scope.bytes().all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))) {
        return Err("must be scope tokens separated by spaces (RFC 6749 §3.3)");
    }
    Ok(scopes)
}

/// The API's step-up requirement. Only a caller who is signed in can meet one, so it
/// needs an API that refuses anonymous callers.
fn step_up(declared: &Declared, token: TokenPolicy) -> Result<Option<Requirement>, (&'static str, &'static str)> {
    let max_age = declared.max_age_secs.map(|secs| secs.to_string());
    let requirement = Requirement::parse(declared.acr_values.as_deref(), max_age.as_deref()).map_err(|parameter| match parameter {
        "max_age" => ("max_age_secs", "must be between 60 and 31622400 (366 days)"),
        _ => ("acr_values", "must be space-separated values of printable ASCII without quotes or backslashes, at most 128 bytes each"),
    })?;
    let field = if declared.acr_values.is_some() { "acr_values" } else { "max_age_secs" };
    if requirement.is_some() && (declared.public || token == TokenPolicy::UserOrNone) {
        return Err((field, "needs an API that refuses anonymous callers (not public, not token = \"user_or_none\")"));
    }
    Ok(requirement)
}

fn methods(names: &[String]) -> Result<Vec<Method>, String> {
    if names.is_empty() {
        return Err("must list at least one method".into());
    }
    names
        .iter()
        .map(|name| {
            ALL_METHODS.iter().find(|method| method.as_str() == name).cloned().ok_or_else(|| format!("`{name}` is not one of GET HEAD POST PUT PATCH DELETE"))
        })
        .collect()
}

/// The table in use, replaced whole by a reload; requests in flight keep the one they took.
/// With it, what the APIs share: the app's client tokens and the open WebSockets. Each table
/// in use tells the logins what sign-ins must ask for ([`ApiTable::consent`]).
pub struct Apis {
    sources: Sources,
    table: RwLock<Arc<ApiTable>>,
    pub client_token: ClientToken,
    pub sockets: Arc<Sockets>,
    logins: Arc<Logins>,
}

impl Apis {
    pub fn load(sources: Sources, client_token: ClientToken, logins: Arc<Logins>) -> Result<Self, ApiFileError> {
        let table = ApiTable::new(sources.declarations()?);
        logins.set_api_consent(table.consent());
        let sockets = Sockets::start(logins.clone(), sources.app_origin.clone());
        Ok(Self { sources, table: RwLock::new(Arc::new(table)), client_token, sockets, logins })
    }

    /// `APP_URL`'s origin.
    pub fn app_origin(&self) -> &str {
        &self.sources.app_origin
    }

    pub fn current(&self) -> Arc<ApiTable> {
        self.table.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Reads the file again: a valid one replaces the table (its API count is returned), an
    /// invalid one leaves the table as it was.
    pub fn reload(&self) -> Result<usize, ApiFileError> {
        let table = ApiTable::new(self.sources.declarations()?);
        let count = table.apis.len();
        self.logins.set_api_consent(table.consent());
        *self.table.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(table);
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(file: Option<&Path>, default: Option<&str>) -> Sources {
        Sources {
            mode: Mode::Production,
            app_origin: "https://app.example".into(),
            file: file.map(Path::to_path_buf),
            default_upstream: default.map(|url| Url::parse(url).unwrap()),
            default_timeout: Duration::from_secs(15),
        }
    }

    fn declare(text: &str) -> Result<Vec<Declaration>, String> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("apis.toml");
        std::fs::write(&file, text).unwrap();
        sources(Some(&file), Some("http://127.0.0.1:9000")).declarations().map_err(|error| error.to_string().replace(&file.display().to_string(), "F"))
    }

    const ORDERS: &str = "[[api]]\nname = \"orders\"\npath = \"/api/orders/\"\nupstream = \"https://orders.example/v1\"\n";

    #[test]
    fn upstream_api_url_alone_is_the_default_api() {
        let table = sources(None, Some("http://127.0.0.1:9000")).declarations().unwrap();
        assert_eq!(table.len(), 1);
        assert_eq!((table[0].name.as_str(), table[0].path.as_str(), table[0].token, table[0].methods.len()), ("default", DEFAULT_PATH, TokenPolicy::User, 6));
        assert!(sources(None, None).declarations().unwrap().is_empty());
    }

    #[test]
    fn a_declared_api_gets_its_fields_and_the_defaults() {
        let text = format!("{ORDERS}\n[[api]]\nname = \"catalogue\"\npath = \"/api/catalogue/items/\"\nupstream = \"http://localhost:7000\"\nmethods = [\"GET\", \"HEAD\"]\ntoken = \"none\"\npublic = true\ntimeout_secs = 3\n");
        let table = declare(&text).unwrap();
        assert_eq!(table.iter().map(|api| api.name.as_str()).collect::<Vec<_>>(), ["default", "orders", "catalogue"]);
        assert_eq!((table[1].token, table[1].public, table[1].timeout, table[1].methods.len()), (TokenPolicy::User, false, Duration::from_secs(15), 6));
        assert_eq!(
            (table[2].token, table[2].public, table[2].timeout, table[2].methods.clone()),
            (TokenPolicy::None, true, Duration::from_secs(3), vec![Method::GET, Method::HEAD])
        );
        assert_eq!(table[2].upstream.as_str(), "http://localhost:7000/");
    }

    #[test]
    fn every_rule_violation_is_one_line_naming_the_file_the_api_and_the_field() {
        let cases = [
            ("[[api]]\nname = \"x\"\n", "missing field"),
            (&format!("{ORDERS}colour = \"red\"\n"), "unknown field `colour`"),
            ("[[apis]]\n", "unknown field `apis`"),
            ("[[api]\n", "TOML parse error at line 1, column 7: unclosed array table"),
            (&ORDERS.replace("\"orders\"", "\"Orders\""), "api \"Orders\": name: must match"),
            (&ORDERS.replace("\"orders\"", "\"default\""), "api \"default\": name: is taken by UPSTREAM_API_URL"),
            (&format!("{ORDERS}{}", ORDERS.replace("/api/orders/", "/api/orders2/")), "api \"orders\": name: is declared twice"),
            (&ORDERS.replace("/api/orders/", "/api/orders"), "api \"orders\": path: must start with /api/ and end with /"),
            (&ORDERS.replace("/api/orders/", "/orders/"), "path: must start with /api/"),
            (&ORDERS.replace("/api/orders/", "/api/"), "path: must name at least one segment"),
            (&ORDERS.replace("/api/orders/", "/api/a//b/"), "path: must name at least one segment"),
            (&ORDERS.replace("/api/orders/", "/api/../x/"), "without empty or dot segments"),
            (&ORDERS.replace("/api/orders/", "/api/or%2fders/"), "path: may hold only"),
            (&ORDERS.replace("/api/orders/", "/api/auth/orders/"), "path: must not be under /api/auth/"),
            (&ORDERS.replace("/api/orders/", "/api/proxy/orders/"), "path: overlaps the path /api/proxy/ of api \"default\""),
            (
                &format!("{ORDERS}{}", ORDERS.replace("\"orders\"", "\"sub\"").replace("/api/orders/", "/api/orders/sub/")),
                "api \"sub\": path: overlaps the path /api/orders/ of api \"orders\"",
            ),
            (&ORDERS.replace("https://orders.example/v1", "http://orders.example/v1"), "upstream: must use https in production"),
            (&ORDERS.replace("https://orders.example/v1", "https://orders.example/v1?x=1"), "upstream: must be a base URL"),
            (&ORDERS.replace("https://orders.example/v1", "not a url"), "upstream: `not a url` is not a URL"),
            (&format!("{ORDERS}methods = [\"GET\", \"TRACE\"]\n"), "methods: `TRACE` is not one of"),
            (&format!("{ORDERS}methods = []\n"), "methods: must list at least one"),
            (&format!("{ORDERS}token = \"bearer\"\n"), "token: must be one of"),
            (&format!("{ORDERS}public = true\n"), "public: only an API with token = \"none\" or \"client\""),
            (&format!("{ORDERS}token = \"user_or_none\"\npublic = true\n"), "public: only an API"),
            (&format!("{ORDERS}token = \"user_or_client\"\npublic = true\n"), "public: only an API"),
            (&format!("{ORDERS}timeout_secs = 0\n"), "timeout_secs: must be between 1 and 300"),
            (&format!("{ORDERS}timeout_secs = -1\n"), "invalid value"),
            (&format!("{ORDERS}resource = \"orders\"\n"), "resource: must be an absolute URI"),
            (&format!("{ORDERS}resource = \"https://orders.example/#x\"\n"), "resource: must not have a fragment"),
            (&format!("{ORDERS}scopes = \" \"\n"), "scopes: must name at least one scope"),
            (&format!("{ORDERS}scopes = \"orders:read \\\"x\\\"\"\n"), "scopes: must be scope tokens"),
            (&format!("{ORDERS}token = \"none\"\nresource = \"https://orders.example/\"\n"), "resource: means nothing for an API with token = \"none\""),
            (&format!("{ORDERS}token = \"none\"\nscopes = \"a\"\n"), "scopes: means nothing"),
            (&format!("{ORDERS}methods = [\"POST\"]\nwebsocket = true\n"), "websocket: needs GET in methods"),
            (&format!("{ORDERS}acr_values = \"mfa \\\"x\\\"\"\n"), "acr_values: must be space-separated values"),
            (&format!("{ORDERS}acr_values = \" \"\n"), "acr_values: must be space-separated values"),
            (&format!("{ORDERS}max_age_secs = -1\n"), "max_age_secs: must be between 60 and"),
            (&format!("{ORDERS}token = \"none\"\npublic = true\nacr_values = \"mfa\"\n"), "acr_values: needs an API that refuses anonymous callers"),
            (&format!("{ORDERS}token = \"user_or_none\"\nmax_age_secs = 60\n"), "max_age_secs: needs an API that refuses anonymous callers"),
        ];
        for (text, expected) in cases {
            let error = declare(text).expect_err(text);
            assert!(error.starts_with("API_ROUTES_FILE F: "), "{error}");
            assert!(error.contains(expected), "{text:?}: {error} (expected {expected:?})");
            assert!(!error.contains('\n'), "{error}");
        }
    }

    #[test]
    fn the_example_file_is_valid_next_to_upstream_api_url() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/apis.example.toml");
        let table = sources(Some(&file), Some("http://127.0.0.1:9091")).declarations().unwrap();
        assert_eq!(table.iter().map(|api| api.name.as_str()).collect::<Vec<_>>(), ["default", "orders", "payments", "feed", "status", "reports", "live"]);
    }

    #[test]
    fn a_missing_file_is_refused_by_name() {
        let error = sources(Some(Path::new("/nonexistent/apis.toml")), None).declarations().unwrap_err().to_string();
        assert!(error.starts_with("API_ROUTES_FILE /nonexistent/apis.toml: cannot be read"), "{error}");
    }

    #[tokio::test]
    async fn sign_ins_ask_for_the_resources_and_scopes_of_the_apis_that_take_a_users_token() {
        let api = |name: &str, token: &str, resource: &str, scopes: &str| {
            format!("[[api]]\nname = \"{name}\"\npath = \"/api/{name}/\"\nupstream = \"https://{name}.example\"\ntoken = \"{token}\"\nresource = \"{resource}\"\nscopes = \"{scopes}\"\n")
        };
        let text = [
            api("orders", "user", "https://orders.example/", "orders:read  orders:write"),
            api("billing", "user_or_client", "https://billing.example/", "billing:read orders:read"),
            api("reports", "client", "https://reports.example/", "reports:read"),
        ]
        .concat();
        let declarations = declare(&text).unwrap();
        assert_eq!(
            declarations[1].audience,
            Audience { resource: Some("https://orders.example/".into()), scopes: vec!["orders:read".into(), "orders:write".into()] }
        );
        assert_eq!(declarations[1].step_up, None);
        let consent = ApiTable::new(declarations).consent();
        assert_eq!(consent.resources, ["https://billing.example/", "https://orders.example/"]);
        assert_eq!(consent.scopes, ["billing:read", "orders:read", "orders:write"]);
        assert!(consent.step_ups.is_empty());
    }

    #[test]
    fn step_up_requirements_are_declared_per_api_and_offered_to_sign_ins() {
        let text = format!(
            "{ORDERS}acr_values = \"mfa  hwk\"\nmax_age_secs = 300\n{}",
            ORDERS.replace("orders", "payments") + "max_age_secs = 60\ntoken = \"client\"\n"
        );
        let declarations = declare(&text).unwrap();
        let orders = Requirement::new(vec!["mfa".into(), "hwk".into()], Some(300));
        assert_eq!((declarations[1].step_up.clone(), declarations[2].step_up.clone()), (orders.clone(), Requirement::new(Vec::new(), Some(60))));
        assert_eq!(ApiTable::new(declarations).consent().step_ups, [orders.unwrap(), Requirement::new(Vec::new(), Some(60)).unwrap()]);
    }

    #[tokio::test]
    async fn routing_finds_the_one_api_whose_path_starts_the_request_path() {
        let table = ApiTable::new(declare(&format!("{ORDERS}{}", ORDERS.replace("\"orders\"", "\"items\"").replace("/api/orders/", "/api/items/"))).unwrap());
        let route = |path| table.route(path).map(|(api, rest)| (api.name().to_owned(), rest.to_owned()));
        assert_eq!(route("/api/orders/42?x"), Some(("orders".into(), "42?x".into())));
        assert_eq!(route("/api/items/"), Some(("items".into(), String::new())));
        assert_eq!(route("/api/proxy/hello"), Some(("default".into(), "hello".into())));
        assert_eq!(route("/api/orders"), None);
        assert_eq!(route("/api/ordersx/1"), None);
    }
}
