use crate::auth::errors::describe;
use crate::auth::{load_auth_state, AuthState, User};
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

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

/// The `?auth_error=<code>` a failed sign-in lands with, as a readable message.
#[component]
fn AuthErrorNotice() -> impl IntoView {
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

#[component]
fn SignInState(state: AuthState) -> impl IntoView {
    match (state.user, state.logi_enabled) {
        (Some(user), _) => view! { <SignedIn user/> }.into_any(),
        (None, true) => view! {
            <p data-testid="signed-out">"You are signed out."</p>
            // rel=external: a full navigation to the server, not a client-side route.
            <a class="button" href="/api/auth/login" rel="external" data-testid="sign-in">"Sign in with logi"</a>
        }
        .into_any(),
        (None, false) => view! {
            <p data-testid="signed-out">"You are signed out."</p>
            <p class="notice" data-testid="logi-not-configured">
                "logi sign-in is not configured on this server (ONE_PASS_URL is not set)."
            </p>
        }
        .into_any(),
    }
}

#[component]
fn SignedIn(user: User) -> impl IntoView {
    view! {
        <p data-testid="signed-in">"Signed in as " <strong data-testid="display-name">{user.display_name()}</strong></p>
        <dl>
            {user.sub.map(|sub| view! { <dt>"logi account id"</dt> <dd data-testid="logi-sub"><code>{sub}</code></dd> })}
            {user.email.map(|email| view! { <dt>"Email"</dt> <dd data-testid="email">{email}</dd> })}
        </dl>
        <form method="post" action="/api/auth/logout">
            <button type="submit" class="secondary" data-testid="sign-out">"Sign out"</button>
        </form>
    }
}

/// A client-side disclosure: it only opens once the page has hydrated.
#[component]
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
