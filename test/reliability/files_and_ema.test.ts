/**
 * EMA copies, orphaned temporary files, one rule for .pt names, and the error class (issue 8
 * item 16, issue 9). Before the fix: nn.emaInit(params) returned the very Tensors of params, so
 * donating params to a jitted step made emaUpdate throw "donated"; a writer killed between
 * creating its temp file and renaming it left the file forever; saveSafetensors('w.pt') wrote a
 * file nexgrad then refused to read while saveCheckpoint refused the name; SafetensorsError was
 * not a NexgradError and was missing from ng.io.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as ng from '../../src/index.js';
import { CheckpointError, saveCheckpoint } from '../../src/convnextv2/checkpoint.js';
import { NexgradError } from '../../src/ir/errors.js';
import * as ops from '../../src/ir/ops.js';
import type { Tensor } from '../../src/ir/tensor.js';
import { emaInit, emaInitAsync, emaUpdate } from '../../src/nn/ema.js';
import { loadSafetensors, saveSafetensors, SafetensorsError } from '../../src/nn/io.js';
import { cleanStaleTempFiles, STALE_TEMP_MS } from '../../src/nn/safetensors.js';
import { jit } from '../../src/passes/jit.js';

describe('emaInit copies', () => {
  it('gives new tensors with equal values', () => {
    const p = { w: ops.tensor([1, 2]), b: [ops.tensor([3], { dtype: 'i32' })] };
    const e = emaInit(p);
    expect(e.w).not.toBe(p.w);
    expect(e.b[0]).not.toBe(p.b[0]);
    expect(e.w.tolist()).toEqual([1, 2]);
    expect(e.b[0]!.dtype).toBe('i32');
  });

  it('emaInitAsync copies too', async () => {
    const p = { w: ops.tensor([5, 6]) };
    const e = await emaInitAsync(p);
    expect(e.w).not.toBe(p.w);
    expect(e.w.tolist()).toEqual([5, 6]);
  });

  it('survives donating the parameters to a jitted step', () => {
    type P = { w: Tensor };
    const step = jit((p: P, g: P): P => ({ w: ops.sub(p.w, g.w) }), { backend: 'cpu', cacheDir: false, donate: 0 });
    const p0 = { w: ops.tensor([1, 2, 3]) };
    const ema = emaInit(p0);
    const p1 = step(p0, { w: ops.tensor([1, 1, 1]) });
    expect(p0.w.isDonated).toBe(true);
    const e1 = emaUpdate(ema, p1, 0.75); // threw "donated to a jitted function" before the fix
    expect(e1.w.tolist()).toEqual([0.75 * 1 + 0.25 * 0, 0.75 * 2 + 0.25 * 1, 0.75 * 3 + 0.25 * 2]);
  });
});

describe('stale temporary files of killed writers', () => {
  let dir = '';
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nexgrad-tmpclean-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const ourHost = createHash('sha256').update(os.hostname()).digest('hex').slice(0, 8);
  const otherHost = ourHost === '00000000' ? '11111111' : '00000000';
  /** The pid of a process that has exited (spawned and waited for). */
  const deadPid = (): number => spawnSync(process.execPath, ['-e', '0']).pid!;
  const touch = (name: string, ageMs = 0): string => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, 'partial');
    const t = (Date.now() - ageMs) / 1000;
    fs.utimesSync(p, t, t);
    return name;
  };

  it('the next save removes temp files of dead local writers and old ones, and nothing else', () => {
    const dead = touch(`w.safetensors.tmp-${ourHost}-${deadPid()}-0123456789ab`);
    const old = touch(`x.safetensors.tmp-${otherHost}-4242-0123456789ab`, STALE_TEMP_MS + 60_000);
    const remoteFresh = touch(`y.safetensors.tmp-${otherHost}-4242-0123456789ab`);
    const liveFresh = touch(`z.safetensors.tmp-${ourHost}-${process.pid}-0123456789ab`);
    const unrelated = touch('notes.tmp', STALE_TEMP_MS * 10);
    const lookalikeDir = `d.tmp-${ourHost}-${deadPid()}-0123456789ab`;
    fs.mkdirSync(path.join(dir, lookalikeDir));

    saveSafetensors(path.join(dir, 'model.safetensors'), { w: ops.tensor([1, 2]) });
    const left = fs.readdirSync(dir).sort();
    expect(left).toEqual([lookalikeDir, 'model.safetensors', unrelated, remoteFresh, liveFresh].sort());
    expect(left).not.toContain(dead);
    expect(left).not.toContain(old);
    expect([...loadSafetensors(path.join(dir, 'model.safetensors')).w!.dataSync()]).toEqual([1, 2]);
  });

  it('cleanStaleTempFiles reports what it removed and ignores a missing directory', () => {
    const dead = touch(`a.tmp-${ourHost}-${deadPid()}-abcdefabcdef`);
    expect(cleanStaleTempFiles(dir)).toEqual([dead]);
    expect(cleanStaleTempFiles(path.join(dir, 'nope'))).toEqual([]);
  });

  it('a successful write leaves no temp file of its own', () => {
    saveSafetensors(path.join(dir, 'a.safetensors'), { w: ops.zeros([3]) });
    expect(fs.readdirSync(dir)).toEqual(['a.safetensors']);
  });
});

describe('one rule for pickle names', () => {
  let dir = '';
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nexgrad-ptname-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it.each(['w.pt', 'w.pth', 'w.bin', 'w.ckpt', 'W.PT'])('saveSafetensors and saveCheckpoint both refuse %s and write nothing', (name) => {
    const p = path.join(dir, name);
    let e: unknown;
    try {
      saveSafetensors(p, { w: ops.zeros([2]) });
    } catch (err) {
      e = err;
    }
    expect(e).toBeInstanceOf(SafetensorsError);
    expect((e as Error).message).toMatch(/refusing to write safetensors data under a \.pt\/\.pth\/\.bin\/\.ckpt name.*use a \.safetensors name/);
    expect(() => saveCheckpoint(p, { w: ops.zeros([2]) })).toThrow(CheckpointError);
    expect(() => saveCheckpoint(p, { w: ops.zeros([2]) })).toThrow(/use a \.safetensors name/);
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});

describe('SafetensorsError', () => {
  it('is a NexgradError, exported at ng.io and still at ng.nn', () => {
    const e = new SafetensorsError('bad', { file: 'f.safetensors', tensor: 'w', cause: 'why' });
    expect(e).toBeInstanceOf(NexgradError);
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('SafetensorsError');
    expect(e.message).toBe('f.safetensors: tensor "w": bad');
    expect(e.cause).toBe('why');
    expect(ng.io.SafetensorsError).toBe(SafetensorsError);
    expect(ng.nn.SafetensorsError).toBe(SafetensorsError);
    let caught: unknown;
    try {
      ng.io.loadSafetensors(new Uint8Array(3));
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ng.NexgradError);
  });
});
