// The jit disk cache is untrusted input (issue 8, items 1 and 15): a tampered entry of any kind
// is discarded with a warning and recompiled, never run; entries are bound to their key by a
// digest, read only from private regular files under a size cap, kept under an LRU size cap,
// and hold no constants; cache-directory problems cost one warning, not a crash.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import * as ng from '../../src/index.js';
import { deserializeLowered, serializeLowered } from '../../src/codegen/kernel/serialize.js';
import { config } from '../../src/convnextv2/config.js';
import { paramSpec } from '../../src/convnextv2/model.js';
import { specEntries, unflattenParams } from '../../src/nn/init.js';
import { lower } from '../../src/passes/pipeline.js';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'nexgrad-cache-'));
const entries = (dir: string) => fs.readdirSync(dir).filter((f) => f.endsWith('.json'));
const x = ng.tensor([1, 2, 3, 4]);
const fn = (a: ng.Tensor) => a.mul(3).add(1).exp().sum();
const want = Array.from(ng.jit(fn, { cacheDir: false })(x).dataSync());

/** Compiles fn with a fresh jit over `dir`; returns the result, the jit's stats and the warnings printed. */
function run(dir: string, f = fn) {
  const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
  try {
    const j = ng.jit(f, { cacheDir: dir });
    const y = Array.from(j(x).dataSync());
    return { y, stats: j.stats, warnings: warn.mock.calls.map((c) => String(c[0])) };
  } finally {
    warn.mockRestore();
  }
}

/** Writes a cache entry (its header and payload) with an optional change. */
function rewrite(file: string, change: (payload: any, header: any) => void, rehash = true): void {
  const text = fs.readFileSync(file, 'utf8');
  const nl = text.indexOf('\n');
  const header = JSON.parse(text.slice(0, nl));
  const payload = JSON.parse(text.slice(nl + 1));
  change(payload, header);
  const body = JSON.stringify(payload);
  if (rehash) header.sha256 = require('node:crypto').createHash('sha256').update(body).digest('hex');
  fs.writeFileSync(file, `${JSON.stringify(header)}\n${body}`, { mode: 0o600 });
}

afterEach(() => {
  delete (globalThis as Record<string, unknown>).__nexgradPwned;
  delete process.env.NEXGRAD_CACHE_MAX_BYTES;
});

