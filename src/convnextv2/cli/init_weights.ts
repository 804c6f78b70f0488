/**
 * `finetune --init <file>`: starting weights from an FCMAE pretraining run (ours: fcmae.safetensors
 * or a pretraining checkpoint), an official / timm / FCMAE checkpoint, or a fine-tuning run.
 * Decoder keys are dropped and a head of another shape (or none) is left fresh from the
 * template (spec 4.5).
 */
import { readSafetensors, serializeSafetensors, type SafeTensor } from '../../nn/safetensors.js';
import { loadCheckpointDetailed } from '../checkpoint.js';
import type { ConvNeXtV2Params } from '../model.js';
import { readTrainCheckpoint } from '../train/checkpoint_files.js';

export interface InitReport {
  params: ConvNeXtV2Params;
  /** What the file was read as. */
  source: string;
  /** Model tensors the file did not provide (kept from the template: the fresh head). */
  fresh: string[];
}

/** The tensors under `prefix` of a training checkpoint, renamed without it. */
function withoutPrefix(tensors: Map<string, SafeTensor>, prefix: string): Map<string, SafeTensor> {
  const out = new Map<string, SafeTensor>();
  for (const [k, t] of tensors) if (k.startsWith(prefix)) out.set(k.slice(prefix.length), t);
  return out;
}

export function loadInitWeights(file: string, template: ConvNeXtV2Params): InitReport {
  const raw = readSafetensors(file);
  let bytes: Uint8Array | string = file;
  let source = 'a model file';
  if (raw.metadata['nexgrad.train'] !== undefined) {
    const { tensors, meta } = readTrainCheckpoint(file);
    if (meta.kind === 'pretrain') {
      // FCMAE params keep their `encoder.` names: the fcmae layout
      bytes = serializeSafetensors(withoutPrefix(tensors, 'params.'));
      source = 'an FCMAE pretraining checkpoint';
    } else {
      const ema = withoutPrefix(tensors, 'ema.');
      bytes = serializeSafetensors(ema.size ? ema : withoutPrefix(tensors, 'params.'));
      source = `a fine-tuning checkpoint (${ema.size ? 'EMA' : 'raw'} weights)`;
    }
  }
  const r = loadCheckpointDetailed<ConvNeXtV2Params>(bytes, template, { dropDecoder: true });
  return { params: r.params, source: `${source}, ${r.layout} layout`, fresh: r.missing };
}
