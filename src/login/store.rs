//! The `logins` table: one row per signed-in client, and the user view a login reads.

use super::User;
use crate::ids::{LoginId, UserId};
use crate::server::db::{Db, Tx};
use crate::server::AppError;
use crate::{with_db, with_tx};

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
}

impl LoginRow {
    pub fn is_live(&self, lifetimes: &LoginLifetimes, now: i64) -> bool {
        let Lifetimes { idle_secs, absolute_secs } = lifetimes.of(self.client);
        self.created_at > now - absolute_secs && self.last_seen_at > now - idle_secs
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

/// A new login. `user_agent` is a browser's User-Agent or a device's name, already sanitised.
pub async fn insert(tx: &mut Tx, id: &LoginId, user_id: UserId, (method, client): (Method, Client), user_agent: &str, now: i64) -> Result<(), AppError> {
    let sql = "INSERT INTO logins (id, user_id, method, client, user_agent, created_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6, $6)";
    with_tx!(tx, conn => sqlx::query(sql).bind(id).bind(user_id).bind(method.as_str()).bind(client.as_str()).bind(user_agent).bind(now).execute(conn).await.map(|done| done.rows_affected()))?;
    Ok(())
}

pub async fn find(db: &Db, id: &LoginId) -> Result<Option<LoginRow>, AppError> {
    let sql = "SELECT user_id, client, created_at, last_seen_at FROM logins WHERE id = $1";
    Ok(with_db!(db, pool => sqlx::query_as(sql).bind(id).fetch_optional(pool).await)?)
}

pub async fn touch(db: &Db, id: &LoginId, now: i64) -> Result<(), AppError> {
    with_db!(db, pool => sqlx::query("UPDATE logins SET last_seen_at = $1 WHERE id = $2").bind(now).bind(id).execute(pool).await.map(|done| done.rows_affected()))?;
    Ok(())
}

pub async fn delete(db: &Db, id: &LoginId) -> Result<(), AppError> {
    with_db!(db, pool => sqlx::query("DELETE FROM logins WHERE id = $1").bind(id).execute(pool).await.map(|done| done.rows_affected()))?;
    Ok(())
}

/// Deletes these logins in the caller's transaction.
pub async fn delete_in(tx: &mut Tx, ids: &[LoginId]) -> Result<(), AppError> {
    for id in ids {
        with_tx!(tx, conn => sqlx::query("DELETE FROM logins WHERE id = $1").bind(id).execute(conn).await.map(|done| done.rows_affected()))?;
    }
    Ok(())
}

/// Deletes one of the user's logins; false when the user has no such login.
pub async fn delete_of_user(db: &Db, user_id: UserId, id: &LoginId) -> Result<bool, AppError> {
    let sql = "DELETE FROM logins WHERE id = $1 AND user_id = $2";
    let deleted = with_db!(db, pool => sqlx::query(sql).bind(id).bind(user_id).execute(pool).await.map(|done| done.rows_affected()))?;
    Ok(deleted == 1)
}

/// Deletes every login of the user except `keep`; returns how many ended.
pub async fn delete_all_of_user(db: &Db, user_id: UserId, keep: Option<&LoginId>) -> Result<u64, AppError> {
    let sql = "DELETE FROM logins WHERE user_id = $1 AND id IS DISTINCT FROM $2";
    Ok(with_db!(db, pool => sqlx::query(sql).bind(user_id).bind(keep).execute(pool).await.map(|done| done.rows_affected()))?)
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
    Ok(with_db!(db, pool => sqlx::query_as(&sql).bind(a).bind(b).bind(c).bind(d).bind(user_id).fetch_all(pool).await)?)
}

/// Live logins by client kind (`browser`, `device`).
pub async fn count_live(db: &Db, lifetimes: &LoginLifetimes, now: i64) -> Result<Vec<(String, i64)>, AppError> {
    let sql = format!("SELECT CAST(client AS TEXT), count(*) FROM logins WHERE {LIVE} GROUP BY client");
    let [a, b, c, d] = live_bounds(lifetimes, now);
    Ok(with_db!(db, pool => sqlx::query_as(&sql).bind(a).bind(b).bind(c).bind(d).fetch_all(pool).await)?)
}

/// Deletes logins past either lifetime of their kind (run periodically).
pub async fn delete_expired(db: &Db, lifetimes: &LoginLifetimes, now: i64) -> Result<u64, AppError> {
    let sql = format!("DELETE FROM logins WHERE NOT ({LIVE})");
    let [a, b, c, d] = live_bounds(lifetimes, now);
    Ok(with_db!(db, pool => sqlx::query(&sql).bind(a).bind(b).bind(c).bind(d).execute(pool).await.map(|done| done.rows_affected()))?)
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
    let row: Option<UserRow> = with_db!(db, pool => sqlx::query_as(sql).bind(user_id).fetch_optional(pool).await)?;
    Ok(row.map(|UserRow { sub, anonymous, email, name }| User { sub, anonymous, email, name }))
}
