/**
 * Loop axes: typed values with a role, not name strings every emitter must agree on. Loop
 * kernels range over outer axes o0, o1, ... and row (reduction) axes r0, r1, ...; anchors over
 * batch, m, n and k. Axes are interned, so they compare by identity and key maps directly; their
 * `name` is what a dialect prints for the loop variable.
 */
export type AxisRole = 'outer' | 'row' | 'batch' | 'm' | 'n' | 'k';

export interface Axis {
  readonly role: AxisRole;
  readonly pos: number;
  /** The printed name: o<pos>, r<pos>, b, m, n, k. */
  readonly name: string;
}

export const AXIS_ROLES: readonly AxisRole[] = ['outer', 'row', 'batch', 'm', 'n', 'k'];

const PREFIX: Readonly<Record<AxisRole, string>> = { outer: 'o', row: 'r', batch: 'b', m: 'm', n: 'n', k: 'k' };
const INDEXED: ReadonlySet<AxisRole> = new Set(['outer', 'row']);

const interned = new Map<string, Axis>();

export function axis(role: AxisRole, pos = 0): Axis {
  if (!Number.isInteger(pos) || pos < 0 || (!INDEXED.has(role) && pos !== 0)) throw new Error(`axis: invalid ${role} axis position ${pos}`);
  const name = INDEXED.has(role) ? `${PREFIX[role]}${pos}` : PREFIX[role];
  let a = interned.get(name);
  if (!a) {
    a = Object.freeze({ role, pos, name });
    interned.set(name, a);
  }
  return a;
}

/** The axes anchors and loop kernels use. */
export const AX = Object.freeze({
  b: axis('batch'),
  m: axis('m'),
  n: axis('n'),
  k: axis('k'),
  outer: (i: number): Axis => axis('outer', i),
  row: (i: number): Axis => axis('row', i),
});

/** The axis a printed name stands for (o3, r0, b, m, n, k). */
export function axisNamed(name: string): Axis {
  const m = /^([or])(\d+)$/.exec(name);
  if (m) return axis(m[1] === 'o' ? 'outer' : 'row', Number(m[2]));
  const role = ({ b: 'batch', m: 'm', n: 'n', k: 'k' } as const)[name as 'b' | 'm' | 'n' | 'k'];
  if (!role) throw new Error(`axisNamed: no axis is named ${JSON.stringify(name)}`);
  return axis(role);
}
