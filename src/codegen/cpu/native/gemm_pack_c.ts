/**
 * Packing loops of the C GEMM, one register strip at a time: Ap strip s holds rows
 * [s*MR, s*MR + MR) of the block as [kc][MR], Bp strip t columns [t*NR, t*NR + NR) as [kc][NR]
 * (the layout the micro-kernels read). Looping strip, then k, then the MR (NR) lanes of the strip
 * with a constant trip count makes every store contiguous and its address a plain sum: the
 * element-at-a-time form (`Ap[(i / MR) * kc * MR + k * MR + i % MR]`) cost a signed division,
 * a remainder and a scalar store per element, and the packing took as long as the products.
 * A full strip runs with the constant bound, or as one memcpy per k where its lanes are adjacent
 * elements of a buffer; the ragged last strip loads its real lanes and zero-fills the rest.
 */
import { affineStrides } from '../../kernel/index_expr.js';
import type { SExpr } from '../../kernel/kernel_graph.js';
import { bufName } from '../../lower/dialect.js';
import { cElemType } from './c_dialect.js';
import type { CBuilder } from './c_common.js';

export interface PackPieces {
  readonly cb: CBuilder;
  /** C element type of the packed panel. */
  readonly T: string;
}

/**
 * Ap = A rows [_ic, _ic + _mc) x K [_pc, _pc + _kc) in strips of NG_MR, rows past _mc zeroed up to
 * _mcp. `aLoad` reads A at the loop variables m and k (and b, defined outside).
 */
export function packAStrips(p: PackPieces, aLoad: SExpr): void {
  packStrips(p, aLoad, { lane: 'm', base: '_ic', count: '_mc', width: 'NG_MR', panel: 'Ap', stripSize: '_kcMR' });
}

/** Bp = B K [_pc, _pc + _kc) x columns [_jc, _jc + _nc) in strips of NG_NR, columns past _nc zeroed up to _ncp. */
export function packBStrips(p: PackPieces, bLoad: SExpr): void {
  packStrips(p, bLoad, { lane: 'n', base: '_jc', count: '_nc', width: 'NG_NR', panel: 'Bp', stripSize: '_kcNR' });
}

interface StripNames {
  /** The loop variable the lanes run over (m for A, n for B). */
  readonly lane: string;
  readonly base: string;
  readonly count: string;
  readonly width: string;
  readonly panel: string;
  readonly stripSize: string;
}

function packStrips(p: PackPieces, load: SExpr, s: StripNames): void {
  const { cb, T } = p;
  const copy = contiguousLanes(load, s.lane, T);
  cb.open();
  if (copy) {
    // rows of adjacent lanes: k outer, so that each row of the source is read once, front to back
    cb.line(`const int64_t _full = ${s.count} / ${s.width} * ${s.width};`);
    copyFullStrips(p, load as Extract<SExpr, { op: 'load' }>, s);
  }
  cb.open();
  cb.line(`${T}* const _sp = ${s.panel} + (_s / ${s.width}) * ${s.stripSize};`);
  cb.line(`const int64_t _sl = ${s.count} - _s < ${s.width} ? ${s.count} - _s : ${s.width};`);
  // a full strip with the constant lane count, the ragged one with its real lanes and then zeros
  for (const full of copy ? [false] : [true, false]) {
    cb.open();
    cb.open('k');
    cb.line(`${T}* const _kp = _sp + (k - _pc) * ${s.width};`);
    cb.open(s.lane);
    cb.line(`const int64_t ${s.lane} = ${s.base} + _s + _l;`);
    const v = cb.value(load);
    cb.line(`_kp[_l] = (${T})(${v});`);
    cb.close(`for (int64_t _l = 0; _l < ${full ? s.width : '_sl'}; _l++)`);
    if (!full) cb.line(`for (int64_t _l = _sl; _l < ${s.width}; _l++) _kp[_l] = 0;`);
    cb.close('for (int64_t k = _pc; k < _pc + _kc; k++)');
    cb.close(copy ? '' : full ? `if (_sl == ${s.width})` : 'else');
  }
  cb.close(copy ? `for (int64_t _s = _full; _s < ${s.count}; _s += ${s.width})` : `for (int64_t _s = 0; _s < ${s.count}; _s += ${s.width})`);
  cb.close('');
}

/** A plain load of the panel's element type whose lanes are adjacent elements (stride 1 along the lane variable). */
function contiguousLanes(load: SExpr, lane: string, T: string): boolean {
  if (load.op !== 'load' || load.dyn || cElemType(load.dtype) !== T) return false;
  const a = affineStrides(load.index);
  if (!a) return false;
  for (const [axis, stride] of a.strides) if (axis.name === lane) return stride === 1;
  return false;
}

/**
 * The full strips of a block whose lanes are adjacent elements: per k, one fixed-size copy per
 * strip (ng_copy: 32-byte moves; gcc left the lane loop scalar inside the large GEMM functions,
 * and a memcpy of a whole strip became a slow `rep movs`).
 */
function copyFullStrips(p: PackPieces, load: Extract<SExpr, { op: 'load' }>, s: StripNames): void {
  const { cb, T } = p;
  cb.open('k');
  cb.open(s.lane);
  cb.line(`const int64_t ${s.lane} = ${s.base} + _s;`);
  cb.line(`ng_copy(${s.panel} + (_s / ${s.width}) * ${s.stripSize} + (k - _pc) * ${s.width}, ${bufName(load.buf)} + ${cb.index(load.index)}, ${s.width} * sizeof(${T}));`);
  cb.close(`for (int64_t _s = 0; _s < _full; _s += ${s.width})`);
  cb.close('for (int64_t k = _pc; k < _pc + _kc; k++)');
}
