//! The SQL of logins: the `logins` table (one row per signed-in client), the sealed
//! tokens each holds (`login_tokens`), the single-use markers of finished sign-ins
//! (`used_logins`), and the user view a login reads.

use super::step_up::Authentication;
use super::User;
use crate::ids::{LoginId, UserId};
use crate::server::db::{placeholders, query, Db, Exec, Tx, MAX_LIST};
use crate::server::AppError;

/// The signed-in client a request comes from: a login and the user it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Login {
    pub id: LoginId,
    pub user_id: UserId,
}

/// How a login was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Password,
    Logi,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Password => "password",
            Method::Logi => "logi",
        }
    }
}

impl From<Method> for crate::activity::SignInMethod {
    fn from(method: Method) -> Self {
        match method {
            Method::Password => Self::Password,
            Method::Logi => Self::Logi,
        }
    }
}

/// What kind of client holds a login: a browser (session cookie) or a native app's
/// device (our bearer and refresh tokens). Each kind has its own lifetimes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client {
    Browser,
    Device,
}

impl Client {
    fn as_str(self) -> &'static str {
        match self {
            Client::Browser => "browser",
            Client::Device => "device",
        }
    }
}

/// Read from the `client` text column on either backend.
impl<DB: sqlx::Database> sqlx::Type<DB> for Client
where
    String: sqlx::Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <String as sqlx::Type<DB>>::type_info()
    }

    fn compatible(ty: &DB::TypeInfo) -> bool {
        <String as sqlx::Type<DB>>::compatible(ty)
    }
}

impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for Client
where
    String: sqlx::Decode<'r, DB>,
{
    fn decode(value: DB::ValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        match <String as sqlx::Decode<'r, DB>>::decode(value)?.as_str() {
            "browser" => Ok(Client::Browser),
            "device" => Ok(Client::Device),
            other => Err(format!("unknown login client `{other}`").into()),
        }
    }
}

/// How long logins of one kind live: since their last use, and in all.
#[derive(Clone, Copy, Debug)]
pub struct Lifetimes {
    pub idle_secs: i64,
    pub absolute_secs: i64,
}

impl Lifetimes {
    /// Whether a login created and last seen at these times is still alive at `now`.
    fn cover(&self, created_at: i64, last_seen_at: i64, now: i64) -> bool {
        created_at > now - self.absolute_secs && last_seen_at > now - self.idle_secs
    }
}

/// The lifetimes of both kinds of login.
#[derive(Clone, Copy, Debug)]
pub struct LoginLifetimes {
    pub browser: Lifetimes,
    pub device: Lifetimes,
}

impl LoginLifetimes {
    pub fn of(&self, client: Client) -> Lifetimes {
        match client {
            Client::Browser => self.browser,
            Client::Device => self.device,
        }
    }
}

/// A login row as the lookup needs it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct LoginRow {
    pub user_id: UserId,
    pub client: Client,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub acr: Option<String>,
    pub auth_time: Option<i64>,
}

impl LoginRow {
    pub fn is_live(&self, lifetimes: &LoginLifetimes, now: i64) -> bool {
        lifetimes.of(self.client).cover(self.created_at, self.last_seen_at, now)
    }

    pub fn authentication(&self) -> Authentication {
        Authentication { acr: self.acr.clone(), auth_time: self.auth_time }
    }
}

/// A login as listed on the account page.
#[derive(Debug, sqlx::FromRow)]
pub struct LoginRecord {
    pub id: LoginId,
    pub method: String,
    pub client: Client,
    /// A browser's User-Agent, or a device's name.
    pub user_agent: String,
    pub created_at: i64,
    pub last_seen_at: i64,
}

const MAX_USER_AGENT_CHARS: usize = 200;

/// A User-Agent (or a device's name) as stored: without control characters, bounded.
pub fn sanitized_user_agent(raw: &str) -> String {
    raw.chars().filter(|c| !c.is_control()).take(MAX_USER_AGENT_CHARS).collect()
}

/// How a new login was made, by whom and on what.
pub struct NewLogin<'a> {
    pub method: Method,
    pub client: Client,
    /// A browser's User-Agent or a device's name, already sanitised.
    pub device: &'a str,
    pub authentication: &'a Authentication,
}

