/** sharp (libvips), loaded on first use so the rest of the library never needs its native binary. */
import { DataError } from './types.js';

export type Sharp = typeof import('sharp').default;

let sharpModule: Promise<Sharp> | undefined;

export function loadSharp(): Promise<Sharp> {
  sharpModule ??= import('sharp').then((m) => m.default).catch((e: unknown) => {
    sharpModule = undefined;
    throw new DataError(`the 'sharp' package is needed to decode and write images but could not be loaded: ${(e as Error).message}`);
  });
  return sharpModule;
}
