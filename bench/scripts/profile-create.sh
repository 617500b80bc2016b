#!/usr/bin/env bash
# profile-create.sh IMPL PATTERN OUT: dock-bench creates only (16 connections, 25 s); the server's and
# Redis' CPU over 6 s (creates counted by Redis' EVALSHA calls), then `perf record` on the server for 12 s.
#   bench/scripts/profile-create.sh dock "dock-host up" /tmp/perf-dock.data
#   bench/scripts/profile-create.sh spin "/bin/spin (up|trigger)" /tmp/perf-spin.data
#   bench/scripts/profile-create.sh node "server.mjs" /tmp/perf-node.data
# Needs release builds (target/release/dock-bench, dock-host, the component) and `perf`.
set -u
impl=$1; pat=$2; out=$3
cd "$(dirname "$0")/../.."
DOCK_HOST_PERFMAP=1 target/release/dock-bench run --no-build --impls $impl --concurrency 16 --create-seconds 25 --waiters 1 --modes sse --instances 1 --hold-seconds 0 --out /tmp/prof-$impl.json > /tmp/prof-$impl.md 2> /tmp/prof-$impl.err &
b=$!
until grep -q "create load" /tmp/prof-$impl.err 2>/dev/null; do sleep 0.5; done
sleep 4
pid=$(pgrep -n -f "$pat")
rpid=$(pgrep -n redis-server)
rport=$(ss -ltnp | grep "pid=$rpid," | grep -o "127.0.0.1:[0-9]*" | head -1 | cut -d: -f2)
ev() { redis-cli -p $rport info commandstats | grep -o "cmdstat_evalsha:calls=[0-9]*" | cut -d= -f2; }
tick=$(getconf CLK_TCK)
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
e0=$(ev); s0=$(cpu $pid); r0=$(cpu $rpid); sleep 6; s1=$(cpu $pid); r1=$(cpu $rpid); e1=$(ev)
echo "creates in window (evalsha): $((e1-e0))"
echo "server $pid ($(tr '\0' ' ' < /proc/$pid/cmdline | cut -c1-80)): $(( (s1-s0) )) ticks in 6 s; redis $rpid: $(( r1-r0 )) ticks (CLK_TCK $tick)"
perf record -F 499 -g -p $pid -o $out -- sleep 12 2>&1 | tail -1
wait $b
grep "c=16" /tmp/prof-$impl.err
