use super::notices::AuthErrorNotice;
use crate::auth::{load_auth_state, AuthState};
use crate::login::User;
use leptos::prelude::*;

#[component]
pub fn HomePage() -> impl IntoView {
    let auth = Resource::new(|| (), |_| load_auth_state());
    view! {
        <AuthErrorNotice/>
        <section class="card">
            <h1>"Welcome to logi-bff"</h1>
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match auth.await {
                        Ok(state) => view! { <SignInState state/> }.into_any(),
                        Err(_) => view! { <p class="error">"Your session could not be read. Please reload the page."</p> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
        <HowItWorks/>
    }
}

#[component]
fn SignInState(state: AuthState) -> impl IntoView {
    match (state.user, state.logi_enabled) {
        (Some(user), _) => view! { <SignedIn user/> }.into_any(),
        (None, true) => view! {
            <p data-testid="signed-out">"You are signed out."</p>
            // rel=external: a full navigation to the server, not a client-side route.
            <a class="button" href="/api/auth/login" rel="external" data-testid="sign-in">"Sign in with logi"</a>
            <PasswordLinks/>
        }
        .into_any(),
        (None, false) => view! {
            <p data-testid="signed-out">"You are signed out."</p>
            <p class="notice" data-testid="logi-not-configured">
                "logi sign-in is not configured on this server (ONE_PASS_URL is not set)."
            </p>
            <PasswordLinks/>
        }
        .into_any(),
    }
}

#[component]
fn PasswordLinks() -> impl IntoView {
    view! {
        <p>
            <a href="/signin" data-testid="to-sign-in">"Sign in with email and password"</a>
            " · "
            <a href="/signup" data-testid="to-sign-up">"Create an account"</a>
        </p>
    }
}

#[component]
fn SignedIn(user: User) -> impl IntoView {
    let has_logi = user.sub.is_some();
    view! {
        <p data-testid="signed-in">"Signed in as " <strong data-testid="display-name">{user.display_name()}</strong></p>
        <dl>
            {user.sub.map(|sub| view! { <dt>"logi account id"</dt> <dd data-testid="logi-sub"><code>{sub}</code></dd> })}
            {user.email.map(|email| view! { <dt>"Email"</dt> <dd data-testid="email">{email}</dd> })}
        </dl>
        <p><a href="/account" data-testid="to-account">"Your account, sign-in methods and sessions"</a></p>
        <form method="post" action="/api/auth/logout">
            <button type="submit" class="secondary" data-testid="sign-out">"Sign out"</button>
        </form>
        {has_logi.then(|| view! {
            // RP-initiated logout: also ends the session at logi.
            <form method="post" action="/api/auth/logout?federated=1">
                <button type="submit" class="secondary" data-testid="sign-out-federated">"Sign out of logi too"</button>
            </form>
        })}
    }
}

/// A client-side disclosure: it only opens once the page has hydrated.
#[island]
fn HowItWorks() -> impl IntoView {
    let (open, set_open) = signal(false);
    view! {
        <section class="card">
            <button data-testid="how-it-works" aria-expanded=move || open.get().to_string() on:click=move |_| set_open.update(|o| *o = !*o)>
                {move || if open.get() { "Hide how your session is kept" } else { "How is my session kept?" }}
            </button>
            <Show when=move || open.get()>
                <p data-testid="how-it-works-text">
                    "Your browser holds only an opaque, HttpOnly session cookie. "
                    "Tokens from logi stay on this server and are never sent to the page."
                </p>
            </Show>
        </section>
    }
}
