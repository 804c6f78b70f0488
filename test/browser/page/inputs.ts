/** The inputs of the bundle check, derived from one seed (the test computes the references from them too). */
export interface PageInputs {
  readonly M: number;
  readonly N: number;
  readonly K: number;
  readonly a: number[];
  readonly b: number[];
  readonly seed: number;
  readonly bitsShape: number[];
  readonly sortKeys: number[];
}

export interface PageResult {
  readonly error?: string;
  readonly adapterInfo?: string;
  readonly devices?: string[];
  readonly matmul?: number[];
  readonly bits?: number[];
  readonly argsort?: number[];
}

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

export function pageInputs(seed: number): PageInputs {
  const r = lcg(seed);
  const [M, N, K] = [70, 90, 33];
  return {
    M,
    N,
    K,
    a: Array.from({ length: M * K }, () => Math.fround(r() * 2 - 1)),
    b: Array.from({ length: K * N }, () => Math.fround(r() * 2 - 1)),
    seed: Math.floor(r() * 1000),
    bitsShape: [7, 143],
    // with ties, NaN and signed zeros: the host's order exactly
    sortKeys: Array.from({ length: 300 }, (_, i) => (i % 41 === 0 ? NaN : i % 17 === 0 ? -0 : Math.floor(r() * 50) - 25)),
  };
}
