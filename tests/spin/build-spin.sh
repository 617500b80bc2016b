#!/usr/bin/env bash
# Build Spin (main, 4.1.0-pre) from source into a cache directory outside the repo.
#
#   tests/spin/build-spin.sh MIRRORS [CACHE]
#
# MIRRORS holds bare or working git repositories named owner+repo/repo (the
# layout the session's `fetch` tool produces under /work/.mirror):
#   spinframework+spin, fermyon+cargo-target-dep, oras-project+rust-oci-client,
#   Azure+azure-sdk-for-rust, fermyon+conformance-tests, bytebeamio+rumqtt.
# CACHE defaults to ~/.cache/dock-spin; the binary lands in CACHE/bin/spin.
# Spin's Cargo.lock names five git dependencies that cannot be fetched here:
# the ones whose locked revision exists in the mirror are mapped to it with
# git's insteadOf; the other three are [patch]ed to local copies (see
# shared/notes/toolchain.md, "Spin from source"). About an hour on 2 cores.
set -euo pipefail
MIRRORS=${1:?usage: build-spin.sh MIRRORS [CACHE]}
CACHE=${2:-$HOME/.cache/dock-spin}
SPIN_REV=${SPIN_REV:-94a8fc8a}
mkdir -p "$CACHE"/{src,bin}
src=$CACHE/src

repo() { echo "$MIRRORS/$1/repo"; }

# Spin itself, at the pinned revision.
if [ ! -d "$src/spin/.git" ]; then
  git clone -q "$(repo spinframework+spin)" "$src/spin"
fi
git -C "$src/spin" checkout -q -f "$SPIN_REV"

# azure-sdk-for-rust at its locked commit: only the three crates Spin uses.
AZ_REV=8c4caa251c3903d5eae848b41bb1d02a4d65231c
if [ ! -f "$src/azure/Cargo.toml" ]; then
  mkdir -p "$src/azure"
  git -C "$(repo Azure+azure-sdk-for-rust)" archive "$AZ_REV" Cargo.toml sdk/core sdk/identity sdk/security_keyvault \
    | tar -x -C "$src/azure"
  printf '[workspace]\nmembers = ["sdk/*"]\nresolver = "2"\n' > "$src/azure/Cargo.toml"
fi
# conformance-tests (test-only): its newest commit.
[ -d "$src/conformance-tests" ] || git clone -q "$(repo fermyon+conformance-tests)" "$src/conformance-tests"
# rumqtt: upstream's rumqttc-0.25.1 instead of Spin's fork, rustls-webpki 0.103.
if [ ! -d "$src/rumqtt" ]; then
  git clone -q "$(repo bytebeamio+rumqtt)" "$src/rumqtt"
  git -C "$src/rumqtt" checkout -q rumqttc-0.25.1
  sed -i 's/^rustls-webpki = .*/rustls-webpki = { version = "0.103", optional = true }/' "$src/rumqtt/rumqttc/Cargo.toml"
fi

toml=$src/spin/Cargo.toml
if ! grep -q 'dock-verify patches' "$toml"; then
  cat >> "$toml" <<PATCH

# dock-verify patches: git dependencies from local copies
[patch."https://github.com/azure/azure-sdk-for-rust"]
azure_core = { path = "$src/azure/sdk/core" }
azure_identity = { path = "$src/azure/sdk/identity" }
azure_security_keyvault = { path = "$src/azure/sdk/security_keyvault" }
[patch."https://github.com/fermyon/conformance-tests"]
conformance-tests = { path = "$src/conformance-tests/crates/conformance-tests" }
test-environment = { path = "$src/conformance-tests/crates/test-environment" }
[patch."https://github.com/spinframework/rumqtt"]
rumqttc = { path = "$src/rumqtt/rumqttc" }
PATCH
fi

cat > "$CACHE/gitconfig" <<GIT
[url "file://$(repo fermyon+cargo-target-dep)"]
	insteadOf = https://github.com/fermyon/cargo-target-dep
[url "file://$(repo oras-project+rust-oci-client)"]
	insteadOf = https://github.com/oras-project/rust-oci-client
[protocol "file"]
	allow = always
[safe]
	directory = *
GIT

cd "$src/spin"
GIT_CONFIG_GLOBAL=$CACHE/gitconfig CARGO_NET_GIT_FETCH_WITH_CLI=true BUILD_SPIN_EXAMPLES=0 \
  CARGO_TARGET_DIR=$CACHE/target cargo build --release --bin spin
cp "$CACHE/target/release/spin" "$CACHE/bin/spin"
"$CACHE/bin/spin" --version
