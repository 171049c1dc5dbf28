# syntax=docker/dockerfile:1
# Multi-stage build: cargo-leptos builds the wasm bundle and the server, which embeds
# the site and the migrations; the runtime image holds that one binary.
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# Tools first (cached layer): scripts/setup.sh pins cargo-leptos, wasm-bindgen and wasm-opt.
COPY Cargo.toml Cargo.lock ./
COPY scripts ./scripts
COPY end2end/package.json end2end/package-lock.json ./end2end/
RUN scripts/setup.sh
COPY . .
RUN PATH="/app/end2end/node_modules/.bin:$PATH" cargo leptos build --release --precompress

FROM debian:bookworm-slim AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /srv/logi-bff --create-home logi-bff \
 && install -d -o logi-bff -g logi-bff -m 0700 /srv/logi-bff/data
COPY --from=build /app/target/release/logi-bff /usr/local/bin/logi-bff
USER logi-bff
WORKDIR /srv/logi-bff
ENV APP_ENV=production \
    LEPTOS_SITE_ADDR=0.0.0.0:8080 \
    DATABASE_URL=sqlite:///srv/logi-bff/data/logi-bff.db \
    RUST_LOG=info
EXPOSE 8080
# Created above and owned by the app's user: a fresh volume mounted here inherits that.
VOLUME ["/srv/logi-bff/data"]
# The image has no curl: the binary asks its own /readyz (200 also when only logi is down).
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 CMD ["/usr/local/bin/logi-bff", "healthcheck"]
# SIGTERM drains for SHUTDOWN_DRAIN_SECS (5) and finishes requests for up to
# SHUTDOWN_GRACE_SECS (20): give `docker stop` more than both (`--time 30`).
STOPSIGNAL SIGTERM
# APP_URL, SESSION_SECRET and the ONE_PASS_* variables must be supplied at run time.
CMD ["/usr/local/bin/logi-bff"]
