// End-to-end smoke check of a running verification-sessions service (the Node
// reference or ours): starts nothing, talks HTTP only.
//
//   BASE_URLS=http://127.0.0.1:4101,http://127.0.0.1:4102 ADMIN_TOKEN=… node check.mjs
//
// With two bases, sessions are created and completed on the first and waited
// on (SSE and long-poll) on the last, so cross-instance wakeups are exercised.
// WAITERS (default 1000) concurrent SSE waiters, then as many long-polls, are
// woken by completions; it prints wake latencies and exits non-zero on any
// failure or lost completion (WAVES=sse or WAVES=longpoll runs one kind;
// COMPLETE_CONCURRENCY, default 1, completions are in flight at once). Needs `admin_token` / ADMIN_TOKEN set on the service.
import http from 'node:http';
import { randomBytes } from 'node:crypto';

const BASES = (process.env.BASE_URLS || process.env.BASE_URL || 'http://127.0.0.1:3000').split(',').map((s) => s.trim().replace(/\/+$/, ''));
const A = BASES[0];
const B = BASES[BASES.length - 1];
const ADMIN = process.env.ADMIN_TOKEN;
const WAITERS = Number(process.env.WAITERS ?? 1000);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 64);
const COMPLETE_CONCURRENCY = Number(process.env.COMPLETE_CONCURRENCY ?? 1); // completions in flight during a wave
const WAVES = (process.env.WAVES ?? 'sse,longpoll').split(',').filter(Boolean);
if (!ADMIN) { console.error('ADMIN_TOKEN is required'); process.exit(2); }

const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
let passed = 0, failed = 0;
function check(name, cond, detail = '') {
  if (cond) passed++; else { failed++; console.log(`FAIL ${name} ${detail}`); }
}

function request(base, method, path, { token, body, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const h = { ...headers };
    if (token) h.authorization = `Bearer ${token}`;
    let payload;
    if (body !== undefined) {
      payload = typeof body === 'string' ? body : JSON.stringify(body);
      h['content-type'] ??= 'application/json';
      h['content-length'] = Buffer.byteLength(payload);
    }
    const req = http.request(base + path, { method, headers: h, agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let json = null;
        try { json = JSON.parse(text); } catch {}
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

// Opens an SSE stream; calls onEvent({event, id, data}) per event; resolves the
// returned `done` when the stream ends. `opened` resolves with the status code.
function sse(base, path, token, onEvent, headers = {}) {
  let opened, done;
  const o = new Promise((r) => (opened = r));
  const d = new Promise((r) => (done = r));
  const req = http.get(base + path, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream', ...headers }, agent }, (res) => {
    opened({ status: res.statusCode, headers: res.headers });
    res.setEncoding('utf8');
    let buf = '';
    res.on('data', (chunk) => {
      buf += chunk;
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const raw = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const ev = { event: 'message', id: null, data: null, comment: false };
        for (const line of raw.split('\n')) {
          if (line.startsWith(':')) { ev.comment = true; continue; }
          const c = line.indexOf(':');
          const [f, v] = c < 0 ? [line, ''] : [line.slice(0, c), line.slice(c + 1).replace(/^ /, '')];
          if (f === 'event') ev.event = v; else if (f === 'id') ev.id = v; else if (f === 'data') ev.data = (ev.data === null ? '' : ev.data + '\n') + v;
        }
        if (ev.data !== null) onEvent({ ...ev, data: JSON.parse(ev.data) });
      }
    });
    res.on('end', () => done());
    res.on('error', () => done());
  });
  req.on('error', (e) => { opened({ status: 0, error: e }); done(); });
  return { opened: o, done: d, close: () => req.destroy() };
}

async function pool(items, n, fn) {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => {
    while (next < items.length) { const i = next++; await fn(items[i], i); }
  }));
}
const pct = (xs, p) => xs.length ? xs[Math.min(xs.length - 1, Math.floor(p * xs.length))] : NaN;
const fmt = (xs) => { xs.sort((a, b) => a - b); return `p50 ${pct(xs, 0.5).toFixed(1)} ms, p99 ${pct(xs, 0.99).toFixed(1)} ms, max ${xs[xs.length - 1]?.toFixed(1)} ms`; };
const keysOf = (o) => JSON.stringify(Object.keys(o ?? {}));

// ---- health and setup
for (const base of BASES) {
  const r = await request(base, 'GET', '/healthz');
  check(`healthz ${base}`, r.status === 200 && r.json?.data?.status === 'ok', r.text);
}
const pid = `chk-${randomBytes(6).toString('hex')}`;
let r = await request(A, 'POST', '/api/v1/admin/pids', { token: ADMIN, body: { pid, name: 'Smoke check' } });
check('create pid', r.status === 200 && r.json.data.pid === pid, r.text);
r = await request(A, 'POST', `/api/v1/admin/pids/${pid}/keys`, { token: ADMIN, body: { quota: { limit: 1_000_000_000, windowSeconds: 86_400 } } });
check('issue key', r.status === 200 && /^dock_/.test(r.json?.data?.key), r.text);
const KEY = r.json.data.key;
r = await request(A, 'POST', `/api/v1/admin/pids/${pid}/keys`, { token: ADMIN, body: { quota: { limit: 1, windowSeconds: 3600 } } });
const KEY1 = r.json.data.key;

