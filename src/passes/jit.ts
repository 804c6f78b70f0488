/**
 * jit(fn, {backend, donate, staticArgnums}): traces fn once per input signature (pytree
 * structure, shapes, dtypes, static argument values), runs the pass pipeline, compiles the
 * kernels for the backend and caches the result in memory and on disk.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Executable, MemoryPlan } from '../codegen/kernel/device.js';
import type { KernelGraph } from '../codegen/kernel/kernel_graph.js';
import { deserializeLowered, serializeLowered } from '../codegen/kernel/serialize.js';
import { NexgradError } from '../ir/errors.js';
import { HostArray } from '../ir/host.js';
import { traceTree } from '../ir/functional.js';
import type { Program } from '../ir/program.js';
import { treeFlatten, type TreeDef, treeUnflatten } from '../ir/pytree.js';
import { Tensor } from '../ir/tensor.js';
import { isTracing } from '../ir/trace.js';
import { type BackendName, getDevice } from './backends.js';
import { dumpStages, lower } from './pipeline.js';

/** Bumped whenever the cached format changes. */
export const COMPILER_VERSION = 'nexgrad-0.1.0-k2';

let fingerprint: string | undefined;

/**
 * A hash of the compiler's own code (the passes and code generators this module was loaded
 * with), part of every disk-cache key: a changed compiler never reads graphs an older one wrote.
 */
export function compilerFingerprint(): string {
  if (fingerprint) return fingerprint;
  const h = createHash('sha256').update(COMPILER_VERSION);
  try {
    // every compiler folder, recursively: the passes and src/codegen with every backend in it
    const here = path.dirname(fileURLToPath(import.meta.url));
    for (const dir of [here, path.join(here, '..', 'codegen')]) {
      const files = (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => /\.(js|ts)$/.test(f) && !f.endsWith('.d.ts')).sort();
      for (const f of files) h.update(f).update(fs.readFileSync(path.join(dir, f)));
    }
  } catch {
    h.update(String(Date.now())); // sources not readable: never share cache entries
  }
  fingerprint = h.digest('hex').slice(0, 16);
  return fingerprint;
}

export interface JitOptions {
  backend?: BackendName;
  /** Argument positions whose buffers the compiled function may overwrite (params, optimizer state). */
  donate?: number | readonly number[];
  /** Argument positions passed as compile-time constants (any JSON-serialisable value). */
  staticArgnums?: number | readonly number[];
  /** Disk cache directory, or false to disable it. Default: $NEXGRAD_CACHE_DIR or ~/.cache/nexgrad. */
  cacheDir?: string | false;
}

interface ArgSig {
  readonly kind: 'static' | 'traced';
  readonly text: string;
  /** path -> "dtype[shape]" for traced args. */
  readonly leaves: readonly [string, string][];
}

interface CacheEntry {
  readonly sig: readonly ArgSig[];
  readonly exec: Executable;
  readonly outDef: TreeDef;
  readonly graph: KernelGraph;
  readonly plan: MemoryPlan;
  readonly program: Program;
}

export interface JitStats {
  traces: number;
  compiles: number;
  diskHits: number;
  calls: number;
  lastCompileMs: number;
}

export interface Jitted<F extends (...args: any[]) => any> {
  (...args: Parameters<F>): ReturnType<F>;
  /** Says why these arguments would miss the cache (what differs from each cached signature). */
  explainCacheMiss(...args: Parameters<F>): string;
  /** The compiled artefacts for these arguments (compiling if needed). */
  lower(...args: Parameters<F>): { program: Program; graph: KernelGraph; plan: MemoryPlan; exec: Executable };
  readonly stats: JitStats;
}

const asList = (x: number | readonly number[] | undefined): number[] => (x === undefined ? [] : typeof x === 'number' ? [x] : [...x]);

function leafPaths(def: TreeDef, root: string): string[] {
  const out: string[] = [];
  const walk = (d: TreeDef, p: string): void => {
    switch (d.kind) {
      case 'leaf':
        out.push(p);
        break;
      case 'none':
        break;
      case 'array':
        d.children.forEach((c, i) => walk(c, `${p}[${i}]`));
        break;
      case 'object':
        d.children.forEach((c, i) => walk(c, `${p}.${d.keys[i]}`));
        break;
    }
  };
  walk(def, root);
  return out;
}

