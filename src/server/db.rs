//! The database: SQLite by default (one file, WAL, foreign keys on) or Postgres (what
//! several replicas share). Migrations of each backend are embedded in the binary and
//! applied at startup (on Postgres under sqlx's advisory lock, so replicas starting
//! together apply them once).
//!
//! One SQL text serves both (`$1` placeholders, times bound from Rust): features build a
//! [`Query`] and run it on a [`Db`] or a [`Tx`]; which backend it is stays in this file.

use crate::ids::{Issuer, LoginId, Subject, UserId};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow, Postgres};
use sqlx::sqlite::{Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Arguments, Database, Encode, FromRow, SqlitePool, Transaction, Type};
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("DATABASE_URL: must be a sqlite: or postgres:// URL")]
    UnknownBackend,
    #[error("DATABASE_URL: {0}")]
    Url(sqlx::Error),
    #[error("cannot create the database directory {path}: {source}")]
    Directory { path: String, source: std::io::Error },
    #[error("cannot open the database: {0}")]
    Connect(sqlx::Error),
    #[error("cannot apply migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// The longest a request waits for a pooled connection (a Postgres server that is down or
/// restarting answers within it: `503 database_unavailable`).
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a SQLite writer waits for the database's write lock.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Postgres cancels any one statement (an advisory lock wait included) after this long.
const POSTGRES_STATEMENT_TIMEOUT: &str = "10s";

pub static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
pub static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// A pool of one of the two backends.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A transaction of one of the two backends (see [`Db::begin_locked`]).
pub enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl Db {
    /// A transaction holding the write lock named `lock` until it ends, so writers of the
    /// same thing serialise, across replicas too: on SQLite the database's write lock
    /// (`BEGIN IMMEDIATE`), on Postgres a transaction-scoped advisory lock on the name.
    pub async fn begin_locked(&self, lock: &str) -> Result<Tx, sqlx::Error> {
        match self {
            Db::Sqlite(pool) => Ok(Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?)),
            Db::Postgres(pool) => {
                let mut tx = Tx::Postgres(pool.begin().await?);
                query("SELECT pg_advisory_xact_lock($1)").bind(lock_key(lock)).execute(&mut tx).await?;
                Ok(tx)
            }
        }
    }

    /// A plain transaction (for writes that must land together).
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        match self {
            Db::Sqlite(pool) => Ok(Tx::Sqlite(pool.begin().await?)),
            Db::Postgres(pool) => Ok(Tx::Postgres(pool.begin().await?)),
        }
    }

    /// A transaction that can hold row locks (`SELECT … FOR UPDATE`) for up to
    /// `lock_timeout`: Postgres only. SQLite has no row locks (its writers serialise on the
    /// database's lock), so there it is `None` and the caller reads without one.
    pub async fn begin_row_locks(&self, lock_timeout: Duration) -> Result<Option<Tx>, sqlx::Error> {
        let Db::Postgres(pool) = self else { return Ok(None) };
        let mut tx = Tx::Postgres(pool.begin().await?);
        // SET takes no placeholders; the number is ours.
        query(&format!("SET LOCAL lock_timeout = '{}ms'", lock_timeout.as_millis())).execute(&mut tx).await?;
        Ok(Some(tx))
    }

    /// One round trip to the database (the readiness probe).
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        query("SELECT 1").execute(self).await.map(drop)
    }
}

impl Tx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await,
            Tx::Postgres(tx) => tx.commit().await,
        }
    }
}

/// Where a [`Query`] runs: the pool, or a transaction the caller holds.
pub enum Exec<'c> {
    Pool(&'c Db),
    Tx(&'c mut Tx),
}

impl<'c> From<&'c Db> for Exec<'c> {
    fn from(db: &'c Db) -> Self {
        Self::Pool(db)
    }
}

impl<'c> From<&'c mut Tx> for Exec<'c> {
    fn from(tx: &'c mut Tx) -> Self {
        Self::Tx(tx)
    }
}

/// A reborrow, so one executor can run several queries in turn.
impl<'a> From<&'a mut Exec<'_>> for Exec<'a> {
    fn from(exec: &'a mut Exec<'_>) -> Self {
        match exec {
            Exec::Pool(db) => Exec::Pool(db),
            Exec::Tx(tx) => Exec::Tx(tx),
        }
    }
}

