/**
 * The WGSL test device: one runtime per test file on whatever adapter acquireGpu finds (here,
 * SwiftShader). When NEXGRAD_REQUIRE lists wgsl, a missing adapter fails the file; otherwise
 * the file's suites are replaced by one test that checks the failure is a named
 * GpuUnavailableError (so an unavailable backend is visible, never a silent pass).
 */
import { afterAll, describe, expect, test } from 'vitest';
import { GpuUnavailableError } from '../../../src/codegen/wgsl/gpu.js';
import { WgslRuntime, type WgslBuffer } from '../../../src/codegen/wgsl/runtime.js';
import type { WgslDevice } from '../../../src/codegen/wgsl/device.js';
import * as ng from '../../../src/index.js';
import { getDevice } from '../../../src/passes/backends.js';

export const wgslRequired = (process.env.NEXGRAD_REQUIRE ?? '').split(',').map((s) => s.trim()).includes('wgsl');

export interface WgslEnv {
  readonly rt: WgslRuntime | null;
  readonly error: unknown;
}

export async function openWgsl(): Promise<WgslEnv> {
  try {
    const rt = await WgslRuntime.create();
    afterAll(() => rt.destroy());
    return { rt, error: null };
  } catch (e) {
    if (wgslRequired) throw new Error(`NEXGRAD_REQUIRE lists wgsl, but no WebGPU device: ${e instanceof Error ? e.message : String(e)}`);
    return { rt: null, error: e };
  }
}

/** Registers `body` with the runtime, or, without a device, a test of the reason why. */
export function describeWgsl(name: string, env: WgslEnv, body: (rt: WgslRuntime) => void): void {
  if (env.rt) {
    describe(name, () => body(env.rt!));
    return;
  }
  test(`${name}: no WebGPU device here, for a named reason`, () => {
    expect(env.error).toBeInstanceOf(GpuUnavailableError);
    expect((env.error as Error).message).toMatch(/no navigator\.gpu|webgpu package is not installed|no Vulkan driver found|adapter request failed|device request failed/);
  });
}

export function uploadArray(rt: WgslRuntime, data: Float32Array | Int32Array | Uint32Array): WgslBuffer {
  const buf = rt.alloc(data.byteLength);
  rt.upload(buf, data);
  return buf;
}

export async function readF32(rt: WgslRuntime, buf: WgslBuffer, n = buf.bytes / 4): Promise<Float32Array> {
  return new Float32Array(await rt.read(buf, n * 4));
}
export async function readI32(rt: WgslRuntime, buf: WgslBuffer, n = buf.bytes / 4): Promise<Int32Array> {
  return new Int32Array(await rt.read(buf, n * 4));
}
export async function readU32(rt: WgslRuntime, buf: WgslBuffer, n = buf.bytes / 4): Promise<Uint32Array> {
  return new Uint32Array(await rt.read(buf, n * 4));
}

/** The 'wgsl' backend of the registry, or why it is not available. */
export interface WgslBackendEnv {
  readonly device: WgslDevice | null;
  readonly reason: string;
}

/** `await ng.init('wgsl')`: the backend's device (a missing one fails the file when NEXGRAD_REQUIRE lists wgsl). */
export async function wgslBackend(): Promise<WgslBackendEnv> {
  const available = await ng.init('wgsl');
  if (available.includes('wgsl')) return { device: getDevice('wgsl') as WgslDevice, reason: '' };
  const reason = ng.unavailableReasons().wgsl ?? 'unknown';
  if (wgslRequired) throw new Error(`NEXGRAD_REQUIRE lists wgsl, but the 'wgsl' backend is not available: ${reason}`);
  return { device: null, reason };
}

/** describe(...) on the wgsl backend, or, without it, one test that the reason is a named one. */
export function describeWgslBackend(name: string, env: WgslBackendEnv, body: (device: WgslDevice) => void): void {
  if (env.device) {
    describe(name, () => body(env.device!));
    return;
  }
  test(`${name}: the 'wgsl' backend is not available here, for a named reason`, () => {
    expect(env.reason).toMatch(/no navigator\.gpu|webgpu package is not installed|no Vulkan driver found|adapter request failed|device request failed/);
  });
}
