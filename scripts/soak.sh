#!/usr/bin/env bash
# A day of traffic, compressed: `scripts/soak.sh [minutes] [sqlite|postgres]` (default 30,
# sqlite). Builds the release binary, starts the dev provider (60-second access tokens, so
# refreshes happen) and either one app on a SQLite file or three replicas on a throwaway
# Postgres behind haproxy running deploy/haproxy.cfg, then end2end/soak.mjs's mixed load.
# Every 5 minutes it samples each app's RSS and open file descriptors, the database's size
# and its rows per table; the load reports p50/p99 per route per window. Output: the
# terminal and target/soak-<backend>.log. Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-30} backend=${2:-sqlite}
window=${SOAK_WINDOW_SECONDS:-300}
export PATH="$HOME/.cargo/bin:$PWD/end2end/node_modules/.bin:$PATH"
scripts/setup.sh --test >/dev/null
cargo leptos build --release --precompress >/dev/null 2>&1
log=target/soak-$backend.log
work=$(mktemp -d -t logi-bff-soak-XXXXXX)
# Its own temp dir: postgres.sh gives it to the postgres user (this one stays root's).
pg_dir=$([ "$backend" = postgres ] && mktemp -d -t logi-bff-soak-pg-XXXXXX || true)
pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  [ "$backend" = postgres ] && scripts/postgres.sh stop "$pg_dir"
  rm -rf "$work" "${pg_dir:-}"
}
trap cleanup EXIT

app_port=3390 provider_port=9390
app_url=http://localhost:$app_port provider_url=http://127.0.0.1:$provider_port
(cd end2end && PROVIDER_PORT=$provider_port UPSTREAM_PORT=9391 CLIENT_ID=logi-bff-soak CLIENT_SECRET=soak-secret \
  APP_URLS=$app_url ACCESS_TOKEN_TTL=60 exec node dev-provider/server.js >"$work/provider.log" 2>&1) &
pids+=($!)

common=(APP_ENV=production APP_URL=$app_url SESSION_SECRET=soak-session-secret-0123456789abcdef0123
  ONE_PASS_URL=$provider_url ONE_PASS_CLIENT_ID=logi-bff-soak ONE_PASS_CLIENT_SECRET=soak-secret
  UPSTREAM_API_URL=http://127.0.0.1:9391 TOKEN_REFRESH_SKEW_SECS=5 SHUTDOWN_DRAIN_SECS=0
  NATIVE_REDIRECT_URIS=com.example.logibff:/oauth/callback NATIVE_EXCHANGE_PER_MINUTE=100000 RUST_LOG=warn)
app_pids=()
start_app() { # port database_url [extra…]
  local port=$1 db=$2; shift 2
  env "${common[@]}" LEPTOS_SITE_ADDR=127.0.0.1:$port DATABASE_URL="$db" "$@" target/release/logi-bff >>"$work/app-$port.log" 2>&1 &
  pids+=($!) app_pids+=($!)
}

if [ "$backend" = postgres ]; then
  pg_url=$(scripts/postgres.sh start "$pg_dir")
  for port in 3391 3392 3393; do start_app $port "$pg_url" TRUSTED_PROXIES=127.0.0.1; done
  sed -e "s/^\(\s*\)bind :8080$/\1bind 127.0.0.1:$app_port/" \
      -e 's/^\(\s*server app\([123]\)\) app[123]:3000 /\1 127.0.0.1:339\2 /' deploy/haproxy.cfg >"$work/haproxy.cfg"
  /usr/sbin/haproxy -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
  pids+=($!)
  rows() { psql -qAt "$pg_url" -c "SELECT string_agg(format('%s=%s', table_name, (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', table_schema, table_name), false, true, '')))[1]), ' ' ORDER BY table_name) FROM information_schema.tables WHERE table_schema IN ('public', 'tower_sessions') AND table_type = 'BASE TABLE'"; }
  size() { psql -qAt "$pg_url" -c "SELECT pg_database_size(current_database())"; }
else
  db=$work/app.db
  start_app $app_port "sqlite://$db"
  rows() { for t in $(sqlite3 "$db" "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' ORDER BY name"); do printf '%s=%s ' "$t" "$(sqlite3 "$db" "SELECT count(*) FROM \"$t\"")"; done; }
  size() { du -cb "$db"* | tail -1 | cut -f1; }
fi
# Ready means logi too ("degraded" while the provider is still starting).
for _ in $(seq 150); do curl -s "$app_url/readyz" | grep -q '"status":"ready"' && break; sleep 0.2; done

# RSS as min..max of ten reads over a second: a password hash in flight holds 19 MiB for
# ~60 ms, so one read says more about the moment than about the process.
rss_range() {
  local lo="" hi="" kb
  for _ in $(seq 10); do
    kb=$(awk '/VmRSS/ {print $2}' "/proc/$1/status")
    [ -z "$lo" ] || [ "$kb" -lt "$lo" ] && lo=$kb
    [ -z "$hi" ] || [ "$kb" -gt "$hi" ] && hi=$kb
    sleep 0.1
  done
  echo "$lo..$hi"
}

sample() {
  local apps=""
  for pid in "${app_pids[@]}"; do
    apps+="pid $pid rss_kb=$(rss_range "$pid") fds=$(ls /proc/$pid/fd | wc -l); "
  done
  echo "sample t=${1}s ${apps}db_bytes=$(size) rows: $(rows)"
}

{
  echo "soak: $minutes min on $backend, started $(date -u +%FT%TZ)"
  sample 0
  (for ((t = window; t < minutes * 60; t += window)); do sleep "$window"; sample "$t"; done) &
  sampler=$!
  status=0
  APP_URL=$app_url PROVIDER_URL=$provider_url CLIENT_ID=logi-bff-soak SOAK_SECONDS=$((minutes * 60)) SOAK_WINDOW_SECONDS=$window \
    node end2end/soak.mjs || status=$?
  kill $sampler 2>/dev/null || true
  sample $((minutes * 60))
  echo "soak: done, load exit status $status"
  exit $status
} 2>&1 | tee "$log"
