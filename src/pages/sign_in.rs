//! `/signin` and `/signup`: password forms that work with and without JavaScript,
//! next to "Sign in with logi".

use super::notices::{AuthErrorNotice, FormError};
use crate::accounts::{SignIn, SignUp};
use crate::auth::load_auth_state;
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

/// Where to go after signing in: the `return_to` query parameter (the server only
/// honours same-origin paths). Pages render on the server, so it is read once.
fn return_to() -> String {
    use_query_map().read_untracked().get("return_to").unwrap_or_else(|| "/".to_owned())
}

fn with_return_to(path: &str, return_to: &str) -> String {
    format!("{path}?return_to={}", percent_encode(return_to))
}

fn percent_encode(value: &str) -> String {
    value.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

#[component]
pub fn SignInPage() -> impl IntoView {
    let return_to = return_to();
    view! {
        <AuthErrorNotice/>
        <section class="card">
            <h1>"Sign in"</h1>
            <SignInForm return_to=return_to.clone()/>
            <p>"No account yet? " <a href=with_return_to("/signup", &return_to) data-testid="to-sign-up">"Create one"</a></p>
            <LogiSignIn return_to/>
        </section>
    }
}

#[island]
fn SignInForm(return_to: String) -> impl IntoView {
    let action = ServerAction::<SignIn>::new();
    view! {
        <ActionForm action>
            <label>"Email" <input type="email" name="email" autocomplete="username" required data-testid="email-input"/></label>
            <label>"Password" <input type="password" name="password" autocomplete="current-password" required data-testid="password-input"/></label>
            <input type="hidden" name="return_to" value=return_to/>
            <button type="submit" data-testid="password-sign-in">"Sign in"</button>
        </ActionForm>
        <FormError action/>
    }
}

#[component]
pub fn SignUpPage() -> impl IntoView {
    let return_to = return_to();
    view! {
        <section class="card">
            <h1>"Create an account"</h1>
            <SignUpForm return_to=return_to.clone()/>
            <p>"Already have an account? " <a href=with_return_to("/signin", &return_to)>"Sign in"</a></p>
        </section>
    }
}

#[island]
fn SignUpForm(return_to: String) -> impl IntoView {
    let action = ServerAction::<SignUp>::new();
    view! {
        <ActionForm action>
            <label>"Email" <input type="email" name="email" autocomplete="username" required data-testid="email-input"/></label>
            <label>"Name (optional)" <input type="text" name="name" autocomplete="name" data-testid="name-input"/></label>
            <label>
                "Password (12 to 128 characters)"
                <input type="password" name="password" autocomplete="new-password" required data-testid="password-input"/>
            </label>
            <input type="hidden" name="return_to" value=return_to/>
            <button type="submit" data-testid="sign-up-submit">"Create account"</button>
        </ActionForm>
        <FormError action/>
    }
}

/// "Sign in with logi", when logi is configured.
#[component]
fn LogiSignIn(return_to: String) -> impl IntoView {
    let auth = Resource::new(|| (), |_| load_auth_state());
    let href = with_return_to("/api/auth/login", &return_to);
    view! {
        <Suspense>
            {move || {
                let href = href.clone();
                Suspend::new(async move {
                    auth.await.ok().filter(|state| state.logi_enabled).map(|_| view! {
                        <p class="or">"or"</p>
                        <a class="button" rel="external" data-testid="sign-in" href=href>"Sign in with logi"</a>
                    })
                })
            }}
        </Suspense>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_to_is_percent_encoded_into_links() {
        assert_eq!(with_return_to("/signup", "/account?tab=a b&x=1"), "/signup?return_to=%2Faccount%3Ftab%3Da%20b%26x%3D1");
    }
}
