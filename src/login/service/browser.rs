//! The browser side of [`Logins`]: a login held by a browser session's cookie, and the
//! logins in progress that its sealed cookie carries until their callback.

use super::{EndReason, Logins};
use crate::activity::{Event, Events, Occurrence};
use crate::ids::{LoginId, UserId};
use crate::login::pending::{PendingError, PendingLogin, LIFETIME_SECS};
use crate::login::session::BrowserSession;
use crate::login::step_up::Authentication;
use crate::login::store::{self, Client, Login, Method, NewLogin};
use crate::server::unix_now as now;
use crate::server::AppError;
use axum::http::{HeaderMap, HeaderValue};

impl Logins {
    /// Signs `user_id` in on this browser: the login it had ends, the session id is
    /// renewed (no fixation) and a new login row is written.
    pub async fn sign_in(
        &self,
        session: &BrowserSession,
        user_id: UserId,
        (method, authentication): (Method, &Authentication),
        user_agent: &str,
    ) -> Result<Login, AppError> {
        if let Some(previous) = session.login_id().await? {
            self.end(&[previous], EndReason::Replaced).await?;
        }
        let login = Login { id: LoginId::random(), user_id };
        let device = store::sanitized_user_agent(user_agent);
        let mut tx = self.db.begin().await?;
        store::insert(&mut tx, &login, &NewLogin { method, client: Client::Browser, device: &device, authentication }, now()).await?;
        let mut events = Events::default();
        events.record(&mut tx, Occurrence { user_id, login_id: Some(&login.id), device: Some(&device), event: Event::SignIn(method.into()) }).await?;
        events.commit(tx).await?;
        session.start(&login.id).await?;
        Ok(login)
    }

    /// The live login of this browser session. A login that ended or outlived its idle
    /// or absolute lifetime reads as signed out, and the browser session is deleted.
    pub async fn current(&self, session: &BrowserSession) -> Result<Option<Login>, AppError> {
        let Some(id) = session.login_id().await? else { return Ok(None) };
        let Some(row) = self.live(&id, Client::Browser, now()).await? else {
            session.end().await?;
            return Ok(None);
        };
        Ok(Some(Login { id, user_id: row.user_id }))
    }

    /// Signs this browser out: its login (as the request's extractor found it) ends for
    /// `reason`, and the browser session is deleted. True when that login held logi's
    /// tokens (it signed in with, or linked, logi), so logi's own session may end too.
    pub async fn sign_out(&self, session: &BrowserSession, login: Option<&Login>, reason: EndReason) -> Result<bool, AppError> {
        let held_logi_tokens = match login {
            Some(login) => self.end(std::slice::from_ref(&login.id), reason).await?.holding_logi_tokens > 0,
            None => false,
        };
        session.end().await?;
        Ok(held_logi_tokens)
    }

    /// The `Set-Cookie` that remembers one more login in progress (nothing is stored here).
    pub fn start_pending(&self, request: &HeaderMap, login: PendingLogin) -> HeaderValue {
        self.pending.add(request, login, now())
    }

    /// The login in progress this callback's `state` belongs to, used at most once, and
    /// the `Set-Cookie` for the logins still pending in this browser.
    pub async fn take_pending(&self, request: &HeaderMap, state: Option<&str>) -> Result<(Result<PendingLogin, PendingError>, Option<HeaderValue>), AppError> {
        let (taken, rest) = self.pending.take(request, state, now());
        let Ok(login) = taken else { return Ok((taken, rest)) };
        let first_use = store::mark_used(&self.db, &login.used_marker(), login.started_at + LIFETIME_SECS).await?;
        Ok((if first_use { Ok(login) } else { Err(PendingError::Expired) }, rest))
    }
}