// ---- create, reuse, read
const create = (clientId, base = A, token = KEY) => request(base, 'POST', '/api/v1/verify/session', { token, body: { pid, clientId } });
r = await create('user_1');
check('create 200', r.status === 200, r.text);
check('create envelope', keysOf(r.json) === '["status","data","timestamp","version","verifyRequestsRemaining"]', keysOf(r.json));
check('create data', keysOf(r.json.data) === '["sid","pid","clientId","expiresAt","reusedExisting","verifyUrl"]', keysOf(r.json.data));
check('sid format', /^vsn_[0-9A-Za-z]{22}$/.test(r.json.data.sid), r.json.data.sid);
check('verifyUrl', r.json.data.verifyUrl.endsWith(`/v1/api/verify/discord?pid=${pid}&sid=${r.json.data.sid}`), r.json.data.verifyUrl);
const sid = r.json.data.sid;
const r2 = await create('user_1', B);
check('reuse', r2.json?.data?.sid === sid && r2.json.data.reusedExisting === true && r.json.data.reusedExisting === false, r2.text);
check('quota counts', r2.json.verifyRequestsRemaining === r.json.verifyRequestsRemaining - 1, r2.text);
r = await request(B, 'GET', `/api/v1/verify/session/${sid}`, { token: KEY });
check('read pending', r.status === 200 && r.json.data.status === 'pending' && r.json.data.result === null, r.text);
check('view fields', keysOf(r.json.data) === '["sid","pid","clientId","guildId","status","expiresAt","result"]', keysOf(r.json.data));
check('read envelope', keysOf(r.json) === '["status","data","timestamp","version"]', keysOf(r.json));

// ---- one session: SSE + long-poll on B, completion on A
{
  const events = [];
  let sawPending;
  const pendingSeen = new Promise((res) => (sawPending = res));
  const s = sse(B, `/api/v1/verify/session/${sid}/stream`, KEY, (e) => { events.push(e); if (e.event === 'pending') sawPending(); });
  const { status, headers } = await s.opened;
  check('sse 200', status === 200 && headers['content-type'] === 'text/event-stream' && headers['cache-control'] === 'no-store', JSON.stringify(headers));
  await pendingSeen;
  const lp = request(B, 'GET', `/api/v1/verify/session/${sid}?wait=25`, { token: KEY });
  await new Promise((res) => setTimeout(res, 200));
  r = await request(A, 'POST', `/api/v1/admin/sessions/${sid}/complete`, { token: ADMIN, body: { discordId: '80351110224678912', robloxId: '1' } });
  check('complete 200', r.status === 200 && r.json.data.status === 'completed', r.text);
  await s.done;
  check('sse events', JSON.stringify(events.map((e) => [e.event, e.id])) === '[["pending","1"],["complete","2"]]', JSON.stringify(events));
  check('sse result', events[1]?.data?.result?.robloxId === '1' && events[1].data.result.linkChanged === false, JSON.stringify(events[1]));
  const l = await lp;
  check('long-poll woke', l.status === 200 && l.json.data.status === 'completed', l.text);
  r = await request(A, 'POST', `/api/v1/admin/sessions/${sid}/complete`, { token: ADMIN, body: { discordId: '80351110224678912', robloxId: '1' } });
  check('complete again, same ids: 200', r.status === 200, r.text);
  r = await request(A, 'POST', `/api/v1/admin/sessions/${sid}/complete`, { token: ADMIN, body: { discordId: '80351110224678912', robloxId: '2' } });
  check('complete again, other ids: 409', r.status === 409 && r.json.error.code === 'completion_conflict', r.text);
  for (const [lastId, want] of [['1', '[["complete","2"]]'], ['2', '[]']]) {
    const ev = [];
    const s2 = sse(B, `/api/v1/verify/session/${sid}/stream`, KEY, (e) => ev.push(e), { 'last-event-id': lastId });
    await s2.done;
    check(`resume after ${lastId}`, JSON.stringify(ev.map((e) => [e.event, e.id])) === want, JSON.stringify(ev));
  }
  const s3 = await create('user_2');
  r = await request(A, 'POST', `/api/v1/admin/sessions/${s3.json.data.sid}/complete`, { token: ADMIN, body: { discordId: '80351110224678912', robloxId: '3' } });
  check('linkChanged', r.json?.data?.result?.linkChanged === true && r.json.data.result.previousRobloxId === '1', r.text);
}

