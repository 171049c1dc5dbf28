#!/usr/bin/env bash
# Issue 20 §3, side by side in one run: the work-stealing runtime (ws), one current-thread
# runtime per core on SO_REUSEPORT listeners (pc), and per core on one shared listener (ps),
# against the ceiling (a) and nginx (j): /api/auth/me and /api/proxy/x with a session,
# wrk -t2 -c50, three alternating rounds; 50 full logins each. Run after
# `cargo leptos build --release` and bench/run.sh's ceiling build.
set -uo pipefail
cd "$(dirname "$0")/.."
duration=${1:-8}
work=$(mktemp -d -t logi-bff-runtime-XXXXXX); mkdir -p $work/nginx/logs
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done; rm -rf "$work"; }
trap cleanup EXIT
provider_port=9292 ceiling_addr=127.0.0.1:3397 nginx_port=3398
(cd end2end && PROVIDER_PORT=$provider_port APP_URLS=http://localhost:3401,http://localhost:3402,http://localhost:3403 ACCESS_TOKEN_TTL=3600 \
  CLIENT_ID=bench CLIENT_SECRET=bench-secret exec node dev-provider/server.js >"$work/provider.log" 2>&1) & pids+=($!)
target/bench/release/bench_ceiling "$ceiling_addr" & pids+=($!); ceiling_pid=$!
cp target/release/logi-bff $work/
declare -A port=([ws]=3401 [pc]=3402 [ps]=3403) pid
for build in ws pc ps; do
  extra=""; [ $build = pc ] && extra="SERVER_RUNTIME=per-core"; [ $build = ps ] && extra="SERVER_RUNTIME=per-core PER_CORE_ACCEPT=shared"
  (cd "$work" && exec env $extra APP_ENV=production APP_URL=http://localhost:${port[$build]} LEPTOS_SITE_ADDR=127.0.0.1:${port[$build]} \
    SESSION_SECRET=bench-session-secret-0123456789abcdef0123456789 DATABASE_URL="sqlite://$work/$build.db" \
    ONE_PASS_URL=http://127.0.0.1:$provider_port ONE_PASS_CLIENT_ID=bench ONE_PASS_CLIENT_SECRET=bench-secret \
    UPSTREAM_API_URL=http://$ceiling_addr ./logi-bff >"$work/$build.log" 2>&1) & pids+=($!); pid[$build]=$!
done
cat >"$work/nginx/nginx.conf" <<NGINX
worker_processes 2; pid $work/nginx/nginx.pid; error_log $work/nginx/logs/error.log warn;
events { worker_connections 1024; }
http { access_log off;
  client_body_temp_path $work/nginx/body; proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi; uwsgi_temp_path $work/nginx/uwsgi; scgi_temp_path $work/nginx/scgi;
  upstream api { server $ceiling_addr; keepalive 64; }
  server { listen 127.0.0.1:$nginx_port; location /api/proxy/ { proxy_pass http://api/; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
NGINX
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' & pids+=($!); nginx_pid=$!
wait_for() { for _ in $(seq 1 100); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done; echo "$1 did not come up" >&2; exit 1; }
wait_for "http://127.0.0.1:$provider_port/.well-known/openid-configuration"; wait_for "http://$ceiling_addr/x"
wait_for "http://127.0.0.1:$nginx_port/api/proxy/x"
declare -A cookie
for build in ws pc ps; do
  wait_for "http://localhost:${port[$build]}/"
  login() { rm -f "$work/jar"; curl -s -o /dev/null -c "$work/jar" -b "$work/jar" -L -w '%{time_total}\n' "http://localhost:${port[$build]}/api/auth/login?login_hint=alice"; }
  login >/dev/null
  for _ in $(seq 1 50); do login; done | sort -n > $work/logins-$build
  echo "$build login p50 $(awk 'NR == 25 { printf "%.1f", $1 * 1000 }' $work/logins-$build) ms p98 $(awk 'NR == 49 { printf "%.1f", $1 * 1000 }' $work/logins-$build)"
  cookie[$build]=$(awk '$6 == "logi_bff_session" { print $6 "=" $7 }' "$work/jar")
  curl -fs -H "Cookie: ${cookie[$build]}" -H "X-CSRF: 1" "http://localhost:${port[$build]}/api/proxy/x" | grep -q bench-user || { echo "$build not signed in" >&2; exit 1; }
done
cpu_ticks() { local total=0; for p in "$@"; do total=$((total + $(awk '{ print $14 + $15 }' "/proc/$p/stat"))); done; echo "$total"; }
hz=$(getconf CLK_TCK)
nginx_pids="$nginx_pid $(pgrep -P "$nginx_pid" | tr '\n' ' ')"
measure() { local row=$1 counted=$2 url=$3; shift 3; local args=() h; for h in "$@"; do args+=(-H "$h"); done
  local before=$(cpu_ticks $counted); wrk -t2 -c50 -d"${duration}s" --latency "${args[@]}" "$url" >"$work/wrk.txt"; local after=$(cpu_ticks $counted)
  awk -v row="$row" -v ticks=$((after - before)) -v hz="$hz" '/requests in/ { n = $1 } /^Requests\/sec:/ { r = $2 }
    $1 == "99%" { v = $2; if (v ~ /us$/) v = v / 1000; else if (v ~ /ms$/) v = v + 0; else if (v ~ /s$/) v = v * 1000; p = v }
    END { printf "%s %.0f %.2f %.1f\n", row, r, p, n ? ticks * 1e6 / hz / n : 0 }' "$work/wrk.txt" | tee -a "$work/results"; }
for round in 1 2 3; do
  measure a $ceiling_pid "http://$ceiling_addr/"
  measure j "$nginx_pids" "http://127.0.0.1:$nginx_port/api/proxy/x"
  for build in ws pc ps; do
    measure me_$build ${pid[$build]} "http://localhost:${port[$build]}/api/auth/me" "Cookie: ${cookie[$build]}"
    measure px_$build ${pid[$build]} "http://localhost:${port[$build]}/api/proxy/x" "Cookie: ${cookie[$build]}" "X-CSRF: 1"
  done
done
echo "row min..max req/s | p99 | cpu us/req"
for row in a j me_ws me_pc me_ps px_ws px_pc px_ps; do
  awk -v r=$row '$1 == r { n++; q[n]=$2; p[n]=$3; c[n]=$4 } END { printf "%-6s %s %s %s | p99 %s %s %s | cpu %s %s %s\n", r, q[1], q[2], q[3], p[1], p[2], p[3], c[1], c[2], c[3] }' $work/results
done
grep -ci "panic\|error" $work/*.log
