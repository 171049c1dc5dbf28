#!/usr/bin/env bash
# Runs every test: the format and lint gate, Rust unit + HTTP tests on SQLite and on a
# throwaway Postgres, then Playwright (Debian's Chromium) against the release binary,
# copied alone into an empty directory, and the dev provider; three replicas of it on
# that Postgres behind haproxy included.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
export PATH="$HOME/.cargo/bin:$PWD/end2end/node_modules/.bin:$PATH"

echo "== cargo fmt --check"
cargo fmt --check

echo "== the README's architecture sketch against the code"
python3 scripts/check-architecture.py

echo "== cargo clippy (ssr with tests; hydrate on wasm32)"
cargo clippy --features ssr,test-support --all-targets -- -D warnings
cargo clippy --features ssr -- -D warnings
cargo clippy --lib --features hydrate --target wasm32-unknown-unknown -- -D warnings

echo "== cargo test (ssr, SQLite; the Postgres-only tests are reported as ignored)"
cargo test --features ssr,test-support

# The same suite against a throwaway Postgres server (Unix socket only, fsync off).
root=$PWD
pg_dir=$(mktemp -d -t logi-bff-pg-XXXXXX)
bin_dir=$(mktemp -d -t logi-bff-bin-XXXXXX)
trap '"$root/scripts/postgres.sh" stop "$pg_dir"; rm -rf "$pg_dir" "$bin_dir"' EXIT
echo "== cargo test (ssr, Postgres)"
pg_url=$(scripts/postgres.sh start "$pg_dir")
LOGI_BFF_TEST_POSTGRES=$pg_url cargo test --features ssr,test-support -- --include-ignored
# Kept running for the end-to-end lane of three replicas behind haproxy.
psql -q "$pg_url" -c "CREATE DATABASE e2e"
export LOGI_BFF_E2E_POSTGRES=${pg_url/\/postgres\?/\/e2e?}

# --precompress also orders the build: front end first (with .br/.gz copies), then the
# server, which embeds target/site (src/server/assets.rs).
echo "== cargo leptos build --release --precompress"
cargo leptos build --release --precompress

cp target/release/logi-bff "$bin_dir/"
export LOGI_BFF_BIN="$bin_dir/logi-bff"

echo "== playwright (release binary from $bin_dir)"
cd end2end
npx playwright test "$@"
