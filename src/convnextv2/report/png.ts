/** PNG encoding (SVG rasterised by sharp/librsvg, or raw RGB pixels) and atomic file writes. */
import { NexgradError } from '../../ir/errors.js';
import { loadSharp } from '../../nn/data/sharp.js';
import { lazyNode } from '../../ir/node_builtins.js';

// Node modules, looked up on first use (these features need Node; the module itself loads anywhere)
const fs = lazyNode('fs', 'writing PNG files');
const path = lazyNode('path', 'writing PNG files');
const nodeCrypto = lazyNode('crypto', 'writing PNG files');

/** Rasterises an SVG document (its width and height in px) to an opaque RGB PNG. */
export async function svgToPng(svg: string): Promise<Uint8Array> {
  const sharp = await loadSharp();
  const out = await sharp(Buffer.from(svg, 'utf8'), { density: 72 }).flatten({ background: '#ffffff' }).png().toBuffer();
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}

/** Encodes width x height RGB bytes (row-major, 3 per pixel), with SVG overlays composited on top. */
export async function rgbToPng(rgb: Uint8Array, width: number, height: number, overlays: readonly string[] = []): Promise<Uint8Array> {
  const sharp = await loadSharp();
  let img = sharp(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.length), { raw: { width, height, channels: 3 } });
  if (overlays.length > 0) {
    // Composite onto the decoded base so the overlays' antialiased edges blend with it.
    const base = await img.png().toBuffer();
    img = sharp(base).composite(overlays.map((s) => ({ input: Buffer.from(s, 'utf8'), top: 0, left: 0 }))).flatten({ background: '#ffffff' });
  }
  const out = await img.png().toBuffer();
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}

/** Writes bytes to `file` atomically: a temporary name in the same folder, then a rename. */
export function writeFileAtomic(file: string, bytes: Uint8Array): void {
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${nodeCrypto.randomBytes(6).toString('hex')}.tmp`);
  try {
    fs.writeFileSync(tmp, bytes);
    fs.renameSync(tmp, file);
  } catch (e) {
    try {
      fs.unlinkSync(tmp);
    } catch {
      // the temporary file was never created
    }
    throw new NexgradError(`cannot write ${file}: ${(e as Error).message}`);
  }
}
