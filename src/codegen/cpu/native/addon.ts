/**
 * The native CPU addon (native/cpu/src/addon.cc): loads compiled kernel objects and runs them
 * with a persistent thread pool. Found at NEXGRAD_CPU_ADDON, else native/cpu/build/Release/
 * nexgrad_cpu.node (`npm run build:native-cpu`, node-gyp), else compiled here on first use with
 * the system C++ compiler against node-addon-api and Node's headers (cached like the kernel
 * objects). Any failure is a reason string: the backend then falls back to WebAssembly.
 */
import { nodeModule } from '../../../ir/node_builtins.js';
import { compileObject, type Toolchain } from './toolchain.js';

export interface CpuAddon {
  load(path: string): number;
  run(handle: number, buffers: readonly unknown[], threads: number, first: number, last: number): void;
  readonly abi: number;
}

type Require = ((id: string) => unknown) & { resolve(id: string): string };

function requireHere(): Require | undefined {
  const mod = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process?.getBuiltinModule?.('node:module') as { createRequire?: (u: string) => Require } | undefined;
  return mod?.createRequire?.(import.meta.url);
}

/** The package root (the directory holding package.json named nexgrad) above this file. */
function packageRoot(): string | undefined {
  const fs = nodeModule('fs');
  const path = nodeModule('path');
  const url = nodeModule('url');
  if (!fs || !path || !url) return undefined;
  let dir = path.dirname(url.fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    const pj = path.join(dir, 'package.json');
    try {
      if ((JSON.parse(fs.readFileSync(pj, 'utf8')) as { name?: string }).name === 'nexgrad') return dir;
    } catch {
      /* keep looking */
    }
    dir = path.dirname(dir);
  }
  return undefined;
}

let loaded: CpuAddon | string | undefined;

function check(a: unknown): CpuAddon | string {
  const x = a as Partial<CpuAddon> | null;
  return x && typeof x.load === 'function' && typeof x.run === 'function' && x.abi === 2 ? (x as CpuAddon) : 'the addon has another interface';
}

/** The addon, or why it is not available. */
export function cpuAddon(tc: Toolchain): CpuAddon | string {
  if (loaded !== undefined) return loaded;
  const req = requireHere();
  const fs = nodeModule('fs');
  const path = nodeModule('path');
  if (!req || !fs || !path) return (loaded = 'Node.js modules are not available here');
  const root = packageRoot();
  const prebuilt = process.env.NEXGRAD_CPU_ADDON ?? (root ? path.join(root, 'native', 'cpu', 'build', 'Release', 'nexgrad_cpu.node') : undefined);
  if (prebuilt && fs.existsSync(prebuilt)) {
    try {
      return (loaded = check(req(prebuilt)));
    } catch (e) {
      if (process.env.NEXGRAD_CPU_ADDON) return (loaded = `could not load ${prebuilt}: ${(e as Error).message}`);
    }
  }
  // compile it here
  try {
    if (!root) return (loaded = 'the package root (native/cpu) was not found');
    // one self-contained source (its local header inlined), so the cache key covers all of it
    const srcDir = path.join(root, 'native', 'cpu', 'src');
    const source = fs.readFileSync(path.join(srcDir, 'addon.cc'), 'utf8').replace('#include "gemm.h"', () => fs.readFileSync(path.join(srcDir, 'gemm.h'), 'utf8'));
    let napiDir: string;
    try {
      // napi.h sits at the package's root (its `include_dir` is relative to the working
      // directory, which is not ours when nexgrad is an installed dependency)
      napiDir = path.dirname(req.resolve('node-addon-api/package.json'));
    } catch {
      return (loaded = 'node-addon-api is not installed (npm install), and the addon is not built (npm run build:native-cpu)');
    }
    const nodeInc = path.join(path.dirname(path.dirname(process.execPath)), 'include', 'node');
    if (!fs.existsSync(path.join(nodeInc, 'node_api.h'))) return (loaded = `Node's headers are not at ${nodeInc} (build the addon with npm run build:native-cpu)`);
    const obj = compileObject(tc, source, { lang: 'c++', ext: 'node', extraFlags: [`-I${napiDir}`, `-I${nodeInc}`, '-DNAPI_VERSION=8', '-DNAPI_CPP_EXCEPTIONS', `-DNG_NODE=${process.versions.modules}`] });
    try {
      return (loaded = check(req(obj.path)));
    } finally {
      fs.rmSync(obj.path, { force: true });
    }
  } catch (e) {
    return (loaded = `the addon did not build: ${(e as Error).message.split('\n').slice(0, 4).join(' ')}`);
  }
}