/// A value for one `$n` placeholder, bound the same way on both backends.
#[derive(Clone, Copy, Debug)]
pub enum Arg<'q> {
    Int(Option<i64>),
    Bool(bool),
    Text(Option<&'q str>),
    Bytes(Option<&'q [u8]>),
}

macro_rules! args_from {
    ($($ty:ty => |$v:ident| $arg:expr;)*) => {$(
        impl<'q> From<$ty> for Arg<'q> {
            fn from($v: $ty) -> Self {
                $arg
            }
        }
    )*};
}

args_from! {
    i64 => |v| Arg::Int(Some(v));
    Option<i64> => |v| Arg::Int(v);
    bool => |v| Arg::Bool(v);
    &'q str => |v| Arg::Text(Some(v));
    &'q String => |v| Arg::Text(Some(v));
    Option<&'q str> => |v| Arg::Text(v);
    Option<&'q String> => |v| Arg::Text(v.map(String::as_str));
    &'q Option<String> => |v| Arg::Text(v.as_deref());
    &'q bool => |v| Arg::Bool(*v);
    &'q [u8] => |v| Arg::Bytes(Some(v));
    &'q Vec<u8> => |v| Arg::Bytes(Some(v));
    Option<&'q [u8]> => |v| Arg::Bytes(v);
    UserId => |v| Arg::Int(Some(v.0));
    &'q LoginId => |v| Arg::Text(Some(v.as_str()));
    Option<&'q LoginId> => |v| Arg::Text(v.map(LoginId::as_str));
    &'q Issuer => |v| Arg::Text(Some(v.as_str()));
    &'q Subject => |v| Arg::Text(Some(v.as_str()));
}

/// A row type both backends can decode.
pub trait Row: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin {}
impl<T> Row for T where T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin {}

/// One SQL text (`$1` placeholders, times bound from Rust) with its arguments, run on
/// whichever backend this is: the only way features reach the database.
#[must_use = "a query does nothing until it runs"]
pub struct Query<'q> {
    sql: &'q str,
    args: Vec<Arg<'q>>,
}

pub fn query(sql: &str) -> Query<'_> {
    Query { sql, args: Vec::new() }
}

/// At most this many values go into one `IN (…)` list, well under either backend's
/// limit on placeholders; longer lists run in chunks.
pub const MAX_LIST: usize = 500;

