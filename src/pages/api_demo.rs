//! `/api-demo`: the browser calls each declared API through the BFF. The page sends only
//! its session cookie and `X-CSRF: 1`; the server adds the token the API's policy names.

use crate::auth::load_auth_state;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// One declared API as the page shows it: where it is mounted and what token it gets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiSummary {
    pub name: String,
    pub path: String,
    pub token: String,
    pub public: bool,
    pub resource: Option<String>,
    pub websocket: bool,
    /// The step-up requirement, in words ("an mfa sign-in within 600 s").
    pub step_up: Option<String>,
}

/// What the proxy answered.
#[derive(Clone, Debug)]
struct ApiAnswer {
    status: u16,
    body: serde_json::Value,
}

#[component]
pub fn ApiDemoPage() -> impl IntoView {
    let auth = Resource::new(|| (), |_| load_auth_state());
    let apis = declared_apis();
    view! {
        <section class="card">
            <h1>"API demo"</h1>
            <p>
                "Each button calls an API from the browser. The server forwards the call to the API's upstream "
                "with the token its policy names — your logi access token (refreshed first when it is about to "
                "expire, or one for the API's own audience), the app's own token, or none. No token ever "
                "reaches this page."
            </p>
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || {
                    let apis = apis.clone();
                    Suspend::new(async move {
                        let signed_in = auth.await.ok().and_then(|state| state.user).is_some();
                        view! {
                            {(!signed_in).then(|| view! {
                                <p data-testid="demo-signed-out">"You are signed out. " <a href="/">"Sign in"</a> " to call the APIs that need it."</p>
                            })}
                            <ul class="apis">
                                {apis.into_iter().filter(|api| signed_in || api.public).map(|api| view! { <ApiEntry api/> }).collect_view()}
                            </ul>
                        }
                    })
                }}
            </Suspense>
        </section>
    }
}

#[component]
fn ApiEntry(api: ApiSummary) -> impl IntoView {
    let audience = api.resource.clone().map(|resource| view! { ", for " <code>{resource}</code> });
    let access = if api.public { " (public)" } else { "" };
    let step_up = api.step_up.clone().map(|needs| view! { "; needs " <em data-testid=test_id("api-needs", &api.name)>{needs}</em> });
    let entry_id = format!("api-entry-{}", api.name);
    let call = if api.websocket {
        view! { <LiveSocket path=format!("{}ticker", api.path) name=api.name.clone()/> }.into_any()
    } else {
        view! { <ApiCall path=format!("{}hello", api.path) name=api.name.clone()/> }.into_any()
    };
    view! {
        <li data-testid=entry_id>
            <strong>{api.name}</strong> " at " <code>{api.path}</code> ": token " <code>{api.token}</code> {audience} {access} {step_up}
            {call}
        </li>
    }
}

/// A WebSocket through the API: the page's cookie authenticates the upgrade (same origin),
/// what the upstream sends is listed (the last five), and the close code is shown.
#[island]
fn LiveSocket(path: String, name: String) -> impl IntoView {
    let (state, set_state) = signal(String::from("not connected"));
    let (messages, set_messages) = signal(Vec::<String>::new());
    let live = live::slot();
    let connect = move |_| {
        live.set_value(None);
        set_state.set("connecting".into());
        live.set_value(live::Live::open(&path, set_state, set_messages));
    };
    let send = move |_| {
        live.with_value(|socket| {
            if let Some(socket) = socket {
                socket.send("hello from the page");
            }
        })
    };
    view! {
        <button data-testid=test_id("socket-connect", &name) on:click=connect>"Open the socket"</button>
        <button data-testid=test_id("socket-send", &name) on:click=send>"Send a message"</button>
        <p>"Socket: " <strong data-testid=test_id("socket-state", &name)>{state}</strong></p>
        <pre data-testid=test_id("socket-messages", &name)>{move || messages.get().join("\n")}</pre>
    }
}

