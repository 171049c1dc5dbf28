//! `/api-demo`: the browser calls the upstream API through the BFF's proxy. The page
//! sends only its session cookie and `X-CSRF: 1`; the server adds logi's access token.

use crate::auth::load_auth_state;
use leptos::prelude::*;

/// What the proxy answered.
#[derive(Clone, Debug)]
struct ApiAnswer {
    status: u16,
    body: serde_json::Value,
}

#[component]
pub fn ApiDemoPage() -> impl IntoView {
    let auth = Resource::new(|| (), |_| load_auth_state());
    view! {
        <section class="card">
            <h1>"API demo"</h1>
            <p>
                "This page calls " <code>"GET /api/proxy/hello"</code> " from the browser. The server "
                "forwards it to the upstream API with your logi access token, refreshing it first when it is "
                "about to expire. The token itself never reaches this page."
            </p>
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match auth.await.ok().and_then(|state| state.user) {
                        Some(_) => view! { <ApiCall/> }.into_any(),
                        None => view! {
                            <p data-testid="demo-signed-out">"You are signed out. " <a href="/">"Sign in"</a> " to call the API."</p>
                        }
                        .into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

#[island]
fn ApiCall() -> impl IntoView {
    let call = Action::new_local(|_: &()| call_hello());
    view! {
        <button data-testid="call-api" on:click=move |_| { call.dispatch(()); } disabled=move || call.pending().get()>
            "Call the API"
        </button>
        {move || call.value().get().map(|answer| view! { <Answer answer/> })}
    }
}

#[component]
fn Answer(answer: Result<ApiAnswer, String>) -> impl IntoView {
    let answer = match answer {
        Ok(answer) => answer,
        Err(error) => return view! { <p class="error" data-testid="api-error">"The request failed: " {error}</p> }.into_any(),
    };
    let code = answer.body.get("error").and_then(|e| e.as_str()).map(str::to_owned);
    let advice = match code.as_deref() {
        Some("session_expired") => Some("Your session has ended. Sign in again to continue."),
        Some("not_signed_in") => Some("You are signed out. Sign in to call the API."),
        Some("logi_sign_in_required") => Some("Calling the API needs a sign-in with logi."),
        _ => None,
    };
    let pretty = serde_json::to_string_pretty(&answer.body).unwrap_or_default();
    view! {
        <p>"Status " <strong data-testid="api-status">{answer.status}</strong></p>
        {advice.map(|text| view! { <p class="error" data-testid="api-advice">{text} " " <a href="/" rel="external">"Go to sign-in"</a></p> })}
        <pre data-testid="api-response">{pretty}</pre>
    }
    .into_any()
}

#[cfg(feature = "hydrate")]
async fn call_hello() -> Result<ApiAnswer, String> {
    use crate::proxy::CSRF_HEADER;
    let response = gloo_net::http::Request::get("/api/proxy/hello").header(CSRF_HEADER, "1").send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.json::<serde_json::Value>().await.map_err(|e| e.to_string())?;
    Ok(ApiAnswer { status, body })
}

/// Actions run only in the browser; the server renders the button, never calls.
#[cfg(not(feature = "hydrate"))]
async fn call_hello() -> Result<ApiAnswer, String> {
    Err("the API is called from the browser".to_owned())
}
