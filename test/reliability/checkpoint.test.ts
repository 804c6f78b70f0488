/**
 * loadCheckpoint on hostile and badly mismatched files (issue 8 item 11, issue 9).
 * Before the fix a 112-byte FCMAE checkpoint whose sparse kernel has shape [0, 1e15] hung
 * loadCheckpoint forever: kernelToDense looped 1e15 times over channels of an empty kernel.
 * (A regression would hang this file rather than fail it; the time bound below documents the
 * expected cost.) The many-mismatch message now starts with one summary line of counts.
 */
import { describe, expect, it } from 'vitest';
import { CheckpointError, fcmaeToDense, loadCheckpoint, officialShapes } from '../../src/convnextv2/checkpoint.js';
import * as ops from '../../src/ir/ops.js';
import { type SafeTensor, serializeSafetensors } from '../../src/nn/safetensors.js';

const SMALL = { depths: [1, 1, 1, 1], dims: [8, 16, 32, 64], numClasses: 10 };

function errorOf(f: () => unknown): Error {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error');
}

const empty = (shape: number[]): SafeTensor => ({ dtype: 'F32', shape, data: new Float32Array(0) });

describe('sparse FCMAE kernels are validated before any loop', () => {
  it('the 112-byte [0, 1e15] kernel is refused at once (it hung forever)', () => {
    const bytes = serializeSafetensors({ 'encoder.stages.0.0.dwconv.kernel': empty([0, 1e15]) });
    expect(bytes.length).toBeLessThanOrEqual(112);
    const t0 = performance.now();
    const e = errorOf(() => loadCheckpoint(bytes, SMALL, { dropDecoder: true }));
    expect(performance.now() - t0).toBeLessThan(500);
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e.message).toBe('fcmaeToDense: sparse kernel "encoder.stages.0.0.dwconv.kernel" has shape [0,1000000000000000]; every dimension must be a positive integer');
  });

  it.each([
    [[49, 0], /every dimension must be a positive integer/],
    [[0, 3, 4], /every dimension must be a positive integer/],
    [[48, 8], /the kernel volume 48 is not a square/],
    [[49], /expected \(ks\*ks, in, out\) or \(ks\*ks, C\)/],
  ])('shape %j is refused by name', (shape, re) => {
    const n = (shape as number[]).reduce((a, b) => a * b, 1);
    const bytes = serializeSafetensors({ 'encoder.stages.0.0.dwconv.kernel': { dtype: 'F32', shape: shape as number[], data: new Float32Array(n) } });
    const e = errorOf(() => loadCheckpoint(bytes, SMALL, { dropDecoder: true }));
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e.message).toMatch(re);
  });

  it('valid kernels still convert: W[c,0,h,w] = K[h + 3w, c] and W[o,i,h,w] = K[h + 3w, i, o]', () => {
    // depthwise 3x3, 2 channels: K[v, c] = 10 v + c
    const K = ops.tensor(Array.from({ length: 18 }, (_, i) => 10 * Math.floor(i / 2) + (i % 2)), { shape: [9, 2] });
    const W = fcmaeToDense(new Map([['encoder.x.kernel', K]])).get('x.weight')!;
    expect(W.shape).toEqual([2, 1, 3, 3]);
    const w = W.dataSync();
    for (let c = 0; c < 2; c++) for (let h = 0; h < 3; h++) for (let x = 0; x < 3; x++) expect(w[(c * 3 + h) * 3 + x]).toBe(10 * (h + 3 * x) + c);
    // standard 3x3, 2 in, 3 out: K[v, i, o] = 100 v + 10 i + o
    const K3 = ops.tensor(Array.from({ length: 54 }, (_, n) => 100 * Math.floor(n / 6) + 10 * Math.floor((n % 6) / 3) + (n % 3)), { shape: [9, 2, 3] });
    const W3 = fcmaeToDense(new Map([['y.kernel', K3]])).get('y.weight')!;
    expect(W3.shape).toEqual([3, 2, 3, 3]);
    const w3 = W3.dataSync();
    for (let o = 0; o < 3; o++)
      for (let i = 0; i < 2; i++)
        for (let h = 0; h < 3; h++) for (let x = 0; x < 3; x++) expect(w3[((o * 2 + i) * 3 + h) * 3 + x]).toBe(100 * (h + 3 * x) + 10 * i + o);
  });
});

describe('many mismatches: one summary line first', () => {
  it('counts missing, unexpected and shape-mismatched keys, then details, then the rest', () => {
    const shapes = officialShapes(SMALL);
    const file = new Map<string, SafeTensor>();
    // keep 10 keys with a wrong shape, drop the rest (missing), add 120 unknown keys
    shapes.slice(0, 10).forEach(([k, s]) => file.set(k, { dtype: 'F32', shape: [s.reduce((a, b) => a * b, 1) + 1], data: new Float32Array(s.reduce((a, b) => a * b, 1) + 1) }));
    for (let i = 0; i < 120; i++) file.set(`junk.${i}`, { dtype: 'F32', shape: [1], data: new Float32Array(1) });
    const missing = shapes.length - 10;
    const e = errorOf(() => loadCheckpoint(serializeSafetensors(file), SMALL));
    expect(e).toBeInstanceOf(CheckpointError);
    const lines = e.message.split('\n');
    const total = 10 + missing + 120;
    expect(lines[0]).toBe(
      `loadCheckpoint: checkpoint <bytes> (layout 'official') does not fit the model: ${total} problems ` +
        `(${missing} missing, 120 unexpected, 10 shape-mismatched keys; the file has 130 keys, the model ${shapes.length})`,
    );
    expect(lines.slice(1, 21).every((l) => /^ {2}(missing key|unexpected key|shape mismatch for) /.test(l))).toBe(true);
    expect(lines[21]).toBe(`  ... and ${total - 20} more (every problem is in error.problems)`);
    expect((e as CheckpointError).problems).toHaveLength(total);
  });
});
