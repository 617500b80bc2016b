#!/usr/bin/env bash
# Tests the npm package @dock-verify/client as a user gets it:
#   1. bindings/build.sh builds and packs the tarball;
#   2. the tarball is installed into a scratch project (with TypeScript and
#      @types/node at the versions of bindings/npm/package-lock.json);
#   3. its .d.ts type-checks samples with tsc --noEmit under module resolution
#      node16, nodenext (ESM and CommonJS) and bundler (no Node types);
#   4. node --test runs the unit tests (decoder at every byte split, error
#      mapping, retry policy, client against a scripted server, import and
#      require) there, against the installed package;
#   5. with DOCK_TEST_BASE_URL and DOCK_TEST_ADMIN_TOKEN set, also the
#      end-to-end tests against that live server. Optional:
#      DOCK_TEST_SESSION_TTL  the server's session_ttl_seconds (checked; the
#                             expiry test fails if sessions live over 60 s);
#      DOCK_TEST_RESTART_CMD  a shell command that restarts the server at the
#                             same URL keeping its store (Redis); without it
#                             the restart test is reported as skipped.
# Respects CARGO_TARGET_DIR. Keeps the scratch dir when DOCK_KEEP_SCRATCH=1.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
npm_dir="$here/npm"
log() { printf '[bindings/test] %s\n' "$*" >&2; }

run_e2e=0
if [[ -n "${DOCK_TEST_BASE_URL:-}" && -n "${DOCK_TEST_ADMIN_TOKEN:-}" ]]; then
  run_e2e=1
elif [[ -n "${DOCK_TEST_BASE_URL:-}" || -n "${DOCK_TEST_ADMIN_TOKEN:-}" ]]; then
  log "DOCK_TEST_BASE_URL and DOCK_TEST_ADMIN_TOKEN must be set together (only one is): cannot run the end-to-end tests"
  exit 1
fi

scratch="$(mktemp -d -t dock-npm-test.XXXXXX)"
if [[ "${DOCK_KEEP_SCRATCH:-0}" == "1" ]]; then
  log "scratch dir kept: $scratch"
else
  trap 'rm -rf "$scratch"' EXIT
fi

export DOCK_PACK_DIR="$scratch/pack"
tarball="$(bash "$here/build.sh")"
[[ -f "$tarball" ]] || { log "build.sh did not produce a tarball (got: $tarball)"; exit 1; }

contents="$(tar -tzf "$tarball")"
log "tarball contents: $(echo "$contents" | tr '\n' ' ')"
for must in package/dist/index.js package/dist/index.d.ts package/dist/init.js package/dist/init-workerd.js \
  package/wasm/dock_bindings.js package/wasm/dock_bindings.d.ts package/wasm/dock_bindings_bg.wasm \
  package/wasm/embedded.js package/README.md; do
  grep -qx "$must" <<<"$contents" || { log "the tarball lacks $must"; exit 1; }
done
if grep -E '^package/(src|test|node_modules)/' <<<"$contents" >/dev/null; then
  log "the tarball ships sources, tests or node_modules"; exit 1
fi

# The scratch project: the tarball plus the type-checker the lockfile pins.
lock_version() {
  node -e 'const l = require(process.argv[1]); process.stdout.write(l.packages["node_modules/" + process.argv[2]].version)' \
    "$npm_dir/package-lock.json" "$1"
}
ts_version="$(lock_version typescript)"
types_node_version="$(lock_version @types/node)"
cd "$scratch"
cat > package.json <<'JSON'
{ "name": "dock-npm-scratch", "private": true, "version": "0.0.0" }
JSON
log "npm install $tarball typescript@$ts_version @types/node@$types_node_version (in $scratch)"
npm install --no-audit --no-fund --loglevel=error "$tarball" "typescript@$ts_version" "@types/node@$types_node_version" >&2
cp -R "$npm_dir/test" "$scratch/test"

for config in test/fixtures/typecheck/tsconfig.*.json; do
  log "tsc --noEmit -p $config"
  ./node_modules/.bin/tsc -p "$config"
done

tests=(test/*.test.mjs)
if [[ "$run_e2e" == "1" ]]; then
  log "end-to-end against $DOCK_TEST_BASE_URL (session TTL: ${DOCK_TEST_SESSION_TTL:-not given})"
  tests+=(test/e2e/*.test.mjs)
  [[ -n "${DOCK_TEST_RESTART_CMD:-}" ]] \
    || log "DOCK_TEST_RESTART_CMD not set: the server-restart e2e test will be reported as skipped"
else
  log "end-to-end tests NOT run: set DOCK_TEST_BASE_URL and DOCK_TEST_ADMIN_TOKEN to run them against a live server"
fi
log "node --test ${tests[*]}"
node --test "${tests[@]}"