// ---- cancel wakes a stream on the other instance
{
  const c = await create('user_cancel');
  const ev = [];
  let sawPending;
  const seen = new Promise((res) => (sawPending = res));
  const s = sse(B, `/api/v1/verify/session/${c.json.data.sid}/stream`, KEY, (e) => { ev.push(e); sawPending(); });
  await seen;
  r = await request(A, 'DELETE', `/api/v1/verify/session/${c.json.data.sid}`, { token: KEY });
  check('cancel 200', r.status === 200 && r.json.data.status === 'cancelled', r.text);
  await s.done;
  check('cancelled event', ev.at(-1)?.event === 'cancelled' && ev.at(-1).id === '2', JSON.stringify(ev));
}

// ---- errors
r = await request(B, 'GET', `/api/v1/verify/session/${sid}`);
check('401', r.status === 401 && r.json.error.code === 'unauthorized' && r.headers['www-authenticate'] === 'Bearer', r.text);
r = await request(B, 'GET', '/api/v1/verify/session/vsn_nope', { token: KEY });
check('400 invalid_id', r.status === 400 && r.json.error.code === 'invalid_id', r.text);
r = await request(B, 'GET', '/api/v1/verify/session/vsn_0000000000000000000000', { token: KEY });
check('404 session_not_found', r.status === 404 && r.json.error.code === 'session_not_found', r.text);
check('error envelope', keysOf(r.json) === '["status","error","timestamp","version"]', keysOf(r.json));
r = await request(A, 'POST', '/api/v1/verify/session', { token: KEY, body: { pid: 'someone-else', clientId: 'x' } });
check('404 pid_not_found', r.status === 404 && r.json.error.code === 'pid_not_found', r.text);
r = await request(A, 'POST', '/api/v1/verify/session', { token: KEY, body: { pid } });
check('400 missing_field', r.status === 400 && r.json.error.code === 'missing_field' && r.json.error.field === 'clientId', r.text);
r = await request(A, 'POST', '/api/v1/verify/session', { token: KEY, body: JSON.stringify({ pid, clientId: 'x', pad: 'a'.repeat(17_000) }) });
check('413', r.status === 413 && r.json.error.code === 'body_too_large', r.text);
r = await create('q1', A, KEY1);
check('quota 1 left 0', r.status === 200 && r.json.verifyRequestsRemaining === 0, r.text);
r = await create('q2', A, KEY1);
check('429', r.status === 429 && r.json.error.code === 'quota_exceeded' && Number(r.headers['retry-after']) >= 1, r.text);

// ---- many waiters: WAITERS SSE streams, then WAITERS long-polls, on B; completions on A
async function wave(kind) {
  const sids = new Array(WAITERS);
  await pool([...Array(WAITERS).keys()], CONCURRENCY, async (i) => {
    const c = await create(`${kind}-${i}`);
    sids[i] = c.json.data.sid;
  });
  const woke = new Map(); // sid → ms timestamp of the terminal answer
  const waits = [];
  if (kind === 'sse') {
    let pendingCount = 0, allPending;
    const ready = new Promise((res) => (allPending = res));
    await pool(sids, CONCURRENCY * 4, async (s) => {
      const st = sse(B, `/api/v1/verify/session/${s}/stream`, KEY, (e) => {
        if (e.event === 'pending' && ++pendingCount === WAITERS) allPending();
        if (e.event === 'complete') woke.set(s, performance.now());
      });
      const o = await st.opened;
      if (o.status !== 200) { check(`sse open ${s}`, false, String(o.status)); allPending(); }
      waits.push(st.done);
    });
    await ready;
  } else {
    for (const s of sids) {
      waits.push(request(B, 'GET', `/api/v1/verify/session/${s}?wait=25`, { token: KEY }).then((res) => {
        if (res.json?.data?.status === 'completed') woke.set(s, performance.now());
      }));
    }
    await new Promise((res) => setTimeout(res, 1000 + WAITERS)); // let every long-poll reach the server
  }
  const sent = new Map();
  const t0 = performance.now();
  await pool(sids, COMPLETE_CONCURRENCY, async (s, i) => {
    sent.set(s, performance.now());
    const c = await request(A, 'POST', `/api/v1/admin/sessions/${s}/complete`, { token: ADMIN, body: { discordId: String(10_000 + i), robloxId: String(i + 1) } });
    if (c.status !== 200) check(`complete ${s}`, false, c.text);
  });
  const tc = performance.now() - t0;
  await Promise.race([Promise.all(waits), new Promise((res) => setTimeout(res, 30_000))]);
  const lat = sids.filter((s) => woke.has(s)).map((s) => woke.get(s) - sent.get(s));
  const lost = WAITERS - lat.length;
  check(`${kind}: every waiter woke`, lost === 0, `${lost} of ${WAITERS} never saw the completion`);
  console.log(`${kind}: ${WAITERS} waiters on ${B}, completed on ${A} in ${tc.toFixed(0)} ms; wake (completion sent → waiter answered) ${fmt(lat)}; lost ${lost}`);
}
if (WAITERS > 0) for (const kind of WAVES) await wave(kind);

console.log(`${passed} passed, ${failed} failed`);
agent.destroy();
process.exit(failed ? 1 : 0);
