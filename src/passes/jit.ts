/**
 * jit(fn, {backend, donate, staticArgnums, cacheDir}): traces fn once per input signature
 * (pytree structure, shapes, dtypes, exact static argument values), runs the pass pipeline,
 * compiles the kernels for the backend's device and caches the result in memory and on disk.
 * Calls run on the device: arguments on the host are uploaded, results stay on the device, and
 * donated arguments' buffers are reused for outputs.
 */
// eager operations run compiled on their device wherever jit is in use (not only through src/index.ts)
import './eager.js';
import type { Executable, MemoryPlan } from '../codegen/kernel/device.js';
import type { KernelGraph } from '../codegen/kernel/kernel_graph.js';
import { NexgradError } from '../ir/errors.js';
import { traceTree } from '../ir/functional.js';
import type { Program } from '../ir/program.js';
import { treeFlatten, type TreeDef, treeUnflatten } from '../ir/pytree.js';
import { Tensor } from '../ir/tensor.js';
import { isTracing } from '../ir/trace.js';
import { getDevice } from './backends.js';
import { argumentArrays, type ArgSig, checkArity, checkOptions, declaredArity, flatArgs, type JitOptions, leafPaths, signature, sigKey, traceError } from './jit_args.js';
import { cacheKey, defaultCacheDir, readCached, usableCacheDir, writeCached } from './jit_cache.js';
import { dumpStages, lower } from './pipeline.js';

export type { JitOptions } from './jit_args.js';
export { COMPILER_VERSION, compilerFingerprint } from './jit_cache.js';

interface CacheEntry {
  readonly sig: readonly ArgSig[];
  readonly exec: Executable;
  readonly outDef: TreeDef;
  readonly graph: KernelGraph;
  readonly plan: MemoryPlan;
  readonly program: Program;
  /** Arrays on devices that the function closed over: passed as the program's last inputs. */
  readonly captured: readonly Tensor[];
}

export interface JitStats {
  traces: number;
  compiles: number;
  diskHits: number;
  calls: number;
  /** Arguments copied from the host (or a synchronous device) to the jit's device. */
  transfers: number;
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

export function jit<F extends (...args: any[]) => any>(fn: F, opts: JitOptions = {}): Jitted<F> {
  if (typeof fn !== 'function') throw new NexgradError('jit: the first argument must be a function');
  const checked = checkOptions(opts);
  const { backend, statics } = checked;
  const arity = declaredArity(fn);
  const cache = new Map<string, CacheEntry>();
  const stats: JitStats = { traces: 0, compiles: 0, diskHits: 0, calls: 0, transfers: 0, lastCompileMs: 0 };

  const compile = (args: unknown[], sig: ArgSig[]): CacheEntry => {
    const device = getDevice(backend);
    const t0 = performance.now();
    const fixed = args.map((_, i) => statics.includes(i));
    let traced: ReturnType<typeof traceTree>;
    try {
      traced = traceTree('jit', fn, args, fixed);
    } catch (e) {
      throw traceError(e, args, arity);
    }
    stats.traces++;
    const program = traced.program;
    const labels: string[] = [];
    const donated: number[] = [];
    let pos = 0;
    args.forEach((a, i) => {
      if (fixed[i]) return;
      const { def } = treeFlatten(a, 'jit', `argument ${i}`);
      for (const p of leafPaths(def, `argument ${i}`)) {
        labels.push(p);
        if (checked.donate.includes(i)) donated.push(pos);
        pos++;
      }
    });
    traced.captured.forEach((_, j) => labels.push(`closed-over tensor ${j}`));
    const wanted = checked.cacheDir === false ? undefined : (checked.cacheDir ?? defaultCacheDir());
    const dir = wanted && usableCacheDir(wanted) ? wanted : undefined;
    const key = dir ? cacheKey(program, backend, device.id, donated) : '';
    let low = dir && !dumpStages().size ? readCached(dir, key, program.consts.map((c) => c.value)) : undefined;
    if (low) stats.diskHits++;
    else {
      const fresh = lower(program, { donated, labels }, device.caps);
      low = { graph: fresh.graph, plan: fresh.plan };
      if (dir) writeCached(dir, key, low.graph, low.plan);
    }
    const exec = device.compile(low.graph, low.plan);
    stats.compiles++;
    stats.lastCompileMs = performance.now() - t0;
    if (dumpStages().has('kernels')) exec.sources.forEach((s, i) => console.error(`--- kernel ${i}\n${s}`));
    return { sig, exec, outDef: traced.outDef, graph: low.graph, plan: low.plan, program, captured: traced.captured };
  };

  const entryFor = (args: unknown[]): CacheEntry => {
    checkArity(args, arity, checked);
    const sig = signature(args, statics);
    const key = sigKey(sig);
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
    const device = getDevice(backend);
    stats.calls++;
    const { leaves, donated } = flatArgs(args, checked);
    const all = [...leaves, ...entry.captured];
    const given = leaves.map((t) => t._array!);
    const arrays = argumentArrays(all, [...donated, ...entry.captured.map(() => false)], device, () => stats.transfers++);
    const outs = entry.exec.run(arrays);
    given.forEach((a, i) => {
      if (!donated[i]) return;
      a.markDonated();
      arrays[i]!.markDonated();
    });
    return treeUnflatten(entry.outDef, outs.map((a) => Tensor._wrap(a)));
  };

  const explainCacheMiss = (...args: unknown[]): string => {
    const sig = signature(args, statics);
    if (cache.has(sigKey(sig))) return 'cache hit: these arguments match a compiled signature';
    if (cache.size === 0) return 'cache miss: nothing compiled yet';
    const reasons = [...cache.values()].map((e, n) => `signature ${n + 1}: ${describeDiff(sig, e.sig).join('; ')}`);
    return `cache miss:\n${reasons.join('\n')}`;
  };

  const lowerFn = (...args: unknown[]) => {
    const e = entryFor(args);
    return { program: e.program, graph: e.graph, plan: e.plan, exec: e.exec };
  };

  return Object.assign(call as F, { explainCacheMiss, lower: lowerFn, stats }) as unknown as Jitted<F>;
}

/** What differs between a call's signature and a cached one. */
function describeDiff(sig: readonly ArgSig[], cached: readonly ArgSig[]): string[] {
  const diffs: string[] = [];
  if (cached.length !== sig.length) diffs.push(`${sig.length} arguments vs ${cached.length}`);
  sig.forEach((s, i) => {
    const c = cached[i];
    if (!c || c.text === s.text) return;
    if (s.kind === 'static') {
      diffs.push(`static argument ${i}: ${s.text} vs ${c.text}`);
      return;
    }
    const cm = new Map(c.leaves);
    const sm = new Map(s.leaves);
    const before = diffs.length;
    for (const [p, t] of s.leaves) {
      const ct = cm.get(p);
      if (ct === undefined) diffs.push(`${p}: new leaf ${t}`);
      else if (ct !== t) diffs.push(`${p}: ${t} vs ${ct}`);
    }
    for (const [p, t] of c.leaves) if (!sm.has(p)) diffs.push(`${p}: missing (was ${t})`);
    if (diffs.length === before) diffs.push(`argument ${i}: pytree structure differs`);
  });
  return diffs;
}