/// `$1, $2, …, $n`: the placeholders of an `IN (…)` list of `n` values.
pub fn placeholders(n: usize) -> String {
    (1..=n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// Runs `$body` with `$ex` bound to the executor and `$args` to the encoded arguments of
/// the backend `$on` names.
macro_rules! on_backend {
    ($on:expr, $query:expr, |$ex:ident, $args:ident| $body:expr) => {
        match $on.into() {
            Exec::Pool(Db::Sqlite(pool)) => {
                let ($ex, $args) = (pool, arguments::<Sqlite>(&$query.args)?);
                $body
            }
            Exec::Pool(Db::Postgres(pool)) => {
                let ($ex, $args) = (pool, arguments::<Postgres>(&$query.args)?);
                $body
            }
            Exec::Tx(Tx::Sqlite(tx)) => {
                let ($ex, $args) = (&mut **tx, arguments::<Sqlite>(&$query.args)?);
                $body
            }
            Exec::Tx(Tx::Postgres(tx)) => {
                let ($ex, $args) = (&mut **tx, arguments::<Postgres>(&$query.args)?);
                $body
            }
        }
    };
}

impl<'q> Query<'q> {
    pub fn bind(mut self, value: impl Into<Arg<'q>>) -> Self {
        self.args.push(value.into());
        self
    }

    pub fn bind_all<V: Into<Arg<'q>>>(mut self, values: impl IntoIterator<Item = V>) -> Self {
        self.args.extend(values.into_iter().map(Into::into));
        self
    }

    /// Runs the statement; the number of rows it affected.
    pub async fn execute(self, on: impl Into<Exec<'_>>) -> Result<u64, sqlx::Error> {
        on_backend!(on, self, |ex, args| sqlx::query_with(self.sql, args).execute(ex).await.map(|done| done.rows_affected()))
    }

    pub async fn fetch_optional<T: Row>(self, on: impl Into<Exec<'_>>) -> Result<Option<T>, sqlx::Error> {
        on_backend!(on, self, |ex, args| sqlx::query_as_with(self.sql, args).fetch_optional(ex).await)
    }

    pub async fn fetch_one<T: Row>(self, on: impl Into<Exec<'_>>) -> Result<T, sqlx::Error> {
        on_backend!(on, self, |ex, args| sqlx::query_as_with(self.sql, args).fetch_one(ex).await)
    }

    pub async fn fetch_all<T: Row>(self, on: impl Into<Exec<'_>>) -> Result<Vec<T>, sqlx::Error> {
        on_backend!(on, self, |ex, args| sqlx::query_as_with(self.sql, args).fetch_all(ex).await)
    }

    /// The first column of the only row.
    pub async fn scalar<T: Send + Unpin>(self, on: impl Into<Exec<'_>>) -> Result<T, sqlx::Error>
    where
        (T,): Row,
    {
        self.fetch_one::<(T,)>(on).await.map(|(value,)| value)
    }

    /// The first column of the first row, if there is one.
    pub async fn scalar_optional<T: Send + Unpin>(self, on: impl Into<Exec<'_>>) -> Result<Option<T>, sqlx::Error>
    where
        (T,): Row,
    {
        Ok(self.fetch_optional::<(T,)>(on).await?.map(|(value,)| value))
    }
}

fn arguments<'q, DB: Database>(args: &[Arg<'q>]) -> Result<<DB as Database>::Arguments<'q>, sqlx::Error>
where
    Option<i64>: Encode<'q, DB> + Type<DB>,
    bool: Encode<'q, DB> + Type<DB>,
    Option<&'q str>: Encode<'q, DB> + Type<DB>,
    Option<&'q [u8]>: Encode<'q, DB> + Type<DB>,
{
    let mut out = <DB as Database>::Arguments::<'q>::default();
    for arg in args {
        match *arg {
            Arg::Int(value) => out.add(value),
            Arg::Bool(value) => out.add(value),
            Arg::Text(value) => out.add(value),
            Arg::Bytes(value) => out.add(value),
        }
        .map_err(sqlx::Error::Encode)?;
    }
    Ok(out)
}

/// True when `error` says the database cannot serve now rather than that a statement is
/// wrong: unreachable, restarting or shutting down, out of connections, full, read-only,
/// locked past its bound. Such a request is answered `503 database_unavailable` and works
/// again when the database does; sqlx tests a pooled connection before lending it, so
/// the pool recovers by itself.
pub fn is_outage(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(error) => {
            let postgres = error.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some();
            error.code().is_some_and(|code| is_outage_code(postgres, &code))
        }
        _ => false,
    }
}

fn is_outage_code(postgres: bool, code: &str) -> bool {
    if postgres {
        // 08 connection exception, 53 insufficient resources, 57P01-57P03 shutting down or
        // starting up, 25006 a read-only (standby) server, 55P03 a lock not granted in time.
        return code.starts_with("08") || code.starts_with("53") || matches!(code, "57P01" | "57P02" | "57P03" | "25006" | "55P03");
    }
    // SQLite's extended result code; its low byte is the primary code: BUSY, LOCKED,
    // READONLY, IOERR, FULL, CANTOPEN.
    code.parse::<i32>().is_ok_and(|extended| matches!(extended & 0xff, 5 | 6 | 8 | 10 | 13 | 14))
}

