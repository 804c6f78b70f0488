/** The inputs the browser page and the test both derive from one seed. */
export interface PageInputs {
  readonly matmul: { M: number; N: number; K: number; a: Float32Array; b: Float32Array };
  readonly key: Uint32Array;
  readonly counter: Uint32Array;
  readonly sortKeys: Float32Array;
}

export interface PageResult {
  readonly error?: string;
  readonly adapterInfo?: string;
  readonly ms?: number;
  readonly matmul?: number[];
  readonly randomBits?: number[];
  readonly argsort?: number[];
  readonly stats?: unknown;
}

/** A small LCG (the page must not depend on test helpers). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

export function pageInputs(seed: number): PageInputs {
  const r = lcg(seed);
  const M = 70;
  const N = 90;
  const K = 33;
  return {
    matmul: { M, N, K, a: new Float32Array(M * K).map(() => r() * 2 - 1), b: new Float32Array(K * N).map(() => r() * 2 - 1) },
    key: Uint32Array.of(Math.floor(r() * 2 ** 32), Math.floor(r() * 2 ** 32)),
    counter: new Uint32Array(1001).map(() => Math.floor(r() * 2 ** 32)),
    // 300 keys over 64-pair blocks: the global schedule, with ties
    sortKeys: new Float32Array(300).map(() => Math.floor(r() * 50) - 25),
  };
}
