/**
 * A readable account of a kernel graph: each kernel with its operations and compulsory bytes,
 * then one line per named scope (a ConvNeXt V2 block: `stages.1.0`) with its forward and
 * backward kernel counts, and the totals (`nexgrad ir --print kernels`).
 */
import type { DType } from '../../ir/dtype.js';
import { defaultElementBytes, kernelCost, type KernelCost } from './cost.js';
import { type KernelGraph, printKernel } from './kernel_graph.js';

/** The named scope of a kernel (`k12_gelu.stages.1.0+k11_...` -> `stages.1.0`), or '' for none. */
export function kernelScope(name: string): string {
  const first = name.split('+')[0]!;
  const dot = first.indexOf('.');
  return dot < 0 ? '' : first.slice(dot + 1);
}

const fmtCount = (n: number): string => (n >= 1e9 ? `${(n / 1e9).toFixed(2)}G` : n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : String(Math.round(n)));
const fmtBytes = (n: number): string => (n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(2)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);
const costLine = (c: KernelCost): string => `${fmtCount(c.flops)} ops, ${fmtBytes(c.bytesRead)} read, ${fmtBytes(c.bytesWritten)} written`;

interface ScopeRow {
  forward: number;
  backward: number;
  flops: number;
  bytes: number;
}

export interface KernelReport {
  /** Each kernel printed, followed by its cost. */
  readonly kernels: string;
  /** One line per scope, in first-seen order, and a total. */
  readonly scopes: string;
  readonly total: KernelCost;
}

export function kernelReport(g: KernelGraph, elementBytes: (d: DType) => number = defaultElementBytes): KernelReport {
  const lines: string[] = [];
  const rows = new Map<string, ScopeRow>();
  let total: KernelCost = { flops: 0, bytesRead: 0, bytesWritten: 0 };
  for (const k of g.kernels) {
    const c = kernelCost(k, g, elementBytes);
    total = { flops: total.flops + c.flops, bytesRead: total.bytesRead + c.bytesRead, bytesWritten: total.bytesWritten + c.bytesWritten };
    lines.push(printKernel(k), `  # ${costLine(c)}`);
    const scope = kernelScope(k.name);
    const backward = scope === 'bwd' || scope.endsWith('.bwd');
    const key = (backward ? scope.slice(0, -4).replace(/\.$/, '') : scope) || '(no scope)';
    const r = rows.get(key) ?? { forward: 0, backward: 0, flops: 0, bytes: 0 };
    if (backward) r.backward++;
    else r.forward++;
    r.flops += c.flops;
    r.bytes += c.bytesRead + c.bytesWritten;
    rows.set(key, r);
  }
  const width = Math.max(12, ...[...rows.keys()].map((s) => s.length));
  const scopeLines = [`${'scope'.padEnd(width)}  kernels fwd  bwd      ops      bytes`];
  for (const [s, r] of rows) {
    scopeLines.push(`${s.padEnd(width)}  ${String(r.forward).padStart(11)}  ${String(r.backward).padStart(3)}  ${fmtCount(r.flops).padStart(7)}  ${fmtBytes(r.bytes).padStart(10)}`);
  }
  scopeLines.push(`${'total'.padEnd(width)}  ${String(g.kernels.length).padStart(11)}       ${fmtCount(total.flops).padStart(7)}  ${fmtBytes(total.bytesRead + total.bytesWritten).padStart(10)}`);
  return { kernels: lines.join('\n'), scopes: scopeLines.join('\n'), total };
}
