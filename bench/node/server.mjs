// The verification-sessions API written the way a Node integrator would:
// node:http, node-redis, Lua scripts for the atomic steps, and Redis pub/sub
// with one subscriber connection per process fanning out to in-process
// listeners (Map sid → Set). Paths, JSON envelopes, error codes and SSE
// events match the Rust service (core/src/wire.rs, stream.rs, error.rs).
// It is the benchmark's reference (bench/node/README.md).
import http from 'node:http';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createClient, defineScript } from 'redis';

const env = process.env;
const int = (name, dflt) => {
  const v = env[name] === undefined || env[name] === '' ? dflt : Number(env[name]);
  if (!Number.isSafeInteger(v) || v < 0) throw new Error(`${name} must be a whole number`);
  return v;
};
const PORT = int('PORT', 3000);
const HOST = env.HOST || '127.0.0.1';
const REDIS_URL = env.REDIS_URL || 'redis://127.0.0.1:6379';
const ADMIN_TOKEN = env.ADMIN_TOKEN || null;
const PUBLIC_BASE_URL = (env.PUBLIC_BASE_URL || `http://${HOST}:${PORT}`).replace(/\/+$/, '');
const SESSION_TTL_MS = int('SESSION_TTL_SECONDS', 300) * 1000;
const MAX_WAIT_SECONDS = int('MAX_WAIT_SECONDS', 25);
const HEARTBEAT_MS = Math.max(1, int('HEARTBEAT_SECONDS', 15)) * 1000;
const RETENTION_MS = int('SESSION_RETENTION_SECONDS', 86_400) * 1000;
const KEY_CACHE_MS = 5_000;
const MAX_BODY = 16 * 1024;
const VERSION = '0.1.0'; // the Rust service's version string, so bodies are the same size
const P = 'nref:';
const CHANNEL = `${P}session-events`;

// ---------- errors: {status, error: {code, message, field?}, timestamp, version}
const STATUS = {
  invalid_json: 400, missing_field: 400, empty_field: 400, invalid_type: 400, field_too_long: 400,
  unknown_field: 400, invalid_field: 400, invalid_wait: 400, invalid_query: 400, invalid_id: 400,
  unauthorized: 401, session_not_found: 404, pid_not_found: 404, key_not_found: 404,
  link_not_found: 404, not_found: 404, method_not_allowed: 405, pid_exists: 409,
  session_expired: 409, session_cancelled: 409, session_completed: 409, completion_conflict: 409,
  body_too_large: 413, unsupported_media_type: 415, quota_exceeded: 429, internal_error: 500,
  store_unavailable: 503,
};
class ApiError extends Error {
  constructor(code, message, { field, retryAfter, allow } = {}) {
    super(message);
    Object.assign(this, { code, status: STATUS[code], field, retryAfter, allow });
  }
}
const noRoute = () => new ApiError('not_found', 'no such route');
const sessionNotFound = () => new ApiError('session_not_found', 'no such verification session');
const badSid = () => new ApiError('invalid_id', 'a session id is `vsn_` followed by 22 letters or digits');
const badPid = 'a PID is 1 to 64 characters from a-z, A-Z, 0-9, `-` and `_`';

