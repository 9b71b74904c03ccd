# Multi-stage build: compile with the pinned toolchain, run as a non-root user on a slim base.
# Not built in CI (no Docker engine there); keep it in step with README "Deploying".
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin iamdesk

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/iamdesk --create-home iamdesk
COPY --from=build /src/target/release/iamdesk /usr/local/bin/iamdesk
USER iamdesk
WORKDIR /var/lib/iamdesk
ENV CONFIG_LOCATION=/etc/iamdesk/config.yaml
EXPOSE 8081
# Liveness only (`/healthcheck` asks no backend); the binary probes itself: the slim image has
# neither curl nor a shell with /dev/tcp (dash).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s CMD ["/usr/local/bin/iamdesk", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/iamdesk"]
CMD ["serve"]
