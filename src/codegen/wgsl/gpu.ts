/// <reference types="@webgpu/types" />
/**
 * Device acquisition for the WGSL backend: `navigator.gpu` in browsers (and runtimes that have
 * it), the `webgpu` npm package (Dawn) in Node. Every failure is a GpuUnavailableError whose
 * reason says what is missing, so callers can report why the backend is not available.
 *
 * Nothing here imports `node:*` at top level: the Node-only pieces are loaded lazily through
 * opaque specifiers so a browser bundle neither includes nor resolves them.
 */
import { NexgradError } from '../../ir/errors.js';

/** The adapter limits the runtime and the kernels plan around; all are requested at their maximum. */
export const REQUESTED_LIMITS = [
  'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxBufferSize',
  'maxStorageBufferBindingSize',
  'maxComputeWorkgroupsPerDimension',
  'maxUniformBufferBindingSize',
] as const;

export type GpuLimitName = (typeof REQUESTED_LIMITS)[number] | 'minUniformBufferOffsetAlignment' | 'minStorageBufferOffsetAlignment';
export type GpuLimits = Readonly<Record<GpuLimitName, number>>;

export type GpuUnavailableReason = 'no-navigator-gpu' | 'no-webgpu-package' | 'no-vulkan-driver' | 'adapter-request-failed' | 'device-request-failed';

/** Why no WebGPU device could be had; `reason` is machine-readable, the message is for people. */
export class GpuUnavailableError extends NexgradError {
  readonly reason: GpuUnavailableReason;
  constructor(reason: GpuUnavailableReason, message: string) {
    super(`wgsl: ${message}`);
    this.name = 'GpuUnavailableError';
    this.reason = reason;
  }
}

export interface AcquiredGpu {
  readonly device: GPUDevice;
  /** "vendor architecture device (description)", e.g. "google swiftshader ... (SwiftShader driver 5.0.0)". */
  readonly adapterInfo: string;
  readonly features: ReadonlySet<string>;
  readonly limits: GpuLimits;
  /** Where the device came from. */
  readonly source: 'navigator' | 'dawn' | 'given';
}

export interface AcquireOptions {
  /** A GPU object to use instead of discovering one (tests, embedders). */
  readonly gpu?: GPU;
  /** Force the discovery path; by default browsers use navigator.gpu and Node uses Dawn. */
  readonly environment?: 'browser' | 'node';
  readonly powerPreference?: GPUPowerPreference;
  /** Request 'shader-f16' when the adapter offers it (default true). */
  readonly f16?: boolean;
  /** Module that provides Dawn's `create(flags)` in Node (default 'webgpu'). */
  readonly dawnModule?: string;
  /** Flags passed to Dawn's create() (e.g. 'backend=vulkan'); default DEFAULT_DAWN_FLAGS. */
  readonly dawnFlags?: readonly string[];
  /** SwiftShader's Vulkan ICD file; used when no Vulkan driver is configured (Node only). */
  readonly swiftshaderIcd?: string;
}

export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

/**
 * Dawn's default flags in Node. Without `disable_workgroup_init`, Dawn zero-initialises every
 * workgroup array at each launch, which costs SwiftShader about a millisecond of shader compile
 * time per array element (two seconds for a GEMM's tiles, three for a depthwise conv's halo).
 * nexgrad's kernels write every workgroup element before reading it, so they never see that
 * initial value: WGSL code run on this runtime must keep to that.
 */
export const DEFAULT_DAWN_FLAGS: readonly string[] = Object.freeze(['enable-dawn-features=disable_workgroup_init']);
const NO_VULKAN = 'no Vulkan driver found (install chromium and libvulkan1, or set VK_ICD_FILENAMES)';

interface NodeGlobals {
  process?: { versions?: { node?: string }; env: Record<string, string | undefined>; platform: string };
  navigator?: { gpu?: GPU };
}
const globalScope = globalThis as unknown as NodeGlobals;

function isNode(): boolean {
  return typeof globalScope.process?.versions?.node === 'string';
}

