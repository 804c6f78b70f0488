/**
 * The native depthwise micro-kernels (src/codegen/cpu/native/depthwise_c.ts) against a direct
 * float64 convolution written here: the forward conv (NHWC, HWIO weights with one input channel)
 * with a fused epilogue, and the weight gradient (the roles-swapped conv autodiff emits), over
 * shapes that reach every branch: channel counts with and without a tail beyond the 8-wide vectors,
 * images narrower than the kernel, asymmetric padding, row lengths not a multiple of 4, and one and
 * two threads (the weight gradient splits its taps across threads), and the layouts a training
 * graph hands over (OIHW weights, CHWN activations).
 */
import { describe, expect, it } from 'vitest';
import { cpuDeviceFor } from '../../../src/codegen/cpu/device.js';
import { nativeSupport } from '../../../src/codegen/cpu/native/device.js';
import type { NativeExecutable } from '../../../src/codegen/cpu/native/executable.js';
import type { ConvKernel, KernelGraph } from '../../../src/codegen/kernel/kernel_graph.js';
import { HostArray } from '../../../src/ir/host.js';
import type { ConvParams } from '../../../src/ir/primitive.js';
import { acc, bin, buf, cst, expectClose, lin, mulberry32, randArray, simplePlan } from './util.js';

const support = nativeSupport();

interface Case {
  n: number;
  h: number;
  w: number;
  c: number;
  k: number;
  pad: [[number, number], [number, number]];
  /** The layouts a training graph hands over: OIHW weights (forward), CHWN activations (weight gradient). */
  alt?: boolean;
}
const CASES: Case[] = [
  { n: 2, h: 11, w: 13, c: 40, k: 7, pad: [[3, 3], [3, 3]] },
  { n: 3, h: 10, w: 12, c: 20, k: 7, pad: [[3, 3], [3, 3]], alt: true },
  { n: 2, h: 5, w: 9, c: 11, k: 3, pad: [[1, 0], [0, 2]], alt: true },
  { n: 1, h: 9, w: 10, c: 12, k: 7, pad: [[3, 3], [3, 3]] },
  { n: 3, h: 4, w: 5, c: 5, k: 7, pad: [[3, 3], [3, 3]] },
  { n: 2, h: 8, w: 17, c: 16, k: 3, pad: [[0, 2], [2, 1]] },
  { n: 1, h: 6, w: 21, c: 24, k: 5, pad: [[2, 2], [1, 3]] },
  // CHWN copied channels-last in 16 x 16 tiles: images and channels past one tile, ragged in both
  { n: 19, h: 6, w: 7, c: 35, k: 7, pad: [[3, 3], [3, 3]], alt: true },
];

const outSize = (i: number, k: number, [lo, hi]: readonly [number, number]): number => i + lo + hi - k + 1;

/** y[n, oy, ox, c] = sum_{ky, kx} x[n, oy + ky - padT, ox + kx - padL, c] * w[ky, kx, 0, c], in float64. */
function refForward(x: ArrayLike<number>, w: ArrayLike<number>, t: Case): Float64Array {
  const [oh, ow] = [outSize(t.h, t.k, t.pad[0]), outSize(t.w, t.k, t.pad[1])];
  const y = new Float64Array(t.n * oh * ow * t.c);
  for (let n = 0; n < t.n; n++)
    for (let oy = 0; oy < oh; oy++)
      for (let ox = 0; ox < ow; ox++)
        for (let c = 0; c < t.c; c++) {
          let s = 0;
          for (let ky = 0; ky < t.k; ky++)
            for (let kx = 0; kx < t.k; kx++) {
              const iy = oy + ky - t.pad[0][0];
              const ix = ox + kx - t.pad[1][0];
              if (iy >= 0 && iy < t.h && ix >= 0 && ix < t.w) s += x[((n * t.h + iy) * t.w + ix) * t.c + c]! * w[(ky * t.k + kx) * t.c + c]!;
            }
          y[((n * oh + oy) * ow + ox) * t.c + c] = s;
        }
  return y;
}