/// An advisory lock key: the first 8 bytes of the name's SHA-256.
fn lock_key(name: &str) -> i64 {
    let digest = super::crypto::sha256(name.as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// Opens the database named by `DATABASE_URL` (a SQLite file is created if missing) and
/// applies pending migrations.
pub async fn connect(database_url: &str) -> Result<Db, DbError> {
    if database_url.starts_with("sqlite:") {
        return connect_sqlite(database_url).await.map(Db::Sqlite);
    }
    if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        let options = PgConnectOptions::from_str(database_url).map_err(DbError::Url)?.options([("statement_timeout", POSTGRES_STATEMENT_TIMEOUT)]);
        let pool = PgPoolOptions::new().max_connections(16).acquire_timeout(ACQUIRE_TIMEOUT).connect_with(options).await.map_err(DbError::Connect)?;
        POSTGRES_MIGRATIONS.run(&pool).await?;
        return Ok(Db::Postgres(pool));
    }
    Err(DbError::UnknownBackend)
}

async fn connect_sqlite(database_url: &str) -> Result<SqlitePool, DbError> {
    let options = SqliteConnectOptions::from_str(database_url)
        .map_err(DbError::Url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(SQLITE_BUSY_TIMEOUT);
    create_parent_directory(&options)?;
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .before_acquire(|connection, _| Box::pin(out_of_any_transaction(connection)))
        .connect_with(options)
        .await
        .map_err(DbError::Connect)?;
    SQLITE_MIGRATIONS.run(&pool).await?;
    Ok(pool)
}

/// Whether a pooled SQLite connection may be handed out: not if sqlx still counts a
/// transaction on it. A `COMMIT` that fails with a full disk (or an I/O error) makes SQLite
/// roll the transaction back by itself; sqlx's `ROLLBACK` then fails and its count stays at
/// one, so every later `BEGIN IMMEDIATE` on that connection would fail with
/// `InvalidSavePointStatement` (a 500 for good). Such a connection is closed instead. The
/// ping lets a rollback still queued from a dropped transaction run before the second look.
async fn out_of_any_transaction(connection: &mut sqlx::SqliteConnection) -> Result<bool, sqlx::Error> {
    use sqlx::Connection;
    if !connection.is_in_transaction() {
        return Ok(true);
    }
    connection.ping().await?;
    Ok(!connection.is_in_transaction())
}

fn create_parent_directory(options: &SqliteConnectOptions) -> Result<(), DbError> {
    let file = options.get_filename();
    let in_memory = file.as_os_str().is_empty() || file.to_string_lossy().starts_with(":memory:");
    match file.parent() {
        Some(dir) if !in_memory && !dir.as_os_str().is_empty() => {
            std::fs::create_dir_all(dir).map_err(|source| DbError::Directory { path: dir.display().to_string(), source })
        }
        _ => Ok(()),
    }
}

/// What only tests use (the `test-support` feature; never in the release binary).
#[cfg(any(test, feature = "test-support"))]
mod test_support {
    use super::{query, Db};

    /// Names a Postgres server (an admin URL) for the tests to run against instead of SQLite.
    pub const TEST_POSTGRES_VAR: &str = "LOGI_BFF_TEST_POSTGRES";

    impl Db {
        /// Runs one SQL statement as is, without arguments; the rows it affected.
        pub async fn execute(&self, sql: &str) -> Result<u64, sqlx::Error> {
            query(sql).execute(self).await
        }

        /// The first column of the first row of `sql`, as a whole number.
        pub async fn count(&self, sql: &str) -> Result<i64, sqlx::Error> {
            query(sql).scalar(self).await
        }

        pub fn is_postgres(&self) -> bool {
            matches!(self, Db::Postgres(_))
        }
    }

    /// The URL of a fresh, empty database of the backend under test — a SQLite file in
    /// `dir`, or a new database on the server named by [`TEST_POSTGRES_VAR`].
    pub async fn scratch_database_url(dir: &std::path::Path) -> Result<String, sqlx::Error> {
        let Ok(admin) = std::env::var(TEST_POSTGRES_VAR) else { return Ok(format!("sqlite://{}", dir.join("app.db").display())) };
        use sqlx::Connection;
        let name = format!("t_{}", hex::encode(rand::random::<[u8; 8]>()));
        let mut conn = sqlx::PgConnection::connect(&admin).await?;
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await?;
        let mut url = url::Url::parse(&admin).map_err(|e| sqlx::Error::Configuration(e.into()))?;
        url.set_path(&format!("/{name}"));
        Ok(url.to_string())
    }
}
#[cfg(any(test, feature = "test-support"))]
pub use test_support::{scratch_database_url, TEST_POSTGRES_VAR};

/// A migrated database of the backend under test in a fresh temporary directory (kept
/// while the `TempDir` lives).
#[cfg(test)]
pub async fn temp_pool() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = scratch_database_url(dir.path()).await.expect("a scratch database");
    let db = connect(&url).await.expect("a migrated test database");
    (dir, db)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn table_names(pool: &SqlitePool) -> Vec<String> {
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite%' ORDER BY name")
            .fetch_all(pool)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn migrations_create_the_schema_in_a_fresh_file_under_a_new_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/dir/app.db");
        let pool = connect_sqlite(&format!("sqlite://{}", path.display())).await.unwrap();
        assert!(path.exists());
        assert_eq!(
            table_names(&pool).await,
            [
                "account_events",
                "device_refresh_tokens",
                "identities",
                "login_tokens",
                "logins",
                "passwords",
                "sign_in_attempts",
                "signing_keys",
                "tower_sessions",
                "used_logins",
                "used_logout_tokens",
                "users"
            ]
        );
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&pool).await.unwrap();
        assert_eq!(journal, "wal");
    }

    #[tokio::test]
    async fn reopening_a_migrated_database_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("app.db").display());
        connect_sqlite(&url).await.unwrap().close().await;
        let pool = connect_sqlite(&url).await.unwrap();
        let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations").fetch_one(&pool).await.unwrap();
        assert_eq!(applied as usize, SQLITE_MIGRATIONS.iter().count());
    }

    #[tokio::test]
    async fn identities_are_unique_per_issuer_and_subject_and_go_with_their_user() {
        let dir = tempfile::tempdir().unwrap();
        let pool = connect_sqlite(&format!("sqlite://{}", dir.path().join("app.db").display())).await.unwrap();
        let user: i64 = sqlx::query_scalar("INSERT INTO users (name) VALUES ('a') RETURNING id").fetch_one(&pool).await.unwrap();
        let link = "INSERT INTO identities (user_id, issuer, subject) VALUES ($1, 'https://logi', 'sub-1')";
        sqlx::query(link).bind(user).execute(&pool).await.unwrap();
        assert!(sqlx::query(link).bind(user).execute(&pool).await.is_err(), "duplicate (issuer, subject) accepted");
        sqlx::query("DELETE FROM users WHERE id = $1").bind(user).execute(&pool).await.unwrap();
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM identities").fetch_one(&pool).await.unwrap();
        assert_eq!(left, 0);
    }

    /// The errors of a real SQLite file that is full or read-only are outages (503); a
    /// broken constraint or bad SQL is not.
    #[tokio::test]
    async fn a_full_or_read_only_sqlite_file_is_an_outage_and_a_bad_statement_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("app.db").display());
        let pool = connect_sqlite(&url).await.unwrap();
        let mut conn = pool.acquire().await.unwrap();
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count").fetch_one(&mut *conn).await.unwrap();
        sqlx::query(&format!("PRAGMA max_page_count = {pages}")).execute(&mut *conn).await.unwrap();
        let full = sqlx::query("INSERT INTO users (name) VALUES ($1)").bind("x".repeat(1 << 16)).execute(&mut *conn).await.unwrap_err();
        assert!(is_outage(&full), "{full:?}");
        let constraint = sqlx::query("INSERT INTO signing_keys (kid) VALUES (NULL)").execute(&pool).await.unwrap_err();
        assert!(!is_outage(&constraint), "{constraint:?}");
        let bad_sql = sqlx::query("SELECT nope FROM users").execute(&pool).await.unwrap_err();
        assert!(!is_outage(&bad_sql), "{bad_sql:?}");

        let read_only = SqlitePoolOptions::new().connect_with(SqliteConnectOptions::from_str(&url).unwrap().read_only(true)).await.unwrap();
        let refused = sqlx::query("INSERT INTO users (name) VALUES ('x')").execute(&read_only).await.unwrap_err();
        assert!(is_outage(&refused), "{refused:?}");
        let read: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&read_only).await.unwrap();
        assert_eq!(read, 0, "reads keep working");
        assert!(is_outage(&sqlx::Error::PoolTimedOut));
    }

    #[test]
    fn postgres_outage_codes_are_connection_shutdown_resource_and_standby_errors() {
        for code in ["08006", "08001", "57P01", "57P03", "53300", "25006", "55P03"] {
            assert!(is_outage_code(true, code), "{code}");
        }
        for code in ["23505", "42P01", "22001", "40001"] {
            assert!(!is_outage_code(true, code), "{code}");
        }
        assert!(is_outage_code(false, "5") && is_outage_code(false, "517") && is_outage_code(false, "1032") && !is_outage_code(false, "2067"));
    }

    #[tokio::test]
    async fn a_bad_database_url_is_a_clear_error() {
        let err = connect("mysql://nope").await.unwrap_err();
        assert!(err.to_string().starts_with("DATABASE_URL"), "{err}");
    }
}
