/** A view of some of a dataset's examples, in the order given. */
import { DataError, type Example, type ImageDataset } from './types.js';

export function subset(ds: ImageDataset, indices: ArrayLike<number>): ImageDataset {
  if (ds === null || typeof ds !== 'object' || typeof ds.get !== 'function') throw new DataError('subset: the first argument must be an ImageDataset');
  if (indices === null || typeof indices !== 'object' || typeof indices.length !== 'number') throw new DataError('subset: indices must be an array of integers');
  const idx = new Int32Array(indices.length);
  for (let j = 0; j < indices.length; j++) {
    const i = indices[j];
    if (typeof i !== 'number' || !Number.isInteger(i) || i < 0 || i >= ds.length) {
      throw new DataError(`subset: indices[${j}] = ${String(i)} is not an index of the dataset (length ${ds.length})`);
    }
    idx[j] = i;
  }
  const view: ImageDataset = {
    length: idx.length,
    channels: ds.channels,
    height: ds.height,
    width: ds.width,
    numClasses: ds.numClasses,
    ...(ds.classNames ? { classNames: ds.classNames } : {}),
    get(j: number): Example | Promise<Example> {
      if (!Number.isInteger(j) || j < 0 || j >= idx.length) throw new DataError(`subset: index ${j} out of range [0, ${idx.length})`);
      return ds.get(idx[j]!);
    },
  };
  return Object.freeze(view);
}
