// The SSE decoder (core's, through the wasm), fed at every byte split.

import { test } from "node:test";
import assert from "node:assert/strict";
import { SseDecoder, parseStreamEvent, DockProtocolError } from "@dock-verify/client";

const enc = new TextEncoder();

function decodeChunks(chunks) {
  const d = new SseDecoder();
  const out = [];
  for (const c of chunks) out.push(...d.feed(c));
  out.push(...d.finish());
  return { events: out, lastEventId: d.lastEventId, retryMs: d.retryMs };
}

// A stream with every hazard: BOM, CRLF and lone CR line ends, a comment,
// multi-line data, multi-byte UTF-8 (2, 3 and 4 bytes), id carry-over, retry,
// an empty-data event (dispatches nothing) and a trailing partial event.
const STREAM = enc.encode(
  "\uFEFF: keep-alive\r\n\r\n" +
    "event: pending\r\nid: 1\r\ndata: {\"status\":\"pending\",\"name\":\"Zoë 🎮\"}\r\n\r\n" +
    "retry: 1500\n\n" +
    "data: line one\rdata: line two €\r\r" +
    "event: ignored\n\n" +
    "event: complete\nid: 2\ndata:  two spaces\ndata\n\n" +
    "data: no blank line at the end",
);

const EXPECTED = [
  { event: "pending", data: "{\"status\":\"pending\",\"name\":\"Zoë 🎮\"}", id: "1" },
  { event: "message", data: "line one\nline two €", id: "1" },
  { event: "complete", data: " two spaces\n", id: "2" },
];

test("decodes a hostile stream in one chunk", () => {
  const { events, lastEventId, retryMs } = decodeChunks([STREAM]);
  assert.deepEqual(events, EXPECTED);
  assert.equal(lastEventId, "2");
  assert.equal(retryMs, 1500);
});

test("the same events whatever the split: every single byte offset", () => {
  for (let i = 0; i <= STREAM.length; i++) {
    const { events, lastEventId, retryMs } = decodeChunks([STREAM.subarray(0, i), STREAM.subarray(i)]);
    assert.deepEqual(events, EXPECTED, `split at ${i}`);
    assert.equal(lastEventId, "2", `split at ${i}`);
    assert.equal(retryMs, 1500, `split at ${i}`);
  }
});

test("the same events whatever the split: every pair of offsets", () => {
  for (let i = 0; i <= STREAM.length; i++) {
    for (let j = i; j <= STREAM.length; j++) {
      const { events } = decodeChunks([STREAM.subarray(0, i), STREAM.subarray(i, j), STREAM.subarray(j)]);
      assert.deepEqual(events, EXPECTED, `split at ${i} and ${j}`);
    }
  }
});

test("one byte at a time", () => {
  const chunks = Array.from(STREAM, (b) => Uint8Array.of(b));
  assert.deepEqual(decodeChunks(chunks).events, EXPECTED);
});

test("a CRLF split across chunks is one line break, not two", () => {
  const d = new SseDecoder();
  const got = [...d.feed(enc.encode("data: a\r")), ...d.feed(enc.encode("\ndata: b\r")), ...d.feed(enc.encode("\n\r")), ...d.feed(enc.encode("\n"))];
  assert.deepEqual(got, [{ event: "message", data: "a\nb", id: "" }]);
});

test("events are returned as soon as their blank line arrives", () => {
  const d = new SseDecoder();
  assert.deepEqual(d.feed(enc.encode("event: pending\nid: 1\ndata: x\n")), []);
  assert.deepEqual(d.feed(enc.encode("\n")), [{ event: "pending", data: "x", id: "1" }]);
  assert.equal(d.lastEventId, "1");
  assert.equal(d.retryMs, undefined);
});

test("WHATWG field rules", () => {
  const cases = [
    ["data:hi\n\n", [{ event: "message", data: "hi", id: "" }]],
    ["id: 1\0\ndata: x\n\n", [{ event: "message", data: "x", id: "" }]], // id with NUL ignored
    ["retry: 1.5\nretry: x\ndata: x\n\n", [{ event: "message", data: "x", id: "" }]],
    ["dat: x\n\n", []],
    [": only a comment\n\n", []],
    ["data: \xFF\n\n", [{ event: "message", data: "\uFFFD", id: "" }]],
  ];
  for (const [input, want] of cases) {
    const bytes = input.includes("\xFF") ? Uint8Array.from([...input].map((c) => c.charCodeAt(0))) : enc.encode(input);
    const { events, retryMs } = decodeChunks([bytes]);
    assert.deepEqual(events, want, JSON.stringify(input));
    assert.equal(retryMs, undefined);
  }
});

test("feed accepts any Uint8Array view (subarray, Buffer)", () => {
  const buf = Buffer.from("xxdata: y\n\nxx");
  assert.deepEqual(new SseDecoder().feed(buf.subarray(2, buf.length - 2)), [{ event: "message", data: "y", id: "" }]);
});

test("parseStreamEvent turns session events into typed states and ignores others", () => {
  const v = { sid: "vsn_A1b2C3d4E5f6G7h8J9k0L1", pid: "p", clientId: "u", guildId: null, status: "pending", expiresAt: "2026-02-28T19:40:12.108Z", result: null };
  const ev = parseStreamEvent({ event: "pending", data: JSON.stringify(v), id: "1" });
  assert.deepEqual(ev, { event: "pending", id: "1", session: v });
  assert.equal(parseStreamEvent({ event: "message", data: "whatever", id: "" }), undefined);
  assert.throws(
    () => parseStreamEvent({ event: "complete", data: JSON.stringify(v), id: "2" }),
    (e) => e instanceof DockProtocolError && e.code === "unexpected_response" && /status is `pending`/.test(e.message),
  );
  assert.throws(() => parseStreamEvent({ event: "pending", data: "{not json", id: "1" }), DockProtocolError);
});
