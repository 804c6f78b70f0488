/** Primitive classes the passes reason about (one table, shared by simplify and fusion). */

export const UNARY = new Set<string>(['neg', 'exp', 'log', 'log1p', 'expm1', 'sin', 'cos', 'tanh', 'logistic', 'sqrt', 'rsqrt', 'erf', 'abs', 'sign', 'floor', 'ceil', 'round', 'not']);
export const BINARY = new Set<string>(['add', 'sub', 'mul', 'div', 'max', 'min', 'pow', 'rem', 'and', 'or', 'xor', 'shift_left', 'shift_right_logical']);
export const CMP = new Set<string>(['eq', 'ne', 'lt', 'le', 'gt', 'ge']);
export const ELEMENTWISE = new Set<string>([...UNARY, ...BINARY, ...CMP, 'select', 'cast']);
/** Index remappings (and iota): free to inline as index expressions. */
export const VIEW = new Set<string>(['reshape', 'transpose', 'broadcast_in_dim', 'slice', 'pad', 'concatenate', 'rev', 'iota']);
