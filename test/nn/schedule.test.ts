import { describe, expect, it } from 'vitest';
import { constant, cosineSchedule, cosineScheduleEpochs, linearWarmup } from '../../src/nn/schedule.js';

describe('cosineSchedule (official adjust_learning_rate)', () => {
  // baseLr 1e-3, minLr 1e-6, 10 warmup steps, 110 steps in all: the cosine spans 100 steps.
  const s = cosineSchedule({ baseLr: 1e-3, minLr: 1e-6, warmupSteps: 10, totalSteps: 110 });

  it('warms up linearly from 0', () => {
    expect(s(0)).toBe(0);
    expect(s(1)).toBeCloseTo(1e-4, 18);
    expect(s(5)).toBeCloseTo(5e-4, 18);
    expect(s(9)).toBeCloseTo(9e-4, 18);
  });

  it('follows the half cosine to minLr', () => {
    expect(s(10)).toBeCloseTo(1e-3, 18); // cos(0) = 1: the peak
    expect(s(60)).toBeCloseTo(1e-6 + (1e-3 - 1e-6) * 0.5, 18); // cos(pi/2) = 0: 5.005e-4
    expect(s(60)).toBeCloseTo(5.005e-4, 18);
    // a quarter of the way: 0.5 * (1 + cos(pi/4)) = 0.8535533905932737
    expect(s(35)).toBeCloseTo(1e-6 + 0.999e-3 * 0.8535533905932737, 18);
    // three quarters: 0.5 * (1 + cos(3pi/4)) = 0.14644660940672624
    expect(s(85)).toBeCloseTo(1e-6 + 0.999e-3 * 0.14644660940672624, 18);
    expect(s(110)).toBeCloseTo(1e-6, 18);
    expect(s(500)).toBe(1e-6);
  });

  it('without warmup starts at baseLr; minLr defaults to 0', () => {
    const c = cosineSchedule({ baseLr: 2, warmupSteps: 0, totalSteps: 4 });
    expect(c(0)).toBe(2);
    expect(c(1)).toBeCloseTo(1 + Math.SQRT1_2, 15); // 2 * 0.5 * (1 + cos(pi/4))
    expect(c(2)).toBeCloseTo(1, 15);
    expect(c(4)).toBeCloseTo(0, 15);
  });

  it('per-epoch form (fractional epochs, as the official loop) agrees', () => {
    // 4 warmup epochs of 7 steps, 10 epochs in all
    const e = cosineScheduleEpochs({ baseLr: 8e-4, minLr: 1e-6, warmupEpochs: 4, epochs: 10, stepsPerEpoch: 7 });
    const st = cosineSchedule({ baseLr: 8e-4, minLr: 1e-6, warmupSteps: 28, totalSteps: 70 });
    for (let k = 0; k < 70; k++) expect(e(k)).toBeCloseTo(st(k), 15);
    expect(e(3)).toBeCloseTo((8e-4 * (3 / 7)) / 4, 18); // epoch 3/7
  });

  it('rejects bad arguments', () => {
    expect(() => cosineSchedule({ baseLr: 1, warmupSteps: 10, totalSteps: 10 })).toThrow(/greater than warmupSteps/);
    expect(() => s(-1)).toThrow(/step/);
    expect(() => cosineSchedule({ baseLr: -1, warmupSteps: 0, totalSteps: 10 })).toThrow(/baseLr/);
  });
});

describe('constant and linearWarmup', () => {
  it('values by hand', () => {
    expect(constant(0.1)(0)).toBe(0.1);
    expect(constant(0.1)(12345)).toBe(0.1);
    const w = linearWarmup({ baseLr: 0.4, warmupSteps: 4 });
    expect([0, 1, 2, 3, 4, 100].map(w)).toEqual([0, 0.1, 0.2, 0.30000000000000004, 0.4, 0.4]);
  });
});
