#!/usr/bin/env bash
# The benchmark, one command: bench/run.sh [seconds per wrk run, default 8]
#
# Builds the release app (cargo leptos) and the ceiling server, starts the dev provider,
# the app as a user starts it (no RUST_LOG), a second copy with the Dockerfile's
# RUST_LOG=info, the ceiling and Debian's nginx, then measures with wrk (Debian's
# package), -t2 -c50, in three alternating rounds (every row once per round):
#   (a) the ceiling: a bare axum handler answering {"user":null} from a static body
#   (b) GET /api/auth/me with a session          (b') the same, RUST_LOG=info
#   (c) GET /api/proxy/x with a session -> upstream (c') the same, RUST_LOG=info
#   (d) that upstream's /x directly              (j) nginx proxy_pass -> that upstream
#   (e) GET /api/auth/me with a native app's bearer access token
#   (k) GET /api/orders/x with a session: the same upstream as (c), declared in API_ROUTES_FILE
#   (w) a WebSocket through the app (a declared API, a session's cookie), 10 connections each
#       echoing 64-byte messages one at a time; (v) the same straight to the upstream
# with each row's min..max req/s, p99 and CPU time per request (/proc/<pid>/stat of the
# app, of nginx's master and workers); then once each: (f, g) /api/auth/me and the proxy
# on Postgres, one replica; (h, i) the same through haproxy in front of three replicas;
# p50/p99 of 100 full logins and of 100 native exchanges, the app's RSS idle and after
# load, the wasm size, and 5 s of anonymous GET /api/auth/login, >100k requests
# (throughput, database size before/after, RSS after).
# Prints a markdown table with the ratios (medians of the per-round ratios, min..max in
# brackets) and the targets, and exits non-zero when the wasm bundle is over its size
# budget (so a change that regresses it is seen).
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-8}"
scripts/setup.sh
sudo_apt=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
for package in wrk sqlite3 haproxy postgresql nginx-light brotli; do
  dpkg -s $package >/dev/null 2>&1 || { echo "bench: installing $package"; $sudo_apt apt-get install -y $package >/dev/null; }
done
export PATH="$HOME/.cargo/bin:$PWD/end2end/node_modules/.bin:$PATH"

cargo leptos build --release --precompress
# A crate of its own, in a target dir of its own: its dependencies' features never
# invalidate the app's release artifacts.
cargo build --release --locked --manifest-path bench/ceiling/Cargo.toml --target-dir target/bench

work=$(mktemp -d -t logi-bff-bench-XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -n "${pg_dir:-}" ] && { scripts/postgres.sh stop "$pg_dir"; rm -rf "$pg_dir"; }
  rm -rf "$work"
}
trap cleanup EXIT

app_port=3300 info_port=3301 provider_port=9290 ceiling_addr=127.0.0.1:3399 balancer_port=3310 replica_ports=(3311 3312 3313)
(cd end2end && PROVIDER_PORT=$provider_port APP_URLS=http://localhost:$app_port,http://localhost:$info_port,http://localhost:$balancer_port ACCESS_TOKEN_TTL=3600 \
  CLIENT_ID=bench CLIENT_SECRET=bench-secret exec node dev-provider/server.js >"$work/provider.log" 2>&1) &
