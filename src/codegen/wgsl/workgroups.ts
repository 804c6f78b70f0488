/**
 * A 1-D workgroup count as the [x, y, z] a dispatch takes. Every generated kernel reads its
 * workgroup's linear number (x + nx * (y + ny * z), see ../lower/gpu/dialect.ts): when the
 * count is above maxComputeWorkgroupsPerDimension it is folded into y and z, which may launch a
 * few extra workgroups; kernels return early past the count they were generated for.
 */
import { NexgradError } from '../../ir/errors.js';

/** Splits `total` into [x, y, z], each at most `limit`, with x*y*z >= total and the excess below y*z. */
export function foldWorkgroups(total: number, limit: number): [number, number, number] {
  if (!Number.isInteger(total) || total < 0) throw new NexgradError(`wgsl: workgroup count must be a non-negative integer, got ${total}`);
  if (total <= limit) return [total, 1, 1];
  if (total <= limit * limit) {
    const y = Math.ceil(total / limit);
    return [Math.ceil(total / y), y, 1];
  }
  if (total > limit * limit * limit) {
    throw new NexgradError(`wgsl: ${total} workgroups exceed ${limit}^3, the most a dispatch can launch`);
  }
  const z = Math.ceil(total / (limit * limit));
  const perZ = Math.ceil(total / z);
  const y = Math.ceil(perZ / limit);
  return [Math.ceil(perZ / y), y, z];
}
