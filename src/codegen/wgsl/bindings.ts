/**
 * Reads a WGSL source's @group(0) bindings, so the runtime can build an explicit pipeline layout
 * (unused bindings allowed, read-only buffers marked) and check every dispatch against it: the
 * number of storage buffers, which ones are written, and the byte size of the uniform struct.
 *
 * This is a reader for the declarations our kernels write, not a WGSL parser: a declaration it
 * cannot read is an error naming the kernel, never a silently wrong layout.
 */
import { NexgradError } from '../../ir/errors.js';

export type BindingKind = 'read' | 'read_write' | 'uniform';

export interface BindingInfo {
  readonly binding: number;
  readonly kind: BindingKind;
  readonly name: string;
  /** The declared type text, e.g. "array<f32>" or "Params". */
  readonly type: string;
  /** Byte size of a uniform's type when it is built from scalars, vectors, arrays and structs. */
  readonly uniformBytes?: number;
}

/** Comments removed, line breaks kept (so positions in messages stay meaningful). */
function stripComments(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, (m) => m.replace(/[^\n]/g, ' ')).replace(/\/\/[^\n]*/g, '');
}

const VAR_DECL = /((?:@\s*(?:group|binding)\s*\(\s*[^)]*\)\s*)+)var\s*<\s*([A-Za-z_]+)\s*(?:,\s*([A-Za-z_]+)\s*)?>\s*([A-Za-z_]\w*)\s*:\s*([^;]+);/g;
const ATTR = /@\s*(group|binding)\s*\(\s*([^)]*?)\s*\)/g;

/** The bindings of `source`, sorted by binding number. */
export function reflectBindings(source: string, kernel: string): BindingInfo[] {
  const text = stripComments(source);
  const structs = readStructs(text);
  const out: BindingInfo[] = [];
  for (const m of text.matchAll(VAR_DECL)) {
    const [, attrs, space, access, name, rawType] = m as unknown as [string, string, string, string | undefined, string, string];
    let group = -1;
    let binding = -1;
    for (const a of attrs.matchAll(ATTR)) {
      const v = /^\d+$/.test(a[2]!) ? Number(a[2]) : NaN;
      if (!Number.isInteger(v)) throw new NexgradError(`wgsl kernel "${kernel}": ${a[1]}(${a[2]}) of "${name}" must be a literal integer`);
      if (a[1] === 'group') group = v;
      else binding = v;
    }
    if (group !== 0 || binding < 0) throw new NexgradError(`wgsl kernel "${kernel}": binding "${name}" must be declared @group(0) @binding(n), got group ${group}`);
    if (out.some((b) => b.binding === binding)) throw new NexgradError(`wgsl kernel "${kernel}": @binding(${binding}) is declared twice`);
    const type = rawType.trim();
    if (space === 'uniform') {
      out.push({ binding, kind: 'uniform', name, type, uniformBytes: typeLayout(type, structs)?.size });
    } else if (space === 'storage') {
      const kind = access === undefined || access === 'read' ? 'read' : access === 'read_write' ? 'read_write' : null;
      if (!kind) throw new NexgradError(`wgsl kernel "${kernel}": storage binding "${name}" has access "${access}", expected read or read_write`);
      out.push({ binding, kind, name, type });
    } else {
      throw new NexgradError(`wgsl kernel "${kernel}": binding "${name}" is in address space "${space}"; only storage and uniform buffers are supported`);
    }
  }
  if (out.filter((b) => b.kind === 'uniform').length > 1) throw new NexgradError(`wgsl kernel "${kernel}": at most one uniform binding is supported`);
  return out.sort((a, b) => a.binding - b.binding);
}

interface Layout {
  readonly align: number;
  readonly size: number;
}

/** WGSL's alignment and size of the host-shareable scalar and vector types. */
const SCALAR_LAYOUT: Readonly<Record<string, Layout>> = Object.freeze({
  u32: { align: 4, size: 4 },
  i32: { align: 4, size: 4 },
  f32: { align: 4, size: 4 },
  f16: { align: 2, size: 2 },
});
const VEC_ALIGN: Readonly<Record<number, number>> = Object.freeze({ 2: 2, 3: 4, 4: 4 });
const VEC_SIZE: Readonly<Record<number, number>> = Object.freeze({ 2: 2, 3: 3, 4: 4 });

const roundUp = (n: number, k: number): number => Math.ceil(n / k) * k;

function readStructs(text: string): Map<string, string[]> {
  const structs = new Map<string, string[]>();
  for (const m of text.matchAll(/struct\s+([A-Za-z_]\w*)\s*\{([^}]*)\}/g)) {
    const fields = m[2]!.split(',').map((f) => f.trim()).filter((f) => f);
    structs.set(m[1]!, fields.map((f) => f.replace(/@\w+(\([^)]*\))?\s*/g, '').split(':').slice(1).join(':').trim()));
  }
  return structs;
}

/** The layout of a type, or undefined for types this reader does not size. */
function typeLayout(type: string, structs: Map<string, string[]>, depth = 0): Layout | undefined {
  if (depth > 16) return undefined;
  const t = type.replace(/\s+/g, '');
  const scalar = SCALAR_LAYOUT[t];
  if (scalar) return scalar;
  const vec = /^vec([234])<(\w+)>$/.exec(t) ?? /^vec([234])([fiuh])$/.exec(t);
  if (vec) {
    const n = Number(vec[1]);
    const elem = SCALAR_LAYOUT[{ f: 'f32', i: 'i32', u: 'u32', h: 'f16' }[vec[2]!] ?? vec[2]!];
    return elem ? { align: elem.size * VEC_ALIGN[n]!, size: elem.size * VEC_SIZE[n]! } : undefined;
  }
  const arr = /^array<(.+),(\d+)u?>$/.exec(t);
  if (arr) {
    const elem = typeLayout(arr[1]!, structs, depth + 1);
    return elem ? { align: elem.align, size: roundUp(elem.size, elem.align) * Number(arr[2]) } : undefined;
  }
  const fields = structs.get(t);
  if (!fields) return undefined;
  let offset = 0;
  let align = 1;
  for (const f of fields) {
    const l = typeLayout(f, structs, depth + 1);
    if (!l) return undefined;
    offset = roundUp(offset, l.align) + l.size;
    align = Math.max(align, l.align);
  }
  return { align, size: roundUp(offset, align) };
}
