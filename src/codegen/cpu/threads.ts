/**
 * Worker threads for the CPU backend. A pool of workers (threads - 1; the main thread takes a
 * share too) holds copies of each threaded executable's kernels, with their own scratch and
 * WebAssembly memory; buffers are SharedArrayBuffer-backed typed arrays bound once per run.
 *
 * Protocol: a run starts with a 'session' message (the buffers whose arrays changed since the
 * last run); the worker then serves jobs from a shared control block until the session ends:
 * ctrl[SEQ] is bumped with (op, kernel, start, end) and Atomics.notify; the worker runs
 * kernel(start, end), stores ctrl[DONE] = seq and notifies. The main thread runs its own part
 * of the range meanwhile and then waits on ctrl[DONE] (Atomics.wait is allowed on Node's main
 * thread). Job dispatch costs a few microseconds, so only kernels with enough work are split.
 *
 * A dead worker (its script failed, it was terminated, it ran out of memory) never answers, and
 * the main thread cannot see its 'error' event while it blocks in Atomics.wait. So the worker
 * claims each job in shared memory (CLAIM: a compare-and-swap from 0, so the job runs exactly
 * once) and records while it is busy with a message (BUSY, e.g. compiling kernels); a job left
 * unclaimed for the pickup timeout while the worker is not busy is claimed by the main thread,
 * which computes that part itself, warns once and marks the pool broken: the workers are
 * stopped after the run and every later call runs on one thread (issue 8 item 12). A worker
 * that dies in the middle of a job it claimed is not detected (jobs may legitimately run long).
 */
import type { Worker } from 'node:worker_threads';
import { requireNode } from '../../ir/node_builtins.js';
import { roundBf16, roundF16 } from '../../ir/dtype.js';
import type { JsKernelCode } from './common.js';
import { ERF_PARTS } from './math.js';
import { wasmModuleFor } from './wasm.js';

const SEQ = 0;
const OP = 1;
const KI = 2;
const START = 3;
const END_ = 4;
const DONE = 5;
const ERR = 6;
/** 0: the current job is unclaimed; 1: a worker runs it; 2: the main thread took it over. */
const CLAIM = 7;
/** 1 while the worker handles a message (compiling an executable's kernels can take seconds). */
const BUSY = 8;
/** 1 once the worker's script runs (a worker whose script fails never sets it). */
const ALIVE = 9;
const OP_RUN = 0;
const OP_END = 1;

