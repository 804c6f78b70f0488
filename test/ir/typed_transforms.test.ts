/**
 * grad / valueAndGrad / vjp / jvp results are typed from the function's signature, checked by
 * compiling snippets with the TypeScript compiler (a wrong use must be a type error, a right
 * one must compile without casts); a non-function is a named error at run time; error call
 * sites in compiled .js files are mapped to their .ts source through source maps.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grad, jvp, valueAndGrad, vjp } from '../../src/autodiff/api.js';
import { OpError } from '../../src/ir/errors.js';
import { ensureBuilt, ROOT } from '../cli/helpers.js';

const tmp = fs.mkdtempSync(path.join(ROOT, 'test', 'ir', '.typed-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Type errors of a snippet that imports the library as `ng`. */
function typeErrors(body: string): string[] {
  const file = path.join(tmp, `case${Math.random().toString(36).slice(2)}.ts`);
  fs.writeFileSync(file, `import * as ng from '../../../src/index.js';\n${body}\n`);
  const program = ts.createProgram([file], { strict: true, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022, noEmit: true, skipLibCheck: true, types: ['node'] });
  return ts.getPreEmitDiagnostics(program).filter((d) => d.file?.fileName === file).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
}

describe('typed transformation results', () => {
  it('compile without casts where the types follow from the function', () => {
    const errs = typeErrors(`
type P = { w: ng.Tensor; b: ng.Tensor[] };
const f = (p: P, x: ng.Tensor, k: number) => p.w.mul(x).sum().add(p.b[0]!.sum()).mul(k);
const p: P = { w: ng.ones([2]), b: [ng.ones([1])] };
const g: P = ng.grad(f)(p, ng.ones([2]), 3);
const [gp, gx]: [P, ng.Tensor] = ng.grad(f, { argnums: [0, 1] })(p, ng.ones([2]), 3);
const [v, g2]: [ng.Tensor, ng.Tensor] = ng.valueAndGrad(f, { argnums: 1 })(p, ng.ones([2]), 3);
const h = (x: ng.Tensor): [ng.Tensor, { n: number }] => [x.sum(), { n: 1 }];
const [[val, aux], gh] = ng.valueAndGrad(h, { hasAux: true })(ng.ones([2]));
const n: number = aux.n;
const [ga, aux2]: [ng.Tensor, { n: number }] = ng.grad(h, { hasAux: true })(ng.ones([2]));
const [out, back] = ng.vjp((a: ng.Tensor, q: P) => ({ y: a.mul(q.w) }), ng.ones([2]), p);
const cts: [ng.Tensor, P] = back({ y: ng.ones([2]) });
const yy: ng.Tensor = out.y;
const [y, ty]: [{ s: ng.Tensor }, { s: ng.Tensor }] = ng.jvp((a: ng.Tensor) => ({ s: a.sum() }), [ng.ones([2])], [ng.ones([2])]);
const mapped: P = ng.treeMap((t) => t.mul(2), p);
export { g, gp, gx, v, g2, val, gh, n, ga, aux2, cts, yy, y, ty, mapped };`);
    expect(errs).toEqual([]);
  }, 120_000);

  it('reject wrong uses at compile time', () => {
    const f = `type P = { w: ng.Tensor };\nconst f = (p: P, x: ng.Tensor) => p.w.mul(x).sum();\nconst p: P = { w: ng.ones([2]) };\n`;
    expect(typeErrors(`${f}const g: ng.Tensor = ng.grad(f)(p, ng.ones([2]));`).join('\n')).toMatch(/Type 'P' is missing the following properties from type 'Tensor'/);
    expect(typeErrors(`${f}const g = ng.grad(f)(p);`).join('\n')).toMatch(/Expected 2 arguments, but got 1/);
    expect(typeErrors(`${f}const [a, b]: [P, P] = ng.grad(f, { argnums: [0, 1] })(p, ng.ones([2]));`).join('\n')).toMatch(/not assignable/);
  }, 120_000);
});

describe('named errors', () => {
  it.each([
    ['grad', () => grad(5 as never), /^grad: the first argument must be the function to differentiate, got the number 5/],
    ['valueAndGrad', () => valueAndGrad('f' as never), /^valueAndGrad: the first argument must be the function to differentiate, got the string "f"/],
    ['vjp', () => vjp(null as never), /^vjp: the first argument must be the function to differentiate, got null/],
    ['jvp', () => jvp({} as never, [], []), /^jvp: the first argument must be the function to differentiate, got an instance of Object/],
    ['grad options', () => grad((x: number) => x, { argnums: -1 } as never), /^grad: argnums must be a non-negative integer or a non-empty array of them, got -1/],
  ])('%s of a non-function', (_name, call, message) => {
    expect(call).toThrow(OpError);
    expect(call).toThrow(message);
  });
});

describe('call sites through source maps', () => {
  beforeAll(() => ensureBuilt());

  it('an error raised from compiled .js names the .ts line of the call', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nexgrad-sm-'));
    try {
      const src = [
        `import * as ng from ${JSON.stringify(path.join(ROOT, 'dist/src/index.js'))};`,
        '',
        '// lines of types that compile to nothing, so .ts and .js lines differ',
        'type A = { a: number };',
        'type B = { b: A };',
        '',
        'const x: ng.Tensor = ng.zeros([2, 3]);',
        'try {',
        '  ng.add(x, ng.zeros([4]));',
        '} catch (e) {',
        '  console.log((e as Error).message);',
        '}',
      ].join('\n');
      const r = ts.transpileModule(src, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, sourceMap: true }, fileName: 'user.mts' });
      fs.writeFileSync(path.join(dir, 'user.mts'), src);
      fs.writeFileSync(path.join(dir, 'user.mjs'), r.outputText.replace(/\/\/# sourceMappingURL=.*$/m, '//# sourceMappingURL=user.mjs.map'));
      fs.writeFileSync(path.join(dir, 'user.mjs.map'), r.sourceMapText!);
      const jsLine = r.outputText.split('\n').findIndex((l) => l.includes('ng.add(')) + 1;
      expect(jsLine).not.toBe(9); // the compiled line differs from the source line
      const out = execFileSync(process.execPath, [path.join(dir, 'user.mjs')], { encoding: 'utf8' });
      expect(out.trim()).toMatch(new RegExp(`^add: shapes \\[2,3\\] and \\[4\\] cannot be broadcast together \\(called at ${dir.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}/user\\.mts:9:\\d+\\)$`));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
