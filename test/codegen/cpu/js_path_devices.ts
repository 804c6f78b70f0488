/**
 * The JavaScript/WebAssembly CPU path in the three forms a wasm kernel test checks against one
 * reference: WebAssembly on one thread, plain JavaScript, and WebAssembly split over two threads
 * (every kernel split, however small).
 */
import { createCpuDevice } from '../../../src/codegen/cpu/device.js';

export function jsPathDevices(): readonly (readonly [ReturnType<typeof createCpuDevice>, string])[] {
  return [
    [createCpuDevice(), 'wasm'],
    [createCpuDevice({ wasm: false }), 'JavaScript'],
    [createCpuDevice({ threads: 2, splitMinWork: 1 }), 'two threads'],
  ];
}