// ---------- responses
const JSON_HEADERS = { 'content-type': 'application/json', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' };
function send(res, status, body, extra) {
  res.writeHead(status, { ...JSON_HEADERS, 'content-length': Buffer.byteLength(body), ...extra });
  res.end(body);
}
function ok(res, data, remaining) {
  const env = { status: 200, data, timestamp: new Date().toISOString(), version: VERSION };
  if (remaining !== undefined) env.verifyRequestsRemaining = remaining;
  send(res, 200, JSON.stringify(env));
}
function fail(res, e) {
  if (!(e instanceof ApiError)) {
    const redisDown = !redis.isReady;
    if (!redisDown) console.error(e);
    e = redisDown
      ? new ApiError('store_unavailable', 'the session store is unavailable; retry shortly', { retryAfter: 1 })
      : new ApiError('internal_error', String(e?.message ?? e));
  }
  if (res.headersSent) return res.destroy();
  const error = { code: e.code, message: e.message };
  if (e.field) error.field = e.field;
  const extra = {};
  if (e.retryAfter !== undefined) extra['retry-after'] = String(e.retryAfter);
  if (e.code === 'unauthorized') extra['www-authenticate'] = 'Bearer';
  if (e.allow) extra.allow = e.allow;
  send(res, e.status, JSON.stringify({ status: e.status, error, timestamp: new Date().toISOString(), version: VERSION }), extra);
}

// ---------- ids and hashing
const B62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
function base62(bytes16) { // a u128 as exactly 22 base62 digits
  let n = bytes16.readBigUInt64BE(0) << 64n | bytes16.readBigUInt64BE(8);
  let s = '';
  for (let i = 0; i < 22; i++) { s = B62[Number(n % 62n)] + s; n /= 62n; }
  return s;
}
const newId = (prefix) => prefix + base62(randomBytes(16));
const newKey = () => { const b = randomBytes(32); return 'dock_' + base62(b.subarray(0, 16)) + base62(b.subarray(16)); };
const sha256 = (s) => createHash('sha256').update(s).digest('hex');
const SID_RE = /^vsn_[0-9A-Za-z]{22}$/;
const PID_RE = /^[0-9A-Za-z_-]{1,64}$/;
const KEYID_RE = /^key_[0-9A-Za-z]{22}$/;

// ---------- Redis: one command connection (node-redis pipelines it) + one subscriber
const scripts = {
  // Reuse the live session of a (pid, clientId, guildId) or create a new one, atomically.
  createSession: defineScript({
    NUMBER_OF_KEYS: 2,
    SCRIPT: `
local cur = redis.call('GET', KEYS[1])
if cur then
  local s = redis.call('HMGET', ARGV[9] .. cur, 'status', 'expiresAt')
  if s[1] == 'pending' and tonumber(s[2]) > tonumber(ARGV[1]) then return {1, cur, s[2]} end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[8])
redis.call('HSET', KEYS[2], 'sid', ARGV[2], 'pid', ARGV[3], 'clientId', ARGV[4], 'status', 'pending',
  'createdAt', ARGV[1], 'expiresAt', ARGV[6])
if ARGV[5] ~= '' then redis.call('HSET', KEYS[2], 'guildId', ARGV[5]) end
redis.call('PEXPIRE', KEYS[2], ARGV[7])
return {0, ARGV[2], ARGV[6]}`,
    parseCommand(parser, reuseKey, sessionKey, ...args) {
      parser.pushKey(reuseKey); parser.pushKey(sessionKey);
      for (const a of args) parser.push(String(a));
    },
    transformReply: undefined,
  }),
  // Move a pending session to completed/cancelled (compare-and-set on status), update the
  // PID's link dataset on completion, and publish the new record to every instance.
  finishSession: defineScript({
    NUMBER_OF_KEYS: 1,
    SCRIPT: `
local function record()
  local flat, rec = redis.call('HGETALL', KEYS[1]), {}
  for i = 1, #flat, 2 do rec[flat[i]] = flat[i + 1] end
  return cjson.encode(rec)
end
local s = redis.call('HMGET', KEYS[1], 'pid', 'status', 'expiresAt', 'discordId', 'robloxId')
if not s[1] then return {'missing'} end
local now, action = tonumber(ARGV[1]), ARGV[2]
if s[2] == 'completed' then
  if action == 'complete' and s[4] == ARGV[3] and s[5] == ARGV[4] then return {'same', record()} end
  return {action == 'complete' and 'conflict' or 'completed'}
end
if s[2] == 'cancelled' then return {'cancelled'} end
if now >= tonumber(s[3]) then return {'expired', s[3]} end
if action == 'complete' then
  local links = ARGV[6] .. s[1]
  local prev = redis.call('HGET', links, ARGV[3])
  local changed, prevOut = '0', ''
  if prev and prev ~= ARGV[4] then
    changed, prevOut = '1', prev
    redis.call('SREM', links .. ':r:' .. prev, ARGV[3])
  end
  redis.call('HSET', links, ARGV[3], ARGV[4])
  redis.call('SADD', links .. ':r:' .. ARGV[4], ARGV[3])
  redis.call('HSET', KEYS[1], 'status', 'completed', 'completedAt', ARGV[1], 'discordId', ARGV[3],
    'robloxId', ARGV[4], 'linkChanged', changed, 'previousRobloxId', prevOut)
else
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'cancelledAt', ARGV[1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
local msg = record()
redis.call('PUBLISH', ARGV[7], msg)
return {'ok', msg}`,
    parseCommand(parser, sessionKey, ...args) {
      parser.pushKey(sessionKey);
      for (const a of args) parser.push(String(a));
    },
    transformReply: undefined,
  }),
};
const redis = createClient({ url: REDIS_URL, scripts });
redis.on('error', (e) => console.error('redis:', e.message));
const sub = redis.duplicate();
sub.on('error', (e) => console.error('redis subscriber:', e.message));

// ---------- in-process fan-out: sid → listeners, fed by the one subscriber
const listeners = new Map();
function listen(sid, fn) {
  let set = listeners.get(sid);
  if (!set) listeners.set(sid, (set = new Set()));
  set.add(fn);
  return () => { set.delete(fn); if (set.size === 0 && listeners.get(sid) === set) listeners.delete(sid); };
}
function fanOut(rec) {
  const set = listeners.get(rec.sid);
  if (set) for (const fn of [...set]) fn(rec);
}
let subscribedOnce = false;
sub.on('ready', () => {
  // After a reconnect, messages published while we were away are gone: re-read what we wait on.
  if (subscribedOnce) for (const sid of listeners.keys()) loadSession(sid).then((r) => r && r.status !== 'pending' && fanOut(r), () => {});
  subscribedOnce = true;
});

// ---------- sessions
const sessionKey = (sid) => `${P}s:${sid}`;
async function loadSession(sid) {
  const h = await redis.hGetAll(sessionKey(sid));
  return h && h.sid ? h : null;
}
const isTerminal = (rec) => rec.status !== 'pending';
function view(rec, now = Date.now()) {
  const expiresAt = Number(rec.expiresAt);
  let status = rec.status;
  if (status === 'pending' && now >= expiresAt) status = 'expired';
  return {
    sid: rec.sid, pid: rec.pid, clientId: rec.clientId, guildId: rec.guildId ?? null, status,
    expiresAt: new Date(expiresAt).toISOString(),
    result: rec.status === 'completed' ? {
      discordId: rec.discordId, robloxId: rec.robloxId, linkChanged: rec.linkChanged === '1',
      previousRobloxId: rec.previousRobloxId || null,
    } : null,
  };
}

// ---------- auth
function bearer(req) {
  const v = req.headers.authorization?.trim();
  const i = v ? v.indexOf(' ') : -1;
  if (i < 0 || v.slice(0, i).toLowerCase() !== 'bearer') return null;
  return v.slice(i + 1).trim() || null;
}
const keyCache = new Map(); // sha256 → {rec, until}: key lookups are cached for KEY_CACHE_MS
async function apiKey(req) {
  const token = bearer(req);
  const unauthorized = () => new ApiError('unauthorized', 'missing or invalid API key: send `Authorization: Bearer <key>`');
  if (!token || token.length > 256) throw unauthorized();
  const hash = sha256(token);
  const now = Date.now();
  const hit = keyCache.get(hash);
  if (hit && hit.until > now) return hit.rec;
  const json = await redis.get(`${P}key:${hash}`);
  if (!json) throw unauthorized();
  const rec = JSON.parse(json);
  if (keyCache.size > 10_000) keyCache.clear();
  keyCache.set(hash, { rec, until: now + KEY_CACHE_MS });
  return rec;
}
const ADMIN_DIGEST = ADMIN_TOKEN && createHash('sha256').update(ADMIN_TOKEN).digest();
function admin(req) {
  const token = bearer(req);
  // Hash both sides first so timingSafeEqual compares equal lengths and leaks no length.
  if (!token || !timingSafeEqual(createHash('sha256').update(token).digest(), ADMIN_DIGEST)) {
    throw new ApiError('unauthorized', 'missing or invalid admin token');
  }
}

// ---------- request bodies (same rules and codes as core/src/request.rs)
async function readJson(req) {
  const ct = req.headers['content-type'];
  if (ct !== undefined) {
    const essence = ct.split(';')[0].trim().toLowerCase();
    if (essence !== 'application/json' && !(essence.startsWith('application/') && essence.endsWith('+json'))) {
      throw new ApiError('unsupported_media_type', `Content-Type must be application/json, not ${JSON.stringify(ct.slice(0, 100))}`);
    }
  }
  const tooLarge = () => new ApiError('body_too_large', `the body is larger than ${MAX_BODY} bytes`);
  if (Number(req.headers['content-length']) > MAX_BODY) throw tooLarge();
  const chunks = [];
  let size = 0;
  for await (const c of req) {
    size += c.length;
    if (size > MAX_BODY) throw tooLarge();
    chunks.push(c);
  }
  return Buffer.concat(chunks).toString('utf8');
}
function parseObject(text, known) {
  let v;
  try { v = JSON.parse(text); } catch (e) { throw new ApiError('invalid_json', `the body is not valid JSON: ${e.message}`); }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new ApiError('invalid_json', 'the body must be a JSON object');
  checkKnown(v, known);
  return v;
}
function checkKnown(obj, known) {
  for (const k of Object.keys(obj)) {
    if (!known.includes(k)) throw new ApiError('unknown_field', `unknown field \`${k.slice(0, 64)}\``, { field: k.slice(0, 64) });
  }
}
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
function str(obj, field, max, required = true) {
  const v = obj[field];
  if (v === undefined || v === null) {
    if (required) throw new ApiError('missing_field', `\`${field}\` is required`, { field });
    return null;
  }
  if (typeof v !== 'string') throw new ApiError('invalid_type', `\`${field}\` must be a string`, { field });
  if (v === '') throw new ApiError('empty_field', `\`${field}\` must not be empty`, { field });
  if (v.length > max && [...v].length > max) throw new ApiError('field_too_long', `\`${field}\` must be at most ${max} characters`, { field });
  if (CONTROL.test(v)) throw new ApiError('invalid_field', `\`${field}\` must not contain control characters`, { field });
  return v;
}
function pidField(obj, field) {
  const v = str(obj, field, 64);
  if (!PID_RE.test(v)) throw new ApiError('invalid_field', `\`${field}\` is invalid: ${badPid}`, { field });
  return v;
}
function platformId(obj, field) {
  const v = str(obj, field, 20);
  if (!/^[0-9]+$/.test(v)) throw new ApiError('invalid_field', `\`${field}\` is invalid: must be decimal digits`, { field });
  return v;
}
function parseSessionQuery(query) {
  const out = { wait: null, lastEventId: null };
  for (const [name, value] of new URLSearchParams(query)) {
    if (name === 'wait') {
      if (out.wait !== null) throw new ApiError('invalid_query', 'invalid query parameter `wait`: given more than once');
      if (!/^[0-9]+$/.test(value)) {
        throw new ApiError('invalid_wait', `\`wait\` must be a whole number of seconds (0 to ${MAX_WAIT_SECONDS}), got ${JSON.stringify(value.slice(0, 32))}`);
      }
      out.wait = Math.min(Number(value), MAX_WAIT_SECONDS);
    } else if (name === 'lastEventId') {
      if (Buffer.byteLength(value) > 64 || CONTROL.test(value)) {
        throw new ApiError('invalid_query', 'invalid query parameter `lastEventId`: too long or has control characters');
      }
      out.lastEventId = value;
    }
  }
  return out;
}
function transitionError(tag, detail) {
  switch (tag) {
    case 'missing': return sessionNotFound();
    case 'conflict': return new ApiError('completion_conflict', 'the session already completed with a different result');
    case 'completed': return new ApiError('session_completed', 'the session is already completed');
    case 'cancelled': return new ApiError('session_cancelled', 'the session was cancelled');
    case 'expired': return new ApiError('session_expired', `the session expired at ${new Date(Number(detail)).toISOString()}`);
    default: return new ApiError('internal_error', `unexpected script reply ${tag}`);
  }
}

// ---------- handlers
async function createSession(req, res) {
  const key = await apiKey(req);
  const body = parseObject(await readJson(req), ['pid', 'clientId', 'guildId']);
  const pid = pidField(body, 'pid');
  const clientId = str(body, 'clientId', 256);
  const guildId = str(body, 'guildId', 128, false);
  if (pid !== key.pid) throw new ApiError('pid_not_found', 'no such PID for this API key', { field: 'pid' });
  const now = Date.now();
  // Fixed-window quota: INCR + PEXPIREAT in one MULTI.
  const windowMs = key.quota.windowSeconds * 1000;
  const windowEnd = (Math.floor(now / windowMs) + 1) * windowMs;
  const qk = `${P}q:${key.keyId}:${Math.floor(now / windowMs)}`;
  const [count] = await redis.multi().incr(qk).pExpireAt(qk, windowEnd).exec();
  if (count > key.quota.limit) {
    throw new ApiError('quota_exceeded', "this key's verification-session quota is used up for the current window",
      { retryAfter: Math.max(1, Math.ceil((windowEnd - now) / 1000)) });
  }
  const sid = newId('vsn_');
  const expiresAt = now + SESSION_TTL_MS;
  const reuseKey = `${P}r:${pid}:${sha256(JSON.stringify([clientId, guildId]))}`;
  const [reused, outSid, outExpires] = await redis.createSession(reuseKey, sessionKey(sid),
    now, sid, pid, clientId, guildId ?? '', expiresAt, SESSION_TTL_MS + RETENTION_MS, SESSION_TTL_MS, `${P}s:`);
  ok(res, {
    sid: outSid, pid, clientId, expiresAt: new Date(Number(outExpires)).toISOString(),
    reusedExisting: reused === 1,
    verifyUrl: `${PUBLIC_BASE_URL}/v1/api/verify/discord?${new URLSearchParams({ pid, sid: outSid })}`,
  }, key.quota.limit - count);
}

// Reads a session the key may see, with a listener registered *before* the read so no
// change published between the read and the wait is missed. Returns {rec, stop}.
async function watchSession(key, sid, onChange) {
  let early = null;
  const stop = listen(sid, (rec) => (early ? null : (early = rec), onChange(rec)));
  try {
    const rec = await loadSession(sid);
    if (!rec || rec.pid !== key.pid) throw sessionNotFound();
    return { rec: early ?? rec, stop };
  } catch (e) { stop(); throw e; }
}

async function getSession(req, res, sid, query) {
  const key = await apiKey(req); // auth first: a bad sid or query never answers more than a 401
  if (!SID_RE.test(sid)) throw badSid();
  const q = parseSessionQuery(query);
  let wake = null;
  const { rec, stop } = await watchSession(key, sid, (r) => wake?.(r));
  const now = Date.now();
  const deadline = now + (q.wait ?? 0) * 1000;
  if (isTerminal(rec) || now >= deadline || now >= Number(rec.expiresAt)) { stop(); return ok(res, view(rec, now)); }
  // Long-poll: answer on the first change, or at min(deadline, expiresAt) with a fresh read.
  const timer = setTimeout(async () => {
    wake = null; stop();
    try { ok(res, view((await loadSession(sid)) ?? rec)); } catch (e) { fail(res, e); }
  }, Math.min(deadline, Number(rec.expiresAt)) - now);
  wake = (r) => { wake = null; clearTimeout(timer); stop(); ok(res, view(r)); };
  res.on('close', () => { if (wake) { wake = null; clearTimeout(timer); stop(); } });
}

const SSE_HEADERS = { 'content-type': 'text/event-stream', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', 'x-accel-buffering': 'no' };
const EVENT = { pending: 'pending', completed: 'complete', expired: 'expired', cancelled: 'cancelled' };
async function streamSession(req, res, sid, query) {
  const key = await apiKey(req); // auth first: a bad sid or query never answers more than a 401
  if (!SID_RE.test(sid)) throw badSid();
  const q = parseSessionQuery(query);
  const lastId = (req.headers['last-event-id'] ?? q.lastEventId ?? '').trim();
  let seen = lastId === '1' ? 1 : lastId === '2' ? 2 : 0;
  let push = null;
  const { rec, stop } = await watchSession(key, sid, (r) => push?.(r));
  res.writeHead(200, SSE_HEADERS);
  res.flushHeaders(); // a resumed client may get no event for a while: let it see the 200 now
  let heartbeat = null, expiry = null;
  const close = () => { push = null; stop(); clearInterval(heartbeat); clearTimeout(expiry); };
  // Writes what this client has not seen; true once the terminal event is out.
  const step = (r) => {
    const v = view(r);
    const rev = v.status === 'pending' ? 1 : 2;
    if (rev > seen) {
      seen = rev;
      const frame = `event: ${EVENT[v.status]}\nid: ${rev}\ndata: ${JSON.stringify(v)}\n\n`;
      if (rev === 2) { close(); res.end(frame); return true; }
      res.write(frame);
    }
    if (seen >= 2) { close(); res.end(); return true; }
    return false;
  };
  if (step(rec)) return;
  push = step;
  heartbeat = setInterval(() => res.write(': keep-alive\n\n'), HEARTBEAT_MS);
  const atExpiry = () => { // timers may fire a millisecond early: re-arm until expiresAt has passed
    const left = Number(rec.expiresAt) - Date.now();
    if (left > 0) expiry = setTimeout(atExpiry, left); else push?.(rec);
  };
  atExpiry();
  res.on('close', close);
}

async function finish(sid, action, discordId = '', robloxId = '') {
  const [tag, detail] = await redis.finishSession(sessionKey(sid), Date.now(), action, discordId, robloxId,
    RETENTION_MS, `${P}l:`, CHANNEL);
  if (tag !== 'ok' && tag !== 'same') throw transitionError(tag, detail);
  return JSON.parse(detail);
}

async function cancelSession(req, res, sid) {
  const key = await apiKey(req);
  if (!SID_RE.test(sid)) throw badSid();
  const rec = await loadSession(sid);
  if (!rec || rec.pid !== key.pid) throw sessionNotFound();
  ok(res, view(await finish(sid, 'cancel')));
}

async function completeSession(req, res, sid) {
  admin(req);
  if (!SID_RE.test(sid)) throw badSid();
  const body = parseObject(await readJson(req), ['discordId', 'robloxId']);
  const discordId = platformId(body, 'discordId');
  const robloxId = platformId(body, 'robloxId');
  ok(res, view(await finish(sid, 'complete', discordId, robloxId)));
}

async function createPid(req, res) {
  admin(req);
  const body = parseObject(await readJson(req), ['pid', 'name']);
  const pid = pidField(body, 'pid');
  const name = str(body, 'name', 100);
  const rec = { pid, name, createdAt: new Date().toISOString() };
  const created = await redis.set(`${P}pid:${pid}`, JSON.stringify(rec), { NX: true });
  if (created === null) throw new ApiError('pid_exists', 'this PID already exists', { field: 'pid' });
  ok(res, rec);
}

async function issueKey(req, res, pid) {
  admin(req);
  if (!PID_RE.test(pid)) throw new ApiError('invalid_id', badPid);
  const text = await readJson(req);
  const quota = { limit: 2000, windowSeconds: 86_400 };
  if (text.trim() !== '') {
    const body = parseObject(text, ['quota']);
    if (body.quota !== undefined && body.quota !== null) {
      if (typeof body.quota !== 'object' || Array.isArray(body.quota)) throw new ApiError('invalid_type', '`quota` must be an object', { field: 'quota' });
      checkKnown(body.quota, ['limit', 'windowSeconds']);
      for (const [f, max] of [['limit', 1_000_000_000], ['windowSeconds', 31_536_000]]) {
        const v = body.quota[f];
        if (v === undefined || v === null) continue;
        if (!Number.isSafeInteger(v) || v < 0) throw new ApiError('invalid_type', `\`${f}\` must be a whole number`, { field: f });
        if (v < 1 || v > max) throw new ApiError('invalid_field', `\`quota.${f}\` is invalid: must be 1 to ${max}`, { field: `quota.${f}` });
        quota[f] = v;
      }
    }
  }
  if (!(await redis.exists(`${P}pid:${pid}`))) throw new ApiError('pid_not_found', 'no such PID');
  const key = newKey();
  const hash = sha256(key);
  const rec = { keyId: newId('key_'), pid, quota, createdAt: new Date().toISOString() };
  await redis.multi().set(`${P}key:${hash}`, JSON.stringify(rec)).set(`${P}keyid:${rec.keyId}`, hash).exec();
  ok(res, { keyId: rec.keyId, pid, key, quota, createdAt: rec.createdAt });
}

async function revokeKey(req, res, keyId) {
  admin(req);
  if (!KEYID_RE.test(keyId)) throw new ApiError('invalid_id', 'a key id is `key_` followed by 22 letters or digits');
  const hash = await redis.getDel(`${P}keyid:${keyId}`);
  if (!hash) throw new ApiError('key_not_found', 'no such key');
  await redis.del(`${P}key:${hash}`);
  keyCache.delete(hash); // other instances drop it within KEY_CACHE_MS
  ok(res, { keyId, revoked: true });
}

// ---------- routing
const only = (method, allow, fn) => (req) => {
  if (req.method !== method) throw new ApiError('method_not_allowed', `method not allowed; use ${allow}`, { allow });
  return fn();
};
async function route(req, res) {
  const q = req.url.indexOf('?');
  const path = q < 0 ? req.url : req.url.slice(0, q);
  const query = q < 0 ? '' : req.url.slice(q + 1);
  const s = path.slice(1).split('/');
  const is = (...parts) => s.length === parts.length && parts.every((p, i) => p === null || p === s[i]);
  if (s[0] === 'api' && s[1] === 'v1' && s[2] === 'admin' && !ADMIN_TOKEN) throw noRoute();
  if (is('healthz')) return only('GET', 'GET', () => ok(res, { status: 'ok' }))(req);
  if (is('readyz')) return only('GET', 'GET', async () => { await redis.ping(); ok(res, { status: 'ready', store: 'redis' }); })(req);
  if (is('api', 'v1', 'verify', 'session')) return only('POST', 'POST', () => createSession(req, res))(req);
  if (is('api', 'v1', 'verify', 'session', null)) {
    if (req.method === 'GET') return getSession(req, res, s[4], query);
    if (req.method === 'DELETE') return cancelSession(req, res, s[4]);
    throw new ApiError('method_not_allowed', 'method not allowed; use GET, DELETE', { allow: 'GET, DELETE' });
  }
  if (is('api', 'v1', 'verify', 'session', null, 'stream')) return only('GET', 'GET', () => streamSession(req, res, s[4], query))(req);
  if (is('api', 'v1', 'admin', 'pids')) return only('POST', 'POST', () => createPid(req, res))(req);
  if (is('api', 'v1', 'admin', 'pids', null, 'keys')) return only('POST', 'POST', () => issueKey(req, res, s[4]))(req);
  if (is('api', 'v1', 'admin', 'keys', null)) return only('DELETE', 'DELETE', () => revokeKey(req, res, s[4]))(req);
  if (is('api', 'v1', 'admin', 'sessions', null, 'complete')) return only('POST', 'POST', () => completeSession(req, res, s[4]))(req);
  throw noRoute();
}

const server = http.createServer((req, res) => {
  route(req, res).catch((e) => fail(res, e));
});
server.keepAliveTimeout = 65_000;
server.headersTimeout = 66_000;
server.requestTimeout = 0; // SSE and long-polls are long; idle sockets are bounded by keepAliveTimeout

await redis.connect();
await sub.connect();
await sub.subscribe(CHANNEL, (msg) => {
  try { fanOut(JSON.parse(msg)); } catch (e) { console.error('bad message on', CHANNEL, e.message); }
});
server.listen(PORT, HOST, () => console.log(`node reference listening on http://${HOST}:${PORT} (redis ${REDIS_URL})`));
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => { server.close(); server.closeAllConnections(); redis.destroy(); sub.destroy(); process.exit(0); });
}
