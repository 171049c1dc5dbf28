#[cfg(feature = "ssr")]
#[tokio::main]
async fn main() -> std::process::ExitCode {
    logi_bff::startup::run().await
}

#[cfg(not(feature = "ssr"))]
fn main() {
    // The binary is the server; the browser side is the `hydrate` build of the library.
}
