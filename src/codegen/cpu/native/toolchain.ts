/**
 * The system C compiler for the native CPU backend: which one (NEXGRAD_CC, else cc, gcc, clang
 * on the PATH), its identity for cache keys (path + version line), the flags (-O3, the target
 * ISA: -march=native unless NEXGRAD_CPU_ISA names one, e.g. x86-64-v3 for AVX2 or x86-64-v4
 * for AVX-512), and compiling a source into shared-object bytes, through the object cache.
 */
import { nodeModule } from '../../../ir/node_builtins.js';
import { objectCacheDir, privateDir, readObject, sha256Hex, warnOnce, writeObject } from './object_cache.js';

export interface Toolchain {
  /** The compiler command. */
  readonly cc: string;
  /** Its version line (part of cache keys). */
  readonly version: string;
  /** Flags for kernel objects. */
  readonly cflags: readonly string[];
  /** A short name of the target ISA, for device ids: avx512, avx2 or portable. */
  readonly isa: string;
}

let found: Toolchain | string | undefined;

/** The toolchain, or why there is none. */
export function toolchain(): Toolchain | string {
  if (found !== undefined) return found;
  const cp = nodeModule('child_process');
  if (!cp) return (found = 'no child processes here (not Node.js)');
  const candidates = process.env.NEXGRAD_CC ? [process.env.NEXGRAD_CC] : ['cc', 'gcc', 'clang'];
  for (const cc of candidates) {
    const r = cp.spawnSync(cc, ['--version'], { encoding: 'utf8', timeout: 20000 });
    if (r.status !== 0 || typeof r.stdout !== 'string') continue;
    const version = r.stdout.split('\n')[0]!.trim();
    const isaFlag = process.env.NEXGRAD_CPU_ISA ? `-march=${process.env.NEXGRAD_CPU_ISA.replace(/[^A-Za-z0-9_.-]/g, '')}` : '-march=native';
    // -fno-trapping-math: nothing reads the floating-point exception flags, and without it gcc
    // will not if-convert selects over comparisons, which kept most fused loops scalar
    const cflags = ['-O3', isaFlag, '-std=gnu11', '-fPIC', '-shared', '-fno-math-errno', '-fno-trapping-math', '-ffp-contract=fast', '-fno-semantic-interposition', '-fopenmp-simd', '-w'];
    // which micro-kernel the prelude will pick on this target
    const probe = cp.spawnSync(cc, [isaFlag, '-dM', '-E', '-x', 'c', '-'], { input: '', encoding: 'utf8', timeout: 20000 });
    const macros = typeof probe.stdout === 'string' ? probe.stdout : '';
    const isa = /__AVX512F__/.test(macros) ? 'avx512' : /__AVX2__/.test(macros) && /__FMA__/.test(macros) ? 'avx2' : 'portable';
    return (found = { cc, version, cflags, isa });
  }
  return (found = `no C compiler found (tried ${candidates.join(', ')}; set NEXGRAD_CC)`);
}

/** Test hook: forget the detected toolchain (after changing NEXGRAD_CC / NEXGRAD_CPU_ISA). */
export function resetToolchain(): void {
  found = undefined;
}

export interface CompiledObject {
  /** A private copy of the object to load (delete it once loaded). */
  readonly path: string;
  /** Whether it came from the cache. */
  readonly cached: boolean;
  readonly key: string;
}

/**
 * Compiles `source` (C unless `lang` is 'c++') with the toolchain plus `extraFlags` into a
 * shared object, or takes it from the cache. Throws with the compiler's output on failure.
 */
export function compileObject(tc: Toolchain, source: string, opts: { lang?: 'c' | 'c++'; extraFlags?: readonly string[]; ext?: string } = {}): CompiledObject {
  const fs = nodeModule('fs')!;
  const path = nodeModule('path')!;
  const os = nodeModule('os')!;
  const cp = nodeModule('child_process')!;
  const lang = opts.lang ?? 'c';
  const ext = opts.ext ?? 'so';
  const flags = lang === 'c' ? [...tc.cflags, ...(opts.extraFlags ?? [])] : ['-O2', '-std=c++17', '-fPIC', '-shared', ...(opts.extraFlags ?? [])];
  const cc = lang === 'c' ? tc.cc : process.env.NEXGRAD_CXX ?? (tc.cc === 'clang' ? 'clang++' : tc.cc === 'cc' ? 'c++' : 'g++');
  const key = sha256Hex(source, cc, tc.version, flags.join(' '), process.env.NEXGRAD_CPU_ISA ?? 'native');
  const dir = objectCacheDir();
  const usable = dir === undefined ? 'no file system' : privateDir(dir);
  if (dir && usable === true) {
    const hit = readObject(dir, key, ext);
    if (hit) return { path: hit, cached: true, key };
  } else if (dir) warnOnce(`dir:${dir}`, `the CPU object cache at ${dir} is not used: ${usable}`);
  // compile in a private temporary directory
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'nexgrad-cc-'));
  try {
    const src = path.join(work, lang === 'c' ? 'k.c' : 'k.cc');
    const out = path.join(work, `k.${ext}`);
    fs.writeFileSync(src, source, { mode: 0o600 });
    const r = cp.spawnSync(cc, [...flags, src, '-o', out, ...(lang === 'c++' ? ['-ldl', '-lpthread'] : ['-lm'])], { encoding: 'utf8', timeout: 600000, maxBuffer: 16 * 2 ** 20 });
    if (r.status !== 0) {
      const log = `${r.stderr ?? ''}${r.stdout ?? ''}`.trim().split('\n').slice(0, 30).join('\n');
      throw new Error(`${cc} failed (${r.error ? r.error.message : `exit ${r.status ?? r.signal}`})${log ? `:\n${log}` : ''}`);
    }
    const bytes = fs.readFileSync(out);
    if (dir && usable === true) {
      writeObject(dir, key, ext, bytes);
      const hit = readObject(dir, key, ext);
      if (hit) return { path: hit, cached: false, key };
    }
    // no cache: load from a private copy of our own
    const copy = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'nexgrad-so-')), `k.${ext}`);
    fs.writeFileSync(copy, bytes, { mode: 0o500 });
    return { path: copy, cached: false, key };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}
