#!/usr/bin/env bash
# Commands per admin completion with and without an SSE waiter on its session (INFO commandstats
# deltas, 100 of each, release dock-host, one Redis on port 46379): the difference is what a wake adds.
ROOT=$(cd "$(dirname "$0")/../.." && pwd); cd "$(mktemp -d)"
set -eu
R=46379; P=48080; A=wake-admin-token-0123456789; N=100
redis-server --port $R --save '' --appendonly no --daemonize no >/dev/null & rp=$!
sleep 0.5
$ROOT/target/release/dock-host up --listen 127.0.0.1:$P --from $ROOT/spin.toml --log-level warn \
  --var redis_url=redis://127.0.0.1:$R --var redis_origin=redis://127.0.0.1:$R --var admin_token=$A \
  --var public_base_url=http://127.0.0.1:$P --var max_streams_per_key=100000 --webhook-dispatch-interval 0 >/dev/null 2>&1 & hp=$!
until curl -sf http://127.0.0.1:$P/healthz >/dev/null; do sleep 0.2; done
curl -s -X POST -H "authorization: Bearer $A" -H 'content-type: application/json' -d '{"pid":"pw","name":"W"}' http://127.0.0.1:$P/api/v1/admin/pids >/dev/null
K=$(curl -s -X POST -H "authorization: Bearer $A" -H 'content-type: application/json' -d '{}' http://127.0.0.1:$P/api/v1/admin/pids/pw/keys | python3 -c 'import sys,json;print(json.load(sys.stdin)["data"]["key"])')
mk() { curl -s -X POST -H "authorization: Bearer $K" -H 'content-type: application/json' -d "{\"pid\":\"pw\",\"clientId\":\"$1\"}" http://127.0.0.1:$P/api/v1/verify/session | python3 -c 'import sys,json;print(json.load(sys.stdin)["data"]["sid"])'; }
done_() { curl -s -o /dev/null -X POST -H "authorization: Bearer $A" -H 'content-type: application/json' -d "{\"discordId\":\"$((100000000000000000+$2))\",\"robloxId\":\"$((1000000+$2))\"}" http://127.0.0.1:$P/api/v1/admin/sessions/$1/complete; }
calls() { redis-cli -p $R info commandstats | grep -v "cmdstat_info\|cmdstat_config" | grep -o "calls=[0-9]*" | cut -d= -f2 | paste -sd+ | bc; }
for i in $(seq 1 $N); do echo $(mk a$i); done > a.sids
for i in $(seq 1 $N); do echo $(mk b$i); done > b.sids
# warm: one completion
redis-cli -p $R config resetstat >/dev/null
i=0; while read s; do i=$((i+1)); done_ $s $i; done < a.sids
c1=$(calls)
# waiters on b
while read s; do curl -sN -H "authorization: Bearer $K" http://127.0.0.1:$P/api/v1/verify/session/$s/stream > /dev/null & done < b.sids
sleep 3
redis-cli -p $R config resetstat >/dev/null
i=1000; while read s; do i=$((i+1)); done_ $s $i; done < b.sids
sleep 2
c2=$(calls)
echo "per completion without a waiter: $(echo "scale=2; $c1/$N" | bc); with one SSE waiter each: $(echo "scale=2; $c2/$N" | bc)"
redis-cli -p $R info commandstats | grep -v "info\|config" | sed 's/,usec.*//' 
kill $hp; kill $rp; wait 2>/dev/null || true