#[cfg(feature = "hydrate")]
mod live {
    use leptos::prelude::*;
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::JsCast;
    use web_sys::{CloseEvent, MessageEvent, WebSocket};

    /// Where the island keeps its socket: browser-only values, so local storage.
    pub fn slot() -> StoredValue<Option<Live>, LocalStorage> {
        StoredValue::new_local(None)
    }

    /// An open socket and its handlers (dropped with it).
    pub struct Live {
        socket: WebSocket,
        _opened: Closure<dyn FnMut()>,
        _received: Closure<dyn FnMut(MessageEvent)>,
        _closed: Closure<dyn FnMut(CloseEvent)>,
    }

    impl Live {
        pub fn open(path: &str, state: WriteSignal<String>, messages: WriteSignal<Vec<String>>) -> Option<Self> {
            let origin = window().location().origin().ok()?;
            let socket = WebSocket::new(&format!("{}{path}", origin.replacen("http", "ws", 1))).ok()?;
            let opened = Closure::<dyn FnMut()>::new(move || state.set("open".into()));
            let received = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
                let text = event.data().as_string().unwrap_or_else(|| "(binary)".into());
                messages.update(|list| {
                    list.push(text);
                    let excess = list.len().saturating_sub(5);
                    list.drain(..excess);
                });
            });
            let closed = Closure::<dyn FnMut(CloseEvent)>::new(move |event: CloseEvent| state.set(format!("closed ({})", event.code())));
            socket.set_onopen(Some(opened.as_ref().unchecked_ref()));
            socket.set_onmessage(Some(received.as_ref().unchecked_ref()));
            socket.set_onclose(Some(closed.as_ref().unchecked_ref()));
            Some(Self { socket, _opened: opened, _received: received, _closed: closed })
        }

        pub fn send(&self, text: &str) {
            _ = self.socket.send_with_str(text);
        }
    }

    impl Drop for Live {
        fn drop(&mut self) {
            self.socket.set_onclose(None);
            _ = self.socket.close();
        }
    }
}

/// The server renders the island's buttons; sockets open only in the browser.
#[cfg(not(feature = "hydrate"))]
mod live {
    use leptos::prelude::*;

    pub struct Live;

    /// Rendering on the server never opens a socket; thread-safe storage, because the render's
    /// owner may be dropped on another thread than the one that made it.
    pub fn slot() -> StoredValue<Option<Live>> {
        StoredValue::new(None)
    }

    impl Live {
        pub fn open(_: &str, _: WriteSignal<String>, _: WriteSignal<Vec<String>>) -> Option<Self> {
            None
        }

        pub fn send(&self, _: &str) {}
    }
}

/// The test ids of the `default` API (`/api/proxy/`) carry no suffix; others end in `-<name>`.
fn test_id(base: &str, name: &str) -> String {
    if name == "default" {
        base.to_owned()
    } else {
        format!("{base}-{name}")
    }
}

#[island]
fn ApiCall(path: String, name: String) -> impl IntoView {
    // Reference-counted, not arena-owned: a page dropped mid-render (a HEAD, a client gone)
    // disposes its owner while these closures may still run.
    let call = call_action(path.clone());
    let (pending, value) = (call.pending(), call.value());
    let answer_name = name.clone();
    view! {
        <button data-testid=test_id("call-api", &name) on:click=move |_| { call.dispatch(()); } disabled=move || pending.get()>
            "GET " {path.clone()}
        </button>
        {move || value.get().map(|answer| view! { <Answer answer name=answer_name.clone()/> })}
    }
}

