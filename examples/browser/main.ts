/**
 * The browser example: acquires a WebGPU device (navigator.gpu), runs nexgrad's hand-written
 * WGSL building blocks through the WGSL runtime and checks each against a reference computed
 * here in JavaScript, and measures matmul throughput on request. Without WebGPU it says why.
 *
 *   npx vite examples/browser            (development server)
 *   npx vite build examples/browser      (static build in examples/browser/dist)
 *
 * The page publishes its outcome on window.__nexgradExample (read by test/browser).
 */
import { acquireGpu, GpuUnavailableError } from '../../src/codegen/wgsl/gpu.js';
import { WgslRuntime } from '../../src/codegen/wgsl/runtime.js';
import { matmulDispatch, matmulKernel } from '../../src/codegen/wgsl/kernels/matmul.js';
import { rowReduceDispatch, rowReduceKernel } from '../../src/codegen/wgsl/kernels/reduce.js';
import { planArgsort } from '../../src/codegen/wgsl/kernels/sort.js';
import { randomBitsDispatch, randomBitsKernel } from '../../src/codegen/wgsl/kernels/threefry.js';
import { threefryHash } from '../../src/ir/threefry.js';

/** The few DOM calls the page makes (the project compiles without the DOM library). */
interface Element {
  textContent: string | null;
  className: string;
  disabled?: boolean;
  insertRow(): { insertCell(): { textContent: string | null; className: string } };
  addEventListener(type: 'click', fn: () => void): void;
}
interface Page {
  document: { getElementById(id: string): Element | null };
  __nexgradExample?: ExampleOutcome;
}
export interface ExampleOutcome {
  readonly status: 'ok' | 'fail' | 'unavailable';
  readonly adapterInfo?: string;
  readonly reason?: string;
  readonly checks: readonly { kernel: string; ok: boolean; detail: string }[];
}

const page = globalThis as unknown as Page;
const el = (id: string): Element => {
  const e = page.document.getElementById(id);
  if (!e) throw new Error(`page element #${id} is missing`);
  return e;
};

function addRow(table: string, cells: string[], cls = ''): void {
  const row = el(table).insertRow();
  for (const text of cells) {
    const cell = row.insertCell();
    cell.textContent = text;
    cell.className = cls;
  }
}

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

type Check = (rt: WgslRuntime) => Promise<string>;

/** Each check returns a detail line or throws with what differed. */
const CHECKS: Readonly<Record<string, Check>> = {
  async 'matmul 64x64 tiles (200x150x70)'(rt) {
    const [M, N, K] = [200, 150, 70];
    const r = lcg(1);
    const a = new Float32Array(M * K).map(() => r() * 2 - 1);
    const b = new Float32Array(K * N).map(() => r() * 2 - 1);
    const c = await runOnce(rt, matmulKernel(), [a, b], 4 * M * N, matmulDispatch({ batch: 1, M, N, K }));
    const got = new Float32Array(c);
    let worst = 0;
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        let s = 0;
        let mag = 0;
        for (let k = 0; k < K; k++) {
          s += a[m * K + k]! * b[k * N + n]!;
          mag += Math.abs(a[m * K + k]! * b[k * N + n]!);
        }
        worst = Math.max(worst, Math.abs(got[m * N + n]! - s) / mag);
      }
    if (!(worst < 1e-5)) throw new Error(`relative error ${worst.toExponential(2)}`);
    return `max relative error ${worst.toExponential(1)}`;
  },
  async 'random_bits (threefry2x32)'(rt) {
    const r = lcg(2);
    const counter = new Uint32Array(999).map(() => Math.floor(r() * 2 ** 32));
    const key = Uint32Array.of(42, 7);
    const got = new Uint32Array(await runOnce(rt, randomBitsKernel(), [key, counter], counter.byteLength, randomBitsDispatch(counter.length)));
    const want = threefryHash(42, 7, counter);
    const bad = want.findIndex((w, i) => w !== got[i]);
    if (bad >= 0) throw new Error(`word ${bad}: ${got[bad]} instead of ${want[bad]}`);
    return `${counter.length} words bit-exact`;
  },
  async 'row reduction (max, NaN propagates)'(rt) {
    const rows = [[1, 5, 3], [NaN, 2, 9], [-4, -4, -8]];
    const x = Float32Array.from(rows.flat());
    const got = new Float32Array(await runOnce(rt, rowReduceKernel({ op: 'max', workgroupSize: 64 }), [x], 12, rowReduceDispatch('max', 3, 3, 1)));
    const want = rows.map((r) => (r.some(Number.isNaN) ? NaN : Math.max(...r)));
    if (!want.every((w, i) => Object.is(w, got[i]) || (Number.isNaN(w) && Number.isNaN(got[i]!)))) throw new Error(`[${Array.from(got)}] instead of [${want}]`);
    return `[${Array.from(got).join(', ')}]`;
  },
  async 'argsort (bitonic, 5000 keys)'(rt) {
    const r = lcg(3);
    const keys = new Float32Array(5000).map(() => Math.floor(r() * 500));
    const plan = planArgsort({ outer: 1, n: keys.length, inner: 1 }, { descending: false });
    const bufs = [rt.alloc(keys.byteLength), rt.alloc(keys.byteLength), rt.alloc(plan.scratchBytes), rt.alloc(plan.scratchBytes)];
    rt.upload(bufs[0]!, keys);
    const rec = rt.beginCall('argsort');
    for (const s of plan.steps) rec.dispatch(await rt.pipeline(plan.source, s.entry, `argsort ${s.entry}`), bufs, s.workgroups, s.uniform);
    rec.submit();
    const got = new Int32Array(await rt.read(bufs[1]!));
    bufs.forEach((b) => rt.release(b));
    const want = Array.from(keys.keys()).sort((i, j) => keys[i]! - keys[j]! || i - j);
    const bad = want.findIndex((w, i) => w !== got[i]);
    if (bad >= 0) throw new Error(`position ${bad}: ${got[bad]} instead of ${want[bad]}`);
    return `${plan.steps.length} dispatches, stable order`;
  },
};

