/**
 * Exact cache keys for plain data (jit's static arguments, eager single-op programs' params).
 * JSON.stringify would map NaN, Infinity and null to `null`, -0 to 0, and Maps, Sets and class
 * instances to `{}`, so different values would share a compiled program: here every number is
 * written exactly (NaN, Infinity, -Infinity and -0 apart), objects with sorted keys, and
 * anything that is not plain data is refused with a named error.
 */
import { NexgradError } from './errors.js';

function numberKey(v: number): string {
  if (Object.is(v, -0)) return '-0';
  return Number.isNaN(v) ? 'NaN' : String(v); // String gives Infinity / -Infinity / shortest round-trip
}

/** The key of `x`; `where` names the value in the error (e.g. "jit: static argument 1"). */
export function exactKey(x: unknown, where: string, seen: Set<object> = new Set()): string {
  switch (typeof x) {
    case 'number':
      return numberKey(x);
    case 'string':
      return JSON.stringify(x);
    case 'boolean':
      return x ? 'true' : 'false';
    case 'undefined':
      return 'undefined';
    case 'bigint':
      return `${x}n`;
    case 'object':
      break;
    default:
      throw new NexgradError(`${where}: a ${typeof x} cannot be part of a cache key; pass plain data (numbers, strings, booleans, arrays, plain objects)`);
  }
  if (x === null) return 'null';
  if (seen.has(x)) throw new NexgradError(`${where}: a cyclic value cannot be part of a cache key`);
  seen.add(x);
  try {
    if (Array.isArray(x)) return `[${x.map((v, i) => exactKey(v, `${where}[${i}]`, seen)).join(',')}]`;
    const proto = Object.getPrototypeOf(x);
    if (proto !== Object.prototype && proto !== null) {
      const name = (x as { constructor?: { name?: string } }).constructor?.name ?? 'object';
      throw new NexgradError(`${where}: a ${name} cannot be part of a cache key; pass plain data (numbers, strings, booleans, arrays, plain objects)`);
    }
    const keys = Object.keys(x).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${exactKey((x as Record<string, unknown>)[k], `${where}.${k}`, seen)}`).join(',')}}`;
  } finally {
    seen.delete(x);
  }
}