pids+=($!)
target/bench/release/bench_ceiling "$ceiling_addr" & pids+=($!)
ceiling_pid=$!
cp target/release/logi-bff "$work/"
start_app() { # port database [VAR=value...]: the release binary as a user starts it
  local port=$1 database=$2; shift 2
  (cd "$work" && exec env APP_ENV=production APP_URL=http://localhost:$port LEPTOS_SITE_ADDR=127.0.0.1:$port \
    SESSION_SECRET=bench-session-secret-0123456789abcdef0123456789 DATABASE_URL="$database" \
    ONE_PASS_URL=http://127.0.0.1:$provider_port ONE_PASS_CLIENT_ID=bench ONE_PASS_CLIENT_SECRET=bench-secret \
    UPSTREAM_API_URL=http://$ceiling_addr "$@" ./logi-bff >"$work/app-$port.log" 2>&1) &
  pids+=($!)
}
printf '[[api]]\nname = "orders"\npath = "/api/orders/"\nupstream = "http://%s"\n\n[[api]]\nname = "live"\npath = "/api/live/"\nupstream = "http://%s"\nwebsocket = true\n' \
  "$ceiling_addr" "$ceiling_addr" >"$work/apis.toml"
start_app $app_port "sqlite://$work/bench.db" NATIVE_REDIRECT_URIS=com.example.logibff:/oauth/callback NATIVE_EXCHANGE_PER_MINUTE=100000 \
  API_ROUTES_FILE="$work/apis.toml"
app_pid=$!
start_app $info_port "sqlite://$work/bench-info.db" RUST_LOG=info
info_pid=$!

# Postgres (a throwaway server), three replicas on it and haproxy in front of them.
# (Its own top-level temp dir: the postgres user must be able to enter it.)
pg_dir=$(mktemp -d -t logi-bff-bench-pg-XXXXXX)
pg_admin=$(scripts/postgres.sh start "$pg_dir")
psql -q "$pg_admin" -c "CREATE DATABASE bench"
pg_url=${pg_admin/\/postgres\?/\/bench?}
for port in "${replica_ports[@]}"; do
  start_app "$port" "$pg_url" APP_URL=http://localhost:$balancer_port
  sleep 1 # the first replica applies the migrations
done
{
  printf 'defaults\n  mode http\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n'
  printf 'frontend app\n  bind 127.0.0.1:%s\n  default_backend replicas\nbackend replicas\n  balance roundrobin\n' "$balancer_port"
  for port in "${replica_ports[@]}"; do printf '  server r%s 127.0.0.1:%s\n' "$port" "$port"; done
} >"$work/haproxy.cfg"
haproxy -q -f "$work/haproxy.cfg" & pids+=($!)

# The reference proxy: nginx, keep-alive to the upstream, one worker per core, no auth.
nginx_port=3320
mkdir -p "$work/nginx/logs"
cat >"$work/nginx/nginx.conf" <<NGINX
worker_processes auto;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body; proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi; uwsgi_temp_path $work/nginx/uwsgi; scgi_temp_path $work/nginx/scgi;
  upstream api { server $ceiling_addr; keepalive 64; }
  server {
    listen 127.0.0.1:$nginx_port;
    location /api/proxy/ {
      proxy_pass http://api/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
NGINX
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' & pids+=($!)
nginx_pid=$!

wait_for() { for _ in $(seq 1 100); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done; echo "bench: $1 did not come up" >&2; exit 1; }
wait_for "http://127.0.0.1:$provider_port/.well-known/openid-configuration"
wait_for "http://$ceiling_addr/x"
wait_for "http://localhost:$app_port/"
wait_for "http://localhost:$info_port/"
for port in "${replica_ports[@]}"; do wait_for "http://127.0.0.1:$port/"; done
wait_for "http://localhost:$balancer_port/"
wait_for "http://127.0.0.1:$nginx_port/api/proxy/x"

rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$app_pid/status"; }

# One full login (app -> provider -> callback -> home, following every redirect) in a fresh jar.
login() { # [port]
  rm -f "$work/jar"
  curl -s -o /dev/null -c "$work/jar" -b "$work/jar" -L -w '%{time_total}\n' \
    "http://localhost:${1:-$app_port}/api/auth/login?login_hint=alice"
}
login >/dev/null # warms discovery and the JWKS cache
rss_idle=$(rss_kb)
for _ in $(seq 1 100); do login; done | sort -n >"$work/logins"
p50=$(awk 'NR == 50 { printf "%.1f", $1 * 1000 }' "$work/logins")
p99=$(awk 'NR == 99 { printf "%.1f", $1 * 1000 }' "$work/logins")
cookie=$(awk '$6 == "logi_bff_session" { print $6 "=" $7 }' "$work/jar")
[ -n "$cookie" ] || { echo "bench: the login left no session cookie" >&2; exit 1; }
curl -fs -H "Cookie: $cookie" "http://localhost:$app_port/api/auth/me" | grep -q '"sub"' || { echo "bench: the session is not signed in" >&2; exit 1; }
curl -fs -H "Cookie: $cookie" -H "X-CSRF: 1" "http://localhost:$app_port/api/proxy/x" | grep -q bench-user || { echo "bench: the proxy does not reach the ceiling" >&2; exit 1; }
curl -fs -H "Cookie: $cookie" -H "X-CSRF: 1" "http://localhost:$app_port/api/orders/x" | grep -q bench-user || { echo "bench: the declared API does not reach the ceiling" >&2; exit 1; }

# 100 native exchanges (the app's PKCE + authorize at the provider, untimed; then the timed
# POST /api/auth/logi/exchange: code redemption, id_token, userinfo, device login, our tokens).
(cd end2end && node --input-type=module -e "
  import { authorize, exchange } from './native-client.mjs';
  const settings = { providerUrl: 'http://127.0.0.1:$provider_port', clientId: 'bench', redirectUri: 'com.example.logibff:/oauth/callback', loginHint: 'alice' };
  const times = [];
  let tokens;
  for (let run = 0; run < 100; run++) {
    const authorization = await authorize(settings);
    const started = performance.now();
    const answer = await exchange('http://localhost:$app_port', authorization, 'bench');
    times.push(performance.now() - started);
    if (answer.status !== 200) throw new Error('exchange: ' + answer.status + ' ' + JSON.stringify(answer.body));
    tokens = answer.body;
  }
  times.sort((x, y) => x - y);
  console.log(times[49].toFixed(1), times[98].toFixed(1), tokens.access_token);
") >"$work/exchanges"
read -r exchange_p50 exchange_p99 bearer <"$work/exchanges"
curl -fs -H "Authorization: Bearer $bearer" "http://localhost:$app_port/api/auth/me" | grep -q '"sub"' || { echo "bench: the bearer is not signed in" >&2; exit 1; }

# The cookie of one sign-in to the app copy with RUST_LOG=info.
login "$info_port" >/dev/null
info_cookie=$(awk '$6 == "logi_bff_session" { print $6 "=" $7 }' "$work/jar")
curl -fs -H "Cookie: $info_cookie" "http://localhost:$info_port/api/auth/me" | grep -q '"sub"' || { echo "bench: the RUST_LOG=info copy is not signed in" >&2; exit 1; }

cpu_ticks() { # pids... -> user + system clock ticks so far
  local total=0
  for pid in "$@"; do total=$((total + $(awk '{ print $14 + $15 }' "/proc/$pid/stat"))); done
  echo "$total"
}
hz=$(getconf CLK_TCK)
nginx_pids="$nginx_pid $(pgrep -P "$nginx_pid" | tr '\n' ' ')"
measure() { # row "pids whose CPU is counted" url [headers...]; appends "row req/s p99-ms cpu-µs-per-request"
  local row=$1 counted=$2 url=$3; shift 3
  local args=() header before after
  for header in "$@"; do args+=(-H "$header"); done
  before=$(cpu_ticks $counted)
  wrk -t2 -c50 -d"${duration}s" --latency "${args[@]}" "$url" >"$work/wrk.txt"
  after=$(cpu_ticks $counted)
  awk -v row="$row" -v ticks=$((after - before)) -v hz="$hz" '
    /requests in/ { n = $1 } /^Requests\/sec:/ { r = $2 }
    $1 == "99%" { v = $2; if (v ~ /us$/) v = v / 1000; else if (v ~ /ms$/) v = v + 0; else if (v ~ /s$/) v = v * 1000; p = v }
    END { printf "%s %.0f %.2f %.1f\n", row, r, p, n ? ticks * 1e6 / hz / n : 0 }' "$work/wrk.txt" >>"$work/results"
}
measure_ws() { # row url [headers...]; appends "row messages/s p99-ms p50-ms"
  local row=$1 url=$2; shift 2
  echo "$row $(target/bench/release/bench_ws "$url" "$duration" 10 "$@" | awk '{ print $1, $3, $2 }')" >>"$work/results"
}
for round in 1 2 3; do
  measure a "$ceiling_pid" "http://$ceiling_addr/"
  measure b "$app_pid" "http://localhost:$app_port/api/auth/me" "Cookie: $cookie"
  measure b_info "$info_pid" "http://localhost:$info_port/api/auth/me" "Cookie: $info_cookie"
  measure c "$app_pid" "http://localhost:$app_port/api/proxy/x" "Cookie: $cookie" "X-CSRF: 1"
  measure c_info "$info_pid" "http://localhost:$info_port/api/proxy/x" "Cookie: $info_cookie" "X-CSRF: 1"
  measure j "$nginx_pids" "http://127.0.0.1:$nginx_port/api/proxy/x"
  measure d "$ceiling_pid" "http://$ceiling_addr/x"
  measure e "$app_pid" "http://localhost:$app_port/api/auth/me" "Authorization: Bearer $bearer"
  measure k "$app_pid" "http://localhost:$app_port/api/orders/x" "Cookie: $cookie" "X-CSRF: 1"
  measure_ws w "ws://localhost:$app_port/api/live/ws" "Cookie: $cookie" "Origin: http://localhost:$app_port"
  measure_ws v "ws://$ceiling_addr/ws"
done
login "$balancer_port" >/dev/null
pg_cookie=$(awk '$6 == "logi_bff_session" { print $6 "=" $7 }' "$work/jar")
curl -fs -H "Cookie: $pg_cookie" "http://127.0.0.1:${replica_ports[1]}/api/auth/me" | grep -q '"sub"' || { echo "bench: the Postgres session is not shared" >&2; exit 1; }
measure f "" "http://127.0.0.1:${replica_ports[0]}/api/auth/me" "Cookie: $pg_cookie"
measure g "" "http://127.0.0.1:${replica_ports[0]}/api/proxy/x" "Cookie: $pg_cookie" "X-CSRF: 1"
measure h "" "http://localhost:$balancer_port/api/auth/me" "Cookie: $pg_cookie"
measure i "" "http://localhost:$balancer_port/api/proxy/x" "Cookie: $pg_cookie" "X-CSRF: 1"

# Summaries over the rounds: a column's min..max, and the median (min..max) of a ratio
# taken round by round (both rows measured moments apart).
column() { # row field -> "min–max"
  awk -v row="$1" -v f="$2" '$1 == row { v = $f; if (min == "" || v + 0 < min + 0) min = v; if (max == "" || v + 0 > max + 0) max = v } END { printf "%s–%s", min, max }' "$work/results"
}
ratios() { # row reference field -> the per-round ratios, sorted
  awk -v x="$1" -v y="$2" -v f="$3" '$1 == x { xs[++n] = $f } $1 == y { ys[++m] = $f } END { for (i = 1; i <= n && i <= m; i++) printf "%.2f\n", xs[i] / ys[i] }' "$work/results" | sort -n
}
median_ratio() { ratios "$@" | awk '{ v[NR] = $1 } END { printf "%.2f", v[int((NR + 1) / 2)] }'; }
ratio_span() { ratios "$@" | awk 'NR == 1 { min = $1 } { max = $1 } END { printf "%s–%s", min, max }'; }
ratio_cell() { echo "**$(median_ratio "$@")×** ($(ratio_span "$@"))"; }
rss_load=$(rss_kb)

# The login-start flood of issue 14: 100k cookie-less GET /api/auth/login must leave the
# database and the memory flat (the pending login lives in the browser's sealed cookie).
db_bytes() { du -cb "$work"/bench.db* | awk 'END { print $1 }'; }
sqlite_rows() { sqlite3 "$work/bench.db" "SELECT (SELECT count(*) FROM tower_sessions) + (SELECT count(*) FROM logins) + (SELECT count(*) FROM used_logins)"; }
db_before=$(db_bytes) rows_before=$(sqlite_rows)
# Long enough for at least 100k requests on this machine (~40k/s on two cores).
wrk -t2 -c20 -d5s "http://localhost:$app_port/api/auth/login?login_hint=flood" >"$work/flood.txt"
flood_requests=$(awk '/requests in/ { print $1 }' "$work/flood.txt")
flood_rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$work/flood.txt")
db_after=$(db_bytes) rows_after=$(sqlite_rows)
rss_flood_mb=$(awk -v k="$(rss_kb)" 'BEGIN { printf "%.1f", k / 1024 }')
flat=$([ "$db_after" -le "$db_before" ] && [ "$rows_after" -le "$rows_before" ] && echo met || echo MISSED)

wasm=target/site/pkg/logi-bff.wasm
wasm_raw=$(stat -c %s "$wasm")
wasm_gz=$(gzip -9 -c "$wasm" | wc -c)
wasm_br=$(brotli -c -q 11 "$wasm" | wc -c)
wasm_gz_budget=200000 wasm_raw_budget=550000
ratio() { awk -v x="$1" -v y="$2" 'BEGIN { printf "%.2f", x / y }'; }
verdict() { awk -v v="$1" -v t="$2" -v dir="$3" 'BEGIN { ok = (dir == ">=") ? v >= t : v <= t; print ok ? "met" : "MISSED" }'; }
median() { awk -v row="$1" -v f="$2" '$1 == row { print $f }' "$work/results" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
value() { awk -v row="$1" -v f="$2" '$1 == row { print $f; exit }' "$work/results"; }
rss_load_mb=$(awk -v k="$rss_load" 'BEGIN { printf "%.1f", k / 1024 }')
rb=$(median_ratio b a 2) rcj=$(median_ratio c j 2) p99_ratio=$(median_ratio c j 3) cpu_ratio=$(median_ratio c j 4)

cat <<TABLE
| Measure | Result | Target |
|---|---|---|
| (a) ceiling: bare axum handler, static \`{"user":null}\` | $(column a 2) req/s; p99 $(column a 3) ms; $(column a 4) µs CPU/request | |
| (b) \`GET /api/auth/me\` with a session (no \`RUST_LOG\`) | $(column b 2) req/s = $(ratio_cell b a 2) (a); p99 $(column b 3) ms; $(column b 4) µs CPU/request | ≥ 0.6× (a) ($(verdict "$rb" 0.6 ">=")) |
| (b') the same with \`RUST_LOG=info\` (the Dockerfile's) | $(column b_info 2) req/s = $(ratio_cell b_info a 2) (a) | |
| (c) \`GET /api/proxy/x\` with a session → upstream (no \`RUST_LOG\`) | $(column c 2) req/s = $(ratio_cell c j 2) (j) = $(ratio_cell c d 2) (d); p99 $(column c 3) ms = $(ratio_cell c j 3) (j); $(column c 4) µs CPU/request = $(ratio_cell c j 4) (j) | ≥ 0.6× (j) ($(verdict "$rcj" 0.6 ">=")); p99 ≤ 1.5× (j) ($(verdict "$p99_ratio" 1.5 "<=")); CPU ≤ 1.5× (j) ($(verdict "$cpu_ratio" 1.5 "<=")) |
| (c') the same with \`RUST_LOG=info\` | $(column c_info 2) req/s = $(ratio_cell c_info j 2) (j) | |
| (d) that upstream directly | $(column d 2) req/s | |
| (j) nginx \`proxy_pass\` (upstream keep-alive, no auth) → that upstream | $(column j 2) req/s = $(ratio_cell j d 2) (d); p99 $(column j 3) ms; $(column j 4) µs CPU/request (master + workers) | |
| (e) \`GET /api/auth/me\` with a native app's bearer | $(column e 2) req/s = $(ratio_cell e b 2) (b) | |
| (k) \`GET /api/orders/x\` with a session, an API declared in \`API_ROUTES_FILE\` → the same upstream | $(column k 2) req/s = $(ratio_cell k c 2) (c); p99 $(column k 3) ms | ≈ 1× (c): the API table costs nothing measurable |
| (w) WebSocket through the app (\`/api/live/ws\`, a session), 10 connections, 64-byte echoes | $(column w 2) messages/s = $(ratio_cell w v 2) (v); round trip p50 $(column w 4) ms, p99 $(column w 3) ms = $(ratio_cell w v 3) (v) | |
| (v) the same WebSocket echo straight to the upstream | $(column v 2) messages/s; round trip p50 $(column v 4) ms, p99 $(column v 3) ms | |
| (f) Postgres, one replica: \`GET /api/auth/me\` | $(value f 2) req/s = **$(ratio "$(value f 2)" "$(median a 2)")×** (a) | ≥ 0.5× ($(verdict "$(ratio "$(value f 2)" "$(median a 2)")" 0.5 ">=")) |
| (g) Postgres, one replica: \`GET /api/proxy/x\` | $(value g 2) req/s = **$(ratio "$(value g 2)" "$(median j 2)")×** (j) | |
| (h) 3 replicas behind haproxy: \`GET /api/auth/me\` | $(value h 2) req/s = **$(ratio "$(value h 2)" "$(median a 2)")×** (a) | |
| (i) 3 replicas behind haproxy: \`GET /api/proxy/x\` | $(value i 2) req/s = **$(ratio "$(value i 2)" "$(median j 2)")×** (j) | |
| full login (app → logi → callback → home), 100 runs | p50 $p50 ms, p99 $p99 ms | |
| native exchange (\`POST /api/auth/logi/exchange\`), 100 runs | p50 $exchange_p50 ms, p99 $exchange_p99 ms | |
| server RSS idle / after load | $(awk -v k="$rss_idle" 'BEGIN { printf "%.1f", k / 1024 }') MB / $rss_load_mb MB | ≤ 60 MB after load ($(verdict "$rss_load_mb" 60 "<=")) |
| release wasm raw / gzip -9 / brotli -11 | $wasm_raw B / $wasm_gz B / $wasm_br B | ≤ $wasm_raw_budget B raw ($(verdict "$wasm_raw" $wasm_raw_budget "<=")), ≤ $wasm_gz_budget B gzip ($(verdict "$wasm_gz" $wasm_gz_budget "<=")) |
| $flood_requests anonymous \`GET /api/auth/login\` | $flood_rps req/s; database $db_before → $db_after B, session/login rows $rows_before → $rows_after | must not grow ($flat) |
| server RSS after that flood | $rss_flood_mb MB | ≤ 40 MB ($(verdict "$rss_flood_mb" 40 "<=")) |

wrk -t2 -c50 -d${duration}s per row (bench_ws for (w) and (v)); rows (a)–(e), (k), (w) and (v) in three alternating rounds (min–max; a ratio is
the median of the per-round ratios, their min–max in brackets), (f)–(i) once; CPU/request is the
process's user + system time over the requests wrk completed; every process on this machine ($(nproc) cores).
TABLE
if [ "$wasm_gz" -gt "$wasm_gz_budget" ] || [ "$wasm_raw" -gt "$wasm_raw_budget" ]; then
  echo "bench: the wasm bundle is over budget ($wasm_raw B raw, $wasm_gz B gzip -9)" >&2
  exit 1
fi
