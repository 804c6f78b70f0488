/**
 * The real Fashion-MNIST from Debian's dataset-fashion-mnist (setup.sh installs it as root). Where
 * neither the package nor NEXGRAD_FASHION_MNIST_DIR is present, the test checks instead that
 * findFashionMnistDir says how to install it.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { fashionMnist, findFashionMnistDir } from '../../../src/nn/data/mnist.js';
import type { Example } from '../../../src/nn/data/types.js';

function installed(): boolean {
  if (process.env.NEXGRAD_FASHION_MNIST_DIR) return true;
  try {
    execFileSync('dpkg', ['-s', 'dataset-fashion-mnist'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('Fashion-MNIST (Debian package)', () => {
  it(installed() ? 'reads 60000 train and 10000 test images, labels 0..9 balanced, pixels spanning [0, 1]' : 'is missing: the error says how to install it', () => {
    if (!installed()) {
      expect(() => findFashionMnistDir()).toThrow(/apt-get install dataset-fashion-mnist.*NEXGRAD_FASHION_MNIST_DIR/);
      return;
    }
    const dir = findFashionMnistDir();
    for (const [split, n] of [['train', 60000], ['test', 10000]] as const) {
      const ds = fashionMnist(split, { dir });
      expect([ds.length, ds.channels, ds.height, ds.width, ds.numClasses]).toEqual([n, 1, 28, 28, 10]);
      // Fashion-MNIST is balanced: n / 10 images per class.
      const counts = new Array(10).fill(0);
      let lo = 1;
      let hi = 0;
      let sum = 0;
      for (let i = 0; i < n; i++) {
        const { image, label } = ds.get(i) as Example;
        counts[label]++;
        if (i % 50 === 0) {
          for (const v of image) {
            lo = Math.min(lo, v);
            hi = Math.max(hi, v);
            sum += v;
          }
        }
      }
      expect(counts).toEqual(new Array(10).fill(n / 10));
      expect(lo).toBe(0);
      expect(hi).toBe(1);
      // The dataset's mean pixel is about 0.286 (72.9 / 255).
      expect(sum / ((n / 50) * 784)).toBeGreaterThan(0.26);
      expect(sum / ((n / 50) * 784)).toBeLessThan(0.31);
    }
  });
});
