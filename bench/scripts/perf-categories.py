#!/usr/bin/env python3
# Groups `perf report` samples of a server by where they fall (the table in docs/performance.md):
#   python3 bench/scripts/perf-categories.py /tmp/perf-dock.data
import sys,re,subprocess
f=sys.argv[1]
out=subprocess.run(["perf","report","-i",f,"--no-children","--sort","dso,sym","--stdio","-g","none"],capture_output=True,text=True).stdout
cats={}
rules=[("guest (component Wasm, JIT)",r"\[JIT\]"),("kernel",r"kernel"),
("wasmtime component model / concurrent (async ABI, tasks, lifting)",r"wasmtime.*(component|concurrent|fiber)|wasmtime_fiber|wasmtime::runtime::vm::component"),
("wasmtime other (store, linker, vm, instance pool)",r"wasmtime|cranelift"),
("tracing / logging",r"tracing|log::"),
("hyper / http",r"hyper|http::|h2::|httparse"),
("tokio / futures",r"tokio|futures|mio"),
("redis client",r"redis"),
("malloc",r"malloc|free|_rjem|je_|realloc|calloc|memcpy|memmove|memset"),
("wasi / spin host interfaces",r"wasi|spin_|spin::"),
]
total=0
for line in out.splitlines():
    m=re.match(r"\s+([\d.]+)%\s+(\S.*?)\s{2,}\[.\]\s+(.*)",line)
    if not m: continue
    pct=float(m.group(1)); dso=m.group(2); sym=m.group(3)
    s=dso+" "+sym
    for name,pat in rules:
        if re.search(pat,s):
            cats[name]=cats.get(name,0)+pct; break
    else:
        cats["other"]=cats.get("other",0)+pct
    total+=pct
for k,v in sorted(cats.items(),key=lambda x:-x[1]): print(f"{v:6.1f}%  {k}")
print(total)