/** The worker's script (CommonJS, evaluated by `new Worker(src, { eval: true })`). */
function workerSource(): string {
  return `
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const f32buf = new Float32Array(1);
const u32view = new Uint32Array(f32buf.buffer);
const roundF16 = ${roundF16.toString()};
const roundBf16 = ${roundBf16.toString()};
const erf = new Function('T', 'T0', workerData.erf.src)(workerData.erf.T, workerData.erf.T0);
const H = { erf, roundF16, roundBf16 };
const ctrl = new Int32Array(workerData.ctrl);
const execs = new Map();
Atomics.store(ctrl, ${ALIVE}, 1);

function compile(msg) {
  const pools = new Map();
  let mem = null;
  if (msg.wasmBytes > 0) mem = new WebAssembly.Memory({ initial: Math.max(1, Math.ceil(msg.wasmBytes / 65536)) });
  const exec = { B: [], steps: [] };
  for (const [key, size] of msg.pools) {
    const type = key.split(':')[0];
    pools.set(key, type === 'f64' ? new Float64Array(size) : type === 'f32' ? new Float32Array(size) : new Int32Array(size));
  }
  for (const k of msg.kernels) {
    if (!k) { exec.steps.push(null); continue; }
    const fn = new Function('H', 'T', k.source)(H, k.tables);
    const extra = k.scratch.map((s, i) => {
      if (s.wasmByteOffset !== undefined) {
        const C = s.type === 'f64' ? Float64Array : s.type === 'f32' ? Float32Array : Int32Array;
        return new C(mem.buffer, s.wasmByteOffset, s.size);
      }
      return pools.get(s.type + ':' + i);
    });
    if (k.bCache) extra.push(null); // packed B kept across calls: on the calling thread only
    if (k.wasm) extra.push(new WebAssembly.Instance(k.wasm.module, { env: { mem } }).exports[k.wasm.name]);
    const bufs = k.bufs;
    const nb = bufs.length;
    const args = new Array(2 + nb + extra.length);
    extra.forEach((e, i) => (args[2 + nb + i] = e));
    const B = exec.B;
    exec.steps.push((start, end) => {
      args[0] = start;
      args[1] = end;
      for (let i = 0; i < nb; i++) args[2 + i] = B[bufs[i]];
      fn.apply(null, args);
    });
  }
  execs.set(msg.id, exec);
}

function serve(exec, seq0) {
  let last = seq0;
  for (;;) {
    Atomics.wait(ctrl, ${SEQ}, last);
    const seq = Atomics.load(ctrl, ${SEQ});
    if (seq === last) continue;
    last = seq;
    // the main thread takes over a job a worker was too late for (it then thinks it dead)
    if (Atomics.compareExchange(ctrl, ${CLAIM}, 0, 1) !== 0) return;
    if (ctrl[${OP}] === ${OP_END}) {
      Atomics.store(ctrl, ${DONE}, seq);
      Atomics.notify(ctrl, ${DONE});
      return;
    }
    try {
      exec.steps[ctrl[${KI}]](ctrl[${START}], ctrl[${END_}]);
    } catch (e) {
      ctrl[${ERR}] = 1;
      parentPort.postMessage({ type: 'error', message: String(e && e.stack || e) });
    }
    Atomics.store(ctrl, ${DONE}, seq);
    Atomics.notify(ctrl, ${DONE});
  }
}

parentPort.on('message', (msg) => {
  Atomics.store(ctrl, ${BUSY}, 1);
  try {
    if (msg.type === 'compile') compile(msg);
    else if (msg.type === 'drop') execs.delete(msg.id);
    else if (msg.type === 'session') {
      const exec = execs.get(msg.id);
      for (const [id, arr] of msg.bind) exec.B[id] = arr;
      Atomics.store(ctrl, ${BUSY}, 0);
      serve(exec, msg.seq0);
    }
  } catch (e) {
    // a failed compile: its jobs then fail (ERR) instead of hanging
    ctrl[${ERR}] = 1;
    parentPort.postMessage({ type: 'error', message: String(e && e.stack || e) });
  } finally {
    Atomics.store(ctrl, ${BUSY}, 0);
  }
});
`;
}

interface PoolWorker {
  readonly worker: Worker;
  readonly ctrl: Int32Array;
  seq: number;
  error: string | null;
}

/** What a worker needs to build an executable's kernels. */
export interface ThreadedExecSpec {
  readonly codes: readonly (JsKernelCode | null)[];
  /** Scratch pool slots ("type:index" -> elements), as the main thread lays them out. */
  readonly pools: ReadonlyMap<string, number>;
  readonly wasmBytes: number;
}

let nextExecId = 1;

/** Milliseconds a worker may take to pick up a job while idle before it counts as dead (NEXGRAD_CPU_WORKER_TIMEOUT_MS). */
function defaultPickupTimeout(): number {
  const v = typeof process !== 'undefined' ? Number(process.env.NEXGRAD_CPU_WORKER_TIMEOUT_MS) : NaN;
  return Number.isFinite(v) && v > 0 ? v : 5000;
}

export class WorkerPool {
  private readonly workers: PoolWorker[] = [];
  /** Set when a worker stopped answering: every later call runs on the main thread alone. */
  broken = false;
  private stopped = false;
  pickupTimeoutMs = defaultPickupTimeout();
  private readonly drops = new FinalizationRegistry<number>((id) => {
    for (const w of this.workers) w.worker.postMessage({ type: 'drop', id });
  });

  constructor(readonly size: number) {
    const src = workerSource();
    for (let i = 0; i < size; i++) {
      const ctrl = new Int32Array(new SharedArrayBuffer(64));
      const worker = new (requireNode('worker_threads', 'CPU worker threads').Worker)(src, { eval: true, execArgv: [], workerData: { ctrl: ctrl.buffer, erf: { src: ERF_PARTS.src, T: ERF_PARTS.T, T0: ERF_PARTS.T0 } } });
      const pw: PoolWorker = { worker, ctrl, seq: 0, error: null };
      worker.on('message', (m: { type: string; message?: string }) => {
        if (m.type === 'error') pw.error = m.message ?? 'worker error';
      });
      worker.on('error', (e) => {
        pw.error = String(e);
      });
      // after the listeners (adding a 'message' listener refs the worker again)
      worker.unref();
      this.workers.push(pw);
    }
  }

