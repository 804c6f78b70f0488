/**
 * jit: the compile cache (in memory and on disk), explainCacheMiss, static arguments, jit
 * under trace/grad, donation (in-place updates and the loud error), NEXGRAD_DUMP.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { grad } from '../../src/autodiff/index.js';
import { trace } from '../../src/ir/functional.js';
import * as ops from '../../src/ir/ops.js';
import { treeMap } from '../../src/ir/pytree.js';
import * as random from '../../src/ir/random.js';
import type { Tensor } from '../../src/ir/tensor.js';
import { jit } from '../../src/passes/jit.js';
import { relErr } from '../helpers/refs.js';

const noDisk = { backend: 'cpu', cacheDir: false } as const;
const tmpDirs: string[] = [];
function tmpCacheDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'nexgrad-jit-test-'));
  tmpDirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});
afterEach(() => {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
});

const close = (a: Tensor, b: Tensor, tol = 1e-6): void => {
  expect(a.shape).toEqual(b.shape);
  expect(relErr(ops.cast(a, 'f64'), ops.cast(b, 'f64'))).toBeLessThanOrEqual(tol);
};

describe('the in-memory cache', () => {
  it('traces once per signature: same shapes hit, a new shape or dtype retraces', () => {
    const f = jit((x: Tensor, y: Tensor) => ops.add(ops.mul(x, y), 1), noDisk);
    const x = random.normal(random.key(0), [3, 4]);
    const y = random.normal(random.key(1), [3, 4]);
    close(f(x, y), ops.add(ops.mul(x, y), 1));
    expect(f.stats).toMatchObject({ traces: 1, compiles: 1, calls: 1 });
    // new data, same signature: no retrace
    const x2 = random.normal(random.key(2), [3, 4]);
    close(f(x2, y), ops.add(ops.mul(x2, y), 1));
    expect(f.stats).toMatchObject({ traces: 1, compiles: 1, calls: 2 });
    expect(f.explainCacheMiss(x2, y)).toMatch(/^cache hit/);
    // new shape: retrace
    const x3 = random.normal(random.key(3), [5, 4]);
    const y3 = random.normal(random.key(4), [5, 4]);
    close(f(x3, y3), ops.add(ops.mul(x3, y3), 1));
    expect(f.stats).toMatchObject({ traces: 2, compiles: 2, calls: 3 });
    // both signatures stay cached
    f(x, y);
    f(x3, y3);
    expect(f.stats).toMatchObject({ traces: 2, calls: 5 });
    // dtype is part of the signature
    f(ops.cast(x, 'f64'), ops.cast(y, 'f64'));
    expect(f.stats.traces).toBe(3);
  });

  it('explainCacheMiss names the argument path and both shapes', () => {
    const f = jit((p: { w: Tensor; b: Tensor[] }, x: Tensor) => ops.add(ops.matmul(x, p.w), p.b[0]!), noDisk);
    const p = { w: ops.zeros([4, 3]), b: [ops.zeros([3])] };
    expect(f.explainCacheMiss(p, ops.zeros([2, 4]))).toBe('cache miss: nothing compiled yet');
    f(p, ops.zeros([2, 4]));
    const msg = f.explainCacheMiss({ w: ops.zeros([5, 3]), b: [ops.zeros([3])] }, ops.zeros([2, 5]));
    expect(msg).toContain('argument 0.w: f32[5,3] vs f32[4,3]');
    expect(msg).toContain('argument 1: f32[2,5] vs f32[2,4]');
    expect(msg).not.toContain('argument 0.b');
    // structure changes name the leaves that appeared or went away
    const msg2 = f.explainCacheMiss({ w: ops.zeros([4, 3]), b: [ops.zeros([3]), ops.zeros([3])] }, ops.zeros([2, 4]));
    expect(msg2).toContain('argument 0.b[1]: new leaf f32[3]');
    const msg3 = f.explainCacheMiss({ w: ops.zeros([4, 3]), b: [ops.zeros([3], 'f64')] }, ops.zeros([2, 4]));
    expect(msg3).toContain('argument 0.b[0]: f64[3] vs f32[3]');
  });

  it('staticArgnums: static values are part of the key and reach the function as constants', () => {
    let traces = 0;
    const f = jit(
      (x: Tensor, mode: { op: 'exp' | 'neg'; scale: number }) => {
        traces++;
        const y = mode.op === 'exp' ? ops.exp(x) : ops.neg(x);
        return ops.mul(y, mode.scale);
      },
      { ...noDisk, staticArgnums: 1 },
    );
    const x = random.normal(random.key(0), [4]);
    close(f(x, { op: 'exp', scale: 2 }), ops.mul(ops.exp(x), 2));
    close(f(x, { scale: 2, op: 'exp' }), ops.mul(ops.exp(x), 2)); // key order does not matter
    expect(traces).toBe(1);
    close(f(x, { op: 'neg', scale: 3 }), ops.mul(ops.neg(x), 3));
    expect(traces).toBe(2);
    expect(f.stats.traces).toBe(2);
    expect(f.explainCacheMiss(x, { op: 'neg', scale: 4 })).toContain('static argument 1: {"op":"neg","scale":4} vs {"op":"exp","scale":2}');
  });

  it('jit inside trace and grad inlines (no separate compile; values and gradients as without jit)', () => {
    const inner = jit((x: Tensor) => ops.sum(ops.mul(ops.sin(x), x)), noDisk);
    const x = random.normal(random.key(0), [5]);
    const p = trace((a: Tensor) => ops.mul(inner(a), 2), x);
    expect(p.eqns.map((e) => e.prim)).toEqual(['sin', 'mul', 'reduce_sum', 'mul']);
    const g = grad((a: Tensor) => inner(a))(x);
    // d/dx sum(sin(x) x) = cos(x) x + sin(x)
    close(g, ops.add(ops.mul(ops.cos(x), x), ops.sin(x)), 1e-6);
    expect(inner.stats.traces).toBe(0);
    // and an outer jit of a function calling the inner one compiles them together
    const outer = jit((a: Tensor) => ops.mul(inner(a), 2), noDisk);
    close(outer(x), ops.mul(ops.sum(ops.mul(ops.sin(x), x)), 2), 1e-6);
    expect(inner.stats.traces).toBe(0);
    expect(outer.lower(x).program.eqns.map((e) => e.prim)).toEqual(['sin', 'mul', 'reduce_sum', 'mul']);
  });

  it('pytree results, literal results and inputs returned unchanged', () => {
    const f = jit((x: Tensor, y: Tensor) => ({ s: ops.add(x, y), pass: x, lit: ops.scalar(3), nested: [ops.neg(y), ops.sum(x)] }), noDisk);
    const x = random.normal(random.key(0), [2, 3]);
    const y = random.normal(random.key(1), [2, 3]);
    const r = f(x, y);
    close(r.s, ops.add(x, y));
    close(r.pass, x, 0);
    expect(r.lit.item()).toBe(3);
    close(r.nested[0]!, ops.neg(y), 0);
    close(r.nested[1]!, ops.sum(x));
  });
});

describe('the disk cache', () => {
  const fn = (x: Tensor, w: Tensor) => ops.tanh(ops.matmul(x, w));
  const x = random.normal(random.key(0), [4, 6]);
  const w = random.normal(random.key(1), [6, 3]);

  it('a second jit of the same function with the same cacheDir hits the disk and gives identical results', () => {
    const dir = tmpCacheDir();
    const f1 = jit(fn, { backend: 'cpu', cacheDir: dir });
    const r1 = f1(x, w).dataSync();
    expect(f1.stats).toMatchObject({ traces: 1, compiles: 1, diskHits: 0 });
    const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json'));
    expect(files.length).toBe(1);
    const f2 = jit(fn, { backend: 'cpu', cacheDir: dir });
    const r2 = f2(x, w).dataSync();
    expect(f2.stats).toMatchObject({ traces: 1, diskHits: 1 });
    expect(r2).toEqual(r1);
    // the same graph, kernel for kernel
    expect(f2.lower(x, w).graph.kernels).toEqual(f1.lower(x, w).graph.kernels);
    // a different program is a different file
    const f3 = jit((a: Tensor, b: Tensor) => ops.sigmoid(ops.matmul(a, b)), { backend: 'cpu', cacheDir: dir });
    f3(x, w);
    expect(f3.stats.diskHits).toBe(0);
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.json')).length).toBe(2);
  });

  it('a corrupt cache file is recompiled (and rewritten)', () => {
    const dir = tmpCacheDir();
    const want = jit(fn, noDisk)(x, w).dataSync();
    jit(fn, { backend: 'cpu', cacheDir: dir })(x, w);
    const [file] = fs.readdirSync(dir).filter((f) => f.endsWith('.json'));
    const full = path.join(dir, file!);
    const good = fs.readFileSync(full, 'utf8');
    for (const junk of ['not json at all', good.slice(0, Math.floor(good.length / 2)), '{}', '{"kernels": 5, "buffers": null}']) {
      fs.writeFileSync(full, junk);
      const f = jit(fn, { backend: 'cpu', cacheDir: dir });
      expect(f(x, w).dataSync(), JSON.stringify(junk.slice(0, 40))).toEqual(want);
      expect(f.stats.diskHits, JSON.stringify(junk.slice(0, 40))).toBe(0);
      expect(f.stats.compiles).toBe(1);
      // rewritten: the next jit hits it
      const g = jit(fn, { backend: 'cpu', cacheDir: dir });
      expect(g(x, w).dataSync()).toEqual(want);
      expect(g.stats.diskHits).toBe(1);
    }
  });
});

describe('donation', () => {
  const sgdStep = (p: { w: Tensor; b: Tensor }, g: { w: Tensor; b: Tensor }) => treeMap<{ w: Tensor; b: Tensor }>((a, b) => ops.sub(a, ops.mul(b, 0.1)), p, g);

  it('a donated input is updated in place; its old Tensor throws a clear error when read', () => {
    const f = jit(sgdStep, { ...noDisk, donate: 0 });
    const p = { w: random.normal(random.key(0), [3, 4]), b: random.normal(random.key(1), [4]) };
    const g = { w: random.normal(random.key(2), [3, 4]), b: random.normal(random.key(3), [4]) };
    const want = sgdStep(p, g);
    const storage = [p.w._host!.data, p.b._host!.data];
    const r = f(p, g);
    close(r.w, want.w);
    close(r.b, want.b);
    // the results live in the donated arrays
    expect(r.w._host!.data).toBe(storage[0]);
    expect(r.b._host!.data).toBe(storage[1]);
    expect(p.w.isDonated).toBe(true);
    expect(() => p.w.dataSync()).toThrow(/donated to a jitted function/);
    expect(() => ops.add(p.b, 1)).toThrow(/donated/);
    // the non-donated argument is untouched and still readable
    expect(g.w.isDonated).toBe(false);
    close(g.w, g.w);
    // a second step on the results, again in place; nothing but fresh outputs is allocated
    const r2 = f(r, g);
    expect(r2.w._host!.data).toBe(storage[0]);
    close(r2.w, sgdStep(want, g).w);
    expect(f.lower(r2, g).exec.lastRun.allocatedBytes).toBe(0);
  });

  it('a donated input whose storage another argument shares is not clobbered (AdamW state from shared zeros)', () => {
    // adamw().init gives m and v the very same zero tensors; each must still be updated on its own
    const upd = (s: { m: Tensor; v: Tensor }, g: Tensor) => ({ m: ops.add(ops.mul(s.m, 0.9), g), v: ops.add(ops.mul(s.v, 0.5), ops.mul(g, g)) });
    const f = jit(upd, { ...noDisk, donate: 0 });
    const z = ops.zeros([5]);
    const g = random.normal(random.key(0), [5]);
    const r = f({ m: z, v: z }, g);
    close(r.m, g);
    close(r.v, ops.mul(g, g));
    expect(r.m._host!.data).not.toBe(r.v._host!.data);
    // a donated argument also passed undonated: the undonated one is read intact
    const h = jit((a: Tensor, b: Tensor) => [ops.neg(a), ops.add(b, 1)], { ...noDisk, donate: 0 });
    const x = random.normal(random.key(1), [6]);
    const want = [ops.neg(x), ops.add(x, 1)];
    const [n, p] = h(x, x) as Tensor[];
    close(n!, want[0]!);
    close(p!, want[1]!);
  });

  it('a donated input returned unchanged keeps its value (no other output overwrites it)', () => {
    // found by the donated random programs: neg(x) used to be written into x's storage while
    // x itself was also returned
    const f = jit((a: Tensor) => [ops.neg(a), a], { ...noDisk, donate: 0 });
    const x = random.normal(random.key(0), [5]);
    const want = x.dataSync();
    const [n, same] = f(x) as Tensor[];
    expect(same!.dataSync()).toEqual(want);
    expect(n!.dataSync()).toEqual(want.map((v) => -v));
  });

  it('a donated input that cannot be reused raises an error naming it', () => {
    const x = random.normal(random.key(0), [4]);
    // no output has its size
    const f = jit((p: { w: Tensor; v: Tensor }, a: Tensor) => ops.sum(ops.mul(p.w, a)), { ...noDisk, donate: 0 });
    expect(() => f({ w: x, v: x }, x)).toThrow(/donated argument 0\.w cannot be reused in place: no output has its dtype and size \(f32, 4 elements\)/);
    // the only output of its size is written by a matmul that reads it throughout
    const m = random.normal(random.key(1), [3, 3]);
    const g = jit((a: Tensor) => ops.matmul(a, a), { ...noDisk, donate: 0 });
    expect(() => g(m)).toThrow(/donated argument 0 cannot be reused in place: every output of its dtype and size is written while the input is still needed/);
    // nothing was donated by the failed calls
    expect(x.isDonated).toBe(false);
    expect(m.isDonated).toBe(false);
  });
});

describe('NEXGRAD_DUMP', () => {
  it('kernels: prints the kernel graph and each kernel source to stderr', () => {
    vi.stubEnv('NEXGRAD_DUMP', 'kernels');
    const err = vi.spyOn(console, 'error').mockImplementation(() => {});
    const f = jit((x: Tensor) => ops.exp(ops.sub(x, ops.max(x, -1, true))), noDisk);
    f(random.normal(random.key(0), [3, 4]));
    const text = err.mock.calls.map((c) => String(c[0])).join('\n');
    expect(text).toMatch(/--- kernel graph \(1 kernels\)/);
    expect(text).toMatch(/loop k0_\w+ outer=\[3\] row=\[4\]/);
    expect(text).toMatch(/--- kernel 0\n[\s\S]*function/);
    expect(text).toContain('Math.exp');
    expect(text).not.toContain('--- traced program');
  });

  it('ir,passes: prints the traced program and the program after each pass', () => {
    vi.stubEnv('NEXGRAD_DUMP', 'ir,passes');
    const err = vi.spyOn(console, 'error').mockImplementation(() => {});
    jit((x: Tensor) => ops.neg(ops.neg(ops.exp(x))), noDisk)(random.normal(random.key(0), [3]));
    const text = err.mock.calls.map((c) => String(c[0])).join('\n');
    expect(text).toContain('--- traced program');
    for (const pass of ['inline', 'simplify', 'layout', 'simplify-2']) expect(text).toContain(`--- after ${pass} (`);
    expect(text).toContain('--- after simplify (1 equations)');
    expect(text).not.toContain('--- kernel graph');
  });
});
