#!/usr/bin/env python3
"""heap-categories.py STACKS WAITERS: heaptrack's peak stacks, grouped.

STACKS is `heaptrack_print --flamegraph-cost-type peak -F STACKS` output: one
line per call stack, `root;...;allocating function BYTES`. Each stack's bytes
go to the first frame, from the allocation upwards, that is not a generic
allocation or container helper (alloc::, core::, std::, bytes::, hashbrown,
malloc itself...): its crate, and within the crate its function. Prints KiB
and bytes per waiter, biggest first (bench/scripts/heap-profile.sh).
"""
import collections
import re
import sys

GENERIC = re.compile(
    r"^(<)?(alloc::|core::|std::|bytes::|hashbrown::|smallvec::|slab::|indexmap::|"
    r"__rust|__rdl|__rg|_rjem|_R[A-Za-z]|malloc|calloc|realloc|free|posix_memalign|aligned_alloc|"
    r"operator new|<unresolved|\?\?|0x)"
)


LEGACY = [("$LT$", "<"), ("$GT$", ">"), ("$u20$", " "), ("$C$", ","), ("$RF$", "&"),
          ("$BP$", "*"), ("$u7b$", "{"), ("$u7d$", "}"), ("..", "::")]


def demangle(frame: str) -> str:
    """Rust's legacy mangling as heaptrack leaves it (`_$LT$a..B$GT$::f::h…`)."""
    f = frame.strip()
    if "$" in f or ".." in f:
        for a, b in LEGACY:
            f = f.replace(a, b)
        f = f.lstrip("_")
    return re.sub(r"::h[0-9a-f]{16}$", "", f)


def crate_of(frame: str) -> str:
    f = frame.lstrip("<&*( ")
    f = re.sub(r"^(dyn |impl |mut )", "", f)
    m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)::", f)
    return m.group(1) if m else f.split("(")[0][:40]


def short(frame: str) -> str:
    f = re.sub(r"<[^<>]*>", "", frame)  # one level of generics
    f = re.sub(r"<[^<>]*>", "", f)
    f = re.sub(r"::h[0-9a-f]{16}$", "", f)
    return f[:110]


def main() -> None:
    path, waiters = sys.argv[1], int(sys.argv[2])
    by_crate = collections.Counter()
    by_fn = collections.defaultdict(collections.Counter)
    by_site = collections.Counter()
    total = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            stack, _, cost = line.rpartition(" ")
            try:
                b = int(cost)
            except ValueError:
                continue
            if b <= 0:
                continue
            total += b
            frames = [demangle(fr) for fr in stack.split(";") if fr.strip()]
            own = [fr for fr in frames if not GENERIC.match(fr)]
            owner = own[-1] if own else (frames[-1] if frames else "?")
            c = crate_of(owner)
            by_crate[c] += b
            by_fn[c][short(owner)] += b
            by_site[" <- ".join(short(fr) for fr in reversed(own[-4:]))] += b
    print(f"heap at its peak, allocated after attach: {total / 1024:.0f} KiB = "
          f"{total / waiters:.0f} bytes per waiter ({waiters} waiters)\n")
    print("| allocated by | KiB | bytes per waiter | share |\n|---|---:|---:|---:|")
    for c, b in by_crate.most_common(14):
        print(f"| {c} | {b / 1024:.0f} | {b / waiters:.0f} | {100 * b / max(total, 1):.1f} % |")
    print("\nbiggest functions:")
    for c, _ in by_crate.most_common(8):
        for fn_, b in by_fn[c].most_common(3):
            print(f"  {b / waiters:8.0f} B/waiter  {fn_}")
    print("\nbiggest call paths (allocation first, four frames outside std/alloc):")
    for site, b in by_site.most_common(20):
        print(f"  {b / waiters:8.0f} B/waiter  {site}")


if __name__ == "__main__":
    main()
