import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ops from '../../src/ir/ops.js';
import type { DType } from '../../src/ir/dtype.js';
import type { Tensor } from '../../src/ir/tensor.js';
import {
  CheckpointError,
  closestNames,
  detectLayout,
  editDistance,
  fcmaeToDense,
  fromStateDict,
  loadCheckpoint,
  loadCheckpointDetailed,
  officialShapes,
  officialToTimm,
  saveCheckpoint,
  templateFromConfig,
  timmToOfficial,
  toStateDict,
} from '../../src/convnextv2/checkpoint.js';
import { readSafetensors, serializeSafetensors, type SafeTensor } from '../../src/nn/safetensors.js';

// ---------------------------------------------------------------------------------------
// Synthetic parameters, generated here from spec 5.1 (not from the module under test).

interface Cfg {
  depths: number[];
  dims: number[];
  numClasses: number;
}
const ATTO: Cfg = { depths: [2, 2, 6, 2], dims: [40, 80, 160, 320], numClasses: 1000 };

/** Deterministic distinct values: tensor j holds j + (i mod 997) / 1000 (rounded to dtype). */
function synth(cfg: Cfg, dtype: DType = 'f32', value = (j: number, i: number) => j + (i % 997) / 1000): any {
  let j = 0;
  const T = (shape: number[]): Tensor => {
    const k = j++;
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float64Array(n);
    for (let i = 0; i < n; i++) data[i] = value(k, i);
    return ops.tensor(data, { dtype, shape });
  };
  const { depths, dims, numClasses } = cfg;
  const block = (C: number) => ({
    dwconv: { weight: T([C, 1, 7, 7]), bias: T([C]) },
    norm: { weight: T([C]), bias: T([C]) },
    pwconv1: { weight: T([4 * C, C]), bias: T([4 * C]) },
    grn: { gamma: T([1, 1, 1, 4 * C]), beta: T([1, 1, 1, 4 * C]) },
    pwconv2: { weight: T([C, 4 * C]), bias: T([C]) },
  });
  const downsample_layers: unknown[] = [[{ weight: T([dims[0]!, 3, 4, 4]), bias: T([dims[0]!]) }, { weight: T([dims[0]!]), bias: T([dims[0]!]) }]];
  for (let i = 1; i < 4; i++) {
    downsample_layers.push([{ weight: T([dims[i - 1]!]), bias: T([dims[i - 1]!]) }, { weight: T([dims[i]!, dims[i - 1]!, 2, 2]), bias: T([dims[i]!]) }]);
  }
  const stages = depths.map((d, i) => Array.from({ length: d }, () => block(dims[i]!)));
  return { downsample_layers, stages, norm: { weight: T([dims[3]!]), bias: T([dims[3]!]) }, head: { weight: T([numClasses, dims[3]!]), bias: T([numClasses]) } };
}

function expectSameTensors(a: Map<string, Tensor>, b: Map<string, Tensor>): void {
  expect([...b.keys()]).toEqual([...a.keys()]);
  for (const [k, t] of a) {
    const u = b.get(k)!;
    expect([k, u.shape]).toEqual([k, t.shape]);
    expect(u.dtype).toBe(t.dtype);
    const x = t.dataSync();
    const y = u.dataSync();
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) throw new Error(`${k}[${i}]: ${y[i]} != ${x[i]}`);
  }
}

function thrown(f: () => unknown): CheckpointError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(CheckpointError);
    return e as CheckpointError;
  }
  throw new Error('expected a CheckpointError');
}

let dir = '';
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nexgrad-ckpt-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------