/** A module import that bundlers leave alone (the specifier is not a literal). */
function lazyImport<T>(specifier: string): Promise<T> {
  return import(/* @vite-ignore */ specifier) as Promise<T>;
}

/**
 * Acquires a GPUDevice with the adapter's full limits for the values in REQUESTED_LIMITS and
 * 'shader-f16' when offered. Throws GpuUnavailableError naming what is missing.
 */
export async function acquireGpu(opts: AcquireOptions = {}): Promise<AcquiredGpu> {
  const { gpu, source } = await findGpu(opts);
  let adapter: GPUAdapter | null;
  try {
    adapter = await gpu.requestAdapter(opts.powerPreference ? { powerPreference: opts.powerPreference } : undefined);
  } catch (e) {
    throw new GpuUnavailableError('adapter-request-failed', `adapter request failed: ${messageOf(e)}`);
  }
  if (!adapter) throw await noAdapterError(source, opts);
  const requiredLimits: Record<string, number> = {};
  for (const name of REQUESTED_LIMITS) {
    const v = (adapter.limits as unknown as Record<string, number | undefined>)[name];
    if (typeof v === 'number') requiredLimits[name] = v;
  }
  const requiredFeatures: GPUFeatureName[] = [];
  if (opts.f16 !== false && adapter.features.has('shader-f16')) requiredFeatures.push('shader-f16');
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredLimits, requiredFeatures, label: 'nexgrad' });
  } catch (e) {
    throw new GpuUnavailableError('device-request-failed', `device request failed on ${describeAdapter(adapter)}: ${messageOf(e)}`);
  }
  return {
    device,
    adapterInfo: describeAdapter(adapter),
    features: new Set(device.features as unknown as Iterable<string>),
    limits: readLimits(device.limits),
    source,
  };
}

/** The device's limits that matter to the runtime, as plain numbers. */
export function readLimits(limits: GPUSupportedLimits): GpuLimits {
  const get = (name: GpuLimitName): number => Number((limits as unknown as Record<string, number>)[name]);
  const out = {} as Record<GpuLimitName, number>;
  for (const name of [...REQUESTED_LIMITS, 'minUniformBufferOffsetAlignment', 'minStorageBufferOffsetAlignment'] as const) out[name] = get(name);
  return out;
}

function describeAdapter(adapter: GPUAdapter): string {
  const info = adapter.info as GPUAdapterInfo | undefined;
  if (!info) return 'unknown adapter';
  const head = [info.vendor, info.architecture, info.device].filter((s) => s).join(' ');
  return info.description ? `${head} (${info.description})` : head || 'unknown adapter';
}

async function findGpu(opts: AcquireOptions): Promise<{ gpu: GPU; source: AcquiredGpu['source'] }> {
  if (opts.gpu) return { gpu: opts.gpu, source: 'given' };
  const env = opts.environment ?? (isNode() ? 'node' : 'browser');
  if (env === 'browser') {
    const gpu = globalScope.navigator?.gpu;
    if (!gpu) throw new GpuUnavailableError('no-navigator-gpu', 'no navigator.gpu: this browser does not expose WebGPU (or the page is not a secure context)');
    return { gpu, source: 'navigator' };
  }
  return { gpu: await dawnGpu(opts), source: 'dawn' };
}

interface DawnModule {
  create(flags: string[]): GPU;
}

/** One Dawn instance per (module, flags) per process: creating instances is not free. */
const dawnInstances = new Map<string, Promise<GPU>>();

function dawnGpu(opts: AcquireOptions): Promise<GPU> {
  const moduleName = opts.dawnModule ?? 'webgpu';
  const flags = [...(opts.dawnFlags ?? DEFAULT_DAWN_FLAGS)];
  const key = `${moduleName}\u0000${flags.join('\u0000')}`;
  let inst = dawnInstances.get(key);
  if (!inst) {
    inst = createDawn(moduleName, flags, opts.swiftshaderIcd ?? SWIFTSHADER_ICD);
    dawnInstances.set(key, inst);
    inst.catch(() => dawnInstances.delete(key));
  }
  return inst;
}

