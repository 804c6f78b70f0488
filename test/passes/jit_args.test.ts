// jit's argument handling (issue 8, items 4, 13 and the jit part of 14): static arguments are
// keyed exactly, options and call arity are checked with named errors, and a bad
// NEXGRAD_CPU_THREADS is reported where the CPU device is first used, not at import.
import { afterEach, describe, expect, it, vi } from 'vitest';
import * as ng from '../../src/index.js';

describe('static arguments are keyed exactly', () => {
  const f = ng.jit((x: ng.Tensor, c: unknown) => x.add(typeof c === 'number' ? c : c === null ? 100 : 200), { staticArgnums: 1, cacheDir: false });
  const x = ng.tensor([1, 2]);
  it('NaN, null, Infinity, -Infinity, 0 and -0 each get their own program', () => {
    const got = [NaN, null, Infinity, -Infinity, 0, -0].map((c) => Array.from(f(x, c).dataSync()));
    expect(got[0]!.every(Number.isNaN)).toBe(true);
    expect(got[1]).toEqual([101, 102]); // JSON.stringify keyed NaN and null alike: this was NaN
    expect(got[2]).toEqual([Infinity, Infinity]);
    expect(got[3]).toEqual([-Infinity, -Infinity]);
    expect(f.stats.compiles).toBe(6);
    expect(Object.is(f(ng.tensor([-0]), -0).dataSync()[0], -0)).toBe(true); // -0 + -0, not +0 + 0
  });
  it('refuses values that are not plain data', () => {
    expect(() => f(x, new Map([[1, 2]]))).toThrow(/static argument 1: a Map cannot be part of a cache key/);
    expect(() => f(x, { a: new Set() })).toThrow(/static argument 1\.a: a Set cannot/);
    expect(() => f(x, () => 1)).toThrow(/a function cannot be part of a cache key/);
  });
});

describe('options and arity', () => {
  it('unknown options and bad positions are named', () => {
    expect(() => ng.jit((x: ng.Tensor) => x, { donnate: [0] } as never)).toThrow(/unknown option "donnate"/);
    expect(() => ng.jit((x: ng.Tensor) => x, { donate: [-1] })).toThrow(/option donate must be/);
    expect(() => ng.jit((x: ng.Tensor) => x, { donate: 0, staticArgnums: 0 })).toThrow(/argument 0 is both donated and static/);
    const g = ng.jit((x: ng.Tensor) => x.add(1), { donate: 3, cacheDir: false });
    expect(() => g(ng.tensor([1]))).toThrow(/donate names argument 3, but the call has 1 arguments/);
  });
  it('too few and extra arguments are refused; defaults and rest parameters are honoured', () => {
    const two = ng.jit((a: ng.Tensor, b: ng.Tensor) => a.add(b), { cacheDir: false });
    expect(() => (two as any)(ng.tensor([1]))).toThrow(/jit: tracing the function failed: .*\(the call passed 1 arguments and the function declares 2; argument 1 is undefined\)|jit: tracing the function failed: .*the call passed 1 arguments and the function declares 2/);
    expect(() => (two as any)(ng.tensor([1]), null)).toThrow(/jit: tracing the function failed: .*argument 1 is null/);
    expect(() => (two as any)(ng.tensor([1]), ng.tensor([2]), ng.tensor([3]))).toThrow(/takes at most 2 arguments, got 3/);
    const opt = ng.jit((a: ng.Tensor, b?: ng.Tensor) => (b ? a.add(b) : a.mul(2)), { cacheDir: false });
    expect(Array.from(opt(ng.tensor([3])).dataSync())).toEqual([6]);
    const rest = ng.jit((...xs: ng.Tensor[]) => xs.reduce((s, t) => s.add(t)), { cacheDir: false });
    expect(Array.from(rest(ng.tensor([1]), ng.tensor([2]), ng.tensor([3])).dataSync())).toEqual([6]);
  });
});

describe('NEXGRAD_CPU_THREADS', () => {
  afterEach(() => {
    delete process.env.NEXGRAD_CPU_THREADS;
    vi.resetModules();
  });
  it('a bad value does not break import; the first use of the CPU device names it', async () => {
    process.env.NEXGRAD_CPU_THREADS = 'lots';
    vi.resetModules();
    const fresh = await import('../../src/passes/backends.js'); // importing must not throw
    expect(() => fresh.getDevice('cpu')).toThrow(/NEXGRAD_CPU_THREADS must be a positive integer or 'auto', got "lots"/);
  });
  it('a thread count keeps the dialect NEXGRAD_CPU picks (it used to replace native C by WebAssembly)', async () => {
    process.env.NEXGRAD_CPU_THREADS = '2';
    vi.resetModules();
    const fresh = await import('../../src/passes/backends.js');
    const { nativeSupport } = await import('../../src/codegen/cpu/native/device.js');
    const native = typeof nativeSupport() !== 'string';
    const dev = fresh.getDevice('cpu');
    expect(dev.id).toMatch(native ? /^cpu:native-.*:2threads$/ : /^cpu:js\+wasm-simd:2threads$/);
  });
});