describe('tampered cache entries are discarded and recompiled, never run', () => {
  const cases: [string, (p: any, h: any) => void, boolean?][] = [
    ['code in a kernel name', (p) => (p.graph.kernels[0].name = 'k0});globalThis.__nexgradPwned=1;(function(){')],
    ['code in a dtype', (p) => (p.graph.buffers[0].dtype = "f32'+(globalThis.__nexgradPwned=1)+'")],
    ['code in a constant node', (p) => { const n = p.nodes.find((q: any) => q.op === 'const'); n.value = '1;globalThis.__nexgradPwned=1'; }],
    ['code in a unary function name', (p) => { const n = p.nodes.find((q: any) => q.op === 'unary'); n.fn = 'exp(1);globalThis.__nexgradPwned=1;Math.exp'; }],
    ['a huge loop extent', (p) => (p.graph.kernels[0].outer = [2 ** 32, 2 ** 32])],
    ['a load outside its buffer', (p) => { const n = p.nodes.find((q: any) => q.op === 'load'); n.index = { c: 1000, t: [] }; }],
    ['another program (key)', (_p, h) => (h.key = '0'.repeat(64))],
    ['contents that do not match their digest', (p) => (p.graph.kernels[0].name = 'k0_other'), false],
    ['a constant count that does not match the program', (p) => (p.graph.consts = [0])],
  ];
  for (const [what, change, rehash] of cases) {
    it(what, () => {
      const dir = tmp();
      expect(run(dir).y).toEqual(want);
      const [file] = entries(dir);
      rewrite(path.join(dir, file!), change, rehash ?? true);
      const r = run(dir);
      expect(r.y).toEqual(want);
      expect(r.stats.diskHits).toBe(0);
      expect(r.warnings.some((w) => w.includes('discarding jit cache entry'))).toBe(true);
      expect((globalThis as Record<string, unknown>).__nexgradPwned).toBeUndefined();
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      // the entry was rewritten and now hits
      expect(run(dir).stats.diskHits).toBe(1);
    });
  }

  it('a __proto__ field pollutes nothing (the reader rebuilds every object field by field)', () => {
    const dir = tmp();
    run(dir);
    const [file] = entries(dir);
    rewrite(path.join(dir, file!), (p) => {
      p.graph.kernels[0] = JSON.parse(`{"__proto__": {"polluted": 1}, ${JSON.stringify(p.graph.kernels[0]).slice(1)}`);
      p.nodes[0] = JSON.parse(`{"__proto__": {"polluted": 1}, ${JSON.stringify(p.nodes[0]).slice(1)}`);
    });
    expect(run(dir).y).toEqual(want);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect((Object.prototype as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('an untouched entry hits, and a real model graph survives the validation', () => {
    const dir = tmp();
    run(dir);
    expect(run(dir).stats.diskHits).toBe(1);
    const cfg = config('atto');
    const params = unflattenParams(specEntries(paramSpec(cfg)).map(([n, s]) => [n, ng.zeros(s.shape)] as const));
    const prog = ng.trace((p: any, im: ng.Tensor) => ng.convnextv2.apply(p, im, { cfg }), params, ng.zeros([1, 3, 64, 64]));
    const low = lower(prog);
    const back = deserializeLowered(serializeLowered(low.graph, low.plan), prog.consts.map((c) => c.value));
    expect(back.graph.kernels.length).toBe(low.graph.kernels.length);
  });

  it('a program with a zero-size output hits (regression: its empty kernel\'s store was judged outside its 0 elements)', () => {
    const withEmpty = (a: ng.Tensor) => [a.sum(), ng.zeros([0, 3]).add(a.sum()), a.mul(2)];
    const want = ng.jit(withEmpty, { cacheDir: false })(x).map((t) => Array.from(t.dataSync()));
    const dir = tmp();
    const first = ng.jit(withEmpty, { cacheDir: dir })(x).map((t) => Array.from(t.dataSync()));
    expect(first).toEqual(want);
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    try {
      const j = ng.jit(withEmpty, { cacheDir: dir });
      expect(j(x).map((t) => Array.from(t.dataSync()))).toEqual(want);
      expect(warn.mock.calls).toEqual([]);
      expect(j.stats.diskHits).toBe(1);
    } finally {
      warn.mockRestore();
    }
  });

  it('a padded operand (loads out of range only where a select discards them) hits, and a bare out-of-range load is still refused', () => {
    // regression: the validator refused every graph reading a padded view, so programs with pad
    // (the FCMAE step, convolutions lowered by hand) warned and recompiled in every process
    const padded = (a: ng.Tensor) => ng.pad(a.reshape([2, 2]), [[1, 1], [2, 2]]).mul(2).sum(1);
    const want = Array.from(ng.jit(padded, { cacheDir: false })(x).dataSync());
    const dir = tmp();
    expect(run(dir, padded).y).toEqual(want);
    const again = run(dir, padded);
    expect(again.y).toEqual(want);
    expect(again.warnings).toEqual([]);
    expect(again.stats.diskHits).toBe(1);
    // the same load taken out of its select is outside the buffer: discarded
    const [file] = entries(dir);
    rewrite(path.join(dir, file!), (p) => {
      const sel = p.nodes.find((q: any) => q.op === 'select' && p.nodes[q.a]?.op === 'load');
      expect(sel).toBeDefined();
      Object.assign(sel, p.nodes[sel.a]);
    });
    const r = run(dir, padded);
    expect(r.y).toEqual(want);
    expect(r.stats.diskHits).toBe(0);
    expect(r.warnings.some((w) => /discarding jit cache entry.*outside its 4 elements/.test(w))).toBe(true);
  });
});

describe('cache files and directories', () => {
  it('a symlink, a FIFO, a file others can write and an oversized file are not read', () => {
    const dir = tmp();
    run(dir);
    const [name] = entries(dir);
    const file = path.join(dir, name!);
    const variants: [string, () => void][] = [
      ['symlink', () => { fs.unlinkSync(file); fs.symlinkSync('/dev/zero', file); }],
      ['fifo', () => { fs.unlinkSync(file); require('node:child_process').execFileSync('mkfifo', [file]); }],
      ['world-writable', () => { fs.unlinkSync(file); run(dir); fs.chmodSync(file, 0o666); }],
      ['oversized', () => { fs.unlinkSync(file); fs.writeFileSync(file, ''); fs.chmodSync(file, 0o600); fs.truncateSync(file, 300 * 2 ** 20); }],
    ];
    for (const [what, make] of variants) {
      make();
      const t0 = Date.now();
      const r = run(dir);
      expect(r.y, what).toEqual(want);
      expect(r.stats.diskHits, what).toBe(0);
      expect(Date.now() - t0, what).toBeLessThan(5000);
      expect(r.warnings.some((w) => w.includes('discarding jit cache entry')), what).toBe(true);
    }
  });

  it('an entry owned by another user is refused (as root, chown to nobody)', () => {
    if (process.getuid?.() !== 0) return expect(process.getuid?.()).not.toBe(0); // only root can give a file away
    const dir = tmp();
    run(dir);
    const [name] = entries(dir);
    fs.chownSync(path.join(dir, name!), 65534, 65534);
    const r = run(dir);
    expect(r.stats.diskHits).toBe(0);
    expect(r.warnings.join('\n')).toMatch(/belongs to another user/);
  });

  it('the directory is created 0700; a directory others can write is not used (one warning)', () => {
    const parent = tmp();
    const dir = path.join(parent, 'cache');
    run(dir);
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(dir, entries(dir)[0]!)).mode & 0o777).toBe(0o600);
    const open = tmp();
    fs.chmodSync(open, 0o777);
    const r = run(open);
    expect(r.y).toEqual(want);
    expect(entries(open)).toEqual([]);
    expect(r.warnings.join('\n')).toMatch(/others can write to it/);
    const again = run(open);
    expect(again.warnings).toEqual([]); // once per process
  });

  it('a file where the directory should be, or an unwritable one: results still right, one warning', () => {
    const parent = tmp();
    const file = path.join(parent, 'not-a-dir');
    fs.writeFileSync(file, 'x');
    const r = run(file);
    expect(r.y).toEqual(want);
    expect(r.warnings.length).toBe(1);
  });

  it('the cache stays under NEXGRAD_CACHE_MAX_BYTES, least recently used first, and stores no constants', () => {
    const dir = tmp();
    const big = ng.random.normal(ng.random.key(1), [1_000_000]); // 4 MB closed over
    const f = (a: ng.Tensor) => a.sum().add(big.sum());
    run(dir, f);
    const size = fs.statSync(path.join(dir, entries(dir)[0]!)).size;
    expect(size).toBeLessThan(100_000); // not 5 MB
    process.env.NEXGRAD_CACHE_MAX_BYTES = String(size * 2.5);
    for (let i = 0; i < 5; i++) run(dir, (a: ng.Tensor) => a.mul(i + 2).sum());
    const total = entries(dir).reduce((s, e) => s + fs.statSync(path.join(dir, e)).size, 0);
    expect(total).toBeLessThanOrEqual(size * 2.5);
    expect(entries(dir).length).toBeGreaterThanOrEqual(1);
  });
});