async function createDawn(moduleName: string, flags: string[], swiftshaderIcd: string): Promise<GPU> {
  await useSwiftShaderIfNoDriver(swiftshaderIcd);
  let mod: DawnModule;
  try {
    mod = await lazyImport<DawnModule>(moduleName);
  } catch (e) {
    throw new GpuUnavailableError('no-webgpu-package', `the ${moduleName} package is not installed (npm install ${moduleName}): ${messageOf(e)}`);
  }
  if (typeof mod.create !== 'function') {
    throw new GpuUnavailableError('no-webgpu-package', `the ${moduleName} package does not export create(flags)`);
  }
  return mod.create(flags);
}

/**
 * The Vulkan loader reads VK_ICD_FILENAMES / VK_DRIVER_FILES when Dawn creates its instance;
 * when neither names a driver and SwiftShader's ICD (shipped with Debian's chromium) exists,
 * point the loader at it so CPU-only machines get an adapter.
 */
async function useSwiftShaderIfNoDriver(icd: string): Promise<void> {
  const proc = globalScope.process;
  if (!proc || proc.platform !== 'linux') return;
  if (proc.env.VK_ICD_FILENAMES || proc.env.VK_DRIVER_FILES) return;
  if (await fileExists(icd)) proc.env.VK_ICD_FILENAMES = icd;
}

async function fileExists(file: string): Promise<boolean> {
  try {
    const fs = await lazyImport<typeof import('node:fs')>('node:fs');
    return fs.existsSync(file);
  } catch {
    return false;
  }
}

/** The Vulkan driver manifests the loader finds on its own (standard ICD directories). */
async function systemIcdFiles(): Promise<string[]> {
  try {
    const fs = await lazyImport<typeof import('node:fs')>('node:fs');
    const dirs = ['/usr/share/vulkan/icd.d', '/usr/local/share/vulkan/icd.d', '/etc/vulkan/icd.d'];
    return dirs.flatMap((d) => (fs.existsSync(d) ? fs.readdirSync(d).filter((f) => f.endsWith('.json')).map((f) => `${d}/${f}`) : []));
  } catch {
    return [];
  }
}

/** Whether libvulkan.so.1 (the loader Dawn opens) is in a standard library directory. */
async function vulkanLoaderPresent(ldLibraryPath: string | undefined): Promise<boolean> {
  const dirs = [...(ldLibraryPath ?? '').split(':').filter((d) => d), '/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/usr/local/lib', '/lib/x86_64-linux-gnu', '/lib64'];
  for (const d of dirs) if (await fileExists(`${d}/libvulkan.so.1`)) return true;
  return false;
}

async function noAdapterError(source: AcquiredGpu['source'], opts: AcquireOptions): Promise<GpuUnavailableError> {
  if (source !== 'dawn') return new GpuUnavailableError('adapter-request-failed', `adapter request failed: ${source === 'navigator' ? 'navigator.gpu' : 'the given GPU'} returned no adapter`);
  const env = globalScope.process?.env ?? {};
  const configured = env.VK_ICD_FILENAMES || env.VK_DRIVER_FILES;
  if (globalScope.process?.platform === 'linux' && !(await vulkanLoaderPresent(env.LD_LIBRARY_PATH))) {
    return new GpuUnavailableError('no-vulkan-driver', `${NO_VULKAN}; the Vulkan loader libvulkan.so.1 is missing`);
  }
  if (!configured && (await systemIcdFiles()).length === 0) {
    return new GpuUnavailableError('no-vulkan-driver', `${NO_VULKAN}; looked for ${opts.swiftshaderIcd ?? SWIFTSHADER_ICD} and the system ICD directories`);
  }
  const where = configured ? `Vulkan driver ${configured}` : 'the system Vulkan drivers';
  return new GpuUnavailableError('adapter-request-failed', `adapter request failed: Dawn found no adapter with ${where} (is libvulkan1 installed?)`);
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
