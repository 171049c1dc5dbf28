//! `/account`: the profile, the sign-in methods (password, logi), the sessions and the recent activity,
//! with every change as a form that also works without JavaScript.

use super::notices::{AccountNotice, AuthErrorNotice, FormError};
use crate::accounts::activity::ActivityEntry;
use crate::accounts::{load_account, Account, ActiveSession, ChangePassword, EndSession, LinkedLogi, SetPassword, SignOutEverywhere, UnlinkLogi};
use leptos::prelude::*;
use leptos_router::components::Redirect;

#[component]
pub fn AccountPage() -> impl IntoView {
    // Every action ends in a redirect to `?notice=…` (a full page load), which renders
    // the page again with fresh data.
    let account = Resource::new(|| (), |_| load_account());
    view! {
        <AuthErrorNotice/>
        <AccountNotice/>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match account.await {
                    Ok(Some(account)) => view! { <AccountDetails account/> }.into_any(),
                    // Signed out: to the sign-in page, and back here afterwards.
                    Ok(None) => view! { <Redirect path="/signin?return_to=%2Faccount"/> }.into_any(),
                    Err(error) => view! { <p class="error" role="alert">{error.to_string()}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn AccountDetails(account: Account) -> impl IntoView {
    let Account { user, password_email, logi, logi_enabled, sessions, activity } = account;
    let has_password = password_email.is_some();
    view! {
        <section class="card">
            <h1>"Your account"</h1>
            <p>"Signed in as " <strong data-testid="display-name">{user.display_name()}</strong></p>
            <dl>
                <dt>"Name"</dt> <dd data-testid="profile-name">{user.name.unwrap_or_else(|| "—".to_owned())}</dd>
                <dt>"Email"</dt> <dd data-testid="profile-email">{user.email.unwrap_or_else(|| "—".to_owned())}</dd>
            </dl>
        </section>
        <section class="card">
            <h2>"Sign-in methods"</h2>
            {match password_email {
                Some(email) => view! { <PasswordMethod email/> }.into_any(),
                None => view! { <NoPassword/> }.into_any(),
            }}
            {logi_enabled.then(|| view! { <LogiMethod logi has_password/> })}
        </section>
        <Sessions sessions/>
        <RecentActivity activity/>
    }
    // Erased: the nested view types otherwise exceed the compiler's type-depth limit.
    .into_any()
}

#[component]
fn PasswordMethod(email: String) -> impl IntoView {
    view! {
        <h3>"Password"</h3>
        <p data-testid="password-method">"Email and password: " <strong data-testid="password-email">{email}</strong></p>
        <ChangePasswordForm/>
    }
}

#[island]
fn ChangePasswordForm() -> impl IntoView {
    let change = ServerAction::<ChangePassword>::new();
    view! {
        <ActionForm action=change>
            <label>"Current password" <input type="password" name="current_password" autocomplete="current-password" required data-testid="current-password"/></label>
            <label>"New password" <input type="password" name="new_password" autocomplete="new-password" required data-testid="new-password"/></label>
            <button type="submit" data-testid="change-password">"Change password"</button>
        </ActionForm>
        <FormError action=change/>
    }
}

#[component]
fn NoPassword() -> impl IntoView {
    view! {
        <h3>"Password"</h3>
        <p data-testid="no-password">"You have no password yet. Set one to sign in with your email as well."</p>
        <SetPasswordForm/>
    }
}

#[island]
fn SetPasswordForm() -> impl IntoView {
    let set = ServerAction::<SetPassword>::new();
    view! {
        <ActionForm action=set>
            <label>"Email" <input type="email" name="email" autocomplete="username" required data-testid="set-password-email"/></label>
            <label>"Password" <input type="password" name="password" autocomplete="new-password" required data-testid="set-password-password"/></label>
            <button type="submit" data-testid="set-password">"Set password"</button>
        </ActionForm>
        <FormError action=set/>
    }
}

#[component]
fn LogiMethod(logi: Option<LinkedLogi>, has_password: bool) -> impl IntoView {
    view! {
        <h3>"logi"</h3>
        {match logi {
            Some(LinkedLogi { sub, linked_at }) => view! {
                <p data-testid="logi-linked">
                    "Linked logi account " <code data-testid="logi-sub">{sub}</code> ", since " {linked_at} "."
                </p>
                {(!has_password).then(|| view! { <p class="hint">"logi is your only way to sign in: set a password before unlinking it."</p> })}
                <UnlinkLogiForm/>
            }
            .into_any(),
            None => view! {
                <p data-testid="logi-not-linked">"No logi account is linked."</p>
                // A plain form post: the server starts a logi login bound to this session.
                <form method="post" action="/api/auth/link">
                    <button type="submit" data-testid="link-logi">"Link logi"</button>
                </form>
            }
            .into_any(),
        }}
    }
}

#[island]
fn UnlinkLogiForm() -> impl IntoView {
    let unlink = ServerAction::<UnlinkLogi>::new();
    view! {
        <ActionForm action=unlink>
            <button type="submit" class="secondary" data-testid="unlink-logi">"Unlink logi"</button>
        </ActionForm>
        <FormError action=unlink/>
    }
}

#[component]
fn Sessions(sessions: Vec<ActiveSession>) -> impl IntoView {
    view! {
        <section class="card">
            <h2>"Your sessions"</h2>
            <table class="sessions">
                <thead><tr><th>"Device"</th><th>"Signed in with"</th><th>"Started"</th><th>"Last seen"</th><th></th></tr></thead>
                <tbody>
                    {sessions.into_iter().map(|session| view! { <SessionRow session/> }).collect_view()}
                </tbody>
            </table>
            <SignOutEverywhereForm/>
        </section>
    }
}

#[component]
fn RecentActivity(activity: Vec<ActivityEntry>) -> impl IntoView {
    view! {
        <section class="card">
            <h2>"Recent activity"</h2>
            {activity.is_empty().then(|| view! { <p class="hint">"Nothing recorded yet."</p> })}
            <ul class="activity">
                {activity
                    .into_iter()
                    .map(|ActivityEntry { kind, summary, device, ago, warning, .. }| {
                        let line = [Some(summary), device, Some(ago)].into_iter().flatten().collect::<Vec<_>>().join(" — ");
                        view! { <li data-testid="activity" data-kind=kind class:warning=warning>{line}</li> }
                    })
                    .collect_view()}
            </ul>
        </section>
    }
}

#[island]
fn SignOutEverywhereForm() -> impl IntoView {
    let everywhere = ServerAction::<SignOutEverywhere>::new();
    view! {
        <ActionForm action=everywhere>
            <button type="submit" class="secondary" data-testid="sign-out-everywhere">"Sign out everywhere"</button>
        </ActionForm>
        <FormError action=everywhere/>
    }
}

#[component]
fn SessionRow(session: ActiveSession) -> impl IntoView {
    let ActiveSession { id, method, device, app, created_at, last_seen_at, this_device } = session;
    view! {
        <tr data-testid="session" data-this-device=this_device.to_string() data-app=app.to_string()>
            <td>
                {device}
                {app.then(|| view! { " " <span class="badge" data-testid="app">"app"</span> })}
                {this_device.then(|| view! { " " <span class="badge" data-testid="this-device">"this device"</span> })}
            </td>
            <td>{method}</td>
            <td>{created_at}</td>
            <td>{last_seen_at}</td>
            <td><EndSessionForm id this_device/></td>
        </tr>
    }
    .into_any()
}

#[island]
fn EndSessionForm(id: String, this_device: bool) -> impl IntoView {
    let end = ServerAction::<EndSession>::new();
    view! {
        <ActionForm action=end>
            <input type="hidden" name="id" value=id/>
            <button type="submit" class="secondary" data-testid="end-session">
                {if this_device { "Sign out" } else { "End session" }}
            </button>
        </ActionForm>
        <FormError action=end/>
    }
}