/** dw[ky, kx, 0, c] = sum_{n, oy, ox} x[n, oy + ky - padT, ox + kx - padL, c] * dy[n, oy, ox, c], in float64. */
function refWgrad(x: ArrayLike<number>, dy: ArrayLike<number>, t: Case): Float64Array {
  const [oh, ow] = [outSize(t.h, t.k, t.pad[0]), outSize(t.w, t.k, t.pad[1])];
  const dw = new Float64Array(t.k * t.k * t.c);
  for (let ky = 0; ky < t.k; ky++)
    for (let kx = 0; kx < t.k; kx++)
      for (let c = 0; c < t.c; c++) {
        let s = 0;
        for (let n = 0; n < t.n; n++)
          for (let oy = 0; oy < oh; oy++)
            for (let ox = 0; ox < ow; ox++) {
              const iy = oy + ky - t.pad[0][0];
              const ix = ox + kx - t.pad[1][0];
              if (iy >= 0 && iy < t.h && ix >= 0 && ix < t.w) s += x[((n * t.h + iy) * t.w + ix) * t.c + c]! * dy[((n * oh + oy) * ow + ox) * t.c + c]!;
            }
        dw[(ky * t.k + kx) * t.c + c] = s;
      }
  return dw;
}

/** The array `src` of shape `from` with its axes permuted (out axis i = in axis perm[i]), as an f32 HostArray of `shape`. */
function permuted(src: ArrayLike<number>, from: number[], to: number[], perm: number[], shape: number[]): HostArray {
  const out = new Float32Array(src.length);
  const stridesOf = (s: number[]): number[] => s.map((_, i) => s.slice(i + 1).reduce((a, b) => a * b, 1));
  const fs = stridesOf(from);
  const ts = stridesOf(to);
  for (let i = 0; i < src.length; i++) {
    let j = 0;
    for (let d = 0; d < to.length; d++) j += Math.floor(i / ts[d]!) % to[d]! * fs[perm[d]!]!;
    out[i] = src[j]!;
  }
  return new HostArray('f32', shape, out);
}

const unit = { windowStrides: [1, 1], lhsDilation: [1, 1], rhsDilation: [1, 1] };

function forwardGraph(t: Case): KernelGraph {
  const [oh, ow] = [outSize(t.h, t.k, t.pad[0]), outSize(t.w, t.k, t.pad[1])];
  const out = [t.n, oh, ow, t.c];
  const params: ConvParams = { ...unit, padding: t.pad, featureGroupCount: t.c, batchGroupCount: 1, dims: { lhs: [0, 3, 1, 2], rhs: t.alt ? [0, 1, 2, 3] : [3, 2, 0, 1], out: [0, 3, 1, 2] } };
  // epilogue: 2 * acc - 1 (checks that the epilogue reads each pixel's own accumulator)
  const k: ConvKernel = { kind: 'conv', name: 'dw', params, dtype: 'f32', lhs: { buf: 0, shape: [t.n, t.h, t.w, t.c] }, rhs: { buf: 1, shape: t.alt ? [t.c, 1, t.k, t.k] : [t.k, t.k, 1, t.c] }, outShape: out, outputs: [{ buf: 2, index: lin(['o0', 'o1', 'o2', 'o3'], out), expr: bin('sub', bin('mul', acc(0), cst(2)), cst(1)) }] };
  const size = out.reduce((a, b) => a * b, 1);
  return { buffers: [buf(0, 'f32', t.n * t.h * t.w * t.c, 'input'), buf(1, 'f32', t.k * t.k * t.c, 'input'), buf(2, 'f32', size, 'output')], kernels: [k], inputs: [0, 1], outputs: [{ kind: 'buffer', buf: 2, shape: out, dtype: 'f32' }], consts: [] };
}