function stableJson(x: unknown): string {
  return JSON.stringify(x, (_k, v) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1))) : v));
}

function defaultCacheDir(): string {
  return process.env.NEXGRAD_CACHE_DIR ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'nexgrad');
}

function writeAtomic(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  try {
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, file);
  } catch (e) {
    try {
      fs.unlinkSync(tmp);
    } catch {
      /* already gone */
    }
    throw e;
  }
}

function programHash(p: Program): string {
  const h = createHash('sha256');
  h.update(p.toString());
  for (const c of p.consts) h.update(Buffer.from(c.value.data.buffer, c.value.data.byteOffset, c.value.data.byteLength));
  return h.digest('hex');
}

/**
 * Donated inputs are overwritten in place, so a donated input must not share storage with any
 * other input position (the same tensor passed twice, or optimizer state whose moments were
 * initialised with shared zero tensors): such a one is given a private copy for this call.
 */
function privateDonatedStorage(hosts: readonly HostArray[], donated: readonly boolean[]): HostArray[] {
  const byBuffer = new Map<ArrayBufferLike, number[]>();
  hosts.forEach((h, i) => {
    const list = byBuffer.get(h.data.buffer);
    if (list) list.push(i);
    else byBuffer.set(h.data.buffer, [i]);
  });
  return hosts.map((h, i) => {
    if (!donated[i]) return h;
    const d = h.data;
    const shared = byBuffer.get(d.buffer)!.some((j) => {
      if (j === i) return false;
      const o = hosts[j]!.data;
      return o.byteOffset < d.byteOffset + d.byteLength && d.byteOffset < o.byteOffset + o.byteLength;
    });
    return shared ? new HostArray(h.dtype, h.shape, d.slice()) : h;
  });
}

