/**
 * Every bad flag gets a message naming the flag and the expected form (exit code 2); unknown
 * flags are rejected (with a suggestion); every command has -h/--help; --version prints the
 * package's version; ir and bench run the whole training step.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as os from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, nexgrad, ROOT } from './helpers.js';
import * as ng from '../../src/index.js';
import { CPU_CAPS } from '../../src/codegen/kernel/device.js';
import { config } from '../../src/convnextv2/config.js';
import { paramSpec } from '../../src/convnextv2/model.js';
import { specEntries, unflattenParams } from '../../src/nn/init.js';
import { lower } from '../../src/passes/pipeline.js';

beforeAll(() => ensureBuilt());

const BAD: readonly [string, string[], RegExp][] = [
  ['a misspelt flag', ['finetune', '--modle', 'femto'], /error: unknown option '--modle'\n\(Did you mean --model\?\)/],
  ['a flag of another command', ['eval', '--mask-ratio', '0.5', '--checkpoint', 'package.json'], /error: unknown option '--mask-ratio'/],
  ['a non-integer batch size', ['finetune', '--batch-size', 'abc'], /option '--batch-size <n>' argument 'abc' is invalid\. expected a positive integer \(e\.g\. 128\)/],
  ['a zero batch size', ['pretrain', '--batch-size', '0'], /option '--batch-size <n>' argument '0' is invalid\. expected a positive integer/],
  ['a negative learning rate', ['finetune', '--lr', '-1'], /option '--lr <rate>' argument '-1' is invalid\. expected a positive number \(e\.g\. 0\.001\)/],
  ['a learning rate that is not a number', ['finetune', '--lr', '1e-3x'], /option '--lr <rate>' argument '1e-3x' is invalid\. expected a positive number/],
  ['an unknown model', ['finetune', '--model', 'gigantic'], /option '--model <name>' argument 'gigantic' is invalid\. expected one of mini, atto, femto, pico, nano, tiny, base, large, huge, custom/],
  ['a malformed dims list', ['finetune', '--dims', '8,x'], /option '--dims <list>' argument '8,x' is invalid\. expected a comma-separated list of integers >= 1 \(e\.g\. 48,96\)/],
  ['custom without a shape', ['finetune', '--model', 'custom', '--data', 'synthetic', '--limit', '32'], /nexgrad finetune: error: --model custom needs --dims and --depths/],
  ['dims and depths of different lengths', ['finetune', '--dims', '8,16', '--depths', '1', '--data', 'synthetic', '--limit', '32'], /--dims has 2 stages but --depths has 1/],
  ['a mask ratio of 1 or more', ['pretrain', '--mask-ratio', '1.5'], /option '--mask-ratio <r>' argument '1\.5' is invalid\. expected a number in \[0, 1\) \(e\.g\. 0\.6\)/],
  ['a negative mixup alpha', ['finetune', '--mixup', '-0.2'], /option '--mixup <alpha>' argument '-0\.2' is invalid\. expected a number >= 0/],
  ['a fractional random shift', ['pretrain', '--random-shift', '1.5'], /option '--random-shift <pixels>' argument '1\.5' is invalid\. expected an integer >= 0 \(e\.g\. 2\)/],
  ['label smoothing of 1', ['finetune', '--label-smoothing', '1'], /option '--label-smoothing <eps>' argument '1' is invalid\. expected a number in \[0, 1\)/],
  ['a drop-path rate of 1', ['finetune', '--drop-path', '1'], /option '--drop-path <rate>' argument '1' is invalid\. expected a number in \[0, 1\)/],
  ['an unknown backend', ['finetune', '--backend', 'tpu'], /option '--backend <name>' argument 'tpu' is invalid\. expected one of auto, cpu, wgsl, cuda/],
  ['a missing init file', ['finetune', '--init', '/nonexistent/fcmae.safetensors'], /option '--init <file>' argument '\/nonexistent\/fcmae\.safetensors' is invalid\. expected an existing safetensors file; "\/nonexistent\/fcmae\.safetensors" does not exist/],
  ['a missing data directory', ['finetune', '--data-dir', '/nonexistent'], /option '--data-dir <dir>' argument '\/nonexistent' is invalid\. expected an existing directory/],
  ['an unknown dataset', ['finetune', '--data', 'imagenet-nowhere'], /--data "imagenet-nowhere": expected one of fashion-mnist, mnist, cifar10, synthetic or an existing ImageFolder directory/],
  ['a missing resume target', ['finetune', '--resume', '/nonexistent/run'], /--resume "\/nonexistent\/run": no such file or directory/],
  ['zero threads', ['bench', '--threads', '0'], /option '--threads <n>' argument '0' is invalid\. expected a positive integer/],
  ['eval without a checkpoint', ['eval'], /error: required option '--checkpoint <file>' not specified/],
  ['a stray argument', ['finetune', 'femto'], /error: too many arguments for 'finetune'/],
  ['an unknown command', ['frobnicate'], /error: unknown command 'frobnicate'/],
  ['an unknown layer to inspect', ['inspect', '--checkpoint', '__MODEL__', '--data', 'synthetic', '--limit', '8', '--image-size', '16', '--model', 'custom', '--dims', '8,16', '--depths', '1,1', '--stem-stride', '2', '--layers', 'stages.7.0'], /--layers: stages\.7\.0 is not a block of this model; expected some of stages\.0\.0, stages\.1\.0/],
];

const tmpDirs: string[] = [];
afterAll(() => tmpDirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

describe('bad flags', () => {
  let model = '';
  beforeAll(async () => {
    // a tiny model file for the inspect case
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nexgrad-flags-'));
    tmpDirs.push(dir);
    const r = await nexgrad(['finetune', '--data', 'synthetic', '--limit', '16', '--image-size', '16', '--model', 'custom', '--dims', '8,16', '--depths', '1,1', '--stem-stride', '2', '--batch-size', '8', '--steps', '1', '--quiet', '--out', dir]);
    expect(r.code, r.stderr).toBe(0);
    model = path.join(dir, 'model.safetensors');
  });

  it.each(BAD)('%s', async (_what, args, message) => {
    const r = await nexgrad(args.map((a) => (a === '__MODEL__' ? model : a)));
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(message);
  });

  it('an unavailable backend names the reason and what is available (exit 1)', async () => {
    const r = await nexgrad(['bench', '--backend', 'cuda']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/nexgrad bench: error: backend 'cuda' is not available: .+\. Available: .*cpu/);
  });
});

describe('help and version', () => {
  it.each(['pretrain', 'finetune', 'eval', 'bench', 'ir', 'inspect'])('%s --help lists its flags (exit 0)', async (cmd) => {
    for (const flag of ['--help', '-h']) {
      const r = await nexgrad([cmd, flag]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^Usage: nexgrad ${cmd} \\[options\\]`));
      expect(r.stdout).toContain('--model <name>');
    }
  });

  it('--help lists the commands and --version prints package.json\'s version', async () => {
    const h = await nexgrad(['--help']);
    expect(h.code).toBe(0);
    for (const c of ['pretrain', 'finetune', 'eval', 'bench', 'ir', 'inspect']) expect(h.stdout).toMatch(new RegExp(`^  ${c}\\b`, 'm'));
    const v = await nexgrad(['--version']);
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(v.stdout.trim()).toBe(pkg.version);
  });
});

describe('ir and bench', () => {
  it('ir --train traces the whole fine-tuning step: more equations and kernels than inference', async () => {
    const common = ['ir', '--model', 'custom', '--dims', '8,16', '--depths', '1,1', '--image-size', '32', '--batch-size', '2', '--classes', '10'];
    const inf = await nexgrad(common);
    const tr = await nexgrad([...common, '--train']);
    expect(inf.code, inf.stderr).toBe(0);
    expect(tr.code, tr.stderr).toBe(0);
    expect(tr.stdout).toMatch(/fine-tuning step \(forward, loss, backward, clipping, AdamW, EMA\), batch 2, 32x32/);
    const count = (s: string) => Number(/(\d+) kernels/.exec(s)![1]);
    const eqns = (s: string) => Number(/traced: (\d+) equations/.exec(s)![1]);
    expect(count(tr.stdout)).toBeGreaterThan(2 * count(inf.stdout));
    expect(eqns(tr.stdout)).toBeGreaterThan(3 * eqns(inf.stdout));
  });

  it('ir compiles for the backend it names: the CPU\'s capabilities fuse LayerNorm statistics and GRN sums into the GEMMs', async () => {
    const r = await nexgrad(['ir', '--model', 'custom', '--dims', '8,16', '--depths', '1,1', '--image-size', '32', '--batch-size', '2', '--classes', '10', '--backend', 'cpu']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/compiled for cpu/);
    // the same model lowered here, with and without the CPU's capabilities
    const cfg = config('custom', { dims: [8, 16], depths: [1, 1], numClasses: 10 });
    const params = unflattenParams(specEntries(paramSpec(cfg)).map(([n, sp]) => [n, ng.zeros(sp.shape)] as const));
    const prog = ng.trace((p: any, im: ng.Tensor) => ng.convnextv2.apply(p, im, { cfg }), params, ng.zeros([2, 3, 32, 32]));
    const kernels = Number(/(\d+) kernels/.exec(r.stdout)![1]);
    expect(kernels).toBe(lower(prog, undefined, CPU_CAPS).graph.kernels.length);
    expect(kernels).toBeLessThan(lower(prog).graph.kernels.length);
  });

  it('bench times the FCMAE pretraining step', async () => {
    const r = await nexgrad(['bench', '--mode', 'pretrain', '--model', 'custom', '--dims', '8,16', '--depths', '1,1', '--image-size', '16', '--batch-size', '4', '--steps', '2', '--channels', '1']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/custom pretrain, batch 4, 16x16, cpu: \d+\.\d img\/s \(median [\d.]+ ms per call over 2; first call [\d.]+ s with compilation\)/);
  });
});
