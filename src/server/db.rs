//! The SQLite pool: WAL, foreign keys on, migrations embedded in the binary.

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("DATABASE_URL: only sqlite: URLs are supported")]
    NotSqlite,
    #[error("DATABASE_URL: {0}")]
    Url(sqlx::Error),
    #[error("cannot create the database directory {path}: {source}")]
    Directory { path: String, source: std::io::Error },
    #[error("cannot open the database: {0}")]
    Connect(sqlx::Error),
    #[error("cannot apply migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Opens (creating if missing) the database and applies pending migrations.
pub async fn connect(database_url: &str) -> Result<SqlitePool, DbError> {
    if !database_url.starts_with("sqlite:") {
        return Err(DbError::NotSqlite);
    }
    let options = SqliteConnectOptions::from_str(database_url)
        .map_err(DbError::Url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5));
    create_parent_directory(&options)?;
    let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await.map_err(DbError::Connect)?;
    MIGRATIONS.run(&pool).await?;
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

/// A migrated database in a fresh temporary directory (kept while the `TempDir` lives).
#[cfg(test)]
pub async fn temp_pool() -> (tempfile::TempDir, SqlitePool) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let pool = connect(&format!("sqlite://{}", dir.path().join("test.db").display())).await.expect("a migrated test database");
    (dir, pool)
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
        let pool = connect(&format!("sqlite://{}", path.display())).await.unwrap();
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
        connect(&url).await.unwrap().close().await;
        let pool = connect(&url).await.unwrap();
        let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations").fetch_one(&pool).await.unwrap();
        assert_eq!(applied as usize, MIGRATIONS.iter().count());
    }

    #[tokio::test]
    async fn identities_are_unique_per_issuer_and_subject_and_go_with_their_user() {
        let dir = tempfile::tempdir().unwrap();
        let pool = connect(&format!("sqlite://{}", dir.path().join("app.db").display())).await.unwrap();
        let user: i64 = sqlx::query_scalar("INSERT INTO users (name) VALUES ('a') RETURNING id").fetch_one(&pool).await.unwrap();
        let link = "INSERT INTO identities (user_id, issuer, subject) VALUES (?, 'https://logi', 'sub-1')";
        sqlx::query(link).bind(user).execute(&pool).await.unwrap();
        assert!(sqlx::query(link).bind(user).execute(&pool).await.is_err(), "duplicate (issuer, subject) accepted");
        sqlx::query("DELETE FROM users WHERE id = $1").bind(user).execute(&pool).await.unwrap();
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM identities").fetch_one(&pool).await.unwrap();
        assert_eq!(left, 0);
    }

    #[tokio::test]
    async fn a_bad_database_url_is_a_clear_error() {
        let err = connect("postgres://nope").await.unwrap_err();
        assert!(err.to_string().starts_with("DATABASE_URL"), "{err}");
    }
}