function wgradGraph(t: Case): KernelGraph {
  const [oh, ow] = [outSize(t.h, t.k, t.pad[0]), outSize(t.w, t.k, t.pad[1])];
  const out = [t.k, t.k, 1, t.c];
  // as autodiff emits it: lhs x with batch and feature roles swapped, rhs dy, out in HWIO
  const params: ConvParams = { ...unit, padding: t.pad, featureGroupCount: 1, batchGroupCount: t.c, dims: { lhs: t.alt ? [0, 3, 1, 2] : [3, 0, 1, 2], rhs: [3, 0, 1, 2], out: [2, 3, 0, 1] } };
  const k: ConvKernel = { kind: 'conv', name: 'dw_wgrad', params, dtype: 'f32', lhs: { buf: 0, shape: t.alt ? [t.c, t.h, t.w, t.n] : [t.n, t.h, t.w, t.c] }, rhs: { buf: 1, shape: [t.n, oh, ow, t.c] }, outShape: out, outputs: [{ buf: 2, index: lin(['o0', 'o1', 'o2', 'o3'], out), expr: acc(0) }] };
  return { buffers: [buf(0, 'f32', t.n * t.h * t.w * t.c, 'input'), buf(1, 'f32', t.n * oh * ow * t.c, 'input'), buf(2, 'f32', t.k * t.k * t.c, 'output')], kernels: [k], inputs: [0, 1], outputs: [{ kind: 'buffer', buf: 2, shape: out, dtype: 'f32' }], consts: [] };
}

describe.runIf(typeof support !== 'string')('native depthwise micro-kernels', () => {
  for (const t of CASES) {
    const label = `${t.n}x${t.h}x${t.w}x${t.c}, ${t.k}x${t.k}, pad ${JSON.stringify(t.pad)}${t.alt ? ', OIHW weights / CHWN activations' : ''}`;
    it(`forward with an epilogue: ${label}`, () => {
      const rng = mulberry32(t.c * 31 + t.w);
      const x = randArray('f32', [t.n, t.h, t.w, t.c], rng);
      const w = randArray('f32', [t.k, t.k, 1, t.c], rng);
      const want = Array.from(refForward(x.data, w.data, t), (s) => 2 * s - 1);
      // OIHW: w_oihw[c, 0, ky, kx] = w[ky, kx, 0, c]
      const wIn = t.alt ? permuted(w.data, [t.k * t.k, t.c], [t.c, t.k * t.k], [1, 0], [t.c, 1, t.k, t.k]) : w;
      for (const threads of [1, 2]) {
        const g = forwardGraph(t);
        const ex = cpuDeviceFor(threads, 'native').compile(g, simplePlan(g)) as NativeExecutable;
        expect(ex.cSource).toContain('ng_dw_row(');
        expectClose(ex.run([x, wIn])[0]!.data, want, 2e-5, 2e-5, `${label}, ${threads} threads`);
      }
    });
    it(`weight gradient: ${label}`, () => {
      const rng = mulberry32(t.c * 17 + t.h);
      const [oh, ow] = [outSize(t.h, t.k, t.pad[0]), outSize(t.w, t.k, t.pad[1])];
      const x = randArray('f32', [t.n, t.h, t.w, t.c], rng);
      const dy = randArray('f32', [t.n, oh, ow, t.c], rng);
      const want = refWgrad(x.data, dy.data, t);
      // CHWN: x_chwn[c, h, w, n] = x[n, h, w, c]
      const xIn = t.alt ? permuted(x.data, [t.n, t.h * t.w, t.c], [t.c, t.h * t.w, t.n], [2, 1, 0], [t.c, t.h, t.w, t.n]) : x;
      for (const threads of [1, 2]) {
        const g = wgradGraph(t);
        const ex = cpuDeviceFor(threads, 'native').compile(g, simplePlan(g)) as NativeExecutable;
        expect(ex.cSource).toContain('ng_dw_dot_rows(');
        // CHWN activations are first copied channels-last (the `_xt` range function)
        expect(/_xt\(void\* ctx_/.test(ex.cSource)).toBe(!!t.alt);
        expectClose(ex.run([xIn, dy])[0]!.data, want, 1e-4, 1e-4, `${label}, ${threads} threads`);
      }
    });
  }
});