describe('official keys (spec 5.1)', () => {
  const params = synth(ATTO);
  const sd = toStateDict(params);

  it('atto has 140 keys in PyTorch order and 3,708,400 parameters', () => {
    expect(sd.size).toBe(140);
    const keys = [...sd.keys()];
    expect(keys.slice(0, 5)).toEqual(['downsample_layers.0.0.weight', 'downsample_layers.0.0.bias', 'downsample_layers.0.1.weight', 'downsample_layers.0.1.bias', 'downsample_layers.1.0.weight']);
    expect(keys.slice(-4)).toEqual(['norm.weight', 'norm.bias', 'head.weight', 'head.bias']);
    expect(sd.get('stages.2.5.pwconv1.weight')!.shape).toEqual([640, 160]);
    expect(sd.get('stages.0.1.grn.gamma')!.shape).toEqual([1, 1, 1, 160]);
    let n = 0;
    for (const t of sd.values()) n += t.size;
    expect(n).toBe(3_708_400);
    // the module's own key table agrees with the spec-derived tree, order included
    expect(officialShapes(ATTO)).toEqual(keys.map((k) => [k, [...sd.get(k)!.shape]]));
  });

  it('fromStateDict(toStateDict(p), p) rebuilds the tree', () => {
    const back = fromStateDict(sd, params);
    expect(back.stages[2][5].pwconv1.weight).toBe(params.stages[2][5].pwconv1.weight);
    expectSameTensors(sd, toStateDict(back));
    // into a config template: same structure and values
    expectSameTensors(sd, toStateDict(fromStateDict(sd, ATTO)));
    const t = templateFromConfig({ ...ATTO, numClasses: 10 }) as any;
    expect(t.norm.weight.dataSync()[0]).toBe(1);
    expect(t.downsample_layers[1][0].weight.dataSync()[0]).toBe(1);
    expect(t.stages[0][0].grn.gamma.dataSync()[0]).toBe(0);
  });

  it('casts to the template dtype', () => {
    const p64 = fromStateDict(sd, synth(ATTO, 'f64'));
    expect(p64.head.weight.dtype).toBe('f64');
    expect(p64.head.weight.dataSync()[3]).toBe(Math.fround(sd.get('head.weight')!.dataSync()[3]!));
  });

  it('GRN tensors of another shape are reshaped (spec 5.4)', () => {
    const flat = new Map(sd);
    const g = sd.get('stages.1.0.grn.beta')!;
    flat.set('stages.1.0.grn.beta', g.reshape([320]));
    const back = fromStateDict(flat, params);
    expect(back.stages[1][0].grn.beta.shape).toEqual([1, 1, 1, 320]);
    expect(Array.from(back.stages[1][0].grn.beta.dataSync())).toEqual(Array.from(g.dataSync()));
  });
});

describe('official <-> timm (spec 5.5)', () => {
  const params = synth(ATTO);
  const sd = toStateDict(params);

  it('renames and reshapes as timm atto (conv_mlp)', () => {
    const timm = officialToTimm(sd, { convMlp: true });
    expect(timm.size).toBe(140);
    const shape = (k: string) => timm.get(k)?.shape;
    expect(shape('stem.0.weight')).toEqual([40, 3, 4, 4]);
    expect(shape('stem.1.weight')).toEqual([40]);
    expect(shape('stages.1.downsample.0.weight')).toEqual([40]);
    expect(shape('stages.1.downsample.1.weight')).toEqual([80, 40, 2, 2]);
    expect(shape('stages.3.downsample.1.bias')).toEqual([320]);
    expect(shape('stages.0.blocks.0.conv_dw.weight')).toEqual([40, 1, 7, 7]);
    expect(shape('stages.0.blocks.0.norm.weight')).toEqual([40]);
    expect(shape('stages.0.blocks.0.mlp.fc1.weight')).toEqual([160, 40, 1, 1]);
    expect(shape('stages.0.blocks.0.mlp.fc1.bias')).toEqual([160]);
    expect(shape('stages.0.blocks.0.mlp.grn.weight')).toEqual([160]);
    expect(shape('stages.0.blocks.0.mlp.grn.bias')).toEqual([160]);
    expect(shape('stages.0.blocks.0.mlp.fc2.weight')).toEqual([40, 160, 1, 1]);
    expect(shape('stages.2.blocks.5.mlp.fc2.weight')).toEqual([160, 640, 1, 1]);
    expect(shape('head.norm.weight')).toEqual([320]);
    expect(shape('head.fc.weight')).toEqual([1000, 320]);
    expect([...timm.keys()].some((k) => k.startsWith('stages.0.downsample'))).toBe(false);
    expect([...timm.keys()].some((k) => k.startsWith('downsample_layers') || /^stages\.\d+\.\d+\./.test(k))).toBe(false);
    // values move with their keys
    expect(Array.from(timm.get('stages.2.blocks.3.mlp.grn.weight')!.dataSync())).toEqual(Array.from(sd.get('stages.2.3.grn.gamma')!.dataSync()));
    expect(detectLayout(timm.keys())).toBe('timm');
    expect(detectLayout(sd.keys())).toBe('official');
  });

  it('round-trips exactly, with and without conv_mlp', () => {
    expectSameTensors(sd, timmToOfficial(officialToTimm(sd, { convMlp: true })));
    const lin = officialToTimm(sd, { convMlp: false });
    expect(lin.get('stages.0.blocks.0.mlp.fc1.weight')!.shape).toEqual([160, 40]);
    expectSameTensors(sd, timmToOfficial(lin));
  });

  it('loads a timm file and saves one', () => {
    const file = path.join(dir, 'atto_timm.safetensors');
    saveCheckpoint(file, params, { note: 'timm' }, { layout: 'timm', convMlp: true });
    expect(readSafetensors(file).tensors.get('stages.0.blocks.0.mlp.fc1.weight')!.shape).toEqual([160, 40, 1, 1]);
    const r = loadCheckpointDetailed(file, params);
    expect(r.layout).toBe('timm');
    expect(r.missing).toEqual([]);
    expect(r.metadata).toEqual({ format: 'pt', note: 'timm' });
    expectSameTensors(sd, toStateDict(r.params));
  });

  it('requires the convMlp flag', () => {
    expect(() => officialToTimm(sd, {} as never)).toThrow(/convMlp/);
  });
});

