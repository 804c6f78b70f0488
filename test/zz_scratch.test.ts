import { it } from 'vitest';
import { readSafetensors } from '../src/nn/safetensors.js';
it('x', () => {
  for (const f of ['ops','tiny','fcmae_tiny']) {
    const r = readSafetensors(`/work/shared/refs/${f}.safetensors`);
    console.log(f, [...r.tensors].map(([k,v]) => `${k} ${v.dtype} [${v.shape}]`).join('\n'));
    console.log(r.metadata);
  }
});
