// Builds the CUDA addon (native/build/Release/nexgrad_cuda.node) with node-gyp.
// Needs the CUDA headers only ($CUDA_HOME or /usr/local/cuda): libcuda and NVRTC are opened
// at run time. Run through `npm run build:native`.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const cudaHome = process.env.CUDA_HOME || process.env.CUDA_PATH || '/usr/local/cuda';
if (!existsSync(path.join(cudaHome, 'include', 'cuda.h'))) {
  console.error(`build:native: ${path.join(cudaHome, 'include', 'cuda.h')} not found (set CUDA_HOME)`);
  process.exit(1);
}

// npm runs scripts with npm_config_node_gyp pointing at its bundled node-gyp; outside npm,
// a local node-gyp or the one inside the npm installed beside this Node.
function findNodeGyp() {
  const candidates = [process.env.npm_config_node_gyp];
  try {
    candidates.push(createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js'));
  } catch {
    // not installed locally
  }
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  candidates.push(path.join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  return candidates.find((c) => c !== undefined && c !== '' && existsSync(c));
}

const nodeGyp = findNodeGyp();
if (nodeGyp === undefined) {
  console.error('build:native: node-gyp not found (run through npm, or install node-gyp)');
  process.exit(1);
}
// Headers installed beside this Node (Debian's nodejs, official tarballs) spare node-gyp a
// download, which machines without internet access cannot do.
const prefix = path.resolve(path.dirname(process.execPath), '..');
const nodedir = existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? [`--nodedir=${prefix}`] : [];
const jobs = ['--jobs', String(Math.max(1, Math.min(4, (await import('node:os')).availableParallelism())))];
const result = spawnSync(process.execPath, [nodeGyp, 'rebuild', ...nodedir, ...jobs], {
  cwd: here,
  stdio: 'inherit',
  env: { ...process.env, CUDA_HOME: cudaHome },
});
if (result.status !== 0) {
  console.error(`build:native: node-gyp failed (exit ${result.status ?? result.signal})`);
  process.exit(1);
}
console.log(`build:native: built ${path.join(here, 'build', 'Release', 'nexgrad_cuda.node')}`);
