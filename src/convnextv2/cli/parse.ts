/**
 * Value parsers for the CLI's flags. Each checks one kind of value and, when it is wrong, says
 * what was expected; commander adds the flag's name and the value given, e.g.
 * `error: option '--batch-size <n>' argument 'abc' is invalid. expected a positive integer (e.g. 128)`.
 */
import * as fs from 'node:fs';
import { InvalidArgumentError } from 'commander';

const bad = (expected: string): never => {
  throw new InvalidArgumentError(`expected ${expected}`);
};

const INT = /^[+-]?\d+$/;
const NUM = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

export function positiveInt(example: number) {
  return (v: string): number => {
    if (!INT.test(v.trim()) || !(Number(v) >= 1) || !Number.isSafeInteger(Number(v))) bad(`a positive integer (e.g. ${example})`);
    return Number(v);
  };
}

export function nonNegativeInt(example: number) {
  return (v: string): number => {
    if (!INT.test(v.trim()) || !(Number(v) >= 0) || !Number.isSafeInteger(Number(v))) bad(`an integer >= 0 (e.g. ${example})`);
    return Number(v);
  };
}

/** A number in [lo, hi] (hiOpen: [lo, hi)). */
export function numberIn(lo: number, hi: number, example: number, hiOpen = false) {
  const range = hi === Infinity ? `>= ${lo}` : `in [${lo}, ${hi}${hiOpen ? ')' : ']'}`;
  return (v: string): number => {
    const x = Number(v);
    if (!NUM.test(v.trim()) || !(x >= lo) || !(hiOpen ? x < hi : x <= hi)) bad(`a number ${range} (e.g. ${example})`);
    return x;
  };
}

export function positiveNumber(example: number) {
  return (v: string): number => {
    const x = Number(v);
    if (!NUM.test(v.trim()) || !(x > 0) || !Number.isFinite(x)) bad(`a positive number (e.g. ${example})`);
    return x;
  };
}

/** A comma-separated list of positive integers, e.g. "2,2,6,2". */
export function intList(example: string, min = 1) {
  return (v: string): number[] => {
    const parts = v.split(',').map((s) => s.trim());
    if (!parts.length || parts.some((p) => !/^\d+$/.test(p) || Number(p) < min)) bad(`a comma-separated list of integers >= ${min} (e.g. ${example})`);
    return parts.map(Number);
  };
}

/** Two numbers "lo,hi" with lo <= hi inside [min, max]. */
export function numberPair(min: number, max: number, example: string) {
  return (v: string): [number, number] => {
    const parts = v.split(',').map((s) => s.trim());
    const [a, b] = parts.map(Number);
    if (parts.length !== 2 || !parts.every((p) => NUM.test(p)) || !(a! >= min && a! <= b! && b! <= max)) bad(`two numbers lo,hi with ${min} <= lo <= hi <= ${max} (e.g. ${example})`);
    return [a!, b!];
  };
}

export function choice<T extends string>(values: readonly T[]) {
  return (v: string): T => {
    if (!(values as readonly string[]).includes(v)) bad(`one of ${values.join(', ')}`);
    return v as T;
  };
}

export function existingFile(what: string) {
  return (v: string): string => {
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(v);
    } catch {
      bad(`an existing ${what} file; ${JSON.stringify(v)} does not exist`);
    }
    if (!st!.isFile()) bad(`a ${what} file; ${JSON.stringify(v)} is not a file`);
    return v;
  };
}

export function existingPath(what: string) {
  return (v: string): string => {
    if (!fs.existsSync(v)) bad(`an existing ${what}; ${JSON.stringify(v)} does not exist`);
    return v;
  };
}

/** --threads: a positive integer or "auto". */
export function threads(v: string): number | 'auto' {
  if (v === 'auto') return 'auto';
  return positiveInt(2)(v);
}
