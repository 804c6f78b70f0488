/** An in-memory dataset of 8-bit CHW images and labels (what IDX and CIFAR files hold). */
import { DataError, type Example, type ImageDataset } from './types.js';

export interface U8DatasetSpec {
  /** Where the data came from, for messages. */
  readonly source: string;
  /** N * C * H * W bytes, image by image, each CHW. */
  readonly pixels: Uint8Array;
  readonly labels: Uint8Array;
  readonly channels: number;
  readonly height: number;
  readonly width: number;
  readonly numClasses: number;
  readonly classNames?: readonly string[];
}

export class U8ImageDataset implements ImageDataset {
  readonly length: number;
  readonly channels: number;
  readonly height: number;
  readonly width: number;
  readonly numClasses: number;
  readonly classNames?: readonly string[];
  private readonly pixels: Uint8Array;
  private readonly labels: Uint8Array;
  private readonly source: string;

  constructor(spec: U8DatasetSpec) {
    const per = spec.channels * spec.height * spec.width;
    this.length = spec.labels.length;
    if (spec.pixels.length !== this.length * per) {
      throw new DataError(`${spec.source}: ${spec.pixels.length} pixel bytes for ${this.length} labels of ${per} bytes each`);
    }
    // Labels are checked once here, so get() never hands out a label the model cannot use.
    for (let i = 0; i < this.length; i++) {
      if (spec.labels[i]! >= spec.numClasses) {
        throw new DataError(`${spec.source}: label ${spec.labels[i]} at index ${i} is out of range [0, ${spec.numClasses})`);
      }
    }
    this.channels = spec.channels;
    this.height = spec.height;
    this.width = spec.width;
    this.numClasses = spec.numClasses;
    if (spec.classNames) this.classNames = spec.classNames;
    this.pixels = spec.pixels;
    this.labels = spec.labels;
    this.source = spec.source;
  }

  get(i: number): Example {
    if (!Number.isInteger(i) || i < 0 || i >= this.length) {
      throw new DataError(`${this.source}: index ${i} out of range [0, ${this.length})`);
    }
    const per = this.channels * this.height * this.width;
    const src = this.pixels.subarray(i * per, (i + 1) * per);
    const image = new Float32Array(per);
    for (let j = 0; j < per; j++) image[j] = src[j]! / 255;
    return { image, label: this.labels[i]! };
  }
}
