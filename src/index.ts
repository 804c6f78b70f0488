/** nexgrad: the public API (re-exports only). */
export { Tensor, type TensorLike } from './ir/tensor.js';
export type { DType } from './ir/dtype.js';
export { Program, Var, Literal, type Eqn } from './ir/program.js';
export { NexgradError, OpError } from './ir/errors.js';
export {
  tensor, scalar, zeros, ones, full, arange, iota, zerosLike, onesLike, fromHost,
  add, sub, mul, div, pow, maximum, minimum, rem, neg, exp, log, log1p, expm1, sin, cos, tanh, sigmoid, sqrt, rsqrt, erf, abs, sign,
  floor, ceil, round, square, reciprocal, relu, equal, notEqual, less, lessEqual, greater, greaterEqual, logicalAnd, logicalOr, logicalNot, where, cast,
  sum, mean, max, min, variance, argmax, argsort, logSumExp, reshape, transpose, moveAxis, expandDims, squeeze, slice, pad, concat, stack, flip,
  take, takeAlongAxis, scatterAdd, oneHot, broadcastTo, matmul, dotGeneral, conv2d, stopGradient, type ConvOptions, type TensorOptions,
} from './ir/ops.js';
export { trace, region } from './ir/functional.js';
export { namedScope } from './ir/trace.js';
export { interpret, type InterpretOptions } from './ir/interpreter.js';
export { treeFlatten, treeUnflatten, treeMap, treeLeaves, type PyTree, type TreeDef } from './ir/pytree.js';
export * as random from './ir/random.js';
export { grad, valueAndGrad, vjp, jvp, customVjp, checkpoint, type GradOptions } from './autodiff/index.js';
export { jit, type JitOptions, type Jitted } from './passes/jit.js';
export { availableBackends, unavailableReasons, type BackendName, devicePut, devicePutAsync, setDefaultBackend, getDefaultBackend, init, registerBackend, type BackendEntry } from './passes/backends.js';
export { liveMemory, DeviceArray } from './ir/device_array.js';
export type { Device, DeviceCaps, Executable } from './codegen/kernel/device.js';
export { setEagerBackend } from './passes/eager.js';
export * as nn from './nn/index.js';
export * as data from './nn/data/index.js';
export * as io from './nn/io.js';
export * as convnextv2 from './convnextv2/index.js';