// ---------------------------------------------------------------------------------------
// FCMAE (spec 5.2, 5.3)

const SMALL: Cfg = { depths: [1, 1, 1, 1], dims: [2, 3, 4, 5], numClasses: 7 };
const D = 6; // decoder embed dim
const P = 12; // pred outputs

/** The sparse training-time checkpoint of spec 5.2 for SMALL, as safetensors records. */
function sparseCheckpoint(): Map<string, SafeTensor> {
  const rec = new Map<string, SafeTensor>();
  let j = 0;
  const put = (k: string, shape: number[], f?: (idx: number[]) => number) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const base = 0.5 * j++;
    for (let i = 0; i < n; i++) {
      if (!f) {
        data[i] = base + i / 64;
        continue;
      }
      const idx: number[] = [];
      let r = i;
      for (let d = shape.length - 1; d >= 0; d--) {
        idx[d] = r % shape[d]!;
        r = Math.floor(r / shape[d]!);
      }
      data[i] = f(idx);
    }
    rec.set(k, { dtype: 'F32', shape, data });
  };
  const { dims } = SMALL;
  put('encoder.downsample_layers.0.0.weight', [dims[0]!, 3, 4, 4]);
  put('encoder.downsample_layers.0.0.bias', [dims[0]!]);
  put('encoder.downsample_layers.0.1.weight', [dims[0]!]);
  put('encoder.downsample_layers.0.1.bias', [dims[0]!]);
  for (let i = 1; i < 4; i++) {
    put(`encoder.downsample_layers.${i}.0.ln.weight`, [dims[i - 1]!]);
    put(`encoder.downsample_layers.${i}.0.ln.bias`, [dims[i - 1]!]);
    // K[kv, in, out] = 100 kv + 10 in + out
    put(`encoder.downsample_layers.${i}.1.kernel`, [4, dims[i - 1]!, dims[i]!], ([kv, ci, co]) => 100 * kv! + 10 * ci! + co!);
    put(`encoder.downsample_layers.${i}.1.bias`, [1, dims[i]!]);
  }
  for (let s = 0; s < 4; s++) {
    const C = dims[s]!;
    const p = `encoder.stages.${s}.0`;
    // K[kv, c] = 1000 kv + c
    put(`${p}.dwconv.kernel`, [49, C], ([kv, c]) => 1000 * kv! + c!);
    put(`${p}.dwconv.bias`, [1, C]);
    put(`${p}.norm.ln.weight`, [C]);
    put(`${p}.norm.ln.bias`, [C]);
    put(`${p}.pwconv1.linear.weight`, [4 * C, C]);
    put(`${p}.pwconv1.linear.bias`, [4 * C]);
    put(`${p}.grn.gamma`, [1, 4 * C]);
    put(`${p}.grn.beta`, [1, 4 * C]);
    put(`${p}.pwconv2.linear.weight`, [C, 4 * C]);
    put(`${p}.pwconv2.linear.bias`, [C]);
  }
  put('proj.weight', [D, dims[3]!, 1, 1]);
  put('proj.bias', [D]);
  put('mask_token', [1, D, 1, 1]);
  put('decoder.0.dwconv.weight', [D, 1, 7, 7]);
  put('decoder.0.dwconv.bias', [D]);
  put('decoder.0.norm.weight', [D]);
  put('decoder.0.norm.bias', [D]);
  put('decoder.0.pwconv1.weight', [4 * D, D]);
  put('decoder.0.pwconv1.bias', [4 * D]);
  put('decoder.0.grn.gamma', [1, 1, 1, 4 * D]);
  put('decoder.0.grn.beta', [1, 1, 1, 4 * D]);
  put('decoder.0.pwconv2.weight', [D, 4 * D]);
  put('decoder.0.pwconv2.bias', [D]);
  put('pred.weight', [P, D, 1, 1]);
  put('pred.bias', [P]);
  return rec;
}

