/**
 * Training checkpoint files: exact round trip (bits, dtypes, structure, metadata), atomic
 * writes that keep the last two, and refusal of truncated, altered or mismatched files with a
 * message naming the file and the problem.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as ops from '../../../src/ir/ops.js';
import { treeLeaves } from '../../../src/ir/pytree.js';
import {
  CheckpointFileError,
  checkpointName,
  listCheckpoints,
  loadTrainCheckpoint,
  pruneCheckpoints,
  readTrainCheckpoint,
  saveTrainCheckpoint,
} from '../../../src/convnextv2/train/checkpoint_files.js';
import { MetricsLog } from '../../../src/convnextv2/train/metrics.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nexgrad-ckpt-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const tree = () => ({
  params: { w: ops.tensor([[0.1, -2.5e-8], [3.25, Math.PI]]), layers: [ops.tensor([1, 2, 3]), ops.tensor([7])] },
  opt: { step: ops.scalar(12, 'i32'), m: { w: ops.zeros([2, 2]) } },
  ema: null,
  key: ops.tensor([123, 4294967295], { dtype: 'u32' }),
});

describe('training checkpoints', () => {
  it('round-trips every bit, dtype and the metadata', async () => {
    const file = path.join(dir, checkpointName(12));
    await saveTrainCheckpoint(file, tree(), { kind: 'finetune', step: 12, argv: ['--lr', '0.002'] });
    const back = loadTrainCheckpoint(file, tree());
    const want = treeLeaves(tree());
    const got = treeLeaves(back.tree);
    expect(got.map((t) => t.dtype)).toEqual(want.map((t) => t.dtype));
    got.forEach((t, i) => expect(Array.from(t.dataSync())).toEqual(Array.from(want[i]!.dataSync())));
    expect(back.tree.ema).toBeNull();
    expect(back.meta).toMatchObject({ format: 'nexgrad-train/1', kind: 'finetune', step: 12, argv: ['--lr', '0.002'] });
  });

  it('refuses a truncated file, naming it, and never touches it', async () => {
    const file = path.join(dir, 'trunc.safetensors');
    await saveTrainCheckpoint(file, tree(), { kind: 'finetune', step: 1 });
    const bytes = fs.readFileSync(file);
    fs.writeFileSync(file, bytes.subarray(0, bytes.length - 10));
    const err = (() => {
      try {
        readTrainCheckpoint(file);
      } catch (e) {
        return e as Error;
      }
      throw new Error('expected an error');
    })();
    expect(err).toBeInstanceOf(CheckpointFileError);
    expect(err.message).toContain(file);
    expect(err.message).toMatch(/truncated or corrupt/);
    expect(fs.statSync(file).size).toBe(bytes.length - 10);
  });

  it('refuses a file whose tensor bytes were altered (SHA-256)', async () => {
    const file = path.join(dir, 'flip.safetensors');
    await saveTrainCheckpoint(file, tree(), { kind: 'finetune', step: 1 });
    const bytes = fs.readFileSync(file);
    bytes[bytes.length - 1] ^= 0x40; // the last byte is tensor data
    fs.writeFileSync(file, bytes);
    expect(() => readTrainCheckpoint(file)).toThrow(/do not match the SHA-256 recorded when it was written/);
  });

  it('refuses a checkpoint of another model with a one-line summary first', async () => {
    const file = path.join(dir, 'other.safetensors');
    await saveTrainCheckpoint(file, tree(), { kind: 'finetune', step: 1 });
    const other = { ...tree(), params: { w: ops.zeros([2, 3]), layers: [ops.zeros([3])], extra: ops.zeros([1]) } };
    expect(() => loadTrainCheckpoint(file, other)).toThrow(/does not fit this run: 1 missing, 1 unexpected, 1 mismatched tensors\n {2}missing params\.extra\n {2}unexpected params\.layers\.1\n {2}params\.w: file F32\[2,2\], run f32\[2,3\]/);
  });

  it('keeps the two newest checkpoints and removes temporary files of interrupted writes', async () => {
    const d = path.join(dir, 'prune');
    for (const s of [5, 10, 15]) await saveTrainCheckpoint(path.join(d, checkpointName(s)), tree(), { kind: 'finetune', step: s });
    fs.writeFileSync(path.join(d, `${checkpointName(20)}.tmp-1-abc`), 'partial');
    pruneCheckpoints(d, 2);
    expect(listCheckpoints(d).map((c) => c.step)).toEqual([15, 10]);
    expect(fs.readdirSync(d).sort()).toEqual([checkpointName(10), checkpointName(15)]);
  });

  it('metadata keys like __proto__ stay data', async () => {
    const file = path.join(dir, 'proto.safetensors');
    await saveTrainCheckpoint(file, tree(), JSON.parse('{"kind":"finetune","__proto__":{"polluted":true}}') as Record<string, unknown>);
    const { meta } = readTrainCheckpoint(file);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getPrototypeOf(meta)).toBe(Object.prototype);
  });
});

describe('metrics log', () => {
  it('a resumed run drops the lines of steps it redoes, and a line torn by a kill', () => {
    const log = new MetricsLog(path.join(dir, 'm.jsonl'));
    log.reset();
    log.append([{ step: 0, loss: 1 }, { step: 1, loss: 0.5 }, { event: 'eval', testAcc: 0.5 }, { step: 2, loss: 0.25 }]);
    fs.appendFileSync(log.file, '{"step": 3, "lo');
    log.truncateTo(2);
    expect(log.read()).toEqual([{ step: 0, loss: 1 }, { step: 1, loss: 0.5 }, { event: 'eval', testAcc: 0.5 }]);
  });
});
