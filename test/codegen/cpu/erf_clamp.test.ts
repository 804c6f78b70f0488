/**
 * The WebAssembly erf (wasm_expr.ts) clamps with pmin/pmax: erf(x) = clamp(ratio(clamp(x, -4,
 * 4)), -1, 1). The rule it must agree with (src/codegen/lower/expr_rules.ts, erf32) is written
 * here as selects: if (x >= 4) 1; if (x <= -4) -1; else ratio(x) clamped to [-1, 1], with the
 * f32-rounded coefficients, every operation rounded to the lane type. The two must be equal bit
 * for bit, in f32x4 and f64x2 lanes, on the edges (+-4 and its neighbours, +-0, infinities,
 * NaN, huge values) and on random values.
 */
import { describe, expect, it } from 'vitest';
import { ERF_P, ERF_Q } from '../../../src/codegen/lower/expr_rules.js';
import type { SExpr } from '../../../src/codegen/kernel/kernel_graph.js';
import { BLOCK, brIf, END, funcsModuleBytes, i32c, lget, LOOP, lset, ltee, makeMemory, simd, SUB, ADD, V128, wasmSimdAvailable } from '../../../src/codegen/cpu/wasm.js';
import { exprCompiler, LANES, memarg } from '../../../src/codegen/cpu/wasm_expr.js';
import { mulberry32 } from './util.js';

/** The rule as selects, each operation rounded by `r` (Math.fround for f32 lanes, identity for f64). */
function ruleErf(x: number, r: (v: number) => number): number {
  const P = ERF_P.map(Math.fround);
  const Q = ERF_Q.map(Math.fround);
  const u = r(x * x);
  let p = P[0]!;
  for (let i = 1; i < P.length; i++) p = r(r(p * u) + P[i]!);
  let q = Q[0]!;
  for (let i = 1; i < Q.length; i++) q = r(r(q * u) + Q[i]!);
  let v = r(r(x * p) / q);
  v = v > 1 ? 1 : v;
  v = v < -1 ? -1 : v;
  if (x >= 4) return 1;
  if (x <= -4) return -1;
  return v;
}

/** erf over n vectors at byte 0 of the memory, in place, compiled by exprCompiler. */
function wasmErf(lanes: 'f32x4' | 'f64x2', mem: { buffer: ArrayBuffer | SharedArrayBuffer }): (n: number) => void {
  const L = LANES[lanes];
  const code: number[] = [];
  const e = (...xs: (readonly number[])[]): void => {
    for (const x of xs) code.push(...x);
  };
  let nV = 0;
  const vLocal = (): number => 2 + nV++;
  const x: SExpr = { op: 'load', buf: 0, index: { c: 0, terms: [] }, dtype: 'f32' };
  const node: SExpr = { op: 'unary', fn: 'erf', a: x, dtype: 'f32' };
  e(i32c(0), lset(0));
  e(BLOCK, LOOP);
  const body: number[] = [];
  const comp = exprCompiler((...xs) => xs.forEach((b) => body.push(...b)), L, vLocal, () => body.push(...lget(0), ...simd(0x00, ...memarg(0))));
  const out = comp.value(node);
  e(body, lget(0), lget(out), simd(0x0b, ...memarg(0)));
  e(lget(0), i32c(16), ADD, lset(0));
  e(lget(1), i32c(1), SUB, ltee(1), brIf(0));
  e(END, END);
  // locals: param 0 (the pointer), param 1 (the vector count), then the vectors from 2
  const bytes = funcsModuleBytes([{ params: 2, locals: [[nV, V128]], code }], 'f', 0, false);
  const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { mem } });
  const f = inst.exports.f as (p: number, n: number) => void;
  return (n) => f(0, n);
}

const EDGES = [4, -4, Math.fround(4 - 2 ** -21), -Math.fround(4 - 2 ** -21), Math.fround(4 + 2 ** -20), -Math.fround(4 + 2 ** -20), 3.5, -3.5, 3.9, 1, -1, 0.5, 0, -0, 1e-30, -1e-30, Infinity, -Infinity, NaN, 1e30, -1e30, 3.4e38, 100];

describe.runIf(wasmSimdAvailable())('the WebAssembly erf with pmin/pmax clamps', () => {
  for (const lanes of ['f32x4', 'f64x2'] as const) {
    it(`equals the select form of the rule bit for bit (${lanes})`, () => {
      const W = LANES[lanes].W;
      const rnd = mulberry32(11);
      const values = [...EDGES];
      for (let i = 0; i < 4000; i++) values.push(Math.fround((rnd() - 0.5) * (i < 2000 ? 10 : 200)));
      while (values.length % W) values.push(0);
      const mem = makeMemory(values.length * 8 + 64);
      const view = lanes === 'f32x4' ? new Float32Array(mem.buffer as ArrayBuffer, 0, values.length) : new Float64Array(mem.buffer as ArrayBuffer, 0, values.length);
      view.set(values);
      wasmErf(lanes, mem)(values.length / W);
      const r = lanes === 'f32x4' ? Math.fround : (v: number): number => v;
      values.forEach((x, i) => {
        const want = ruleErf(r(x), r);
        const got = view[i]!;
        if (Number.isNaN(want)) expect(got, `erf(${x})`).toBeNaN();
        else expect(Object.is(got, want), `erf(${x}) = ${got}, rule ${want}`).toBe(true);
      });
      // the edges themselves: +-1 beyond +-4, NaN through
      expect(view[0]).toBe(1);
      expect(view[1]).toBe(-1);
    });
  }
});