export function jit<F extends (...args: any[]) => any>(fn: F, opts: JitOptions = {}): Jitted<F> {
  if (typeof fn !== 'function') throw new NexgradError('jit: the first argument must be a function');
  const backend = opts.backend ?? 'cpu';
  const donate = asList(opts.donate);
  const statics = asList(opts.staticArgnums);
  const cache = new Map<string, CacheEntry>();
  const stats: JitStats = { traces: 0, compiles: 0, diskHits: 0, calls: 0, lastCompileMs: 0 };

  const signature = (args: unknown[]): ArgSig[] =>
    args.map((a, i) => {
      if (statics.includes(i)) {
        let text: string;
        try {
          text = stableJson(a);
        } catch {
          throw new NexgradError(`jit: static argument ${i} must be JSON-serialisable`);
        }
        return { kind: 'static', text, leaves: [] };
      }
      const { leaves, def } = treeFlatten(a, 'jit', `argument ${i}`);
      const paths = leafPaths(def, `argument ${i}`);
      const lv = leaves.map((t, j) => [paths[j]!, `${t.dtype}[${t.shape.join(',')}]`] as [string, string]);
      return { kind: 'traced', text: stableJson({ def, lv: lv.map((x) => x[1]) }), leaves: lv };
    });
  const keyOf = (sig: readonly ArgSig[]): string => sig.map((s) => `${s.kind}:${s.text}`).join('\n');

  const compile = (args: unknown[], sig: ArgSig[]): CacheEntry => {
    const device = getDevice(backend);
    const t0 = performance.now();
    const fixed = args.map((_, i) => statics.includes(i));
    const traced = traceTree('jit', fn, args, fixed);
    stats.traces++;
    const program = traced.program;
    const labels: string[] = [];
    const donated: number[] = [];
    let pos = 0;
    args.forEach((a, i) => {
      if (fixed[i]) return;
      const { leaves, def } = treeFlatten(a, 'jit', `argument ${i}`);
      const paths = leafPaths(def, `argument ${i}`);
      leaves.forEach((_, j) => {
        labels.push(paths[j]!);
        if (donate.includes(i)) donated.push(pos);
        pos++;
      });
    });
    const dir = opts.cacheDir === false ? undefined : (opts.cacheDir ?? defaultCacheDir());
    const key = createHash('sha256').update([programHash(program), backend, device.id, compilerFingerprint(), donated.join(',')].join('|')).digest('hex');
    let graph: KernelGraph | undefined;
    let plan: MemoryPlan | undefined;
    const file = dir ? path.join(dir, `${key}.json`) : undefined;
    if (file && fs.existsSync(file) && !dumpStages().size) {
      try {
        ({ graph, plan } = deserializeLowered(fs.readFileSync(file, 'utf8')));
        stats.diskHits++;
      } catch {
        graph = undefined; // a corrupt cache file is recompiled and overwritten
      }
    }
    if (!graph || !plan) {
      const low = lower(program, { donated, labels });
      graph = low.graph;
      plan = low.plan;
      if (file) {
        try {
          writeAtomic(file, serializeLowered(graph, plan));
        } catch {
          /* a read-only cache directory only costs recompiles */
        }
      }
    }
    const exec = device.compile(graph, plan);
    stats.compiles++;
    stats.lastCompileMs = performance.now() - t0;
    if (dumpStages().has('kernels')) exec.sources.forEach((s, i) => console.error(`--- kernel ${i}\n${s}`));
    return { sig, exec, outDef: traced.outDef, graph, plan, program };
  };

  const entryFor = (args: unknown[]): CacheEntry => {
    const sig = signature(args);
    const key = keyOf(sig);
    let entry = cache.get(key);
    if (!entry) {
      entry = compile(args, sig);
      cache.set(key, entry);
    }
    return entry;
  };

  const call = (...args: unknown[]): unknown => {
    if (isTracing()) return fn(...args); // jit inside a trace inlines
    const entry = entryFor(args);
    stats.calls++;
    const leaves: Tensor[] = [];
    const donatedLeaves: Tensor[] = [];
    const donatedAt: boolean[] = [];
    args.forEach((a, i) => {
      if (statics.includes(i)) return;
      const l = treeFlatten(a, 'jit', `argument ${i}`).leaves;
      leaves.push(...l);
      l.forEach(() => donatedAt.push(donate.includes(i)));
      if (donate.includes(i)) donatedLeaves.push(...l);
    });
    const hosts = privateDonatedStorage(leaves.map((t) => t._host!), donatedAt);
    const outs = entry.exec.run(hosts);
    for (const t of donatedLeaves) t._markDonated();
    return treeUnflatten(entry.outDef, outs.map((h) => Tensor._concrete(h)));
  };

  const explainCacheMiss = (...args: unknown[]): string => {
    const sig = signature(args);
    if (cache.has(keyOf(sig))) return 'cache hit: these arguments match a compiled signature';
    if (cache.size === 0) return 'cache miss: nothing compiled yet';
    const reasons = [...cache.values()].map((e, n) => {
      const diffs: string[] = [];
      if (e.sig.length !== sig.length) diffs.push(`${sig.length} arguments vs ${e.sig.length}`);
      sig.forEach((s, i) => {
        const c = e.sig[i];
        if (!c || c.text === s.text) return;
        if (s.kind === 'static') {
          diffs.push(`static argument ${i}: ${s.text} vs ${c.text}`);
          return;
        }
        const cm = new Map(c.leaves);
        const sm = new Map(s.leaves);
        for (const [p, t] of s.leaves) {
          const ct = cm.get(p);
          if (ct === undefined) diffs.push(`${p}: new leaf ${t}`);
          else if (ct !== t) diffs.push(`${p}: ${t} vs ${ct}`);
        }
        for (const [p, t] of c.leaves) if (!sm.has(p)) diffs.push(`${p}: missing (was ${t})`);
        if (diffs.length === 0) diffs.push(`argument ${i}: pytree structure differs`);
      });
      return `signature ${n + 1}: ${diffs.join('; ')}`;
    });
    return `cache miss:\n${reasons.join('\n')}`;
  };

  const lowerFn = (...args: unknown[]) => {
    const e = entryFor(args);
    return { program: e.program, graph: e.graph, plan: e.plan, exec: e.exec };
  };

  return Object.assign(call as F, { explainCacheMiss, lower: lowerFn, stats }) as unknown as Jitted<F>;
}
