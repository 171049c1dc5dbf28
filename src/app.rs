//! The HTML shell, the root component and the routes.

use crate::pages::account::AccountPage;
use crate::pages::api_demo::ApiDemoPage;
use crate::pages::sign_in::{SignInPage, SignUpPage};
use crate::pages::{home::HomePage, not_found::NotFound};
use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{SsrMode, StaticSegment};

pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    crate::server::headers::set_page_policy();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options islands=true/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="leptos" href="/pkg/logi-bff.css"/>
        <Title text="logi-bff"/>
        <Router>
            <header class="topbar">
                <a href="/" class="brand">"logi-bff"</a>
                <nav><a href="/api-demo">"API demo"</a> " · " <a href="/account">"Account"</a></nav>
            </header>
            // Rendered on the server only: the interactive parts are islands (`#[island]`).
            // `data-hydrated` turns true in the browser once they are live.
            <main data-hydrated="false">
                // Async: the page waits for the session before it is sent, so the
                // first paint is already right and works without JavaScript.
                <Routes fallback=NotFound>
                    <Route path=StaticSegment("") view=HomePage ssr=SsrMode::Async/>
                    <Route path=StaticSegment("signin") view=SignInPage ssr=SsrMode::Async/>
                    <Route path=StaticSegment("signup") view=SignUpPage ssr=SsrMode::Async/>
                    <Route path=StaticSegment("account") view=AccountPage ssr=SsrMode::Async/>
                    <Route path=StaticSegment("api-demo") view=ApiDemoPage ssr=SsrMode::Async/>
                </Routes>
            </main>
        </Router>
    }
}
