/**
 * The browser half of test/browser/webgpu.test.ts: runs WGSL kernels through the runtime on
 * navigator.gpu with inputs from the URL's seed, and publishes the raw results on
 * window.__nexgradResult for the test to check against host references.
 */
import { acquireGpu } from '../../../src/codegen/wgsl/gpu.js';
import { WgslRuntime } from '../../../src/codegen/wgsl/runtime.js';
import { matmulDispatch, matmulKernel } from '../../../src/codegen/wgsl/kernels/matmul.js';
import { randomBitsDispatch, randomBitsKernel } from '../../../src/codegen/wgsl/kernels/threefry.js';
import { planArgsort } from '../../../src/codegen/wgsl/kernels/sort.js';
import { pageInputs, type PageResult } from './inputs.js';

interface Page {
  document: { getElementById(id: string): { textContent: string | null; className: string } | null };
  location: { search: string };
  __nexgradResult?: PageResult;
}
const page = globalThis as unknown as Page;

function show(text: string, ok: boolean): void {
  const el = page.document.getElementById('log');
  if (el) {
    el.textContent = text;
    el.className = ok ? 'ok' : 'fail';
  }
}

async function run(): Promise<PageResult> {
  const seed = Number(new URLSearchParams(page.location.search).get('seed') ?? '1');
  const inputs = pageInputs(seed);
  const gpu = await acquireGpu();
  const rt = new WgslRuntime(gpu.device, { adapterInfo: gpu.adapterInfo, ownsDevice: true });
  const t0 = performance.now();

  const { M, N, K } = inputs.matmul;
  const mm = await rt.pipeline(matmulKernel(), 'main', 'matmul');
  const [a, b, c] = [rt.alloc(4 * M * K), rt.alloc(4 * K * N), rt.alloc(4 * M * N)];
  rt.upload(a, inputs.matmul.a);
  rt.upload(b, inputs.matmul.b);
  const md = matmulDispatch({ batch: 1, M, N, K });

  const rb = await rt.pipeline(randomBitsKernel(), 'main', 'random_bits');
  const [key, counter, bits] = [rt.alloc(8), rt.alloc(4 * inputs.counter.length), rt.alloc(4 * inputs.counter.length)];
  rt.upload(key, inputs.key);
  rt.upload(counter, inputs.counter);
  const rd = randomBitsDispatch(inputs.counter.length);

  const plan = planArgsort({ outer: 1, n: inputs.sortKeys.length, inner: 1 }, { descending: false, sharedCapacity: 64 });
  const [keys, order, s1, s2] = [rt.alloc(4 * inputs.sortKeys.length), rt.alloc(4 * inputs.sortKeys.length), rt.alloc(plan.scratchBytes), rt.alloc(plan.scratchBytes)];
  rt.upload(keys, inputs.sortKeys);

  // one call for all three kernels: one command encoder, one submit
  const rec = rt.beginCall('browser check');
  rec.dispatch(mm, [a, b, c], md.workgroups, md.uniform);
  rec.dispatch(rb, [key, counter, bits], rd.workgroups, rd.uniform);
  for (const s of plan.steps) rec.dispatch(await rt.pipeline(plan.source, s.entry, `argsort ${s.entry}`), [keys, order, s1, s2], s.workgroups, s.uniform);
  rec.submit();
  const [cOut, bitsOut, orderOut] = await Promise.all([rt.read(c), rt.read(bits), rt.read(order)]);
  const result: PageResult = {
    adapterInfo: gpu.adapterInfo,
    ms: performance.now() - t0,
    matmul: Array.from(new Float32Array(cOut)),
    randomBits: Array.from(new Uint32Array(bitsOut)),
    argsort: Array.from(new Int32Array(orderOut)),
    stats: rt.stats(),
  };
  rt.destroy();
  return result;
}

run().then(
  (r) => {
    const stats = Object.entries(r.stats as Record<string, number>).map(([k, v]) => `  ${k}: ${v}`);
    show(`adapter: ${r.adapterInfo}\nmatmul, random_bits and argsort in one call: ${r.ms!.toFixed(0)} ms\nruntime:\n${stats.join('\n')}`, true);
    page.__nexgradResult = r;
  },
  (e: unknown) => {
    const error = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    show(error, false);
    page.__nexgradResult = { error };
  },
);
