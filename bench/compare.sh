#!/usr/bin/env bash
# Before/after, side by side in one run: bench/compare.sh REV [seconds per wrk run, default 8]
#
# Builds the release server of REV (a git worktree sharing this target directory, so only
# the crate itself is rebuilt) and of the working tree, starts both against one dev
# provider and one fast upstream (the ceiling), signs each in once, then measures
# GET /api/auth/me and GET /api/proxy/x with that session, alternating the two builds,
# three rounds, and prints each build's min..max req/s and p99.
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: bench/compare.sh REV [seconds]}
duration=${2:-8}
scripts/setup.sh
for package in wrk; do
  dpkg -s $package >/dev/null 2>&1 || apt-get install -y $package >/dev/null
done
export PATH="$HOME/.cargo/bin:$PWD/end2end/node_modules/.bin:$PATH"
root=$PWD
target=$(cd target 2>/dev/null && pwd -P || echo "$root/target")

work=$(mktemp -d -t logi-bff-compare-XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  git -C "$root" worktree remove --force "$work/before-src" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The working tree first (it also builds target/site, which both binaries embed).
cargo leptos build --release --precompress
cp target/release/logi-bff "$work/after"
git worktree add -q --detach "$work/before-src" "$rev"
ln -s "$target" "$work/before-src/target"
# The same build command as the working tree's, so the shared dependencies are reused
# (a plain `cargo build` sees other LEPTOS_* variables and rebuilds them all).
(cd "$work/before-src" && cargo leptos build --release --precompress >/dev/null)
cp target/release/logi-bff "$work/before"
cargo build -q --release --locked --manifest-path bench/ceiling/Cargo.toml --target-dir target/bench

provider_port=9291 ceiling_addr=127.0.0.1:3398
declare -A port=([before]=3301 [after]=3302)
(cd end2end && PROVIDER_PORT=$provider_port APP_URLS=http://localhost:${port[before]},http://localhost:${port[after]} ACCESS_TOKEN_TTL=3600 \
  CLIENT_ID=bench CLIENT_SECRET=bench-secret exec node dev-provider/server.js >"$work/provider.log" 2>&1) &
pids+=($!)
target/bench/release/bench_ceiling "$ceiling_addr" & pids+=($!)
for build in before after; do
  # As a user starts it: no RUST_LOG.
  (cd "$work" && APP_ENV=production APP_URL=http://localhost:${port[$build]} LEPTOS_SITE_ADDR=127.0.0.1:${port[$build]} \
    SESSION_SECRET=bench-session-secret-0123456789abcdef0123456789 DATABASE_URL="sqlite://$work/$build.db" \
    ONE_PASS_URL=http://127.0.0.1:$provider_port ONE_PASS_CLIENT_ID=bench ONE_PASS_CLIENT_SECRET=bench-secret \
    UPSTREAM_API_URL=http://$ceiling_addr exec "./$build" >"$work/$build.log" 2>&1) &
  pids+=($!)
done

wait_for() { for _ in $(seq 1 100); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done; echo "compare: $1 did not come up" >&2; exit 1; }
wait_for "http://127.0.0.1:$provider_port/.well-known/openid-configuration"
wait_for "http://$ceiling_addr/x"
declare -A cookie
for build in before after; do
  wait_for "http://localhost:${port[$build]}/"
  rm -f "$work/jar"
  curl -s -o /dev/null -c "$work/jar" -b "$work/jar" -L "http://localhost:${port[$build]}/api/auth/login?login_hint=alice"
  cookie[$build]=$(awk '$6 == "logi_bff_session" { print $6 "=" $7 }' "$work/jar")
  curl -fs -H "Cookie: ${cookie[$build]}" -H "X-CSRF: 1" "http://localhost:${port[$build]}/api/proxy/x" | grep -q bench-user \
    || { echo "compare: $build is not signed in through the proxy" >&2; exit 1; }
done

measure() { # build path -> "req/s p99ms"
  wrk -t2 -c50 -d"${duration}s" --latency -H "Cookie: ${cookie[$1]}" -H "X-CSRF: 1" "http://localhost:${port[$1]}$2" >"$work/wrk.txt"
  awk '/^Requests\/sec:/ { r = $2 } $1 == "99%" { v = $2; if (v ~ /us$/) v = v / 1000; else if (v ~ /ms$/) v = v + 0; else if (v ~ /s$/) v = v * 1000; p = v }
       END { printf "%.0f %.2f\n", r, p }' "$work/wrk.txt"
}
for round in 1 2 3; do
  for path in /api/auth/me /api/proxy/x; do
    for build in before after; do
      echo "$build $path $(measure "$build" "$path")" >>"$work/results"
    done
  done
done
echo "| route | $rev (before) req/s | working tree (after) req/s | before p99 ms | after p99 ms |"
echo "|---|---:|---:|---:|---:|"
for path in /api/auth/me /api/proxy/x; do
  span() { awk -v b="$1" -v p="$path" -v f="$2" '$1 == b && $2 == p { v = $f; if (min == "" || v < min) min = v; if (v > max) max = v } END { printf "%s–%s", min, max }' "$work/results"; }
  echo "| \`GET $path\` | $(span before 3) | $(span after 3) | $(span before 4) | $(span after 4) |"
done
echo
echo "wrk -t2 -c50 -d${duration}s, three alternating rounds, no RUST_LOG, every process on this machine ($(nproc) cores)."
