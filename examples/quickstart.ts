/**
 * The quick-start example: a small model as a pure function, traced, differentiated, printed,
 * and compiled for the CPU backend. Run: bash scripts/example.sh
 */
import * as ng from '../src/index.js';

// A two-layer MLP with LayerNorm and exact GELU, as a pure function of (params, x).
function model(params: { w1: ng.Tensor; b1: ng.Tensor; w2: ng.Tensor; b2: ng.Tensor }, x: ng.Tensor): ng.Tensor {
  const h = ng.nn.gelu(ng.nn.layerNorm({ weight: ng.ones([4]), bias: ng.zeros([4]) }, x).matmul(params.w1).add(params.b1));
  return h.matmul(params.w2).add(params.b2);
}

function loss(params: Parameters<typeof model>[0], x: ng.Tensor, labels: ng.Tensor): ng.Tensor {
  return ng.nn.crossEntropy(model(params, x), labels);
}

const [k1, k2, k3] = ng.nn.splitKeys(ng.random.key(0), 3);
const params = {
  w1: ng.random.normal(k1!, [4, 8]).mul(0.5),
  b1: ng.zeros([8]),
  w2: ng.random.normal(k2!, [8, 3]).mul(0.5),
  b2: ng.zeros([3]),
};
const x = ng.random.normal(k3!, [5, 4]);
const labels = ng.tensor([0, 1, 2, 1, 0], { dtype: 'i32' });

console.log('== the traced loss ==');
console.log(ng.trace(loss, params, x, labels).toString());

console.log('\n== its gradient program (grad traced like any function) ==');
const gradFn = ng.grad(loss);
console.log(ng.trace(gradFn, params, x, labels).toString());

console.log('\n== values ==');
const [value, grads] = ng.valueAndGrad(loss)(params, x, labels);
console.log('loss (eager, on the CPU backend):', value.item());
console.log('d loss / d b2:', grads.b2.tolist());

const step = ng.jit((p: typeof params, xs: ng.Tensor, ys: ng.Tensor) => {
  const [l, g] = ng.valueAndGrad(loss)(p, xs, ys);
  const next = ng.treeMap<typeof params>((w: ng.Tensor, gw: ng.Tensor) => w.sub(gw.mul(0.5)), p, g);
  return { loss: l, params: next };
}, { backend: 'cpu' });
let p = params;
for (let i = 0; i < 5; i++) {
  const r = step(p, x, labels);
  console.log(`jit cpu step ${i}: loss ${r.loss.item().toFixed(6)}`);
  p = r.params;
}
const low = step.lower(p, x, labels);
console.log(`\nthe jitted step: ${low.program.eqns.length} traced equations -> ${low.graph.kernels.length} kernels, arena ${low.plan.peakBytes} bytes`);
