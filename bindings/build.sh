#!/usr/bin/env bash
# Builds the npm package @dock-verify/client from dock-core:
#   1. dock-bindings for wasm32-unknown-unknown (release);
#   2. wasm-bindgen --target nodejs into bindings/npm/wasm/ (CLI pinned to the
#      crate's exact wasm-bindgen version; installed when missing);
#   3. npm dev dependencies (npm ci, from the committed package-lock.json);
#   4. wasm-opt -Os from npm's binaryen (never the system one);
#   5. tsc into bindings/npm/dist/;
#   6. npm pack into $DOCK_PACK_DIR (default: a fresh temp dir).
# Prints the tarball's path (alone) on stdout. Respects CARGO_TARGET_DIR.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
npm_dir="$here/npm"
wb_version="0.2.130" # must equal the `=` pin of wasm-bindgen in the root Cargo.toml

log() { printf '[bindings/build] %s\n' "$*" >&2; }

# Everything but the tarball's path goes to stderr, so callers can capture stdout.
exec 3>&1 1>&2

grep -q "^wasm-bindgen = \"=$wb_version\"" "$root/Cargo.toml" \
  || { log "root Cargo.toml does not pin wasm-bindgen = \"=$wb_version\"; update build.sh with it"; exit 1; }

target_dir="${CARGO_TARGET_DIR:-$root/target}"

log "cargo build -p dock-bindings --target wasm32-unknown-unknown --release (target dir $target_dir)"
(cd "$root" && cargo build -p dock-bindings --target wasm32-unknown-unknown --release)
wasm="$target_dir/wasm32-unknown-unknown/release/dock_bindings.wasm"
[[ -f "$wasm" ]] || { log "missing $wasm after the build"; exit 1; }

if [[ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $wb_version" ]]; then
  log "installing wasm-bindgen-cli $wb_version (matches the crate; no --locked: its lockfile needs crates this registry lacks)"
  cargo install wasm-bindgen-cli --version "$wb_version"
fi

log "wasm-bindgen --target nodejs → $npm_dir/wasm"
rm -rf "$npm_dir/wasm"
wasm-bindgen --target nodejs --out-dir "$npm_dir/wasm" "$wasm"

log "npm ci"
(cd "$npm_dir" && npm ci --no-audit --no-fund --loglevel=error)

if [[ "${DOCK_SKIP_WASM_OPT:-0}" != "1" ]]; then
  log "wasm-opt -Os (npm binaryen)"
  (cd "$npm_dir" && ./node_modules/.bin/wasm-opt -Os --enable-reference-types --enable-bulk-memory \
      --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals --enable-multivalue \
      wasm/dock_bindings_bg.wasm -o wasm/dock_bindings_bg.wasm)
fi

log "tsc"
rm -rf "$npm_dir/dist"
(cd "$npm_dir" && ./node_modules/.bin/tsc -p tsconfig.json)

pack_dir="${DOCK_PACK_DIR:-$(mktemp -d -t dock-pack.XXXXXX)}"
mkdir -p "$pack_dir"
log "npm pack → $pack_dir"
tarball="$(cd "$npm_dir" && npm pack --silent --pack-destination "$pack_dir" | tail -n 1)"
echo "$pack_dir/$tarball" >&3
