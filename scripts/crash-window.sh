#!/usr/bin/env bash
# The crash window, measured (issue 21): scripts/crash-window.sh [tries, default 100]
# Kills a replica process with SIGKILL at a random moment while 20 calls wait on a refresh
# it holds, `tries` times, on a throwaway Postgres, and reports how many tries lost the login
# (and at which kill moments). Not part of CI (the Postgres lane runs 3 tries of the same test).
set -euo pipefail
cd "$(dirname "$0")/.."
tries=${1:-100}
pg_dir=$(mktemp -d -t logi-bff-crash-XXXXXX)
trap 'scripts/postgres.sh stop "$pg_dir"; rm -rf "$pg_dir"' EXIT
pg_url=$(scripts/postgres.sh start "$pg_dir")
LOGI_BFF_TEST_POSTGRES=$pg_url LOGI_BFF_CRASH_TRIES=$tries \
  cargo test -q --features ssr,test-support --test http a_replica_killed_while_it_holds_a_refresh -- --include-ignored --nocapture 2>&1 |
  grep -E "^try |^crash window|panicked|test result"