#[component]
fn Answer(answer: Result<ApiAnswer, String>, name: String) -> impl IntoView {
    let answer = match answer {
        Ok(answer) => answer,
        Err(error) => return view! { <p class="error" data-testid=test_id("api-error", &name)>"The request failed: " {error}</p> }.into_any(),
    };
    let code = answer.body.get("error").and_then(|e| e.as_str()).map(str::to_owned);
    let advice = match code.as_deref() {
        Some("session_expired") => Some("Your session has ended. Sign in again to continue."),
        Some("not_signed_in") => Some("You are signed out. Sign in to call the API."),
        Some("logi_sign_in_required") => Some("Calling the API needs a sign-in with logi."),
        Some("resource_not_granted") => Some("This API was added after you signed in. Sign in again to use it."),
        _ => None,
    };
    // Only our own sign-in route: an upstream's answer passes through and could name any URL.
    let step_up = (code.as_deref() == Some("step_up_required"))
        .then(|| answer.body.get("login_url").and_then(|url| url.as_str()).filter(|url| url.starts_with("/api/auth/login?")).map(str::to_owned))
        .flatten();
    let pretty = serde_json::to_string_pretty(&answer.body).unwrap_or_default();
    view! {
        <p>"Status " <strong data-testid=test_id("api-status", &name)>{answer.status}</strong></p>
        {advice.map(|text| view! { <p class="error" data-testid=test_id("api-advice", &name)>{text} " " <a href="/" rel="external">"Go to sign-in"</a></p> })}
        {step_up.map(|login_url| view! {
            <p class="error">
                "This API needs a stronger or more recent sign-in. "
                <a href=login_url rel="external" data-testid=test_id("api-step-up", &name)>"Sign in again at logi"</a>
            </p>
        })}
        <pre data-testid=test_id("api-response", &name)>{pretty}</pre>
    }
    .into_any()
}

/// The APIs in use, read from the app's state while the page renders on the server (the
/// page is no island: this never runs in the browser).
#[cfg(feature = "ssr")]
fn declared_apis() -> Vec<ApiSummary> {
    use crate::proxy::apis::{Apis, TokenPolicy};
    let Some(apis) = use_context::<std::sync::Arc<Apis>>() else { return Vec::new() };
    apis.current()
        .declarations()
        .map(|declaration| ApiSummary {
            name: declaration.name.clone(),
            path: declaration.path.clone(),
            token: declaration.token.as_str().to_owned(),
            public: declaration.public || declaration.token == TokenPolicy::UserOrNone,
            resource: declaration.audience.resource.clone(),
            websocket: declaration.websocket,
            step_up: declaration.step_up.as_ref().map(|requirement| {
                let acr = requirement.acr_values_param().map(|acr| format!("a sign-in of level {acr}"));
                let age = requirement.max_age.map(|secs| format!("within {secs} s"));
                [acr.unwrap_or_else(|| "a sign-in".into()), age.unwrap_or_default()].join(" ").trim_end().to_owned()
            }),
        })
        .collect()
}

#[cfg(not(feature = "ssr"))]
fn declared_apis() -> Vec<ApiSummary> {
    Vec::new()
}

/// `GET path` as an action. In the browser the request is no `Send` future, so the action is
/// local; on the server (where it never runs) it must not be: a local value dropped by
/// another thread than its own panics, and a response body may be dropped anywhere.
#[cfg(feature = "hydrate")]
fn call_action(path: String) -> ArcAction<(), Result<ApiAnswer, String>> {
    ArcAction::new_unsync(move |_: &()| call(path.clone()))
}

#[cfg(not(feature = "hydrate"))]
fn call_action(path: String) -> ArcAction<(), Result<ApiAnswer, String>> {
    ArcAction::new(move |_: &()| call(path.clone()))
}

#[cfg(feature = "hydrate")]
async fn call(path: String) -> Result<ApiAnswer, String> {
    use crate::proxy::CSRF_HEADER;
    let response = gloo_net::http::Request::get(&path).header(CSRF_HEADER, "1").send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.json::<serde_json::Value>().await.map_err(|e| e.to_string())?;
    Ok(ApiAnswer { status, body })
}

/// Actions run only in the browser; the server renders the button, never calls.
#[cfg(not(feature = "hydrate"))]
async fn call(_path: String) -> Result<ApiAnswer, String> {
    Err("the API is called from the browser".to_owned())
}