/** A dense FCMAE parameter tree for SMALL (the structure the FCMAE model uses). */
function fcmaeTemplate(): any {
  const z = (s: number[]) => ops.zeros(s, 'f32');
  const block = (C: number) => ({
    dwconv: { weight: z([C, 1, 7, 7]), bias: z([C]) },
    norm: { weight: z([C]), bias: z([C]) },
    pwconv1: { weight: z([4 * C, C]), bias: z([4 * C]) },
    grn: { gamma: z([1, 1, 1, 4 * C]), beta: z([1, 1, 1, 4 * C]) },
    pwconv2: { weight: z([C, 4 * C]), bias: z([C]) },
  });
  const full = templateFromConfig(SMALL) as any;
  return {
    encoder: { downsample_layers: full.downsample_layers, stages: full.stages },
    proj: { weight: z([D, 5, 1, 1]), bias: z([D]) },
    mask_token: z([1, D, 1, 1]),
    decoder: [block(D)],
    pred: { weight: z([P, D, 1, 1]), bias: z([P]) },
  };
}

describe('FCMAE sparse -> dense (spec 5.3)', () => {
  const bytes = serializeSafetensors(sparseCheckpoint());

  it('detects the layout', () => {
    expect(detectLayout(sparseCheckpoint().keys())).toBe('fcmae');
  });

  it('converts kernels, names, biases and GRN for fine-tuning (hand-checked elements)', () => {
    const r = loadCheckpointDetailed(bytes, SMALL, { dropDecoder: true });
    expect(r.layout).toBe('fcmae');
    const p = r.params;
    // standard conv (kv=4, in=2, out=3): W[o,i,h,w] = K[h + 2w, i, o] = 100 (h + 2w) + 10 i + o
    const W = p.downsample_layers[1][1].weight;
    expect(W.shape).toEqual([3, 2, 2, 2]);
    const w = W.dataSync();
    const at = (o: number, i: number, h: number, x: number) => w[((o * 2 + i) * 2 + h) * 2 + x];
    expect(at(1, 0, 1, 0)).toBe(101); // K[1, 0, 1]
    expect(at(1, 0, 0, 1)).toBe(201); // K[2, 0, 1]
    expect(at(2, 1, 1, 1)).toBe(312); // K[3, 1, 2]
    expect(at(0, 1, 0, 0)).toBe(10); // K[0, 1, 0]
    // the official chain v.permute(2,1,0).reshape(out,in,ks,ks).transpose(3,2), element by element
    for (let o = 0; o < 3; o++)
      for (let i = 0; i < 2; i++)
        for (let a = 0; a < 2; a++)
          for (let b = 0; b < 2; b++) {
            const kv = a * 2 + b; // reshape index before the transpose: R[o,i,a,b] = P[o,i,a*ks+b]
            expect(at(o, i, b, a)).toBe(100 * kv + 10 * i + o); // W[o,i,b,a] = R[o,i,a,b]
          }
    // depthwise (kv=49, C=2): W[c,0,h,w] = K[h + 7w, c] = 1000 (h + 7w) + c
    const dw = p.stages[0][0].dwconv.weight;
    expect(dw.shape).toEqual([2, 1, 7, 7]);
    const d = dw.dataSync();
    expect(d[1 * 49 + 3 * 7 + 1]).toBe(10001); // W[1,0,3,1] = K[10, 1]
    expect(d[0 * 49 + 0 * 7 + 6]).toBe(42000); // W[0,0,0,6] = K[42, 0]
    expect(d[1 * 49 + 6 * 7 + 0]).toBe(6001); // W[1,0,6,0] = K[6, 1]
    // biases flattened, GRN unsqueezed, ln/linear segments gone
    expect(p.downsample_layers[1][1].bias.shape).toEqual([3]);
    expect(p.stages[0][0].dwconv.bias.shape).toEqual([2]);
    expect(p.stages[2][0].grn.gamma.shape).toEqual([1, 1, 1, 16]);
    const src = readBack(bytes, 'encoder.stages.2.0.grn.gamma');
    expect(Array.from(p.stages[2][0].grn.gamma.dataSync())).toEqual(Array.from(src));
    expect(Array.from(p.downsample_layers[2][0].weight.dataSync())).toEqual(Array.from(readBack(bytes, 'encoder.downsample_layers.2.0.ln.weight')));
    expect(Array.from(p.stages[3][0].pwconv1.weight.dataSync())).toEqual(Array.from(readBack(bytes, 'encoder.stages.3.0.pwconv1.linear.weight')));
    // spec 4.5: decoder keys dropped; norm and head missing (kept from the template)
    expect(r.missing).toEqual(['norm.weight', 'norm.bias', 'head.weight', 'head.bias']);
    expect(r.dropped).toEqual(expect.arrayContaining(['proj.weight', 'proj.bias', 'mask_token', 'decoder.0.grn.gamma', 'pred.weight', 'pred.bias']));
    expect(r.dropped.length).toBe(15); // proj 2 + mask_token 1 + decoder block 10 + pred 2
    expect(p.norm.weight.dataSync()[0]).toBe(1);
    expect(p.head.weight.shape).toEqual([7, 5]);
  });

  it('without dropDecoder, names the decoder keys and says how to drop them', () => {
    const e = thrown(() => loadCheckpoint(bytes, SMALL));
    expect(e.message).toContain('unexpected key "proj.weight"');
    expect(e.message).toContain('missing key "head.weight", expected shape [7,5]');
    expect(e.message).toContain('dropDecoder: true');
  });

  it('loads into an FCMAE tree keeping encoder., decoder and mask_token', () => {
    const r = loadCheckpointDetailed(bytes, fcmaeTemplate());
    expect(r.missing).toEqual([]);
    const p = r.params;
    expect(p.encoder.stages[1][0].grn.beta.shape).toEqual([1, 1, 1, 12]);
    expect(p.encoder.downsample_layers[3][1].weight.shape).toEqual([5, 4, 2, 2]);
    expect(p.encoder.downsample_layers[3][1].weight.dataSync()[1 * 16 + 2 * 4 + 1 * 2 + 0]).toBe(100 * 1 + 10 * 2 + 1); // W[1,2,1,0] = K[1,2,1]
    expect(Array.from(p.mask_token.dataSync())).toEqual(Array.from(readBack(bytes, 'mask_token')));
    expect(Array.from(p.decoder[0].grn.gamma.dataSync())).toEqual(Array.from(readBack(bytes, 'decoder.0.grn.gamma')));
    // and our dense FCMAE save loads back unchanged
    const file = path.join(dir, 'fcmae_dense.safetensors');
    saveCheckpoint(file, p);
    expect(readSafetensors(file).tensors.has('encoder.stages.0.0.dwconv.weight')).toBe(true);
    const again = loadCheckpointDetailed(file, fcmaeTemplate());
    expect(again.layout).toBe('fcmae');
    expectSameTensors(toStateDict(p), toStateDict(again.params));
  });

  it('fcmaeToDense on a tensor map, and released dense pt_only weights (spec 5.4)', () => {
    const file = readSafetensors(writeTmp('sparse.safetensors', bytes));
    const m = new Map([...file.tensors].map(([k, t]) => [k, ops.tensor(t.data, { dtype: 'f32', shape: t.shape })]));
    const dense = fcmaeToDense(m);
    expect(dense.get('downsample_layers.1.1.weight')!.shape).toEqual([3, 2, 2, 2]);
    expect(dense.get('stages.0.0.norm.weight')!.shape).toEqual([2]);
    expect(dense.get('stages.0.0.grn.gamma')!.shape).toEqual([1, 1, 1, 8]);
    expect(dense.has('encoder.stages.0.0.norm.weight')).toBe(false);
    expect(fcmaeToDense(m, { keepEncoderPrefix: true }).has('encoder.stages.0.0.norm.weight')).toBe(true);
    // pt_only: dense keys, no encoder., no norm/head; GRN of unknown shape -> robust reshape
    const ptOnly = new Map([...dense].filter(([k]) => !/decoder|mask_token|proj|pred/.test(k)));
    ptOnly.set('stages.0.0.grn.gamma', ptOnly.get('stages.0.0.grn.gamma')!.reshape([8]));
    const f = path.join(dir, 'pt_only.safetensors');
    saveCheckpoint(f, Object.fromEntries(ptOnly) as never);
    const r = loadCheckpointDetailed(f, SMALL, { dropDecoder: true });
    expect(r.layout).toBe('official');
    expect(r.missing).toEqual(['norm.weight', 'norm.bias', 'head.weight', 'head.bias']);
    expect(r.params.stages[0][0].grn.gamma.shape).toEqual([1, 1, 1, 8]);
  });
});