pub async fn insert(tx: &mut Tx, login: &Login, new: &NewLogin<'_>, now: i64) -> Result<(), AppError> {
    let sql =
        "INSERT INTO logins (id, user_id, method, client, user_agent, created_at, last_seen_at, acr, auth_time) VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8)";
    query(sql)
        .bind(&login.id)
        .bind(login.user_id)
        .bind(new.method.as_str())
        .bind(new.client.as_str())
        .bind(new.device)
        .bind(now)
        .bind(new.authentication.acr.as_deref())
        .bind(new.authentication.auth_time)
        .execute(tx)
        .await?;
    Ok(())
}

pub async fn find(db: &Db, id: &LoginId) -> Result<Option<LoginRow>, AppError> {
    let sql = "SELECT user_id, client, created_at, last_seen_at, acr, auth_time FROM logins WHERE id = $1";
    Ok(query(sql).bind(id).fetch_optional(db).await?)
}

/// A step-up: the login's authentication as the new sign-in's id_token says; false when
/// the login is gone.
pub async fn set_authentication(tx: &mut Tx, id: &LoginId, authentication: &Authentication) -> Result<bool, AppError> {
    let sql = "UPDATE logins SET acr = $1, auth_time = $2 WHERE id = $3";
    Ok(query(sql).bind(authentication.acr.as_deref()).bind(authentication.auth_time).bind(id).execute(tx).await? == 1)
}

pub async fn touch(db: &Db, id: &LoginId, now: i64) -> Result<(), AppError> {
    query("UPDATE logins SET last_seen_at = $1 WHERE id = $2").bind(now).bind(id).execute(db).await?;
    Ok(())
}

/// A login as it was deleted: whose it was and on what device.
#[derive(Debug, sqlx::FromRow)]
pub struct Deleted {
    pub id: LoginId,
    pub user_id: UserId,
    /// Its User-Agent or device name.
    #[sqlx(rename = "user_agent")]
    pub device: String,
}

/// Deletes these logins (their tokens and refresh families go with them); the ones there were.
pub async fn delete(tx: &mut Tx, ids: &[LoginId]) -> Result<Vec<Deleted>, AppError> {
    let mut deleted = Vec::new();
    for chunk in ids.chunks(MAX_LIST) {
        let sql = format!("DELETE FROM logins WHERE id IN ({}) RETURNING id, user_id, user_agent", placeholders(chunk.len()));
        deleted.extend(query(&sql).bind_all(chunk).fetch_all::<Deleted>(&mut *tx).await?);
    }
    Ok(deleted)
}

