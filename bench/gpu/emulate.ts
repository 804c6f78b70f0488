/**
 * Builds the emulating fake CUDA driver and NVRTC (test/codegen/cuda/fake_cuda.ts: kernels
 * compiled for the host with g++ and test/codegen/cuda/emulator/ngemu.h) and prints the
 * environment that points the CUDA backend at them, so the GPU suites run here, slowly, on the
 * CPU (`bash bench/gpu/check.sh emulate` uses it):
 *   node dist/bench/gpu/emulate.js [DIR]      (default $TMPDIR/nexgrad-emulated-cuda)
 */
import os from 'node:os';
import path from 'node:path';
import { buildFakeDriver, buildFakeNvrtc } from '../../test/codegen/cuda/fake_cuda.js';

const dir = process.argv[2] ?? path.join(process.env.TMPDIR ?? os.tmpdir(), 'nexgrad-emulated-cuda');
const driver = buildFakeDriver(dir, 'libcuda_emulated', { emulate: true, memory: 8 * 2 ** 30 });
const nvrtc = buildFakeNvrtc(dir, { emulate: true });
console.log(`export NEXGRAD_CUDA_LIBCUDA=${driver} NEXGRAD_CUDA_LIBNVRTC=${nvrtc}`);
