/** The typed arrays that hold each dtype on the CPU (f16/bf16 in Float32Arrays, bool in bytes). */
import type { DType } from '../../ir/dtype.js';

export type TypedCtor = Float32ArrayConstructor | Float64ArrayConstructor | Int32ArrayConstructor | Uint32ArrayConstructor | Uint8ArrayConstructor;

export function typedCtor(d: DType): TypedCtor {
  switch (d) {
    case 'f32':
    case 'f16':
    case 'bf16':
      return Float32Array;
    case 'f64':
      return Float64Array;
    case 'i32':
      return Int32Array;
    case 'u32':
      return Uint32Array;
    case 'bool':
      return Uint8Array;
  }
}