  /** Sends an executable's kernels to every worker; returns its id. */
  compile(spec: ThreadedExecSpec, owner: object): number {
    const id = nextExecId++;
    const kernels = spec.codes.map((c) =>
      c
        ? {
            source: c.source,
            tables: c.tables,
            bufs: c.bufs,
            scratch: c.scratch,
            bCache: !!c.bCache,
            wasm: c.wasm ? wasmModuleFor(c.wasm) : null,
          }
        : null,
    );
    for (const w of this.workers) w.worker.postMessage({ type: 'compile', id, kernels, pools: [...spec.pools], wasmBytes: spec.wasmBytes });
    this.drops.register(owner, id);
    return id;
  }

  /** Starts a run: binds changed buffers and puts the workers into their job loops. */
  begin(id: number, bind: readonly [number, unknown][]): void {
    if (this.broken) return;
    for (const w of this.workers) {
      w.seq = Atomics.load(w.ctrl, SEQ);
      w.worker.postMessage({ type: 'session', id, bind, seq0: w.seq });
    }
  }

  /** Runs kernel ki on [start, end) in worker w (asynchronously). */
  dispatch(w: number, ki: number, start: number, end: number): void {
    this.post(w, OP_RUN, ki, start, end);
  }

  private post(w: number, op: number, ki: number, start: number, end: number): void {
    const pw = this.workers[w]!;
    const c = pw.ctrl;
    c[OP] = op;
    c[KI] = ki;
    c[START] = start;
    c[END_] = end;
    Atomics.store(c, CLAIM, 0);
    pw.seq = (pw.seq + 1) | 0;
    Atomics.store(c, SEQ, pw.seq);
    Atomics.notify(c, SEQ);
  }

  /**
   * Waits for worker w's last job: true when the worker ran it; false when the worker did not
   * take it up in time (or the pool is already broken): the job is then the caller's to run.
   */
  wait(w: number): boolean {
    const pw = this.workers[w]!;
    const c = pw.ctrl;
    let idleSince = performance.now();
    for (;;) {
      const d = Atomics.load(c, DONE);
      if (d === pw.seq) break;
      const claim = Atomics.load(c, CLAIM);
      if (claim === 2) return false; // taken over already
      if (claim === 0) {
        if (Atomics.load(c, BUSY) === 1) idleSince = performance.now(); // compiling: alive
        else if (this.broken || performance.now() - idleSince > this.pickupTimeoutMs) {
          if (Atomics.compareExchange(c, CLAIM, 0, 2) === 0) {
            this.breakPool(`worker ${w} did not take up a job within ${this.pickupTimeoutMs} ms${Atomics.load(c, ALIVE) ? '' : '; its script never started'}`);
            return false;
          }
          continue; // it claimed the job just now
        }
      }
      Atomics.wait(c, DONE, d, 20);
    }
    if (c[ERR] || pw.error) {
      c[ERR] = 0;
      const msg = pw.error ?? 'kernel failed in a worker thread';
      pw.error = null;
      throw new Error(`cpu worker: ${msg}`);
    }
    return true;
  }

  /** Marks the pool broken (one warning per process); its workers stop when the run ends. */
  private breakPool(why: string): void {
    if (this.broken) return;
    this.broken = true;
    if (!warnedBroken) {
      warnedBroken = true;
      console.warn(`nexgrad: a CPU worker thread stopped responding (${why}); running on one thread from now on`);
    }
  }

  /** Ends the run: workers return to their message loops (a broken pool's workers are stopped). */
  end(): void {
    if (this.stopped) return;
    const settle = (w: number): void => {
      try {
        this.wait(w);
      } catch {
        // its error was reported by whoever waited first, or is superseded by the main error
      }
    };
    // a job may still be running (when the main thread's part threw): let it finish first
    for (let w = 0; w < this.workers.length; w++) settle(w);
    if (!this.broken) {
      for (let w = 0; w < this.workers.length; w++) this.post(w, OP_END, 0, 0, 0);
      for (let w = 0; w < this.workers.length; w++) settle(w);
    }
    if (this.broken) {
      this.stopped = true;
      for (const w of this.workers) void w.worker.terminate().catch(() => undefined);
    }
  }

  /** Test access: the worker threads (to break one). */
  get threads(): readonly Worker[] {
    return this.workers.map((w) => w.worker);
  }
}

let warnedBroken = false;

const pools = new Map<number, WorkerPool>();

/** The process-wide pool with `size` workers. */
export function workerPool(size: number): WorkerPool {
  let p = pools.get(size);
  if (!p) {
    p = new WorkerPool(size);
    pools.set(size, p);
  }
  return p;
}
