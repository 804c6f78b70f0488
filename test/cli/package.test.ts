/**
 * Packaging: `npm pack` of a fresh checkout (no dist/) builds through prepack and ships dist/
 * without tests or benches; `nexgrad` works from the installed tarball (a training run with
 * pictures included, so the runtime dependencies are declared).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { childEnv, ROOT } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nexgrad-pack-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const npm = (args: string[], cwd: string) => execFileSync('npm', args, { cwd, encoding: 'utf8', env: childEnv({ npm_config_fund: 'false', npm_config_audit: 'false' }), stdio: ['ignore', 'pipe', 'pipe'] });

describe('npm pack and install', () => {
  it('a fresh checkout packs dist/ (built by prepack) and no tests or benches; the installed bin runs', () => {
    // a checkout without dist/: the tracked and new files of this tree, node_modules linked
    const clone = path.join(tmp, 'clone');
    const files = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' }).split('\n').filter(Boolean);
    for (const f of files) {
      if (!fs.existsSync(path.join(ROOT, f))) continue;
      fs.mkdirSync(path.dirname(path.join(clone, f)), { recursive: true });
      fs.copyFileSync(path.join(ROOT, f), path.join(clone, f));
    }
    fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(clone, 'node_modules'));
    expect(fs.existsSync(path.join(clone, 'dist'))).toBe(false);
    const packed = JSON.parse(npm(['pack', '--json', '--pack-destination', tmp], clone)) as { filename: string; files: { path: string }[] }[];
    const names = packed[0]!.files.map((f) => f.path);
    for (const f of ['dist/src/cli.js', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/convnextv2/cli/index.js', 'package.json', 'README.md']) expect(names).toContain(f);
    expect(names.filter((f) => /^(test|bench|src|examples|scripts)\/|^dist\/(test|bench|examples)\//.test(f))).toEqual([]);

    const app = path.join(tmp, 'app');
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
    npm(['install', '--prefer-offline', path.join(tmp, packed[0]!.filename)], app);
    const bin = path.join(app, 'node_modules/.bin/nexgrad');
    const run = (args: string[]) => execFileSync(bin, args, { cwd: app, encoding: 'utf8', env: childEnv() });
    expect(run(['--version']).trim()).toBe((JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version);
    const out = run(['finetune', '--data', 'synthetic', '--limit', '32', '--image-size', '16', '--model', 'custom', '--dims', '8,16', '--depths', '1,1', '--stem-stride', '2', '--batch-size', '8', '--steps', '2', '--quiet', '--out', 'run']);
    expect(out).toMatch(/^test accuracy: \d+\.\d\d% \(\d+\/32\)/m);
    for (const f of ['model.safetensors', 'loss.png', 'confusion.png']) expect(fs.existsSync(path.join(app, 'run', f)), f).toBe(true);
    // the library itself imports from the installed package
    const lib = execFileSync(process.execPath, ['--input-type=module', '-e', "import * as ng from 'nexgrad'; console.log(ng.grad((x) => x.mul(x).sum())(ng.tensor([3])).tolist())"], { cwd: app, encoding: 'utf8' });
    expect(lib.trim()).toBe('[ 6 ]');
    // the native CPU addon's sources ship and build in the installed package (node-addon-api is a
    // runtime dependency): forcing the native dialect runs without the fallback notice
    for (const f of ['native/cpu/src/addon.cc', 'native/cpu/src/gemm.h']) expect(names).toContain(f);
    const native = spawnSync(process.execPath, ['--input-type=module', '-e', "import * as ng from 'nexgrad'; console.log(ng.jit((x) => x.mul(x).sum())(ng.tensor([3, 4])).tolist())"], { cwd: app, encoding: 'utf8', env: childEnv({ NEXGRAD_CPU: 'native' }) });
    expect(native.stdout.trim()).toBe('25');
    expect(native.stderr).not.toMatch(/native CPU backend is not available/);
    // the Node-only training library is its own entry point (the core stays free of node: imports)
    const train = execFileSync(process.execPath, ['--input-type=module', '-e', "import * as t from 'nexgrad/train'; console.log(t.emaDecayAt(0, 0.999, true), typeof t.FinetuneTrainer)"], { cwd: app, encoding: 'utf8' });
    expect(train.trim()).toBe(`${Math.min(0.999, 1 / 10)} function`);
  }, 600_000);
});
