/**
 * Model flags shared by the commands: a zoo name or a custom shape, the stem stride (small
 * images), drop path, precision. `--model` takes the eight ConvNeXt V2 variants and `mini`,
 * the small model of the README's main job (Fashion-MNIST on a CPU).
 */
import { Command, Option } from 'commander';
import { config as makeConfig, type ConvNeXtV2Config, VARIANT_NAMES, VARIANTS } from '../config.js';
import { choice, intList, numberIn, positiveInt } from './parse.js';
import { UsageError } from './usage_error.js';

export interface Preset {
  readonly depths: readonly number[];
  readonly dims: readonly number[];
  readonly stemStride: number;
}

/** `--model mini`: tuned on Fashion-MNIST for the 10-minute CPU budget (README, bench/accuracy.sh). */
export const MINI: Preset = Object.freeze({ depths: [2, 2], dims: [48, 96], stemStride: 4 });

export const MODEL_NAMES = Object.freeze(['mini', ...VARIANT_NAMES, 'custom'] as const);
export type ModelName = (typeof MODEL_NAMES)[number];

export interface ModelFlags {
  model: ModelName;
  dims?: number[];
  depths?: number[];
  stemStride?: number;
  dropPath: number;
  precision: 'f32' | 'f64';
}

export function addModelOptions(cmd: Command, defaults: { model: ModelName; dropPath?: number }): Command {
  return cmd
    .addOption(new Option('--model <name>', `model: ${MODEL_NAMES.join(', ')} (custom needs --dims and --depths)`).argParser(choice(MODEL_NAMES)).default(defaults.model))
    .addOption(new Option('--dims <list>', 'channels per stage, e.g. 48,96 (overrides the model)').argParser(intList('48,96')))
    .addOption(new Option('--depths <list>', 'blocks per stage, e.g. 2,2 (overrides the model)').argParser(intList('2,2', 0)))
    .addOption(new Option('--stem-stride <n>', 'stride of the stem conv (4 in the zoo; 1 or 2 for small images)').argParser(positiveInt(2)))
    .addOption(new Option('--drop-path <rate>', 'stochastic depth rate of the last block').argParser(numberIn(0, 1, 0.1, true)).default(defaults.dropPath ?? 0))
    .addOption(new Option('--precision <dtype>', 'parameter and activation dtype').argParser(choice(['f32', 'f64'] as const)).default('f32'));
}

/** The ConvNeXt V2 configuration the flags describe, for `numClasses` classes of `inChans` channels. */
export function modelConfig(f: ModelFlags, numClasses: number, inChans: number): ConvNeXtV2Config {
  const base: Partial<Preset> = f.model === 'mini' ? MINI : f.model === 'custom' ? {} : { ...VARIANTS[f.model], stemStride: 4 };
  const depths = f.depths ?? base.depths;
  const dims = f.dims ?? base.dims;
  if (!depths || !dims) throw new UsageError("--model custom needs --dims and --depths (e.g. --dims 48,96 --depths 2,2)");
  if (depths.length !== dims.length) throw new UsageError(`--dims has ${dims.length} stages but --depths has ${depths.length}; give one entry per stage in each`);
  const custom = f.dims !== undefined || f.depths !== undefined || f.stemStride !== undefined;
  return makeConfig('custom', {
    name: custom ? 'custom' : f.model,
    depths,
    dims,
    stemStride: f.stemStride ?? base.stemStride ?? 4,
    numClasses,
    inChans,
    dropPathRate: f.dropPath,
    dtype: f.precision,
  });
}
