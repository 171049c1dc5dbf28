#!/usr/bin/env bash
# Installs everything logi-bff needs on a fresh machine, skipping what is already
# installed at the right version (warm runs take seconds).
#   scripts/setup.sh          build + run tools
#   scripts/setup.sh --test   also the test browser (Debian's chromium), Debian's postgresql
#                             and haproxy (the replicas' load balancer in the end-to-end tests)
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_LEPTOS_VERSION=0.3.10
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3 }' Cargo.lock)
export PATH="$HOME/.cargo/bin:$PWD/end2end/node_modules/.bin:$PATH"

log() { printf '\033[1msetup:\033[0m %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return
  log "apt: ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
}

install_lint_tools() {
  local installed; installed=$(rustup component list --installed)
  for component in rustfmt clippy; do
    grep -q "^$component" <<<"$installed" || { log "rustup component $component"; rustup component add "$component"; }
  done
}

install_wasm_target() {
  rustup target list --installed | grep -qx wasm32-unknown-unknown && return
  log "rustup target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
}

# cargo-leptos mostly waits on cargo, wasm-bindgen and wasm-opt, so it is built
# unoptimised (7 min cold instead of 23) except the compressors behind --precompress;
# measured side by side, its own steps (JS minify, precompress) stay within a second.
install_cargo_leptos() {
  [ "$(cargo leptos --version 2>/dev/null || true)" = "cargo-leptos $CARGO_LEPTOS_VERSION" ] && return
  log "cargo-leptos $CARGO_LEPTOS_VERSION (no_downloads: tools come from PATH; ~7 min cold)"
  local optimised=()
  for crate in brotli brotli-decompressor alloc-no-stdlib miniz_oxide; do
    optimised+=(--config "profile.release.package.$crate.opt-level=3")
  done
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_OPT_LEVEL=0 \
    cargo install --locked cargo-leptos --version "$CARGO_LEPTOS_VERSION" --features no_downloads "${optimised[@]}"
}

# wasm-bindgen-cli must match the wasm-bindgen in Cargo.lock exactly. Its own lockfile
# pins a webpki-roots the registry no longer has, so unpack the crate, move that one
# pin, then install with the rest of its lockfile.
install_wasm_bindgen() {
  [ "$(wasm-bindgen --version 2>/dev/null || true)" = "wasm-bindgen $WASM_BINDGEN_VERSION" ] && return
  log "wasm-bindgen-cli $WASM_BINDGEN_VERSION"
  local work; work=$(mktemp -d)
  mkdir -p "$work/fetch/src" && touch "$work/fetch/src/lib.rs"
  printf '[package]\nname = "fetch"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\nwasm-bindgen-cli = "=%s"\n' \
    "$WASM_BINDGEN_VERSION" > "$work/fetch/Cargo.toml"
  (cd "$work/fetch" && cargo fetch -q)
  local crate; crate=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"wasm-bindgen-cli-$WASM_BINDGEN_VERSION.crate" | head -n1)
  tar -xzf "$crate" -C "$work"
  (cd "$work/wasm-bindgen-cli-$WASM_BINDGEN_VERSION" \
    && cargo update -q -p webpki-roots --precise 1.0.10 \
    && CARGO_PROFILE_RELEASE_OPT_LEVEL=1 cargo install -q --locked --path .)
  rm -rf "$work"
}

# npm: Playwright, oidc-provider (dev provider) and binaryen's wasm-opt. Debian's
# wasm-opt (v108) produces a bundle whose hydration fails, so ours comes first on PATH.
install_npm_packages() {
  local stamp=end2end/node_modules/.installed-lock
  if [ -f "$stamp" ] && cmp -s end2end/package-lock.json "$stamp"; then return; fi
  log "npm ci (end2end)"
  (cd end2end && npm ci --no-audit --no-fund --loglevel=error)
  cp end2end/package-lock.json "$stamp"
}

if ! command -v node >/dev/null; then apt_install nodejs npm; fi
[ "${1:-}" = "--test" ] && apt_install chromium postgresql haproxy
install_lint_tools
install_wasm_target
install_npm_packages
install_wasm_bindgen
install_cargo_leptos
log "ready (cargo-leptos $CARGO_LEPTOS_VERSION, wasm-bindgen $WASM_BINDGEN_VERSION, $(wasm-opt --version))"
