/**
 * The browser example: trains a small ConvNeXt V2 with nexgrad on WebGPU in the tab, on images
 * the page generates (or a CIFAR-10 binary batch file the user picks), and plots the loss live.
 * Without WebGPU it says why (no navigator.gpu, no adapter).
 *
 *   npm run example:browser            (development server: vite examples/browser)
 *   npm run build:browser-example      (static build in examples/browser/dist)
 *
 * URL parameters (defaults in brackets): steps [60], batch [32], images [2048], classes [4],
 * lr [0.002], dims [16,32,64,128], depths [1,1,2,1], seed [0], autostart [0]. The page publishes
 * its outcome on window.__nexgradExample (read by test/browser/webgpu.test.ts).
 */
import * as ng from '../../src/index.js';
import type { WgslDevice } from '../../src/codegen/wgsl/device.js';
import { getDevice } from '../../src/passes/backends.js';
import { type Canvas2D, drawLoss } from './chart.js';
import { cifarBatch, generated, type Images } from './dataset.js';
import { train, type TrainOptions } from './train.js';

/** The few DOM calls the page makes (the project compiles without the DOM library). */
interface Element {
  textContent: string | null;
  className: string;
  disabled?: boolean;
  files?: { length: number; [i: number]: { name: string; arrayBuffer(): Promise<ArrayBuffer> } };
  getContext?(kind: '2d'): Canvas2D;
  addEventListener(type: 'click' | 'change', fn: () => void): void;
}
interface Page {
  document: { getElementById(id: string): Element | null };
  location: { search: string };
  __nexgradExample?: ExampleOutcome;
}
export interface ExampleOutcome {
  readonly status: 'ready' | 'training' | 'done' | 'unavailable' | 'fail';
  readonly backend?: string;
  readonly adapterInfo?: string;
  readonly reason?: string;
  readonly dataset?: string;
  readonly losses: readonly number[];
  readonly imagesPerSecond?: number;
  readonly compileMs?: number;
}

const page = globalThis as unknown as Page;
const el = (id: string): Element => {
  const e = page.document.getElementById(id);
  if (!e) throw new Error(`page element #${id} is missing`);
  return e;
};
const publish = (o: ExampleOutcome): void => {
  page.__nexgradExample = o;
};
const status = (text: string, cls = ''): void => {
  el('status').textContent = text;
  el('status').className = cls;
};

const params = new URLSearchParams(page.location.search);
const num = (k: string, d: number): number => (params.has(k) ? Number(params.get(k)) : d);
const list = (k: string, d: number[]): number[] => (params.has(k) ? params.get(k)!.split(',').map(Number) : d);
const opts: TrainOptions = {
  steps: num('steps', 60),
  batchSize: num('batch', 32),
  lr: num('lr', 0.002),
  dims: list('dims', [16, 32, 64, 128]),
  depths: list('depths', [1, 1, 2, 1]),
  seed: num('seed', 0),
};

let images: Images | undefined;
let running = false;
let stopRequested = false;

async function start(adapterInfo: string): Promise<void> {
  if (running || !images) return;
  running = true;
  stopRequested = false;
  el('train').disabled = true;
  el('stop').disabled = false;
  const ctx = el('chart').getContext!('2d');
  const losses: number[] = [];
  drawLoss(ctx, losses, opts.steps);
  status(`Compiling the training step for WebGPU (${images.name})...`);
  publish({ status: 'training', backend: 'wgsl', adapterInfo, dataset: images.name, losses });
  try {
    let last = { imagesPerSecond: 0, compileMs: 0 };
    await train(images, opts, (r) => {
      losses.push(r.loss);
      last = r;
      drawLoss(ctx, losses, opts.steps);
      el('progress').textContent = `step ${r.step}/${opts.steps}  loss ${r.loss.toFixed(4)}  ${r.imagesPerSecond > 0 ? `${r.imagesPerSecond.toFixed(1)} images/s` : ''}  (first step with compilation: ${(r.compileMs / 1000).toFixed(1)} s)`;
      status(`Training on WebGPU: ${images!.name}`);
      publish({ status: 'training', backend: 'wgsl', adapterInfo, dataset: images!.name, losses: [...losses] });
    }, () => stopRequested);
    status(`Done: ${losses.length} steps, loss ${losses[0]?.toFixed(3)} -> ${losses[losses.length - 1]?.toFixed(3)}`, 'ok');
    publish({ status: 'done', backend: 'wgsl', adapterInfo, dataset: images.name, losses, imagesPerSecond: last.imagesPerSecond, compileMs: last.compileMs });
  } catch (e) {
    const reason = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    status(`Training failed: ${reason}`, 'fail');
    publish({ status: 'fail', backend: 'wgsl', adapterInfo, reason, losses });
  } finally {
    running = false;
    el('train').disabled = false;
    el('stop').disabled = true;
  }
}

async function main(): Promise<void> {
  const available = await ng.init('wgsl');
  if (!available.includes('wgsl')) {
    const reason = ng.unavailableReasons().wgsl ?? 'unknown';
    status(`WebGPU is not available here: ${reason}. Try a browser with WebGPU enabled (Chrome or Edge 113+, Safari 26, Firefox 141+ on Windows).`, 'fail');
    publish({ status: 'unavailable', reason, losses: [] });
    return;
  }
  ng.setDefaultBackend('wgsl');
  const adapterInfo = (getDevice('wgsl') as WgslDevice).runtime.adapterInfo;
  el('device').textContent = `adapter: ${adapterInfo}\nmodel: ConvNeXt V2, depths [${opts.depths}], dims [${opts.dims}]\nbatch ${opts.batchSize}, AdamW lr ${opts.lr}`;
  images = await generated(num('images', 2048), num('classes', 4), opts.seed);
  el('dataset').textContent = images.name;
  status('Ready: press Train.');
  el('train').disabled = false;
  publish({ status: 'ready', backend: 'wgsl', adapterInfo, dataset: images.name, losses: [] });
  el('train').addEventListener('click', () => void start(adapterInfo));
  el('stop').addEventListener('click', () => (stopRequested = true));
  el('file').addEventListener('change', () => {
    const f = el('file').files?.[0];
    if (!f) return;
    void f.arrayBuffer().then(
      (buf) => {
        try {
          images = cifarBatch(new Uint8Array(buf), f.name);
          el('dataset').textContent = images.name;
        } catch (e) {
          status(e instanceof Error ? e.message : String(e), 'fail');
        }
      },
      (e: unknown) => status(`cannot read ${f.name}: ${String(e)}`, 'fail'),
    );
  });
  if (params.get('autostart') === '1') await start(adapterInfo);
}

main().catch((e: unknown) => {
  const reason = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  status(reason, 'fail');
  publish({ status: 'fail', reason, losses: [] });
});
