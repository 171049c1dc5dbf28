//! The user's account activity as they read it: the account page's "Recent activity" and
//! `GET /api/account/activity?before=<id>&limit=<n>` (a session cookie or a native app's
//! bearer; newest first, `limit` 1–200, default 50, `before` an event id to page on).

use serde::{Deserialize, Serialize};

/// The most events one page holds, and the account page's count.
pub const MAX_PAGE: i64 = 200;
pub const RECENT: i64 = 50;

/// One recorded event, readable. No secret is ever recorded, so none can be here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityEntry {
    pub id: i64,
    /// `sign_in`, `sign_in_failed`, `sign_out`, `login_ended`, `device_added`, …
    pub kind: String,
    /// Unix seconds.
    pub at: i64,
    /// "Signed in with logi", "Session ended (password changed)", …
    pub summary: String,
    /// "Chrome on Linux", or a native app's device name.
    pub device: Option<String>,
    pub client_ip: Option<String>,
    /// "2 minutes ago", at the time of the answer.
    pub ago: String,
    /// Something the user should look at (a copied device token).
    pub warning: bool,
}

#[cfg(feature = "ssr")]
pub use ssr::{page, routes};

#[cfg(feature = "ssr")]
mod ssr {
    use super::{ActivityEntry, MAX_PAGE, RECENT};
    use crate::activity::store::{self, EventRow};
    use crate::ids::UserId;
    use crate::login::{ApiLogin, Logins};
    use crate::server::db::Db;
    use crate::server::{json_error, no_store, unix_now, AppError};
    use axum::extract::{FromRef, RawQuery, State};
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};
    use axum::routing::get;
    use axum::{Json, Router};
    use std::sync::Arc;

    pub fn routes<S>() -> Router<S>
    where
        Arc<Logins>: FromRef<S>,
        Db: FromRef<S>,
        S: Clone + Send + Sync + 'static,
    {
        Router::new().route("/api/account/activity", get(activity))
    }

    /// A page of the user's events, newest first, `before` an event id.
    pub async fn page(db: &Db, user_id: UserId, before: Option<i64>, limit: i64) -> Result<Vec<ActivityEntry>, AppError> {
        let now = unix_now();
        Ok(store::page(db, user_id, before, limit).await?.into_iter().map(|row| entry(row, now)).collect())
    }

    #[derive(serde::Serialize)]
    struct Page {
        events: Vec<ActivityEntry>,
        /// The `before` of the next page; `null` on the last one.
        next_before: Option<i64>,
    }

    async fn activity(State(db): State<Db>, found: ApiLogin, RawQuery(query): RawQuery) -> Result<Response, AppError> {
        let Some(login) = found.login else { return Ok(json_error(StatusCode::UNAUTHORIZED, "not_signed_in")) };
        let Some((before, limit)) = paging(query.as_deref().unwrap_or_default()) else {
            return Ok(json_error(StatusCode::BAD_REQUEST, "invalid_request"));
        };
        let events = page(&db, login.user_id, before, limit).await?;
        let next_before = (events.len() as i64 == limit).then(|| events.last().map(|entry| entry.id)).flatten();
        Ok(no_store(Json(Page { events, next_before }).into_response()))
    }

    /// `before` (a positive id) and `limit` (1–200), each at most once; nothing else.
    fn paging(query: &str) -> Option<(Option<i64>, i64)> {
        let (mut before, mut limit) = (None, None);
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let slot = match name.as_ref() {
                "before" => &mut before,
                "limit" => &mut limit,
                _ => return None,
            };
            if slot.is_some() {
                return None;
            }
            *slot = Some(value.parse::<i64>().ok()?);
        }
        let limit = limit.unwrap_or(RECENT);
        ((1..=MAX_PAGE).contains(&limit) && before.is_none_or(|id| id > 0)).then_some((before, limit))
    }

    fn entry(row: EventRow, now: i64) -> ActivityEntry {
        let detail: serde_json::Value = serde_json::from_str(&row.detail).unwrap_or_default();
        let field = |name: &str| detail.get(name).and_then(serde_json::Value::as_str).unwrap_or_default().to_owned();
        ActivityEntry {
            summary: summary(&row.kind, &field("method"), &field("reason")),
            warning: row.kind == "refresh_reuse_detected",
            device: row.device.map(|device| crate::accounts::ssr::readable_device(&device)),
            ago: ago(now - row.at),
            id: row.id,
            kind: row.kind,
            at: row.at,
            client_ip: row.client_ip,
        }
    }

    fn summary(kind: &str, method: &str, reason: &str) -> String {
        let text = match (kind, method) {
            ("sign_in", "logi") => "Signed in with logi",
            ("sign_in", "password") => "Signed in with a password",
            ("sign_in", "native") => "Signed in from an app with logi",
            ("sign_in_failed", _) => "Wrong password entered",
            ("sign_out", _) => "Signed out",
            ("device_added", _) => "App device added",
            ("refresh_reuse_detected", _) => "A device's token was copied and used twice: that device was signed out",
            ("password_set", _) => "Password set",
            ("password_changed", _) => "Password changed",
            ("identity_linked", _) => "logi account linked",
            ("identity_unlinked", _) => "logi account unlinked",
            ("step_up", _) => "Signed in again with a stronger method",
            ("login_ended", _) => {
                return format!(
                    "Session ended ({})",
                    match reason {
                        "by_user" => "ended from another device",
                        "everywhere" => "signed out everywhere",
                        "password_change" => "password changed",
                        "backchannel_logout" => "signed out at logi",
                        "refresh_reuse" => "token reuse",
                        "expired" => "expired",
                        "logi_refused" => "logi refused to renew it",
                        "replaced" => "signed in again",
                        _ => "ended",
                    }
                )
            }
            _ => kind,
        };
        text.to_owned()
    }

    /// "just now", "2 minutes ago", "3 hours ago", "5 days ago".
    fn ago(seconds: i64) -> String {
        let plural = |n: i64, unit: &str| format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" });
        match seconds {
            ..60 => "just now".to_owned(),
            60..3600 => plural(seconds / 60, "minute"),
            3600..86_400 => plural(seconds / 3600, "hour"),
            _ => plural(seconds / 86_400, "day"),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn paging_takes_before_and_a_bounded_limit_once_each() {
            assert_eq!(paging(""), Some((None, RECENT)));
            assert_eq!(paging("before=17&limit=200"), Some((Some(17), 200)));
            for bad in ["limit=0", "limit=201", "limit=-1", "limit=x", "before=0", "before=-3", "before=1&before=2", "limit=1&limit=1", "other=1", "before="] {
                assert_eq!(paging(bad), None, "{bad}");
            }
        }

        #[test]
        fn times_read_as_ago() {
            assert_eq!(ago(5), "just now");
            assert_eq!(ago(120), "2 minutes ago");
            assert_eq!(ago(3600), "1 hour ago");
            assert_eq!(ago(3 * 86_400 + 5), "3 days ago");
        }
    }
}
