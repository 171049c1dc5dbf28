//! The account activity record: what happened to an account (`account_events`). Each
//! event is written by the change it records, in that change's transaction, so neither
//! exists without the other; it is counted in metrics and logged only once the
//! transaction committed ([`Events::commit`]). Users page their own record; the sweeper
//! deletes events older than `ACTIVITY_RETENTION_DAYS`.

pub mod store;

use crate::ids::{LoginId, UserId};
use crate::server::db::{Db, Tx};
use crate::server::{unix_now as now, AppError};

/// How someone signed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignInMethod {
    Logi,
    Password,
    /// A native app's exchange of a logi authorization (a device).
    Native,
}

/// Why a login ends: the event it leaves (`sign_out` when the client signed itself out,
/// else `login_ended` with this reason) and whether its logi refresh token is still worth
/// revoking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// The client signed itself out.
    SignedOut,
    /// The user ended it from another client.
    ByUser,
    /// The browser signed in again; the login it had is replaced.
    Replaced,
    /// Past its idle or absolute lifetime.
    Expired,
    /// logi refused its refresh token.
    Refused,
    /// One of our refresh tokens was used twice: two parties hold the device's family.
    Reused,
    /// The user asked to sign out everywhere.
    Everywhere,
    /// The password changed: every other login ends.
    PasswordChanged,
    /// logi's back-channel logout named its logi session or user.
    LogiLogout,
}

impl EndReason {
    /// logi already refused a refused login's refresh token.
    pub fn revokes(self) -> bool {
        self != Self::Refused
    }
}

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    SignIn(SignInMethod),
    /// A wrong password for an existing account.
    SignInFailed,
    /// A login ended; `sign_out` when its own client ended it.
    LoginEnded(EndReason),
    DeviceAdded,
    RefreshReuseDetected,
    PasswordSet,
    PasswordChanged,
    IdentityLinked,
    IdentityUnlinked,
    /// A login signed in at logi again, stronger or more recently (an API required it).
    StepUp,
}

impl Event {
    pub fn kind(self) -> &'static str {
        match self {
            Self::SignIn(_) => "sign_in",
            Self::SignInFailed => "sign_in_failed",
            Self::LoginEnded(EndReason::SignedOut) => "sign_out",
            Self::LoginEnded(_) => "login_ended",
            Self::DeviceAdded => "device_added",
            Self::RefreshReuseDetected => "refresh_reuse_detected",
            Self::PasswordSet => "password_set",
            Self::PasswordChanged => "password_changed",
            Self::IdentityLinked => "identity_linked",
            Self::IdentityUnlinked => "identity_unlinked",
            Self::StepUp => "step_up",
        }
    }

    /// The event's detail object: names from a fixed vocabulary, never a secret.
    fn detail(self) -> &'static str {
        match self {
            Self::SignIn(SignInMethod::Logi) => r#"{"method":"logi"}"#,
            Self::SignIn(SignInMethod::Password) | Self::SignInFailed => r#"{"method":"password"}"#,
            Self::SignIn(SignInMethod::Native) => r#"{"method":"native"}"#,
            Self::LoginEnded(reason) => match reason {
                EndReason::SignedOut => "{}",
                EndReason::ByUser => r#"{"reason":"by_user"}"#,
                EndReason::Replaced => r#"{"reason":"replaced"}"#,
                EndReason::Expired => r#"{"reason":"expired"}"#,
                EndReason::Refused => r#"{"reason":"logi_refused"}"#,
                EndReason::Reused => r#"{"reason":"refresh_reuse"}"#,
                EndReason::Everywhere => r#"{"reason":"everywhere"}"#,
                EndReason::PasswordChanged => r#"{"reason":"password_change"}"#,
                EndReason::LogiLogout => r#"{"reason":"backchannel_logout"}"#,
            },
            _ => "{}",
        }
    }
}

/// One event about a user, with the login it concerns and that login's device.
pub struct Occurrence<'a> {
    pub user_id: UserId,
    pub login_id: Option<&'a LoginId>,
    /// The login's User-Agent or device name, as stored with it; `None` looks it up (an
    /// event about a login that is gone has none).
    pub device: Option<&'a str>,
    pub event: Event,
}

impl<'a> Occurrence<'a> {
    /// An event the user caused while signed in with this login.
    pub fn by(user_id: UserId, login_id: &'a LoginId, event: Event) -> Self {
        Self { user_id, login_id: Some(login_id), device: None, event }
    }
}

/// The events written in one transaction, announced (metrics, a log line each) when
/// [`Events::commit`] committed it.
#[must_use = "commit the transaction with Events::commit"]
#[derive(Default)]
pub struct Events(Vec<(UserId, Option<LoginId>, Event)>);

impl Events {
    /// Writes the event in `tx`; the request being served gives the client address.
    pub async fn record(&mut self, tx: &mut Tx, occurrence: Occurrence<'_>) -> Result<(), AppError> {
        let client = crate::server::request_context::with_current(|request| request.client()).flatten().map(|ip| ip.to_string());
        store::insert(tx, &occurrence, client.as_deref(), now()).await?;
        self.0.push((occurrence.user_id, occurrence.login_id.cloned(), occurrence.event));
        Ok(())
    }

    /// An event that records no change of its own (a failed sign-in), in a transaction of its own.
    pub async fn record_alone(db: &Db, occurrence: Occurrence<'_>) -> Result<(), AppError> {
        let mut events = Self::default();
        let mut tx = db.begin().await?;
        events.record(&mut tx, occurrence).await?;
        events.commit(tx).await
    }

    /// Commits the transaction the events were written in; then each is counted by kind and
    /// logged for operators who ship logs.
    pub async fn commit(self, tx: Tx) -> Result<(), AppError> {
        tx.commit().await?;
        for (user_id, login_id, event) in self.0 {
            ::metrics::counter!("logi_bff_account_events_total", "kind" => event.kind()).increment(1);
            tracing::info!(target: "logi_bff::activity", kind = event.kind(), user_id = user_id.0, login_id = login_id.as_ref().map(LoginId::as_str), detail = event.detail(), "account event");
        }
        Ok(())
    }
}