function readBack(bytes: Uint8Array, key: string): Float32Array {
  const f = readSafetensors(writeTmp(`rb-${key}.safetensors`, bytes));
  return f.tensors.get(key)!.data as Float32Array;
}

function writeTmp(name: string, bytes: Uint8Array): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, bytes);
  return f;
}

// ---------------------------------------------------------------------------------------

describe('errors name the key, the shapes and close candidates', () => {
  const params = synth(ATTO);
  const sd = toStateDict(params);

  it('a misspelt key is missing and unexpected, each pointing at the other', () => {
    const bad = new Map([...sd].map(([k, t]) => [k === 'stages.2.3.grn.gamma' ? 'stages.2.3.grn.gama' : k, t]));
    const e = thrown(() => fromStateDict(bad, params));
    expect(e.message).toContain('missing key "stages.2.3.grn.gamma", expected shape [1,1,1,640]; closest keys in the checkpoint: "stages.2.3.grn.gama"');
    expect(e.message).toContain('unexpected key "stages.2.3.grn.gama" with shape [1,1,1,640]; closest model keys: "stages.2.3.grn.gamma"');
    expect(e.problems.map((p) => p.kind).sort()).toEqual(['missing', 'unexpected']);
  });

  it('a mis-shaped key names both shapes and the keys that have the expected one', () => {
    const bad = new Map(sd);
    bad.set('stages.0.0.pwconv1.weight', ops.zeros([40, 160], 'f32'));
    const e = thrown(() => fromStateDict(bad, params));
    expect(e.message).toContain('shape mismatch for "stages.0.0.pwconv1.weight": expected [160,40], found [40,160]; checkpoint keys with shape [160,40]: "stages.0.1.pwconv1.weight"');
    expect(e.problems).toHaveLength(1);
  });

  it('through a timm file the message also gives the name in the file', () => {
    const small = synth({ ...ATTO, numClasses: 10 });
    const file = path.join(dir, 'head10.safetensors');
    saveCheckpoint(file, small, {}, { layout: 'timm', convMlp: true });
    const e = thrown(() => loadCheckpoint(file, params));
    expect(e.message).toContain(file);
    expect(e.message).toContain(`shape mismatch for "head.weight" ("head.fc.weight" in the file): expected [1000,320], found [10,320]`);
    expect(e.message).toContain(`shape mismatch for "head.bias" ("head.fc.bias" in the file): expected [1000], found [10]`);
    // a head of another size is dropped when fine-tuning from a checkpoint (spec 4.5)
    const r = loadCheckpointDetailed(file, params, { dropDecoder: true });
    expect(r.dropped).toEqual(['head.weight', 'head.bias']);
    expect(r.missing).toEqual(['head.weight', 'head.bias']);
    expect(r.params.head.weight).toBe(params.head.weight);
  });

  it('non-strict loading keeps template values for missing keys and reports unexpected ones', () => {
    const partial = new Map([...sd].filter(([k]) => !k.startsWith('head.')));
    partial.set('extra.weight', ops.zeros([2], 'f32'));
    const file = path.join(dir, 'partial.safetensors');
    saveCheckpoint(file, Object.fromEntries(partial) as never);
    const r = loadCheckpointDetailed(file, params, { strict: false });
    expect(r.missing).toEqual(['head.weight', 'head.bias']);
    expect(r.unexpected).toEqual(['extra.weight']);
    expect(r.params.head.bias).toBe(params.head.bias);
    const e = thrown(() => loadCheckpoint(file, params));
    expect(e.message).toMatch(/2 missing, 1 unexpected/);
  });

  it('edit distance and candidates', () => {
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance('', 'abc')).toBe(3);
    // distances 4, 6, 1, 5
    expect(closestNames('norm.weight', ['head.weight', 'norm.bias', 'norm.weigh', 'stem.0.weight'], 2)).toEqual(['norm.weigh', 'head.weight']);
  });

  it('refuses PyTorch pickles', () => {
    expect(() => loadCheckpoint(path.join(dir, 'model.pt'), ATTO)).toThrow(/pickle[\s\S]*safetensors/);
    expect(() => saveCheckpoint(path.join(dir, 'model.pth'), params)).toThrow(/\.safetensors/);
  });
});

