# syntax=docker/dockerfile:1
# The `streampulse` binary in a small image: `docker build -t streampulse .`, then
#   docker run --rm -p 8080:8080 -p 9249:9249 -v streampulse-data:/var/lib/streampulse streampulse
# Used by the Compose files (docker-compose*.yml) and the Helm chart (deploy/helm/streampulse).

# Build: the Rust toolchain the project is tested with, on Debian bookworm (as the runtime).
ARG RUST_VERSION=1.95
FROM rust:${RUST_VERSION}-bookworm AS builder
# rdkafka builds librdkafka from source (its configure script and make: a C and a C++ compiler),
# with TLS and SASL SCRAM on an OpenSSL that openssl-src compiles from source (make and perl:
# build-essential, below) and links statically: no OpenSSL headers here, no libssl at run time.
# No Cyrus SASL (GSSAPI) or zstd. aws-lc-sys, under object_store's TLS, builds with the C compiler
# or cmake. zlib is built from libz-sys's bundled source and linked statically, so the binary
# needs only glibc and libgcc at run time. jemalloc (the binary's allocator) is built from its
# bundled source too (make), with the options in .cargo/config.toml. The build itself is deploy/image/build.sh, which CI
# runs too (and checks that claim with ldd).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY .cargo ./.cargo
COPY crates ./crates
COPY deploy/image/build.sh ./deploy/image/build.sh
# The registry and target directory are cache mounts (BuildKit), so a rebuild after a source
# change recompiles only the workspace; the binary is copied out of the cache in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    deploy/image/build.sh /usr/local/bin/streampulse

# Run: glibc, CA certificates (HTTPS to S3, GCS or Azure for checkpoints; Kafka over TLS with
# `ssl.ca.location: probe`) and tini; nothing else.
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates tini \
 && rm -rf /var/lib/apt/lists/*
# A fixed numeric user, so Kubernetes can check runAsNonRoot and a volume can be given to it
# (fsGroup 10001).
RUN groupadd --system --gid 10001 streampulse \
 && useradd --system --uid 10001 --gid streampulse --home-dir /var/lib/streampulse \
      --no-create-home --shell /usr/sbin/nologin streampulse \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/streampulse
COPY --from=builder /usr/local/bin/streampulse /usr/local/bin/streampulse
# Everything `run` writes is under the data directory (log, store, checkpoints unless
# checkpoint.storage points elsewhere), so the root filesystem can be read-only.
# STREAMPULSE_DATA_DIR is --data-dir: it wins over `data_dir` in a config file.
ENV STREAMPULSE_DATA_DIR=/var/lib/streampulse
# The binary listens on loopback by default (safe on a laptop on a shared network); in a
# container, loopback is unreachable from outside, so the image listens on every interface and
# the network around the container (published ports, a Kubernetes Service, NetworkPolicy) and
# the API tokens (STREAMPULSE_*_TOKENS) decide who reaches it. These are --listen and
# --metrics-listen: they win over server.listen and metrics.listen in a config file.
ENV STREAMPULSE_LISTEN=0.0.0.0:8080 \
    STREAMPULSE_METRICS_LISTEN=0.0.0.0:9249
VOLUME ["/var/lib/streampulse"]
WORKDIR /var/lib/streampulse
USER 10001:10001
# 8080: HTTP API (server.listen); 9249: Prometheus metrics (metrics.listen).
EXPOSE 8080 9249
# SIGTERM (docker stop, Kubernetes) stops ingest, takes a final checkpoint and exits. tini is
# process 1 and forwards signals to the binary: process 1 ignores a signal it has no handler
# for, so without tini a SIGTERM that came before streampulse installed its handler (during
# start-up: opening the store and log, restoring a checkpoint, reaching the brokers) would be
# lost, leaving the container to the kill at the end of the grace period. tini also reaps
# orphaned children.
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/streampulse"]
CMD ["run"]
