# Waygate's container image: the release binary, the example plugins and the default config,
# run as an unprivileged user.
#   docker build -t waygate .
#   docker run -p 8000:8000 -v waygate-data:/var/lib/waygate --stop-timeout 30 waygate
# (Docker's default of 10 s before SIGKILL would cut the server's 10 s drain short.)
# Without WAYGATE_ADMIN_KEY=wg_... the first start writes an admin key to
# /var/lib/waygate/initial-admin-key (the log names the file). Kubernetes: deploy/kubernetes.

# The JavaScript plugin's build tools (jco) need Node 20 or later; bookworm ships 18.
FROM node:22-bookworm-slim AS node

FROM rust:1.95-bookworm AS build
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
    && rustup target add wasm32-wasip2
WORKDIR /src
COPY . .
RUN cargo xtask plugins \
    && cargo build --release --locked -p waygate --bin waygate

FROM debian:bookworm-slim
# No ca-certificates: the server's outbound TLS carries its own Mozilla roots (webpki-roots).
# A numeric user, so Kubernetes' runAsNonRoot can check it without a passwd lookup.
RUN groupadd --system --gid 10001 waygate \
    && useradd --system --uid 10001 --gid waygate --no-create-home \
        --home-dir /var/lib/waygate --shell /usr/sbin/nologin waygate \
    && install -d -o waygate -g waygate -m 0700 /var/lib/waygate
# Root-owned and read-only to the server: it runs its plugins but cannot change them.
COPY --from=build /src/target/release/waygate /usr/local/bin/waygate
COPY --from=build /src/target/plugins /plugins
COPY configs/waygate.toml /etc/waygate/waygate.toml
# The config file keeps its defaults; these make the server reachable from outside the
# container and put every path in place (its relative `paths.cache` included).
ENV WAYGATE_CONFIG=/etc/waygate/waygate.toml \
    WAYGATE_BIND=0.0.0.0:8000 \
    WAYGATE_PLUGINS=/plugins \
    WAYGATE_DATA=/var/lib/waygate \
    WAYGATE_CACHE_DIR=/var/lib/waygate/cache
USER 10001:10001
VOLUME /var/lib/waygate
EXPOSE 8000
# `waygate doctor` needs no curl and no key (unless auth.metrics = keyed: then set
# WAYGATE_KEY): it exits non-zero unless the port, /, /health, /ready, /metrics and a
# latency sample all pass. The plugins compile before the port opens.
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
    CMD ["waygate", "doctor", "--bind", "127.0.0.1:8000"]
ENTRYPOINT ["waygate"]
CMD ["serve"]
