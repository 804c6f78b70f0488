/** KernelGraph <-> JSON for the on-disk compile cache. Scalar expression DAGs are written as a
 * node table so shared nodes stay shared. */
import { HostArray } from '../../ir/host.js';
import { allocHost, type DType } from '../../ir/dtype.js';
import type { MemoryPlan } from './device.js';
import { isExprOperand, type Kernel, type KernelGraph, type KernelOutput, type MatmulOperand, type SExpr } from './kernel_graph.js';

type Json = unknown;

export function serializeLowered(g: KernelGraph, plan: MemoryPlan): string {
  const nodes: Json[] = [];
  const ids = new Map<SExpr, number>();
  const ref = (e: SExpr): number => {
    const have = ids.get(e);
    if (have !== undefined) return have;
    let n: Record<string, unknown>;
    switch (e.op) {
      case 'unary':
      case 'cast':
        n = { ...e, a: ref(e.a) };
        break;
      case 'binary':
      case 'cmp':
        n = { ...e, a: ref(e.a), b: ref(e.b) };
        break;
      case 'select':
        n = { ...e, c: ref(e.c), a: ref(e.a), b: ref(e.b) };
        break;
      default:
        n = { ...e };
    }
    const id = nodes.length;
    nodes.push(n);
    ids.set(e, id);
    return id;
  };
  const outs = (os: readonly KernelOutput[]) => os.map((o) => ({ buf: o.buf, index: o.index, expr: ref(o.expr) }));
  const kernels = g.kernels.map((k): Json => {
    switch (k.kind) {
      case 'loop':
        return { ...k, reductions: k.reductions.map((r) => ({ ...r, expr: ref(r.expr) })), outerOutputs: outs(k.outerOutputs), rowOutputs: outs(k.rowOutputs) };
      case 'matmul': {
        const op = (o: MatmulOperand) => (isExprOperand(o) ? { kind: 'expr', expr: ref(o.expr) } : o);
        return { ...k, a: op(k.a), b: op(k.b), outputs: outs(k.outputs) };
      }
      case 'conv':
        return { ...k, outputs: outs(k.outputs) };
      case 'host':
        return k;
    }
  });
  const consts = g.consts.map((c) => ({
    buf: c.buf,
    dtype: c.value.dtype,
    shape: c.value.shape,
    data: Buffer.from(c.value.data.buffer, c.value.data.byteOffset, c.value.data.byteLength).toString('base64'),
  }));
  return JSON.stringify({
    graph: { buffers: g.buffers, kernels, inputs: g.inputs, outputs: g.outputs, consts },
    nodes,
    plan: { ...plan, outputAliases: [...plan.outputAliases] },
  });
}

export function deserializeLowered(text: string): { graph: KernelGraph; plan: MemoryPlan } {
  const j = JSON.parse(text) as any;
  const built: SExpr[] = [];
  const get = (i: number): SExpr => built[i]!;
  for (const n of j.nodes as any[]) {
    let e: any;
    switch (n.op) {
      case 'unary':
      case 'cast':
        e = { ...n, a: get(n.a) };
        break;
      case 'binary':
      case 'cmp':
        e = { ...n, a: get(n.a), b: get(n.b) };
        break;
      case 'select':
        e = { ...n, c: get(n.c), a: get(n.a), b: get(n.b) };
        break;
      default:
        e = n;
    }
    built.push(e);
  }
  const outs = (os: any[]): KernelOutput[] => os.map((o) => ({ buf: o.buf, index: o.index, expr: get(o.expr) }));
  const kernels: Kernel[] = (j.graph.kernels as any[]).map((k) => {
    switch (k.kind) {
      case 'loop':
        return { ...k, reductions: k.reductions.map((r: any) => ({ ...r, expr: get(r.expr) })), outerOutputs: outs(k.outerOutputs), rowOutputs: outs(k.rowOutputs) };
      case 'matmul': {
        const op = (o: any) => (o.kind === 'expr' ? { kind: 'expr', expr: get(o.expr) } : o);
        return { ...k, a: op(k.a), b: op(k.b), outputs: outs(k.outputs) };
      }
      case 'conv':
        return { ...k, outputs: outs(k.outputs) };
      default:
        return k;
    }
  });
  const consts = (j.graph.consts as any[]).map((c) => {
    const bytes = Buffer.from(c.data, 'base64');
    const data = allocHost(c.dtype as DType, bytes.byteLength / bytesPerElement(c.dtype));
    new Uint8Array(data.buffer).set(bytes);
    return { buf: c.buf, value: new HostArray(c.dtype, c.shape, data) };
  });
  const graph: KernelGraph = { buffers: j.graph.buffers, kernels, inputs: j.graph.inputs, outputs: j.graph.outputs, consts };
  const plan: MemoryPlan = { ...j.plan, outputAliases: new Map(j.plan.outputAliases) };
  return { graph, plan };
}

function bytesPerElement(d: DType): number {
  return allocHost(d, 1).BYTES_PER_ELEMENT;
}
