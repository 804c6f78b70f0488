/** nexgrad.data: datasets (Fashion-MNIST, MNIST, CIFAR-10, ImageFolder, synthetic), the loader, resize. */
export type { Example, ImageDataset, Batch, Augment, LoaderOptions } from './types.js';
export { DataError } from './types.js';
export { fashionMnist, mnist, findFashionMnistDir, FASHION_MNIST_CLASSES, MNIST_CLASSES } from './mnist.js';
export { cifar10, CIFAR10_CLASSES } from './cifar.js';
export { imageFolder, type ImageFolderOptions } from './image_folder.js';
export { synthetic, type SyntheticOptions } from './synthetic.js';
export { subset } from './subset.js';
export { readIdx, type IdxArray } from './idx.js';
export { DataLoader } from './loader.js';
export { resize, type ResizeOptions } from './resize.js';