/// The ids of the user's logins: `only` that one, or all but `except`.
pub async fn ids_of_user<'c>(on: impl Into<Exec<'c>>, user_id: UserId, only: Option<&LoginId>, except: Option<&LoginId>) -> Result<Vec<LoginId>, AppError> {
    let sql = "SELECT id FROM logins WHERE user_id = $1 AND ($2 IS NULL OR id = $2) AND id IS DISTINCT FROM $3";
    let rows: Vec<(LoginId,)> = query(sql).bind(user_id).bind(only).bind(except).fetch_all(on).await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// `WHERE` text true for logins within the lifetimes of their kind, given [`live_bounds`] as `$1..=$4`.
const LIVE: &str = "CASE client WHEN 'device' THEN created_at > $3 AND last_seen_at > $4 ELSE created_at > $1 AND last_seen_at > $2 END";

/// The earliest live creation and last-use times of browsers, then devices.
fn live_bounds(lifetimes: &LoginLifetimes, now: i64) -> [i64; 4] {
    let (browser, device) = (lifetimes.browser, lifetimes.device);
    [now - browser.absolute_secs, now - browser.idle_secs, now - device.absolute_secs, now - device.idle_secs]
}

/// The user's logins still within their lifetimes, most recently used first.
pub async fn list_live(db: &Db, user_id: UserId, lifetimes: &LoginLifetimes, now: i64) -> Result<Vec<LoginRecord>, AppError> {
    let sql = format!(
        "SELECT id, method, client, user_agent, created_at, last_seen_at FROM logins
          WHERE user_id = $5 AND {LIVE} ORDER BY last_seen_at DESC, created_at DESC"
    );
    let [a, b, c, d] = live_bounds(lifetimes, now);
    Ok(query(&sql).bind(a).bind(b).bind(c).bind(d).bind(user_id).fetch_all(db).await?)
}

/// Live logins by client kind (`browser`, `device`).
pub async fn count_live(db: &Db, lifetimes: &LoginLifetimes, now: i64) -> Result<Vec<(String, i64)>, AppError> {
    let sql = format!("SELECT CAST(client AS TEXT), count(*) FROM logins WHERE {LIVE} GROUP BY client");
    let [a, b, c, d] = live_bounds(lifetimes, now);
    Ok(query(&sql).bind(a).bind(b).bind(c).bind(d).fetch_all(db).await?)
}

/// Up to `limit` logins past either lifetime of their kind.
pub async fn expired(db: &Db, lifetimes: &LoginLifetimes, now: i64, limit: i64) -> Result<Vec<LoginId>, AppError> {
    let sql = format!("SELECT id FROM logins WHERE NOT ({LIVE}) LIMIT $5");
    let [a, b, c, d] = live_bounds(lifetimes, now);
    let rows: Vec<(LoginId,)> = query(&sql).bind(a).bind(b).bind(c).bind(d).bind(limit).fetch_all(db).await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Records a finished sign-in's marker; false when it was already there (a replay).
pub async fn mark_used(db: &Db, marker: &str, expires_at: i64) -> Result<bool, AppError> {
    let sql = "INSERT INTO used_logins (marker, expires_at) VALUES ($1, $2) ON CONFLICT (marker) DO NOTHING";
    Ok(query(sql).bind(marker).bind(expires_at).execute(db).await? == 1)
}

/// Forgets markers no pending login can need any more (run periodically).
pub async fn delete_used_markers(db: &Db, now: i64) -> Result<u64, AppError> {
    Ok(query("DELETE FROM used_logins WHERE expires_at < $1").bind(now).execute(db).await?)
}

/// The sealed tokens of a login, with the logi user and session they were issued in
/// (`None` keeps the stored ones: a refresh).
pub struct SealedTokens<'a> {
    pub sealed: &'a [u8],
    pub logi_sub: Option<&'a str>,
    pub logi_sid: Option<&'a str>,
}

/// Keeps a login's sealed tokens (or replaces them).
pub async fn keep_tokens<'c>(on: impl Into<Exec<'c>>, login_id: &LoginId, tokens: &SealedTokens<'_>, now: i64) -> Result<(), AppError> {
    let sql = "INSERT INTO login_tokens (login_id, sealed, updated_at, logi_sub, logi_sid) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (login_id) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at,
            logi_sid = CASE WHEN excluded.logi_sub IS NULL THEN login_tokens.logi_sid ELSE excluded.logi_sid END,
            logi_sub = COALESCE(excluded.logi_sub, login_tokens.logi_sub)";
    query(sql).bind(login_id).bind(tokens.sealed).bind(now).bind(tokens.logi_sub).bind(tokens.logi_sid).execute(on).await?;
    Ok(())
}

/// A login's sealed tokens. In a transaction from [`Db::begin_row_locks`] the row stays
/// locked until it ends (Postgres); without one it is a plain read.
pub async fn sealed_tokens(db: &Db, row_lock: Option<&mut Tx>, login_id: &LoginId) -> Result<Option<Vec<u8>>, AppError> {
    Ok(match row_lock {
        Some(tx) => query("SELECT sealed FROM login_tokens WHERE login_id = $1 FOR UPDATE").bind(login_id).scalar_optional(tx).await?,
        None => query("SELECT sealed FROM login_tokens WHERE login_id = $1").bind(login_id).scalar_optional(db).await?,
    })
}

/// The ones of these logins still alive: rows that exist and are within their lifetimes.
pub async fn live_among(db: &Db, ids: &[LoginId], lifetimes: &LoginLifetimes, now: i64) -> Result<Vec<LoginId>, AppError> {
    let mut live = Vec::new();
    for chunk in ids.chunks(MAX_LIST) {
        let sql = format!("SELECT id, client, created_at, last_seen_at FROM logins WHERE id IN ({})", placeholders(chunk.len()));
        let rows = query(&sql).bind_all(chunk).fetch_all::<(LoginId, Client, i64, i64)>(db).await?;
        live.extend(
            rows.into_iter().filter_map(|(id, client, created_at, last_seen_at)| lifetimes.of(client).cover(created_at, last_seen_at, now).then_some(id)),
        );
    }
    Ok(live)
}

