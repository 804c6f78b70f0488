/**
 * End to end through the built CLI on synthetic data with a tiny model: pretrain -> finetune
 * -> eval -> inspect; resume after SIGKILL at a random moment reproduces the uninterrupted
 * run's losses and weights exactly; Ctrl-C saves and exits 130; a truncated checkpoint is
 * refused and the previous one kept.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSafetensors } from '../../src/nn/safetensors.js';
import { ensureBuilt, nexgrad, start, stepLines, waitFor } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nexgrad-cli-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
beforeAll(() => ensureBuilt());

/** Data and model flags every command takes; training adds a batch size. */
const BASE = ['--data', 'synthetic', '--limit', '96', '--image-size', '16', '--model', 'custom', '--dims', '8,16', '--depths', '1,1', '--stem-stride', '2', '--quiet'];
const TINY = [...BASE, '--batch-size', '16'];
const out = (name: string) => path.join(tmp, name);
const ok = (r: { code: number | null; stdout: string; stderr: string }) => expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);

describe('pretrain -> finetune -> eval -> inspect', () => {
  it('runs each command, writing checkpoints, metrics, models and pictures that agree', async () => {
    const pre = await nexgrad(['pretrain', ...TINY, '--steps', '6', '--checkpoint-every', '3', '--decoder-dim', '16', '--out', out('pre')]);
    ok(pre);
    expect(fs.readdirSync(out('pre')).sort()).toEqual(['checkpoint-00000003.safetensors', 'checkpoint-00000006.safetensors', 'fcmae.safetensors', 'loss.png', 'metrics.jsonl', 'reconstruction.png']);
    const preLines = stepLines(path.join(out('pre'), 'metrics.jsonl'));
    expect(preLines.map((r) => r.step)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(preLines.every((r) => typeof r.loss === 'number' && Number.isFinite(r.loss) && (r.loss as number) > 0)).toBe(true);
    expect(pre.stdout).toMatch(/encoder: .*fcmae\.safetensors/);

    const ft = await nexgrad(['finetune', ...TINY, '--steps', '12', '--ema', '0.9', '--init', path.join(out('pre'), 'fcmae.safetensors'), '--out', out('ft')]);
    ok(ft);
    expect(ft.stdout).toMatch(/^test accuracy: \d+\.\d\d% \(\d+\/96, EMA weights\)/m);
    const evalJson = JSON.parse(fs.readFileSync(path.join(out('ft'), 'eval.json'), 'utf8')) as { accuracy: number; correct: number; total: number; confusion: number[][] };
    const diag = evalJson.confusion.reduce((a, row, i) => a + row[i]!, 0);
    expect(evalJson.total).toBe(96);
    expect(evalJson.confusion.flat().reduce((a, b) => a + b, 0)).toBe(96);
    expect(diag).toBe(evalJson.correct);
    expect(evalJson.accuracy).toBeCloseTo(diag / 96, 12);
    for (const f of ['loss.png', 'accuracy.png', 'confusion.png', 'model.safetensors']) expect(fs.existsSync(path.join(out('ft'), f)), f).toBe(true);
    // the encoder came from the pretraining run: the stem before fine-tuning equals fcmae.safetensors'
    const enc = readSafetensors(path.join(out('pre'), 'fcmae.safetensors')).tensors.get('encoder.downsample_layers.0.0.weight')!;
    expect(enc.shape).toEqual([8, 1, 2, 2]);

    // eval from the saved model file and from the checkpoint's EMA: the same numbers as finetune's
    const ev = await nexgrad(['eval', ...TINY, '--checkpoint', path.join(out('ft'), 'model.safetensors'), '--out', out('ev')]);
    ok(ev);
    const ev2 = await nexgrad(['eval', ...TINY, '--checkpoint', path.join(out('ft'), 'checkpoint-00000012.safetensors'), '--out', out('ev2')]);
    ok(ev2);
    for (const dir of ['ev', 'ev2']) {
      const j = JSON.parse(fs.readFileSync(path.join(out(dir), 'eval.json'), 'utf8')) as { correct: number; confusion: number[][] };
      expect(j.correct).toBe(evalJson.correct);
      expect(j.confusion).toEqual(evalJson.confusion);
    }
    expect(ev2.stdout).toMatch(/EMA weights of a fine-tuning checkpoint at step 12/);

    const ins = await nexgrad(['inspect', ...BASE, '--checkpoint', path.join(out('ft'), 'model.safetensors'), '--images', '8', '--channels', '16', '--out', out('ins')]);
    ok(ins);
    const fc = JSON.parse(fs.readFileSync(path.join(out('ins'), 'feature-collapse.json'), 'utf8')) as { models: { model: string; grn: boolean; layers: { name: string; channels: number; cosineDistance: number }[] }[] };
    expect(fc.models.map((m) => [m.model, m.grn])).toEqual([['ConvNeXt V2', true], ['GRN removed', false]]);
    expect(fc.models[0]!.layers.map((l) => [l.name, l.channels])).toEqual([['stages.0.0', 32], ['stages.1.0', 64]]);
    for (const m of fc.models) for (const l of m.layers) expect(l.cosineDistance).toBeGreaterThan(0), expect(l.cosineDistance).toBeLessThan(1);
    for (const f of ['cosine-distance.png', 'activations-stages.0.0-v2.png', 'activations-stages.1.0-no-grn.png']) expect(fs.existsSync(path.join(out('ins'), f)), f).toBe(true);

    // a model trained without GRN, compared with --compare
    ok(await nexgrad(['finetune', ...TINY, '--steps', '4', '--no-grn', '--out', out('nogrn')]));
    const cmp = await nexgrad(['inspect', ...BASE, '--checkpoint', path.join(out('ft'), 'model.safetensors'), '--compare', path.join(out('nogrn'), 'model.safetensors'), '--images', '8', '--out', out('cmp')]);
    ok(cmp);
    const fc2 = JSON.parse(fs.readFileSync(path.join(out('cmp'), 'feature-collapse.json'), 'utf8')) as typeof fc;
    expect(fc2.models.map((m) => [m.model, m.grn])).toEqual([['ConvNeXt V2', true], ['model.safetensors', true]]);
    // the V2 model's numbers do not depend on what it is compared with
    expect(fc2.models[0]!.layers).toEqual(fc.models[0]!.layers);
    const nogrn = readSafetensors(path.join(out('nogrn'), 'model.safetensors')).tensors.get('stages.0.0.grn.gamma')!;
    expect(Array.from(nogrn.data).every((v) => v === 0)).toBe(true);
  });
});

describe('checkpoints and resume', () => {
  const RUN = [...TINY, '--steps', '36', '--checkpoint-every', '4', '--ema', '0.9', '--drop-path', '0.1', '--mixup', '0.8', '--cutmix', '1', '--flip', '0.5', '--log-every', '3'];
  let reference: Record<string, unknown>[] = [];
  let refModel: Buffer;

  beforeAll(async () => {
    const r = await nexgrad(['finetune', ...RUN, '--out', out('ref')]);
    ok(r);
    reference = stepLines(path.join(out('ref'), 'metrics.jsonl'));
    refModel = fs.readFileSync(path.join(out('ref'), 'model.safetensors'));
    expect(reference.map((x) => x.step)).toEqual([...Array(36).keys()]);
  });

  it('resume after SIGKILL at a random moment gives exactly the uninterrupted losses and weights', async () => {
    const dir = out('killed');
    const seed = Math.random();
    const run = start(['finetune', ...RUN, '--out', dir]);
    await waitFor(() => fs.existsSync(path.join(dir, 'checkpoint-00000004.safetensors')), 120_000, 'the first checkpoint');
    await new Promise((r) => setTimeout(r, Math.floor(seed * 400)));
    run.child.kill('SIGKILL');
    const killed = await run.done;
    expect(killed.signal, `the run ended before the kill (delay ${Math.floor(seed * 400)} ms)`).toBe('SIGKILL');
    const resumed = await nexgrad(['finetune', '--resume', dir, '--quiet']);
    ok(resumed);
    expect(resumed.stdout).toMatch(/test accuracy/);
    expect(stepLines(path.join(dir, 'metrics.jsonl')), `killed after ${Math.floor(seed * 400)} ms`).toEqual(reference);
    expect(fs.readFileSync(path.join(dir, 'model.safetensors')).equals(refModel)).toBe(true);
  });

  it('Ctrl-C finishes the step, saves a checkpoint and exits 130; resuming completes the same run', async () => {
    const dir = out('sigint');
    const run = start(['finetune', ...RUN, '--out', dir]);
    await waitFor(() => fs.existsSync(path.join(dir, 'checkpoint-00000004.safetensors')), 120_000, 'the first checkpoint');
    run.child.kill('SIGINT');
    const r = await run.done;
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).toMatch(/interrupted: finishing this step and saving a checkpoint/);
    const saved = fs.readdirSync(dir).filter((f) => /^checkpoint-\d+\.safetensors$/.test(f));
    expect(saved.length).toBeGreaterThan(0);
    const resumed = await nexgrad(['finetune', '--resume', '--out', dir, '--quiet']);
    ok(resumed);
    expect(stepLines(path.join(dir, 'metrics.jsonl'))).toEqual(reference);
  });

  it('a truncated newest checkpoint is refused, naming it and the intact previous one, which is kept', async () => {
    const dir = out('trunc');
    ok(await nexgrad(['finetune', ...RUN, '--steps', '8', '--out', dir]));
    const newest = path.join(dir, 'checkpoint-00000008.safetensors');
    const previous = path.join(dir, 'checkpoint-00000004.safetensors');
    const before = fs.readFileSync(previous);
    const bytes = fs.readFileSync(newest);
    fs.writeFileSync(newest, bytes.subarray(0, Math.floor(bytes.length / 2)));
    const r = await nexgrad(['finetune', '--resume', dir, '--quiet']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`checkpoint ${newest}: cannot be read`);
    expect(r.stderr).toMatch(/truncated or corrupt/);
    expect(r.stderr).toContain(`the previous checkpoint ${previous} is intact: resume from it with --resume ${previous}`);
    expect(fs.readFileSync(previous).equals(before)).toBe(true);
    const again = await nexgrad(['finetune', '--resume', previous, '--quiet']);
    ok(again);
  });

  it('a new run refuses an --out that holds another run, pointing at --resume', async () => {
    const r = await nexgrad(['finetune', ...TINY, '--steps', '2', '--out', out('ref')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--out ".*ref" already holds checkpoints of a run .*; pass --resume to continue it, or choose another --out/);
  });
});
