# syntax=docker/dockerfile:1.7
# Protea's gateway image. Two stages: a release build on the pinned Rust toolchain, then
# a small runtime image (distroless cc: glibc and CA certificates, no shell, no package
# manager) running as the non-root user 10001. The health check is the binary's own
# `gateway healthcheck` (the runtime has no curl). No secret is ever built into the
# image: the keys document and the database credentials come from Secrets Manager at run
# time (--keys-secret, --storage-secret).
#
#   docker build -t protea-gateway .                      # the gateway (default target)
#   docker build --target loadtest -t protea-loadtest .   # the load tester, for SREs

FROM rust:1.95-bookworm AS builder
WORKDIR /src
# The lock file decides every version (--locked); the registry and the target directory
# are BuildKit caches, so a rebuild after a source change recompiles only the workspace.
COPY Cargo.toml Cargo.lock rustfmt.toml clippy.toml ./
COPY crypto crypto
COPY pool pool
COPY storage storage
COPY gateway gateway
COPY loadtest loadtest
COPY benches benches
COPY docs docs
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p gateway -p loadtest \
    && install -D -m 0755 target/release/gateway /out/gateway \
    && install -D -m 0755 target/release/loadtest /out/loadtest \
    && install -d -m 0750 /out/var/lib/protea
# Amazon RDS's CA bundle, fetched over HTTPS at build time and checked to be PEM.
RUN curl --proto '=https' --tlsv1.2 -fsSL -o /out/rds-global-bundle.pem \
      https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem \
    && grep -q 'BEGIN CERTIFICATE' /out/rds-global-bundle.pem

# The load tester on its own image: SREs run it against a deployment, never in the
# gateway's task.
FROM gcr.io/distroless/cc-debian12:nonroot AS loadtest
COPY --from=builder /out/loadtest /usr/local/bin/loadtest
USER 10001:10001
HEALTHCHECK NONE
ENTRYPOINT ["/usr/local/bin/loadtest"]

FROM gcr.io/distroless/cc-debian12:nonroot AS gateway
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="protea-gateway" \
      org.opencontainers.image.description="Protea: a transaction gateway for payment networks" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=builder /out/gateway /usr/local/bin/gateway
# Amazon RDS's CA bundle: Aurora's certificates do not chain to the web roots, and the
# ECS task points --database-ca-file here (terraform/modules/service).
COPY --from=builder --chmod=0444 /out/rds-global-bundle.pem /etc/ssl/certs/rds-global-bundle.pem
# The embedded store's directory (unused on PostgreSQL, but the admin socket lives here).
COPY --from=builder --chown=10001:10001 /out/var/lib/protea /var/lib/protea
ENV PROTEA_LISTEN=0.0.0.0:8080 \
    PROTEA_DATA_DIR=/var/lib/protea \
    PROTEA_HEALTHCHECK_URL=http://127.0.0.1:8080/livez
USER 10001:10001
EXPOSE 8080
# The container's liveness; ECS and compose probe readiness (/readyz) themselves.
HEALTHCHECK --interval=10s --timeout=4s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/gateway", "healthcheck", "--timeout-seconds", "3"]
# SIGTERM drains (--drain-timeout-seconds, 25 s), then the audit writer appends what is
# queued (at most 10 s): give the container 40 s to stop.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/gateway"]
CMD ["serve"]
