/**
 * Weights for `eval` and `inspect` from any file the commands produce or accept: a fine-tuning
 * checkpoint (EMA or raw weights), a pretraining checkpoint (its encoder), model.safetensors /
 * fcmae.safetensors (their `nexgrad.config` metadata gives the shape), or an official / timm /
 * FCMAE checkpoint (its shape from the --model flags).
 */
import * as random from '../../ir/random.js';
import { readSafetensors, serializeSafetensors, type SafeTensor } from '../../nn/safetensors.js';
import { loadCheckpointDetailed } from '../checkpoint.js';
import { config as makeConfig, type ConvNeXtV2Config } from '../config.js';
import { type ConvNeXtV2Params, encoderSpec, init } from '../model.js';
import { initFromSpec } from '../../nn/init.js';
import type { EncoderParams } from '../model.js';
import { readTrainCheckpoint } from '../train/checkpoint_files.js';
import { configFromMeta } from './model_meta.js';
import { UsageError } from './usage_error.js';

export interface LoadedModel {
  cfg: ConvNeXtV2Config;
  /** The whole classifier, or only the encoder (pretraining files). */
  params: ConvNeXtV2Params | EncoderParams;
  classifier: boolean;
  what: string;
}

function under(tensors: Map<string, SafeTensor>, prefix: string): Map<string, SafeTensor> {
  return new Map([...tensors].filter(([k]) => k.startsWith(prefix)).map(([k, t]) => [k.slice(prefix.length), t] as const));
}

function encoderTemplate(cfg: ConvNeXtV2Config): EncoderParams {
  return initFromSpec<EncoderParams>(random.key(0), encoderSpec(cfg), cfg.dtype);
}

/** Loads `file`; `fallback` gives the configuration of a file that does not carry one. */
export function loadModel(file: string, weights: 'ema' | 'params', fallback: () => ConvNeXtV2Config): LoadedModel {
  const raw = readSafetensors(file);
  if (raw.metadata['nexgrad.train'] !== undefined) {
    const { tensors, meta } = readTrainCheckpoint(file);
    const cfg = configFromMeta(meta.model, file);
    if (meta.kind === 'pretrain') {
      const enc = serializeSafetensors(under(tensors, 'params.encoder.'));
      const params = loadCheckpointDetailed<EncoderParams>(enc, encoderTemplate(cfg), { layout: 'official' }).params;
      return { cfg, params, classifier: false, what: `the encoder of a pretraining checkpoint at step ${String(meta.step)}` };
    }
    const prefix = weights === 'ema' && [...tensors.keys()].some((k) => k.startsWith('ema.')) ? 'ema.' : 'params.';
    const params = loadCheckpointDetailed<ConvNeXtV2Params>(serializeSafetensors(under(tensors, prefix)), init(random.key(0), cfg), { layout: 'official' }).params;
    return { cfg, params, classifier: true, what: `the ${prefix === 'ema.' ? 'EMA' : 'raw'} weights of a fine-tuning checkpoint at step ${String(meta.step)}` };
  }
  const text = raw.metadata['nexgrad.config'];
  if (text === undefined) {
    const cfg = fallback();
    const params = loadCheckpointDetailed<ConvNeXtV2Params>(file, init(random.key(0), cfg)).params;
    return { cfg, params, classifier: true, what: `a ${cfg.name} model file` };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new UsageError(`${file}: its nexgrad.config metadata is not valid JSON`);
  }
  const enc = parsed && typeof parsed === 'object' && 'encoder' in parsed ? (parsed as { encoder: unknown }).encoder : undefined;
  if (enc !== undefined) {
    // fcmae.safetensors: the encoder of an FCMAE model
    const cfg = makeConfig('custom', { ...configFromMeta(enc, file), numClasses: 0 });
    const params = loadCheckpointDetailed<ConvNeXtV2Params>(file, init(random.key(0), cfg), { dropDecoder: true }).params;
    return { cfg, params, classifier: false, what: 'the encoder of an FCMAE model file' };
  }
  const cfg = configFromMeta(parsed, file);
  const params = loadCheckpointDetailed<ConvNeXtV2Params>(file, init(random.key(0), cfg)).params;
  return { cfg, params, classifier: true, what: 'a nexgrad model file' };
}
