#!/usr/bin/env bash
# heap-profile.sh IMPL [WAITERS] [OUT]: where the memory of held SSE waiters goes.
#   bench/scripts/heap-profile.sh dock 1000 /tmp/heap-dock
#   bench/scripts/heap-profile.sh spin 1000 /tmp/heap-spin   (SPIN_BIN, default ~/.cache/dock-spin/bin/spin)
# Runs dock-bench's wake scenario (WAITERS SSE waiters on one instance, held
# 20 s). Once its sessions exist and before any waiter connects, heaptrack
# attaches to the serving process (`--before-hold`), so what it records is
# what holding the waiters allocates. OUT/peak.txt: the heap at its peak
# grouped by the code that allocated it (bench/scripts/heap-categories.py),
# in bytes per waiter; OUT/bench.md: the run's tables, with the smaps split
# (malloc heap vs Wasm reservations) of the same run. dock-host is built
# without jemalloc for this (`--no-default-features`: heaptrack sees glibc's
# malloc only); Spin uses glibc's malloc as it is. Needs heaptrack and gdb
# (Debian: heaptrack, gdb) and release builds of dock-bench and the component.
set -euo pipefail
impl=${1:?usage: heap-profile.sh dock|spin [WAITERS] [OUT]}
n=${2:-1000}
mode=${MODE:-sse}   # MODE=long-poll profiles held long-polls
out=${3:-/tmp/heap-$impl}
cd "$(dirname "$0")/../.."
for tool in heaptrack gdb; do
  command -v $tool >/dev/null || { echo "$tool is not installed (apt-get install $tool)" >&2; exit 1; }
done
rm -rf "$out" && mkdir -p "$out"

case $impl in
  dock)
    cargo build -q --release -p dock-host --no-default-features
    cp target/release/dock-host target/release/dock-host-glibc
    cargo build -q --release -p dock-host   # put the jemalloc build back
    server=(--dock-host target/release/dock-host-glibc) ;;
  spin)
    server=(--spin-bin "${SPIN_BIN:-$HOME/.cache/dock-spin/bin/spin}") ;;
  *) echo "IMPL is dock or spin" >&2; exit 2 ;;
esac

# The hook: attach to the process that serves (under `spin up`, its
# `spin trigger http` child), wait until heaptrack says it is in.
cat > "$out/attach.sh" <<'EOF'
#!/bin/sh
set -eu
for p in $DOCK_BENCH_PIDS; do
  pid=$p
  tr '\0' ' ' < /proc/$p/cmdline | grep -q trigger && break
done
# (heaptrack -p names its file itself: heaptrack.NAME.PID.zst, in its cwd.)
cd "$OUT" && heaptrack -p "$pid" > "$OUT/heaptrack.log" 2>&1 &
i=0
until grep -q "injection finished" "$OUT/heaptrack.log"; do
  i=$((i + 1)); [ $i -lt 600 ] || { cat "$OUT/heaptrack.log" >&2; exit 1; }
  sleep 0.1
done
EOF
chmod +x "$out/attach.sh"

OUT=$out target/release/dock-bench run --no-build --impls "$impl" "${server[@]}" \
  --concurrency 16 --create-seconds 1 --low-load-seconds 0 --scale '' --round-trips 0 \
  --waiters "$n" --modes "$mode" --instances 1 --hold-seconds 20 \
  --before-hold "$out/attach.sh" \
  --out "$out/bench.json" > "$out/bench.md" 2> "$out/bench.err"
# heaptrack finishes its file once the server has exited.
for _ in $(seq 300); do grep -q "Heaptrack finished" "$out/heaptrack.log" && break; sleep 0.2; done
data=$(sed -n 's/.*heaptrack --analyze "\(.*\)".*/\1/p' "$out/heaptrack.log" | head -1)
[ -f "$data" ] || { echo "no heaptrack data (see $out/heaptrack.log)" >&2; exit 1; }
heaptrack_print -f "$data" --print-peaks 0 --print-allocators 0 --print-temporary 0 \
  --flamegraph-cost-type peak -F "$out/peak.stacks" > "$out/summary.txt"
grep -E '^(peak heap memory consumption|calls to allocation|total memory leaked)' "$out/summary.txt" || true
python3 bench/scripts/heap-categories.py "$out/peak.stacks" "$n" | tee "$out/peak.txt"
grep -A4 'by mapping' "$out/bench.md" | tail -2
