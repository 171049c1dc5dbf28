//! The device side of [`Logins`]: a native app's login, held by our own tokens instead
//! of a cookie (a short ES256 access token and a rotating refresh-token family).

use super::{EndReason, Logins};
use crate::activity::{Event, Events, Occurrence, SignInMethod};
use crate::ids::{LoginId, UserId};
use crate::login::device::refresh::{self, Rotation};
use crate::login::device::{DeviceTokens, Devices};
use crate::login::step_up::Authentication;
use crate::login::store::{self, Client, Login, Method, NewLogin};
use crate::login::tokens::{HeldTokens, LogiSession, TokenSet};
use crate::server::db::Tx;
use crate::server::unix_now;
use crate::server::AppError;
use secrecy::SecretString;

const UNNAMED_DEVICE: &str = "Native app";

/// A device's name as the logins list shows it: one line, bounded, never empty.
fn device_name(raw: Option<&str>) -> String {
    let name = store::sanitized_user_agent(raw.unwrap_or_default().trim());
    if name.trim().is_empty() {
        UNNAMED_DEVICE.to_owned()
    } else {
        name
    }
}

impl Logins {
    pub fn devices(&self) -> &Devices {
        &self.devices
    }

    /// Starts a device login for `user_id` within the caller's transaction: the login row,
    /// logi's tokens sealed under it, the first refresh token of its family, and the
    /// `sign_in` and `device_added` events (the caller commits its transaction with them).
    pub async fn start_device(
        &self,
        tx: &mut Tx,
        user_id: UserId,
        name: Option<&str>,
        logi: &TokenSet,
        (session, authentication): (&LogiSession, &Authentication),
    ) -> Result<(Login, DeviceTokens, Events), AppError> {
        let now = unix_now();
        let login = Login { id: LoginId::random(), user_id };
        let device = device_name(name);
        store::insert(tx, &login, &NewLogin { method: Method::Logi, client: Client::Device, device: &device, authentication }, now).await?;
        self.tokens.keep(&mut *tx, &login.id, &HeldTokens::from_grant(logi.clone()), Some(session)).await?;
        let refresh_token = refresh::start_family(tx, &login.id, now).await?;
        let mut events = Events::default();
        for event in [Event::SignIn(SignInMethod::Native), Event::DeviceAdded] {
            events.record(tx, Occurrence { user_id, login_id: Some(&login.id), device: Some(&device), event }).await?;
        }
        let tokens = self.device_tokens(&login, refresh_token, now, now)?;
        Ok((login, tokens, events))
    }

    fn device_tokens(&self, login: &Login, refresh_token: SecretString, created_at: i64, now: i64) -> Result<DeviceTokens, AppError> {
        let lifetimes = self.lifetimes.device;
        let (access_token, expires_in) = self.devices.access_token(login, now)?;
        Ok(DeviceTokens { access_token, expires_in, refresh_token, refresh_expires_in: lifetimes.idle_secs.min(created_at + lifetimes.absolute_secs - now) })
    }

    /// `grant_type=refresh_token`: a new pair for a live device login, or `None`
    /// (`invalid_grant`). Reuse of a rotated token ends the device login.
    pub async fn refresh_device(&self, presented: &str) -> Result<Option<DeviceTokens>, AppError> {
        let now = unix_now();
        let (login_id, token) = match refresh::rotate(&self.db, presented, now).await? {
            Rotation::Rotated { login_id, token } => (login_id, token),
            Rotation::Reused { login_id } => {
                tracing::warn!(login = %login_id, "a rotated refresh token was used again; ending the device login");
                self.end(&[login_id], EndReason::Reused).await?;
                return Ok(None);
            }
            Rotation::Unknown => return Ok(None),
        };
        let Some(row) = self.live(&login_id, Client::Device, now).await? else { return Ok(None) };
        let login = Login { id: login_id, user_id: row.user_id };
        self.device_tokens(&login, token, row.created_at, now).map(Some)
    }

    /// RFC 7009: ends the device login the refresh token belongs to (any token of its
    /// family). Unknown tokens are ignored.
    pub async fn revoke_device(&self, presented: &str) -> Result<(), AppError> {
        if let Some(login_id) = refresh::family_of(&self.db, presented).await? {
            self.end(&[login_id], EndReason::SignedOut).await?;
        }
        Ok(())
    }

    /// The live device login a bearer access token stands for; `Err` with the reason
    /// (for the log) when the token is not valid or its login ended.
    pub async fn bearer(&self, token: &str) -> Result<Result<Login, &'static str>, AppError> {
        let now = unix_now();
        let claimed = match self.devices.verify(&self.db, token, now).await? {
            Ok(claimed) => claimed,
            Err(why) => return Ok(Err(why)),
        };
        match self.live(&claimed.id, Client::Device, now).await? {
            Some(row) if row.user_id == claimed.user_id => Ok(Ok(claimed)),
            _ => Ok(Err("the device login ended")),
        }
    }

    /// Forgets rotated refresh tokens older than a device's idle lifetime (run periodically).
    pub(super) async fn sweep_devices(&self, now: i64) -> Result<u64, AppError> {
        self.devices.maintain_keys(&self.db, now).await?;
        refresh::forget_rotated(&self.db, now - self.lifetimes.device.idle_secs).await
    }
}
