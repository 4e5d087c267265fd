#!/usr/bin/env bash
# deploy/image/build.sh: the image's build step (the Dockerfile's builder stage runs it), as a
# script, so that CI runs exactly what an image build runs: a locked release build of the
# `streampulse` binary, installed at DEST (default /usr/local/bin/streampulse).
#
#   deploy/image/build.sh [DEST]
#
# rdkafka builds librdkafka from source (a C compiler and make), with TLS and SASL SCRAM on an
# OpenSSL that openssl-src compiles and links statically; zlib is built from libz-sys's bundled
# source and linked statically too (LIBZ_SYS_STATIC), so the binary needs only glibc and libgcc at
# run time: what the runtime stage (debian:bookworm-slim) has. CI checks that with ldd.
set -euo pipefail
cd "$(dirname "$0")/../.."
dest="${1:-/usr/local/bin/streampulse}"
export LIBZ_SYS_STATIC=1
cargo build --release --locked -p streampulse
install -m 0755 "${CARGO_TARGET_DIR:-target}/release/streampulse" "$dest"
