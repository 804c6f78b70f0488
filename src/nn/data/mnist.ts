/** MNIST and Fashion-MNIST from their IDX files (raw or .gz), and where Debian installs Fashion-MNIST. */
import { readIdx } from './idx.js';
import { DataError, type ImageDataset } from './types.js';
import { U8ImageDataset } from './u8_dataset.js';
import { lazyNode } from '../../ir/node_builtins.js';

// Node modules, looked up on first use (these features need Node; the module itself loads anywhere)
const fs = lazyNode('fs', 'the MNIST readers');
const path = lazyNode('path', 'the MNIST readers');
const childProcess = lazyNode('child_process', 'the MNIST readers');

export const FASHION_MNIST_CLASSES: readonly string[] = Object.freeze([
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
]);
export const MNIST_CLASSES: readonly string[] = Object.freeze(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);

const FILE_STEMS = { train: 'train', test: 't10k' } as const;
const FASHION_PACKAGE = 'dataset-fashion-mnist';
const FASHION_ENV = 'NEXGRAD_FASHION_MNIST_DIR';
const MNIST_ENV = 'NEXGRAD_MNIST_DIR';

/** `<dir>/<name>` or `<dir>/<name>.gz`, whichever exists. */
function idxFile(dir: string, name: string): string {
  for (const f of [name, `${name}.gz`]) {
    const p = path.join(dir, f);
    if (fs.existsSync(p)) return p;
  }
  throw new DataError(`${dir}: neither ${name} nor ${name}.gz exists`);
}

function requireSplit(where: string, split: unknown): 'train' | 'test' {
  if (split !== 'train' && split !== 'test') throw new DataError(`${where}: split must be 'train' or 'test', got ${JSON.stringify(split)}`);
  return split;
}

/** An MNIST-layout dataset (28x28 grey images, 10 classes) from the IDX pair of one split. */
function idxDataset(dir: string, split: 'train' | 'test', classNames: readonly string[]): ImageDataset {
  const stem = FILE_STEMS[split];
  const imagesFile = idxFile(dir, `${stem}-images-idx3-ubyte`);
  const labelsFile = idxFile(dir, `${stem}-labels-idx1-ubyte`);
  const images = readIdx(imagesFile, 3);
  const labels = readIdx(labelsFile, 1);
  if (images.dims[0] !== labels.dims[0]) {
    throw new DataError(`${imagesFile} holds ${images.dims[0]} images but ${labelsFile} holds ${labels.dims[0]} labels`);
  }
  return new U8ImageDataset({
    source: imagesFile,
    pixels: images.data,
    labels: labels.data,
    channels: 1,
    height: images.dims[1]!,
    width: images.dims[2]!,
    numClasses: classNames.length,
    classNames,
  });
}

function dirFromEnv(env: string): string | undefined {
  const v = process.env[env];
  if (v === undefined || v === '') return undefined;
  if (!fs.existsSync(v) || !fs.statSync(v).isDirectory()) throw new DataError(`${env}=${v} is not a directory`);
  return v;
}

/** The folder holding Debian's Fashion-MNIST files, from `dpkg -L`, or undefined. */
function dpkgFashionDir(): string | undefined {
  let listing: string;
  try {
    listing = childProcess.execFileSync('dpkg', ['-L', FASHION_PACKAGE], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 });
  } catch {
    return undefined; // no dpkg, or the package is not installed
  }
  const hit = listing.split('\n').find((l) => /\/train-images-idx3-ubyte(\.gz)?$/.test(l.trim()));
  return hit ? path.dirname(hit.trim()) : undefined;
}

/**
 * Where Fashion-MNIST's IDX files are: $NEXGRAD_FASHION_MNIST_DIR, else the folder Debian's
 * dataset-fashion-mnist package installed (found with `dpkg -L`), else a DataError saying how to
 * get it.
 */
export function findFashionMnistDir(): string {
  const env = dirFromEnv(FASHION_ENV);
  if (env !== undefined) return env;
  const deb = dpkgFashionDir();
  if (deb !== undefined) return deb;
  throw new DataError(
    `Fashion-MNIST not found: install Debian's package (as root: apt-get install ${FASHION_PACKAGE}; bash scripts/setup.sh does this), ` +
      `or set ${FASHION_ENV} to a folder holding train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz`,
  );
}

/** Fashion-MNIST (60000 train / 10000 test 28x28 grey images, 10 classes). */
export function fashionMnist(split: 'train' | 'test', opts: { dir?: string } = {}): ImageDataset {
  const s = requireSplit('fashionMnist', split);
  return idxDataset(opts.dir ?? findFashionMnistDir(), s, FASHION_MNIST_CLASSES);
}

/** MNIST digits from `opts.dir` or $NEXGRAD_MNIST_DIR (same file names as Fashion-MNIST). */
export function mnist(split: 'train' | 'test', opts: { dir?: string } = {}): ImageDataset {
  const s = requireSplit('mnist', split);
  const dir = opts.dir ?? dirFromEnv(MNIST_ENV);
  if (dir === undefined) {
    throw new DataError(`mnist: no folder given: pass { dir } or set ${MNIST_ENV} to a folder holding train-images-idx3-ubyte(.gz) and the other three IDX files`);
  }
  return idxDataset(dir, s, MNIST_CLASSES);
}
