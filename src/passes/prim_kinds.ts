/** Primitive classes the passes reason about, derived from the primitive table's lowerings. */
import { primsLoweredAs } from '../ir/primitives/index.js';

export const UNARY: ReadonlySet<string> = primsLoweredAs('unary');
export const BINARY: ReadonlySet<string> = primsLoweredAs('binary');
export const CMP: ReadonlySet<string> = primsLoweredAs('compare');
export const ELEMENTWISE: ReadonlySet<string> = new Set([...UNARY, ...BINARY, ...CMP, ...primsLoweredAs('select'), ...primsLoweredAs('cast')]);
/** Index remappings (and iota): free to inline as index expressions. */
export const VIEW: ReadonlySet<string> = primsLoweredAs('view');
/** Reductions that run as loop-kernel phases. */
export const REDUCE: ReadonlySet<string> = primsLoweredAs('reduce');
/** Higher-order primitives (inlined before fusion). */
export const HIGHER_ORDER: ReadonlySet<string> = primsLoweredAs('body');
