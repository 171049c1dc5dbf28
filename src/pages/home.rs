use crate::auth::{load_auth_state, AuthState};
use leptos::prelude::*;

#[component]
pub fn HomePage() -> impl IntoView {
    let auth = Resource::new(|| (), |_| load_auth_state());
    view! {
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
        (Some(user), _) => view! {
            <p data-testid="signed-in">"Signed in as " <strong>{user.display_name()}</strong></p>
        }
        .into_any(),
        (None, true) => view! { <p data-testid="signed-out">"You are signed out."</p> }.into_any(),
        (None, false) => view! {
            <p data-testid="signed-out">"You are signed out."</p>
            <p class="notice" data-testid="logi-not-configured">
                "logi sign-in is not configured on this server (ONE_PASS_URL is not set)."
            </p>
        }
        .into_any(),
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
