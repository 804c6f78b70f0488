/** The IR: typed, first-order SSA programs (jaxpr-like). Programs are immutable values. */
import type { DType } from './dtype.js';
import type { HostArray } from './host.js';
import type { PrimName, PrimParams } from './primitive.js';
import type { Shape } from './shape.js';

export interface AbstractValue {
  readonly shape: Shape;
  readonly dtype: DType;
}

let nextVarId = 0;

export class Var {
  readonly id: number;
  constructor(readonly aval: AbstractValue) {
    this.id = nextVarId++;
  }
}

/** A scalar constant operand (shape []). */
export class Literal {
  constructor(
    readonly value: number,
    readonly dtype: DType,
  ) {}
  get aval(): AbstractValue {
    return { shape: [], dtype: this.dtype };
  }
}

export type Atom = Var | Literal;

/** One equation: a primitive applied to atoms; typed per primitive (`e.prim === 'pad'` narrows `e.params`). */
export type Eqn = {
  readonly [K in PrimName]: {
    readonly prim: K;
    readonly params: PrimParams[K];
    readonly inputs: readonly Atom[];
    readonly outputs: readonly Var[];
  };
}[PrimName];

/** Any primitive's params, for code that handles equations generically. */
export type AnyParams = Readonly<Record<string, unknown>>;

/**
 * An equation from a primitive name and params that generic code (rewrites, inlining) carries
 * over from another equation; checkProgram verifies every equation against its shape rule.
 */
export function makeEqn(prim: string, params: AnyParams, inputs: readonly Atom[], outputs: readonly Var[]): Eqn {
  return { prim, params, inputs, outputs } as unknown as Eqn;
}

/** An equation's params as a plain record. */
export const paramsOf = (e: Eqn): AnyParams => e.params as AnyParams;

/** A constant tensor embedded in a program (captured concrete data). */
export interface ProgramConst {
  readonly v: Var;
  readonly value: HostArray;
}

export class Program {
  constructor(
    readonly inputs: readonly Var[],
    readonly eqns: readonly Eqn[],
    readonly outputs: readonly Atom[],
    readonly consts: readonly ProgramConst[] = [],
  ) {
    Object.freeze(this);
  }

  toString(): string {
    return printProgram(this);
  }
}


// ---------------------------------------------------------------------------------------
// Printer

function typeStr(a: AbstractValue): string {
  return `${a.dtype}[${a.shape.join(',')}]`;
}

function fmtNumber(v: number, dtype: DType): string {
  if (dtype === 'bool') return v ? 'true' : 'false';
  if (dtype === 'i32' || dtype === 'u32') return String(v);
  if (Number.isInteger(v)) return v.toFixed(1);
  return String(v);
}

function fmtParam(v: unknown, names: Map<Var, string>, indent: string): string {
  if (v instanceof Program) return '{\n' + printProgram(v, indent + '    ', names) + '\n' + indent + '  }';
  if (Array.isArray(v)) return `(${v.map((x) => fmtParam(x, names, indent)).join(',')})`;
  if (v !== null && typeof v === 'object') {
    return `{${Object.entries(v)
      .map(([k, x]) => `${k}=${fmtParam(x, names, indent)}`)
      .join(' ')}}`;
  }
  return String(v);
}

/** Names vars a, b, ..., z, ba, bb, ... in order of first definition. */
function varName(i: number): string {
  let s = '';
  do {
    s = String.fromCharCode(97 + (i % 26)) + s;
    i = Math.floor(i / 26);
  } while (i > 0);
  return s;
}

export function printProgram(p: Program, indent = '', outer?: Map<Var, string>): string {
  const names = new Map<Var, string>(outer ?? []);
  let counter = names.size;
  const name = (v: Var): string => {
    let n = names.get(v);
    if (n === undefined) {
      n = varName(counter++);
      names.set(v, n);
    }
    return n;
  };
  const atom = (a: Atom): string => (a instanceof Literal ? fmtNumber(a.value, a.dtype) : name(a));
  const decl = (v: Var): string => `${name(v)}:${typeStr(v.aval)}`;
  const lines: string[] = [];
  const ins = p.inputs.map(decl).join(', '); // inputs are named before constants
  const consts = p.consts.length ? ` consts(${p.consts.map((c) => decl(c.v)).join(', ')})` : '';
  lines.push(`${indent}{ lambda (${ins})${consts} .`);
  for (const e of p.eqns) {
    const params = Object.entries(e.params)
      .map(([k, v]) => `${k}=${fmtParam(v, names, indent)}`)
      .join(' ');
    const lhs = e.outputs.map(decl).join(' ');
    const rhs = `${e.prim}${params ? `[${params}]` : ''} ${e.inputs.map(atom).join(' ')}`;
    lines.push(`${indent}  ${lhs} = ${rhs.trimEnd()}`);
  }
  lines.push(`${indent}  in (${p.outputs.map(atom).join(', ')}) }`);
  return lines.join('\n');
}
