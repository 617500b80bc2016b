#!/usr/bin/env bash
# spin-nodelay.sh -- COMMAND...: runs COMMAND with TCP_NODELAY forced on every
# socket a process accepts (an LD_PRELOAD shim over accept/accept4, compiled
# here into target/bench/libnodelay.so). A diagnostic for `spin up`, whose
# HTTP server leaves Nagle's algorithm on: when hyper writes a response's
# head before the guest has handed over its body, the body waits for the
# client's delayed ACK (~40 ms). Comparing a run with and without the shim
# tells whether a latency tail is that stall:
#   bench/scripts/spin-nodelay.sh target/release/dock-bench run --no-build --impls spin ...
# Not for production: the remedy is TCP_NODELAY in Spin's server (dock-host
# sets it by default; `--tcp-nodelay false` reproduces Spin).
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p target/bench
lib=$PWD/target/bench/libnodelay.so
src=$PWD/target/bench/nodelay.c
cat > "$src" <<'C'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
static int nodelay(int fd) {
  if (fd >= 0) { int one = 1; setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); }
  return fd;
}
int accept4(int s, struct sockaddr *a, socklen_t *l, int f) {
  static int (*real)(int, struct sockaddr *, socklen_t *, int);
  if (!real) real = dlsym(RTLD_NEXT, "accept4");
  return nodelay(real(s, a, l, f));
}
int accept(int s, struct sockaddr *a, socklen_t *l) {
  static int (*real)(int, struct sockaddr *, socklen_t *);
  if (!real) real = dlsym(RTLD_NEXT, "accept");
  return nodelay(real(s, a, l));
}
C
cc -shared -fPIC -O2 -o "$lib" "$src" -ldl
LD_PRELOAD=$lib exec "$@"
