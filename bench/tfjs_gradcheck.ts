/**
 * Checks the hand-written gradients of the tfjs training formulations ('train-slices',
 * 'train-dwkernel': explicit-transpose matMul, custom depthwise) against tfjs's own autodiff of the
 * same ops ('autodiff') on a small ConvNeXt V2, and every forward against the native kernels.
 *   npx tsc -p tsconfig.json; node dist/bench/tfjs_gradcheck.js
 */
import * as tf from '@tensorflow/tfjs';
import { maxAbs, maxAbsDiff } from './harness.js';
import { crossEntropy, forward, initTfjsWasm, loadParams, type Mode, TRAIN_MODES } from './tfjs_convnext.js';
import { makeImages, makeLabels, makeWeights, type ModelDims } from './weights.js';

const SMALL: ModelDims = { depths: [1, 1, 2, 1], dims: [8, 16, 24, 32], numClasses: 10, inChans: 3, stemStride: 4 };

async function main(): Promise<void> {
  await initTfjsWasm();
  const ws = makeWeights(SMALL, 7);
  const P = loadParams(ws, true);
  const vars = [...P.values()] as tf.Variable[];
  const x = tf.tensor4d(makeImages(2, 3, 64, 64, 3), [2, 3, 64, 64]);
  const y = tf.tensor1d(makeLabels(2, 10, 4), 'int32');
  const logits = (mode: Mode) => tf.tidy(() => forward(mode, P, SMALL, x).dataSync() as Float32Array);
  const grads = (mode: Mode) =>
    tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => crossEntropy(forward(mode, P, SMALL, x), y), vars);
      return { loss: value.dataSync()[0]!, g: vars.map((v) => grads[v.name]!.dataSync() as Float32Array) };
    });
  const ln = logits('native');
  const b = grads('autodiff');
  let ok = maxAbsDiff(ln, logits('autodiff')) < 1e-5;
  for (const mode of TRAIN_MODES) {
    const a = grads(mode);
    let worst = 0;
    let worstName = '';
    [...P.keys()].forEach((k, i) => {
      const rel = maxAbsDiff(a.g[i]!, b.g[i]!) / Math.max(maxAbs(b.g[i]!), 1e-12);
      if (rel > worst) [worst, worstName] = [rel, k];
    });
    const dl = maxAbsDiff(ln, logits(mode));
    console.log(`${mode}: logits vs native ${dl.toExponential(2)}; loss ${a.loss} vs autodiff ${b.loss}; worst relative gradient difference ${worst.toExponential(2)} (${worstName})`);
    ok &&= worst < 1e-4 && dl < 1e-5;
  }
  if (!ok) {
    console.error('MISMATCH');
    process.exit(1);
  }
  console.log('ok');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
