//! logi-bff: a Backend-for-Frontend for the logi OpenID provider.
//!
//! One crate, two builds: `ssr` (the server binary) and `hydrate` (the wasm
//! bundle). Server-only modules are compiled only with `ssr`.

pub mod accounts;
#[cfg(feature = "ssr")]
pub mod activity;
pub mod app;
pub mod auth;
#[cfg(feature = "ssr")]
pub mod ids;
pub mod login;
pub mod pages;
pub mod proxy;

#[cfg(feature = "ssr")]
pub mod server;
#[cfg(feature = "ssr")]
pub mod startup;

#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_islands();
    // The loader hydrates each island right after this returns, in the same task, so
    // the mark (what tests wait for) is true by the time anything can be clicked.
    if let Ok(Some(main)) = leptos::prelude::document().query_selector("main") {
        _ = main.set_attribute("data-hydrated", "true");
    }
}
