// A scripted stand-in for the Dock API on 127.0.0.1, for the client's unit
// tests. Each test installs a handler; the server records every request and
// lets tests await "the n-th request" or "that socket closed" with deadlines.

import http from "node:http";
import { once } from "node:events";

export const SID = "vsn_A1b2C3d4E5f6G7h8J9k0L1";
export const SID2 = "vsn_B1b2C3d4E5f6G7h8J9k0L1";

export function view(status, extra = {}) {
  return {
    sid: SID,
    pid: "pid-yourapp",
    clientId: "user_123",
    guildId: null,
    status,
    expiresAt: "2026-02-28T19:40:12.108Z",
    result:
      status === "completed"
        ? { discordId: "80351110224678912", robloxId: "1", linkChanged: false, previousRobloxId: null }
        : null,
    ...extra,
  };
}

export function envelope(data, extra = {}) {
  return JSON.stringify({ status: 200, data, timestamp: "2026-02-28T19:35:12.108Z", version: "0.1.0", ...extra });
}

export function errorEnvelope(status, code, message = code, field) {
  const error = field ? { code, message, field } : { code, message };
  return JSON.stringify({ status, error, timestamp: "2026-02-28T19:35:12.108Z", version: "0.1.0" });
}

const EVENT_OF = { pending: "pending", completed: "complete", expired: "expired", cancelled: "cancelled" };

/** The SSE frame the server sends for a view (test fixture, the wire format of the OpenAPI example). */
export function frame(v) {
  const id = v.status === "pending" ? "1" : "2";
  return `event: ${EVENT_OF[v.status]}\nid: ${id}\ndata: ${JSON.stringify(v)}\n\n`;
}

/** Resolves with `promise`, or rejects after `ms` with `what` in the message. */
export function within(ms, promise, what) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

export class FakeServer {
  constructor() {
    this.requests = [];
    this.handler = (_req, res) => {
      res.writeHead(500).end("no handler");
    };
    this.sockets = new Set();
    this.waiters = [];
    this.server = http.createServer((req, res) => this.#onRequest(req, res));
    this.server.on("connection", (s) => {
      this.sockets.add(s);
      s.on("close", () => this.sockets.delete(s));
    });
  }

  async listen(port = 0) {
    this.server.listen(port, "127.0.0.1");
    await once(this.server, "listening");
    this.port = this.server.address().port;
    this.url = `http://127.0.0.1:${this.port}`;
    return this;
  }

  async #onRequest(req, res) {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const entry = {
      method: req.method,
      url: req.url,
      headers: req.headers,
      body: Buffer.concat(chunks).toString("utf8"),
      at: Date.now(),
      closed: new Promise((resolve) => res.on("close", resolve)),
    };
    this.requests.push(entry);
    for (const w of this.waiters.splice(0)) w();
    try {
      await this.handler(req, res, entry, this.requests.length - 1);
    } catch (e) {
      res.destroy(e);
    }
  }

  /** Waits (up to `ms`) until at least `n` requests arrived; returns the n-th. */
  async nthRequest(n, ms = 5000) {
    const deadline = Date.now() + ms;
    while (this.requests.length < n) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`expected ${n} requests, got ${this.requests.length}`);
      await within(left, new Promise((r) => this.waiters.push(r)), `request #${n}`);
    }
    return this.requests[n - 1];
  }

  /** Stops accepting and drops every open connection. */
  async close() {
    for (const s of this.sockets) s.destroy();
    this.server.close();
    await once(this.server, "close");
  }
}

/** Starts an SSE response. */
export function startStream(res) {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store" });
  res.flushHeaders();
}

export function json(res, status, body, headers = {}) {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(body);
}
