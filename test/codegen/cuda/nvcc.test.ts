/**
 * The nvcc harness: hand-written kernels of each kind compile to sm_90 cubins (checked as CUDA
 * ELF files that define the kernel), and a broken one fails with nvcc's own error text.
 */
import { existsSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { AXPY, BROKEN, ELEMENTWISE, MMA_BF16, ROW_SUM } from '../../../bench/gpu/kernels.js';
import { compileWithNvcc, NVCC } from './nvcc.js';

const EM_CUDA = 190;

/** Whether `bytes` is an ELF for NVIDIA GPUs whose string tables name `symbol`. */
function isCudaElfDefining(bytes: Uint8Array, symbol: string): boolean {
  const header = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (header.subarray(0, 4).toString('latin1') !== '\x7fELF') return false;
  if (header.readUInt16LE(18) !== EM_CUDA) return false;
  return header.includes(Buffer.from(`${symbol}\0`, 'latin1'));
}

describe('nvcc compile check (no GPU needed)', () => {
  test('the toolkit is where CI expects it', () => {
    expect(existsSync(NVCC), `${NVCC} (CUDA toolkit)`).toBe(true);
  });

  test('elementwise, axpy, warp-shuffle reduction and mma.sync bf16 kernels compile; a broken one reports its error', async () => {
    const results = await compileWithNvcc([
      { name: 'mul_add_gelu', source: ELEMENTWISE },
      { name: 'axpy', source: AXPY },
      { name: 'row_sum', source: ROW_SUM },
      { name: 'mma_bf16_16x8x16', source: MMA_BF16 },
      { name: 'broken', source: BROKEN },
    ]);
    expect(results.map((r) => [r.name, r.ok])).toEqual([
      ['mul_add_gelu', true],
      ['axpy', true],
      ['row_sum', true],
      ['mma_bf16_16x8x16', true],
      ['broken', false],
    ]);
    for (const result of results.slice(0, 4)) {
      expect(isCudaElfDefining(result.cubin!, result.name), result.name).toBe(true);
    }
    const broken = results[4]!;
    expect(broken.cubin).toBeUndefined();
    expect(broken.log).toMatch(/broken\.cu\(2\): error: identifier "undeclared_scale" is undefined/);
  });

  test('an instruction the target lacks is an error for that target only', async () => {
    // mma.sync m16n8k16 bf16 needs sm_80: on sm_75 ptxas rejects it.
    const [old] = await compileWithNvcc([{ name: 'mma_sm75', source: MMA_BF16 }], { arch: 'sm_75' });
    expect(old!.ok).toBe(false);
    expect(old!.log).toMatch(/requires \.target sm_80 or higher|not supported on \.target 'sm_75'/);
  });

  test('bad source names are refused before anything runs', async () => {
    await expect(compileWithNvcc([{ name: '../escape', source: '' }])).rejects.toThrow("source name '../escape' must be letters");
    await expect(compileWithNvcc([{ name: 'a', source: '' }, { name: 'a', source: '' }])).rejects.toThrow("source name 'a' is used twice");
  });
});
