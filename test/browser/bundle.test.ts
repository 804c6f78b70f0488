// The ESM browser bundle (npm run build:browser) imports no Node built-in module, statically or
// dynamically: the library must load in a browser without stubs. Parsed with TypeScript's
// parser, so module specifiers are read from import/export declarations and import()/require()
// calls, not from string contents (the CPU backend's worker source mentions node:worker_threads
// inside a template string, which only runs in Node).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { builtinModules } from 'node:module';
import * as path from 'node:path';
import ts from 'typescript';
import { expect, test } from 'vitest';
import { REPO } from './harness.js';

const BUNDLE = path.join(REPO, 'dist/browser/nexgrad.js');

/** Every module specifier the bundle names: static imports/exports, import() and require() with literal arguments. */
export function moduleSpecifiers(source: string): { static: string[]; dynamic: string[] } {
  const sf = ts.createSourceFile('bundle.js', source, ts.ScriptTarget.Latest, false, ts.ScriptKind.JS);
  const out = { static: [] as string[], dynamic: [] as string[] };
  const visit = (n: ts.Node): void => {
    if ((ts.isImportDeclaration(n) || ts.isExportDeclaration(n)) && n.moduleSpecifier && ts.isStringLiteral(n.moduleSpecifier)) out.static.push(n.moduleSpecifier.text);
    if (ts.isCallExpression(n) && n.arguments.length >= 1 && ts.isStringLiteralLike(n.arguments[0]!)) {
      const callee = n.expression;
      if (callee.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(callee) && callee.text === 'require')) out.dynamic.push((n.arguments[0] as ts.StringLiteral).text);
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return out;
}

const isBuiltin = (s: string): boolean => s.startsWith('node:') || builtinModules.includes(s.split('/')[0]!);

test('the specifier reader sees what a bundler emits', () => {
  const found = moduleSpecifiers(`import{a as b}from"node:url";export*from"x";const s=\`require('node:worker_threads')\`;import("sharp");require("fs");f("node:os")`);
  expect(found).toEqual({ static: ['node:url', 'x'], dynamic: ['sharp', 'fs'] });
});

test('npm run build:browser: an ESM bundle of src/index.ts with no Node built-in imports', () => {
  execFileSync('npm', ['run', 'build:browser', '--silent'], { cwd: REPO, stdio: 'pipe' });
  const source = fs.readFileSync(BUNDLE, 'utf8');
  const { static: statics, dynamic } = moduleSpecifiers(source);
  expect(statics.filter(isBuiltin), 'static imports of Node built-ins').toEqual([]);
  expect(dynamic.filter(isBuiltin), 'import()/require() of Node built-ins').toEqual([]);
  // the only packages left outside: sharp (image files) and webgpu (Dawn), both loaded lazily in Node
  expect(statics, 'static imports').toEqual([]);
  for (const d of dynamic) expect(['sharp', 'webgpu']).toContain(d);
  expect(source).toMatch(/\bexport\s*\{/);
});