describe('save -> load through a real file', () => {
  const params = synth(ATTO);

  it('round-trips f32 exactly, atomically, with metadata', () => {
    const file = path.join(dir, 'atto.safetensors');
    saveCheckpoint(file, params, { epoch: '3' });
    expect(fs.readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
    const r = loadCheckpointDetailed(file, ATTO);
    expect(r.layout).toBe('official');
    expect(r.metadata).toEqual({ format: 'pt', epoch: '3' });
    expectSameTensors(toStateDict(params), toStateDict(r.params));
    // into f64 parameters
    const p64 = loadCheckpoint(file, { ...ATTO, dtype: 'f64' });
    expect(p64.stages[0][0].dwconv.weight.dtype).toBe('f64');
    expect(p64.stages[0][0].dwconv.weight.dataSync()[5]).toBe(params.stages[0][0].dwconv.weight.dataSync()[5]);
  });

  it('reads F16 and BF16 files into f32 and f64 parameters', () => {
    const small: Cfg = { depths: [1, 1, 1, 1], dims: [2, 2, 2, 2], numClasses: 3 };
    // values exactly representable in f16 and bf16
    const p = synth(small, 'f32', (j, i) => (j % 16) + (i % 4) * 0.25);
    for (const dt of ['F16', 'BF16'] as const) {
      const rec = new Map<string, SafeTensor>();
      for (const [k, t] of toStateDict(p)) rec.set(k, { dtype: dt, shape: [...t.shape], data: t.dataSync() as Float32Array });
      const bytes = serializeSafetensors(rec);
      expectSameTensors(toStateDict(p), toStateDict(loadCheckpoint(bytes, small)));
      const p64 = loadCheckpoint(bytes, { ...small, dtype: 'f64' });
      expect(p64.head.weight.dtype).toBe('f64');
      expect(Array.from(p64.head.weight.dataSync())).toEqual(Array.from(p.head.weight.dataSync()));
    }
  });

  it('rejects integer tensors for float parameters', () => {
    const small: Cfg = { depths: [1, 1, 1, 1], dims: [2, 2, 2, 2], numClasses: 3 };
    const rec = new Map<string, SafeTensor>();
    for (const [k, t] of toStateDict(synth(small))) {
      rec.set(k, k === 'norm.bias' ? { dtype: 'I32', shape: [...t.shape], data: new Int32Array(t.size) } : { dtype: 'F32', shape: [...t.shape], data: t.dataSync() as Float32Array });
    }
    const e = thrown(() => loadCheckpoint(serializeSafetensors(rec), small));
    expect(e.message).toContain('dtype mismatch for "norm.bias": the model needs f32, the checkpoint has I32');
  });
});
