#[cfg(feature = "ssr")]
fn main() -> std::process::ExitCode {
    logi_bff::startup::main()
}

#[cfg(not(feature = "ssr"))]
fn main() {
    // The binary is the server; the browser side is the `hydrate` build of the library.
}
