/**
 * Node 20's V8 (11.3) runs WebAssembly relaxed SIMD only behind a flag; from V8 11.4 (Chrome
 * 114, Node 22) it is on by default. nexgrad's own processes (the CLI, the benches) import this
 * first so that the WebAssembly path's GEMM can use f32x4.relaxed_madd (an FMA on this kind of
 * CPU) there too; it is validated before use (codegen/cpu/wasm.ts, relaxedSimdAvailable). The
 * library itself never sets V8 flags in its users' processes.
 */
import v8 from 'node:v8';

const [major = 0, minor = 0] = process.versions.v8.split('.').map(Number);
if (major < 11 || (major === 11 && minor < 4)) v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
