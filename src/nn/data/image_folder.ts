/**
 * ImageFolder: `dir/<class>/**.{jpg,jpeg,png}`, classes the sorted sub-directory names, images
 * decoded and resized with sharp (libvips, on libuv's thread pool) when they are read. Files
 * are untrusted: decoding is bounded by a pixel limit, and an unreadable image is named in the
 * error.
 */
import { loadSharp, type Sharp } from './sharp.js';
import { DataError, type Example, type ImageDataset, requireInt } from './types.js';
import { lazyNode } from '../../ir/node_builtins.js';
import type { Dirent, Stats } from 'node:fs';

// Node modules, looked up on first use (these features need Node; the module itself loads anywhere)
const fs = lazyNode('fs', 'image folders');
const path = lazyNode('path', 'image folders');


const IMAGE_EXT = /\.(jpe?g|png)$/i;
/** Deepest folder nesting searched under a class folder. */
const MAX_DEPTH = 16;
/** Most files listed, so a huge tree fails with a message instead of exhausting memory. */
const MAX_FILES = 10_000_000;
/** Largest decoded input accepted (pixels): a decompression bomb is refused, not allocated. */
const MAX_INPUT_PIXELS = 1 << 27;

export interface ImageFolderOptions {
  /** Output size: a square side, or [height, width]. */
  size: number | [number, number];
  /** 1 (grey) or 3 (RGB, default); alpha is dropped. */
  channels?: 1 | 3;
  /**
   * How an image meets the size: 'cover' (default) scales it to cover the size and crops the
   * centre, keeping its aspect ratio; 'fill' stretches it.
   */
  fit?: 'cover' | 'fill';
}

function listImages(dir: string, depth: number, out: string[]): void {
  if (depth > MAX_DEPTH) throw new DataError(`imageFolder: ${dir} is nested more than ${MAX_DEPTH} folders deep`);
  const entries = fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) listImages(p, depth + 1, out);
    else if (e.isFile() && IMAGE_EXT.test(e.name)) {
      if (out.length >= MAX_FILES) throw new DataError(`imageFolder: more than ${MAX_FILES} images under ${dir}`);
      out.push(p);
    }
  }
}

function outputSize(size: unknown): [number, number] {
  if (typeof size === 'number') {
    const s = requireInt('imageFolder', 'size', size, 1, 16384);
    return [s, s];
  }
  if (Array.isArray(size) && size.length === 2) {
    return [requireInt('imageFolder', 'size[0]', size[0], 1, 16384), requireInt('imageFolder', 'size[1]', size[1], 1, 16384)];
  }
  throw new DataError(`imageFolder: size must be a positive integer or [height, width], got ${JSON.stringify(size)}`);
}

class ImageFolderDataset implements ImageDataset {
  readonly length: number;
  readonly numClasses: number;
  constructor(
    private readonly sharp: Sharp,
    private readonly files: readonly string[],
    private readonly labels: Int32Array,
    readonly classNames: readonly string[],
    readonly channels: 1 | 3,
    readonly height: number,
    readonly width: number,
    private readonly fit: 'cover' | 'fill',
  ) {
    this.length = files.length;
    this.numClasses = classNames.length;
  }

  async get(i: number): Promise<Example> {
    if (!Number.isInteger(i) || i < 0 || i >= this.length) throw new DataError(`imageFolder: index ${i} out of range [0, ${this.length})`);
    const file = this.files[i]!;
    let raw: Buffer;
    try {
      let img = this.sharp(file, { limitInputPixels: MAX_INPUT_PIXELS, failOn: 'error' })
        .rotate() // honour EXIF orientation, as a viewer would show the photo
        .resize(this.width, this.height, { fit: this.fit, kernel: 'linear' })
        .removeAlpha();
      img = this.channels === 1 ? img.toColourspace('b-w') : img.toColourspace('srgb');
      raw = await img.raw().toBuffer();
    } catch (e) {
      throw new DataError(`imageFolder: cannot read image ${file}: ${(e as Error).message}`);
    }
    const hw = this.height * this.width;
    if (raw.length !== hw * this.channels) {
      throw new DataError(`imageFolder: ${file} decoded to ${raw.length} bytes, expected ${this.height}x${this.width}x${this.channels}`);
    }
    // sharp gives HWC bytes; the pipeline wants CHW floats in [0, 1].
    const image = new Float32Array(this.channels * hw);
    for (let p = 0; p < hw; p++) for (let c = 0; c < this.channels; c++) image[c * hw + p] = raw[p * this.channels + c]! / 255;
    return { image, label: this.labels[i]! };
  }
}

/** A dataset of the JPEG/PNG images under `dir/<class>/`, classes in sorted name order. */
export async function imageFolder(dir: string, opts: ImageFolderOptions): Promise<ImageDataset> {
  if (typeof dir !== 'string') throw new DataError('imageFolder: dir must be a folder path');
  if (opts === null || typeof opts !== 'object') throw new DataError('imageFolder: options { size } are required');
  const [height, width] = outputSize(opts.size);
  const channels = opts.channels ?? 3;
  if (channels !== 1 && channels !== 3) throw new DataError(`imageFolder: channels must be 1 or 3, got ${JSON.stringify(channels)}`);
  const fit = opts.fit ?? 'cover';
  if (fit !== 'cover' && fit !== 'fill') throw new DataError(`imageFolder: fit must be 'cover' or 'fill', got ${JSON.stringify(fit)}`);
  let entries: Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch (e) {
    throw new DataError(`imageFolder: cannot list ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const classNames = entries.filter((e) => e.isDirectory()).map((e) => e.name).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (classNames.length === 0) throw new DataError(`imageFolder: ${dir} has no class sub-folders (expected ${dir}/<class>/<image>.png)`);
  const files: string[] = [];
  const labels: number[] = [];
  classNames.forEach((name, k) => {
    const before = files.length;
    listImages(path.join(dir, name), 0, files);
    if (files.length === before) throw new DataError(`imageFolder: class folder ${path.join(dir, name)} holds no .jpg, .jpeg or .png images`);
    for (let j = before; j < files.length; j++) labels.push(k);
  });
  const sharp = await loadSharp();
  return new ImageFolderDataset(sharp, files, Int32Array.from(labels), Object.freeze(classNames), channels, height, width, fit);
}
