#!/usr/bin/env bash
# Runs the app for development: the dev provider (a logi look-alike on 127.0.0.1:9090,
# with its tiny upstream API on 127.0.0.1:9091) plus `cargo leptos watch` on
# http://localhost:3000. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PWD/end2end/node_modules/.bin:$PATH"

if [ ! -f .env ]; then
  cp .env.example .env
  echo "dev: created .env from .env.example"
fi

(cd end2end && UPSTREAM_PORT=9091 exec node dev-provider/server.js) &
provider=$!
trap 'kill $provider 2>/dev/null || true' EXIT INT TERM

cargo leptos watch
