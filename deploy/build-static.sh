#!/bin/sh
# Builds the static (musl) mppd binary for the architecture it runs on: the build step of
# deploy/Dockerfile, and of .ci/run, which runs it outside a container.
#
#   deploy/build-static.sh OUT        writes OUT/mppd and an empty OUT/data
#
# TARGETARCH is what Docker sets for the platform being built (amd64, arm64); without it the
# machine's own architecture is taken. The build runs natively on that platform (Docker pulls
# the Rust image of the target platform), so no cross linker is needed: Rust ships musl's C
# library and start files for these targets.
set -eu
out="${1:?usage: deploy/build-static.sh OUT}"
arch="${TARGETARCH:-$(uname -m)}"
case "$arch" in
    amd64 | x86_64) triple=x86_64-unknown-linux-musl ;;
    arm64 | aarch64) triple=aarch64-unknown-linux-musl ;;
    *)
        echo "build-static: no static build for architecture $arch (amd64 and arm64 are built)" >&2
        exit 1
        ;;
esac
rustup target add "$triple"
# The NATS client of the cluster feature brings C code (ring, for TLS). Without a musl cross
# compiler for the target, the system's gcc compiles it for this same architecture; ring needs
# no C library headers of its own, and the result links statically like the rest.
cc_var="CC_$(echo "$triple" | tr - _)"
if eval "[ -z \"\${$cc_var:-}\" ]" && ! command -v "${triple%%-*}-linux-musl-gcc" >/dev/null; then
    eval "export $cc_var=gcc"
fi
cargo build --release --locked --target "$triple" --bin mppd
mkdir -p "$out/data"
cp "${CARGO_TARGET_DIR:-target}/$triple/release/mppd" "$out/mppd"
echo "build-static: $out/mppd for $triple"
