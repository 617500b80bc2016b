// A fault proxy in front of dock-host for the runtime suite (node proxy.mjs):
// forwards every request as is (streams included, unbuffered), except
// - `GET /api/v1/public/discord-to-roblox?discordId=X`: the first request for
//   each X gets `503` + `Retry-After: 0` (the client must retry it);
// - `POST /__fault/no-stream/<sid>`: from then on the stream endpoint of
//   <sid> answers `200` JSON, which is no event stream;
// - `GET /__fault/count/<discordId>`: `{served503, forwarded}` for that id;
// - `GET /__runtime/<file>`: files of PROXY_STATIC_DIR (the browser page),
//   same origin as the API so the page needs no CORS.
// Env: PROXY_UPSTREAM (http://127.0.0.1:port), PROXY_STATIC_DIR. Prints
// `PROXY_LISTENING <port>` once it listens on 127.0.0.1.

import http from "node:http";
import fs from "node:fs";
import path from "node:path";

const upstream = new URL(process.env.PROXY_UPSTREAM);
const staticDir = process.env.PROXY_STATIC_DIR ?? "";
const lookups = new Map(); // discordId → { served503, forwarded }
const noStream = new Set();
const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".map": "application/json" };

function forward(req, res) {
  const out = http.request(
    { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: { ...req.headers, host: upstream.host } },
    (up) => {
      res.writeHead(up.statusCode, up.headers);
      res.flushHeaders();
      up.pipe(res);
    },
  );
  out.on("error", () => res.destroy());
  res.on("close", () => out.destroy());
  req.pipe(out);
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://proxy");
  let m;
  if (req.method === "POST" && (m = url.pathname.match(/^\/__fault\/no-stream\/([A-Za-z0-9_]+)$/))) {
    noStream.add(m[1]);
    return res.writeHead(204).end();
  }
  if ((m = url.pathname.match(/^\/__fault\/count\/(\d+)$/))) {
    res.writeHead(200, { "content-type": "application/json" });
    return res.end(JSON.stringify(lookups.get(m[1]) ?? { served503: 0, forwarded: 0 }));
  }
  if (req.method === "GET" && url.pathname.startsWith("/__runtime/")) {
    const file = path.join(staticDir, path.basename(url.pathname));
    if (!staticDir || !fs.existsSync(file)) return res.writeHead(404).end();
    res.writeHead(200, { "content-type": TYPES[path.extname(file)] ?? "application/octet-stream" });
    return fs.createReadStream(file).pipe(res);
  }
  if ((m = url.pathname.match(/^\/api\/v1\/verify\/session\/([A-Za-z0-9_]+)\/stream$/)) && noStream.has(m[1])) {
    res.writeHead(200, { "content-type": "application/json" });
    return res.end(JSON.stringify({ note: "the fault proxy refuses to stream this session" }));
  }
  if (url.pathname === "/api/v1/public/discord-to-roblox") {
    const id = url.searchParams.get("discordId") ?? "";
    const seen = lookups.get(id) ?? { served503: 0, forwarded: 0 };
    lookups.set(id, seen);
    if (seen.served503 === 0) {
      seen.served503 += 1;
      res.writeHead(503, { "content-type": "application/json", "retry-after": "0" });
      return res.end(JSON.stringify({ status: 503, error: { code: "injected_fault", message: "the fault proxy's 503" }, timestamp: new Date().toISOString(), version: "proxy" }));
    }
    seen.forwarded += 1;
  }
  forward(req, res);
});
server.keepAliveTimeout = 5_000;
server.listen(0, "127.0.0.1", () => console.log(`PROXY_LISTENING ${server.address().port}`));
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => process.exit(0));
