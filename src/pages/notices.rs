//! Messages shown above a page: sign-in errors and account notices from the query
//! string, and the error of a form's server function.

use crate::accounts::AccountError;
use crate::auth::errors::describe;
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_router::hooks::use_query_map;

/// The `?auth_error=<code>` a failed sign-in or link lands with, as a readable message.
#[component]
pub fn AuthErrorNotice() -> impl IntoView {
    let query = use_query_map();
    move || {
        query.read().get("auth_error").map(|code| {
            let (what, next) = describe(&code);
            view! {
                <section class="error" role="alert" data-testid="auth-error">
                    <strong>{what}</strong>
                    " " {next}
                    <small class="code">" (code: " <code>{code}</code> ")"</small>
                </section>
            }
        })
    }
}

/// The `?notice=<code>` an account action lands with after it succeeded.
#[component]
pub fn AccountNotice() -> impl IntoView {
    let query = use_query_map();
    move || {
        query.read().get("notice").and_then(|code| notice_text(&code)).map(|text| {
            view! { <section class="notice" role="status" data-testid="notice">{text}</section> }
        })
    }
}

fn notice_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "logi_linked" => "Your logi account is linked. You can now sign in with logi.",
        "logi_unlinked" => "Your logi account was unlinked.",
        "password_set" => "Your password is set. You can now sign in with your email and password.",
        "password_changed" => "Your password was changed and your other sessions were signed out.",
        "session_ended" => "That session was signed out.",
        _ => return None,
    })
}

/// The error of the last submission of `action`'s form (also after a no-JavaScript
/// submission: the router reads it back from the URL the server redirected to).
#[component]
pub fn FormError<S>(action: ServerAction<S>) -> impl IntoView
where
    S: ServerFn<Error = AccountError> + Clone + Send + Sync + 'static,
    S::Output: Send + Sync + 'static,
{
    move || {
        action.value().with(|value| value.as_ref().and_then(|result| result.as_ref().err()).cloned()).map(|error| {
            view! { <p class="error" role="alert" data-testid="form-error" data-code=error.code()>{error.to_string()}</p> }
        })
    }
}
