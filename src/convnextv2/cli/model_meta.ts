/**
 * A model configuration read back from a file's metadata (a training checkpoint's `model`, or
 * the `nexgrad.config` of model.safetensors). The file is untrusted: only the known fields are
 * taken, and config() checks every one of them.
 */
import { config as makeConfig, type ConvNeXtV2Config } from '../config.js';
import { CheckpointFileError } from '../train/checkpoint_files.js';

const FIELDS = ['depths', 'dims', 'numClasses', 'inChans', 'stemStride', 'dropPathRate', 'dtype', 'layerNormEps', 'grnEps'] as const;

export function configFromMeta(raw: unknown, file: string): ConvNeXtV2Config {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new CheckpointFileError(file, 'has no model configuration in its metadata');
  const o = raw as Record<string, unknown>;
  const picked: Record<string, unknown> = {};
  for (const k of FIELDS) if (Object.prototype.hasOwnProperty.call(o, k)) picked[k] = o[k];
  try {
    return makeConfig('custom', { ...picked, name: typeof o.name === 'string' ? o.name.slice(0, 40) : 'custom' } as never);
  } catch (e) {
    throw new CheckpointFileError(file, `its model configuration is invalid (${e instanceof Error ? e.message : String(e)})`);
  }
}
