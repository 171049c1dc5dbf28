//! The database: SQLite by default (one file, WAL, foreign keys on) or Postgres (what
//! several replicas share). Migrations of each backend are embedded in the binary and
//! applied at startup (on Postgres under sqlx's advisory lock, so replicas starting
//! together apply them once).
//!
//! One SQL text serves both where it can (`$1` placeholders, times bound from Rust):
//! [`with_db!`] and [`with_tx!`] run the same query code on whichever backend this is.

use sqlx::postgres::{PgPool, PgPoolOptions, Postgres};
use sqlx::sqlite::{Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{SqlitePool, Transaction};
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

/// `with_db!(db, pool => expr)`: evaluates `expr` with `pool` bound to the `&SqlitePool`
/// or `&PgPool` inside `db` (an expression of type `&Db`): one query text, both backends.
#[macro_export]
macro_rules! with_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::server::db::Db::Sqlite($pool) => $body,
            $crate::server::db::Db::Postgres($pool) => $body,
        }
    };
}

/// `with_tx!(tx, conn => expr)`: the same for a `&mut Tx`; `conn` is the `&mut` connection.
#[macro_export]
macro_rules! with_tx {
    ($tx:expr, $conn:ident => $body:expr) => {
        match $tx {
            $crate::server::db::Tx::Sqlite(tx) => {
                let $conn = &mut **tx;
                $body
            }
            $crate::server::db::Tx::Postgres(tx) => {
                let $conn = &mut **tx;
                $body
            }
        }
    };
}

impl Db {
    /// A transaction holding the write lock named `lock` until it ends, so writers of the
    /// same thing serialise, across replicas too: on SQLite the database's write lock
    /// (`BEGIN IMMEDIATE`), on Postgres a transaction-scoped advisory lock on the name.
    pub async fn begin_locked(&self, lock: &str) -> Result<Tx, sqlx::Error> {
        match self {
            Db::Sqlite(pool) => Ok(Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?)),
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(lock_key(lock)).execute(&mut *tx).await?;
                Ok(Tx::Postgres(tx))
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

    /// Runs one SQL statement as is, without arguments (tests and maintenance); the rows it affected.
    pub async fn execute(&self, sql: &str) -> Result<u64, sqlx::Error> {
        with_db!(self, pool => sqlx::query(sql).execute(pool).await.map(|done| done.rows_affected()))
    }

    /// The first column of the first row of `sql`, as a whole number (tests and maintenance).
    pub async fn count(&self, sql: &str) -> Result<i64, sqlx::Error> {
        with_db!(self, pool => sqlx::query_scalar(sql).fetch_one(pool).await)
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
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
        let pool = PgPoolOptions::new().max_connections(16).connect(database_url).await.map_err(DbError::Connect)?;
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
        .busy_timeout(Duration::from_secs(5));
    create_parent_directory(&options)?;
    let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await.map_err(DbError::Connect)?;
    SQLITE_MIGRATIONS.run(&pool).await?;
    Ok(pool)
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

/// Names a Postgres server (an admin URL) for the tests to run against instead of SQLite.
pub const TEST_POSTGRES_VAR: &str = "LOGI_BFF_TEST_POSTGRES";

/// For tests: the URL of a fresh, empty database of the backend under test — a SQLite
/// file in `dir`, or a new database on the server named by [`TEST_POSTGRES_VAR`].
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

    #[tokio::test]
    async fn a_bad_database_url_is_a_clear_error() {
        let err = connect("mysql://nope").await.unwrap_err();
        assert!(err.to_string().starts_with("DATABASE_URL"), "{err}");
    }
}
