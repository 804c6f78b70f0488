/**
 * threefry2x32 (20 rounds) as plain u32 operations (add, shift, or, xor), so every dialect prints
 * it with the ops it already has and reproduces the reference interpreter's bits (src/ir/threefry.ts).
 * Both output words of one hash share their rounds: expand(..) memoises by the hash's operands.
 */
import type { SExpr } from '../kernel/sexpr.js';

const KS_PARITY = 0x1bd11bda;
const ROTATIONS = [13, 15, 26, 6, 17, 29, 16, 24] as const;

const u32 = (value: number): SExpr => ({ op: 'const', value: value >>> 0, dtype: 'u32' });
const bin = (fn: 'add' | 'xor' | 'or' | 'shift_left' | 'shift_right_logical', a: SExpr, b: SExpr): SExpr => ({ op: 'binary', fn, a, b, dtype: 'u32' });
const rotl = (x: SExpr, r: number): SExpr => bin('or', bin('shift_left', x, u32(r)), bin('shift_right_logical', x, u32(32 - r)));

/** The two words of threefry2x32((k0, k1), (x0, x1)). */
export function threefryWords(k0: SExpr, k1: SExpr, x0: SExpr, x1: SExpr): [SExpr, SExpr] {
  const ks = [k0, k1, bin('xor', bin('xor', k0, k1), u32(KS_PARITY))];
  let a = bin('add', x0, ks[0]!);
  let b = bin('add', x1, ks[1]!);
  for (let block = 0; block < 5; block++) {
    for (let r = 0; r < 4; r++) {
      a = bin('add', a, b);
      b = bin('xor', rotl(b, ROTATIONS[(block % 2) * 4 + r]!), a);
    }
    // key injection after every four rounds
    a = bin('add', a, ks[(block + 1) % 3]!);
    b = bin('add', bin('add', b, ks[(block + 2) % 3]!), u32(block + 1));
  }
  return [a, b];
}

/** A rewrite rule (for rewriteSExpr) replacing threefry nodes by their expansion. */
export function expandThreefry(): (e: SExpr) => SExpr {
  const memo = new Map<SExpr, Map<SExpr, Map<SExpr, Map<SExpr, [SExpr, SExpr]>>>>();
  return (e) => {
    if (e.op !== 'threefry') return e;
    const level = (m: Map<SExpr, any>, k: SExpr): Map<SExpr, any> => {
      let n = m.get(k);
      if (!n) m.set(k, (n = new Map()));
      return n;
    };
    const last = level(level(level(memo, e.k0), e.k1), e.x0) as Map<SExpr, [SExpr, SExpr]>;
    let words = last.get(e.x1);
    if (!words) last.set(e.x1, (words = threefryWords(e.k0, e.k1, e.x0, e.x1)));
    return words[e.word];
  };
}