/** Uploads the inputs, runs one dispatch of `source` over [inputs..., out], reads out. */
async function runOnce(rt: WgslRuntime, source: string, inputs: ArrayBufferView[], outBytes: number, d: { uniform: Uint32Array; workgroups: number | [number, number, number] }): Promise<ArrayBuffer> {
  const bufs = inputs.map((x) => {
    const b = rt.alloc(x.byteLength);
    rt.upload(b, x);
    return b;
  });
  const out = rt.alloc(outBytes);
  rt.beginCall('check').dispatch(await rt.pipeline(source), [...bufs, out], d.workgroups, d.uniform).submit();
  const result = await rt.read(out);
  [...bufs, out].forEach((b) => rt.release(b));
  return result;
}

async function measure(rt: WgslRuntime): Promise<void> {
  const pipeline = await rt.pipeline(matmulKernel(), 'main', 'matmul');
  for (const n of [256, 512, 1024]) {
    const bufs = [rt.alloc(4 * n * n), rt.alloc(4 * n * n), rt.alloc(4 * n * n)];
    const d = matmulDispatch({ batch: 1, M: n, N: n, K: n });
    const run = async (times: number) => {
      const t0 = performance.now();
      const rec = rt.beginCall('measure');
      for (let i = 0; i < times; i++) rec.dispatch(pipeline, bufs, d.workgroups, d.uniform);
      rec.submit();
      await rt.sync();
      return (performance.now() - t0) / times;
    };
    const first = await run(1);
    const ms = await run(Math.max(1, Math.min(50, Math.ceil(300 / first))));
    addRow('bench', [String(n), ms.toFixed(2), ((2 * n ** 3) / (ms * 1e6)).toFixed(1)]);
    bufs.forEach((b) => rt.release(b));
  }
}

async function main(): Promise<ExampleOutcome> {
  let rt: WgslRuntime;
  try {
    const gpu = await acquireGpu();
    rt = new WgslRuntime(gpu.device, { adapterInfo: gpu.adapterInfo, ownsDevice: true });
  } catch (e) {
    const reason = e instanceof GpuUnavailableError ? e.message : String(e);
    el('status').textContent = `WebGPU is not available here, so this page cannot run its GPU kernels (${reason}). Try a recent Chrome or Edge, or Firefox/Safari with WebGPU enabled.`;
    el('status').className = 'note';
    return { status: 'unavailable', reason, checks: [] };
  }
  const limits = Object.entries(rt.limits).map(([k, v]) => `${k}: ${v}`);
  el('device').textContent = `adapter: ${rt.adapterInfo}\n${limits.join('\n')}`;
  el('status').textContent = 'Running the kernel self-check...';
  const checks: { kernel: string; ok: boolean; detail: string }[] = [];
  for (const [kernel, check] of Object.entries(CHECKS)) {
    try {
      checks.push({ kernel, ok: true, detail: await check(rt) });
    } catch (e) {
      checks.push({ kernel, ok: false, detail: e instanceof Error ? e.message : String(e) });
    }
    const c = checks[checks.length - 1]!;
    addRow('checks', [c.kernel, c.ok ? 'ok' : 'FAILED', c.detail], c.ok ? 'ok' : 'fail');
  }
  const ok = checks.every((c) => c.ok);
  el('status').textContent = ok ? `All ${checks.length} kernels match their references on ${rt.adapterInfo}.` : 'Some kernels did not match (see below).';
  el('status').className = ok ? 'ok' : 'fail';
  const button = el('measure');
  button.disabled = false;
  button.addEventListener('click', () => {
    button.disabled = true;
    void measure(rt).finally(() => (button.disabled = false));
  });
  return { status: ok ? 'ok' : 'fail', adapterInfo: rt.adapterInfo, checks };
}

main().then(
  (outcome) => (page.__nexgradExample = outcome),
  (e: unknown) => {
    el('status').textContent = `The example failed: ${e instanceof Error ? e.message : String(e)}`;
    el('status').className = 'fail';
    page.__nexgradExample = { status: 'fail', reason: String(e), checks: [] };
  },
);
