/**
 * Node's built-in modules, reached without a static import so the library loads in a browser
 * (where these return undefined and the file-system features say so). Node >= 20.16 provides
 * process.getBuiltinModule.
 */
import { NexgradError } from './errors.js';

type Builtins = {
  fs: typeof import('node:fs');
  path: typeof import('node:path');
  os: typeof import('node:os');
  url: typeof import('node:url');
  crypto: typeof import('node:crypto');
  zlib: typeof import('node:zlib');
  child_process: typeof import('node:child_process');
  worker_threads: typeof import('node:worker_threads');
};

/** A Node built-in module, or undefined outside Node. */
export function nodeModule<K extends keyof Builtins>(id: K): Builtins[K] | undefined {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  return proc?.getBuiltinModule?.(`node:${id}`) as Builtins[K] | undefined;
}

/** A Node built-in module for a feature that needs it; a named error naming the feature elsewhere. */
export function requireNode<K extends keyof Builtins>(id: K, feature: string): Builtins[K] {
  const m = nodeModule(id);
  if (!m) throw new NexgradError(`${feature} needs Node.js (node:${id} is not available here)`);
  return m;
}

/**
 * A stand-in for a Node built-in module that looks it up on first use, for files whose
 * features need Node (reading files, hashing) but which a browser bundle still imports.
 */
export function lazyNode<K extends keyof Builtins>(id: K, feature: string): Builtins[K] {
  let m: Builtins[K] | undefined;
  return new Proxy({} as Builtins[K], {
    get(_t, prop) {
      m ??= requireNode(id, feature);
      return (m as unknown as Record<string | symbol, unknown>)[prop];
    },
  });
}