/// Deletes the sealed tokens of these logins (which are ending) and returns them, for the
/// revocation of their logi refresh tokens.
pub async fn take_sealed_tokens(tx: &mut Tx, ids: &[LoginId]) -> Result<Vec<(LoginId, Vec<u8>)>, AppError> {
    let mut found = Vec::new();
    for chunk in ids.chunks(MAX_LIST) {
        let sql = format!("DELETE FROM login_tokens WHERE login_id IN ({}) RETURNING login_id, sealed", placeholders(chunk.len()));
        found.extend(query(&sql).bind_all(chunk).fetch_all::<(LoginId, Vec<u8>)>(&mut *tx).await?);
    }
    Ok(found)
}

/// The logins holding tokens of a logi session (`sid`) and/or logi user (`sub`; at least
/// one is given), with their sealed tokens.
pub async fn sealed_tokens_of_logi_session(tx: &mut Tx, sub: Option<&str>, sid: Option<&str>) -> Result<Vec<(LoginId, Vec<u8>)>, AppError> {
    let sql = "SELECT login_id, sealed FROM login_tokens WHERE ($1 IS NULL OR logi_sid = $1) AND ($2 IS NULL OR logi_sub = $2)";
    Ok(query(sql).bind(sid).bind(sub).fetch_all(tx).await?)
}

#[derive(sqlx::FromRow)]
struct UserRow {
    sub: Option<String>,
    anonymous: bool,
    email: Option<String>,
    name: Option<String>,
}

/// A user as the browser sees it, with the subject of its logi identity if one is linked.
pub async fn find_user(db: &Db, user_id: UserId) -> Result<Option<User>, AppError> {
    let sql = "SELECT (SELECT subject FROM identities WHERE user_id = users.id ORDER BY linked_at LIMIT 1) AS sub,
                      anonymous, email, name
                 FROM users WHERE id = $1";
    let row: Option<UserRow> = query(sql).bind(user_id).fetch_optional(db).await?;
    Ok(row.map(|UserRow { sub, anonymous, email, name }| User { sub, anonymous, email, name }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::db::temp_pool;

    /// More ids than one `IN (…)` list holds: every chunk is read and deleted, unknown ids are skipped.
    #[tokio::test]
    async fn ending_many_logins_reads_and_deletes_them_in_chunks() {
        let (_dir, db) = temp_pool().await;
        query("INSERT INTO users (id) VALUES (1)").execute(&db).await.unwrap();
        let logins: Vec<Login> = (0..MAX_LIST * 2 + 3).map(|_| Login { id: LoginId::random(), user_id: UserId(1) }).collect();
        let mut tx = db.begin().await.unwrap();
        for (n, login) in logins.iter().enumerate() {
            insert(&mut tx, login, &NewLogin { method: Method::Logi, client: Client::Browser, device: "test", authentication: &Authentication::default() }, 0)
                .await
                .unwrap();
            if n % 2 == 0 {
                let sealed = SealedTokens { sealed: login.id.as_str().as_bytes(), logi_sub: None, logi_sid: None };
                keep_tokens(&mut tx, &login.id, &sealed, 0).await.unwrap();
            }
        }
        tx.commit().await.unwrap();
        let mut ids: Vec<LoginId> = logins.iter().map(|login| login.id.clone()).collect();
        ids.push(LoginId::random());

        let mut tx = db.begin().await.unwrap();
        let sealed = take_sealed_tokens(&mut tx, &ids).await.unwrap();
        assert_eq!(sealed.len(), MAX_LIST + 2);
        assert!(sealed.iter().all(|(id, sealed)| id.as_str().as_bytes() == sealed.as_slice()), "a login got another's tokens");
        assert_eq!(delete(&mut tx, &ids).await.unwrap().len(), logins.len());
        tx.commit().await.unwrap();
        let left: i64 = query("SELECT count(*) FROM logins").scalar(&db).await.unwrap();
        assert_eq!(left, 0);
    }
}
