/**
 * nexgrad's error type and the user's call site for messages. A call site in a compiled .js
 * file is mapped to its .ts source through the file's source map where one exists (tsc's
 * `sourceMap`), without turning on source maps for the whole process.
 */
import type * as NodeFs from 'node:fs';
import type * as NodeModule from 'node:module';
import type * as NodePath from 'node:path';
import type * as NodeUrl from 'node:url';

interface NodeApis {
  fs: typeof NodeFs;
  path: typeof NodePath;
  url: typeof NodeUrl;
  SourceMap: typeof NodeModule.SourceMap;
}

// Node's modules are taken with process.getBuiltinModule (Node >= 20.16), not imported: the
// library still bundles for browsers and loads with require(); without it (a browser, an older
// Node) call sites stay as the engine reports them.
const node: NodeApis | undefined = (() => {
  try {
    const get = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process?.getBuiltinModule;
    if (typeof get !== 'function') return undefined;
    const mod = get('node:module') as typeof NodeModule;
    return { fs: get('node:fs') as typeof NodeFs, path: get('node:path') as typeof NodePath, url: get('node:url') as typeof NodeUrl, SourceMap: mod.SourceMap };
  } catch {
    return undefined;
  }
})();

/** The package's source root (src/ or dist/src/): frames inside it are not the user's. */
const SRC_ROOT = (() => {
  try {
    if (node) return node.path.dirname(node.path.dirname(node.url.fileURLToPath(import.meta.url)));
    // without Node's modules (an older Node 20, a bundler): the folder above this file's folder
    const u = new URL('..', import.meta.url);
    return u.protocol === 'file:' ? decodeURIComponent(u.pathname).replace(/\/$/, '') : '';
  } catch {
    return '';
  }
})();
const SEP = node?.path.sep ?? '/';

/** Source maps are read once per file; a map larger than this is not read (untrusted input). */
const MAX_MAP_BYTES = 32 * 2 ** 20;
const maps = new Map<string, { map: NodeModule.SourceMap; dir: string } | null>();

function loadMap(file: string): { map: NodeModule.SourceMap; dir: string } | null {
  if (!node) return null;
  if (maps.has(file)) return maps.get(file)!;
  let found: { map: NodeModule.SourceMap; dir: string } | null = null;
  try {
    const mapFile = `${file}.map`;
    const st = node.fs.statSync(mapFile, { throwIfNoEntry: false });
    if (st && st.isFile() && st.size <= MAX_MAP_BYTES) {
      const payload = JSON.parse(node.fs.readFileSync(mapFile, 'utf8')) as NodeModule.SourceMapPayload;
      if (payload && Array.isArray(payload.sources) && typeof payload.mappings === 'string') {
        found = { map: new node.SourceMap(payload), dir: node.path.resolve(node.path.dirname(mapFile), payload.sourceRoot || '') };
      }
    }
  } catch {
    found = null; // an unreadable or malformed map: keep the compiled location
  }
  if (maps.size > 256) maps.clear();
  maps.set(file, found);
  return found;
}

/** "file.js:line:col" -> "file.ts:line:col" through file.js.map; unchanged when there is none. */
export function mapCallSite(site: string): string {
  const m = /^(.*\.[cm]?js):(\d+):(\d+)$/.exec(site);
  if (!m || !node) return site;
  const file = m[1]!.startsWith('file://') ? node.url.fileURLToPath(m[1]!) : m[1]!;
  const loaded = loadMap(file);
  if (!loaded) return site;
  try {
    const e = loaded.map.findEntry(Number(m[2]) - 1, Number(m[3]) - 1) as Partial<NodeModule.SourceMapping>;
    if (!e || typeof e.originalSource !== 'string' || typeof e.originalLine !== 'number') return site;
    const src = e.originalSource.startsWith('file://') ? node.url.fileURLToPath(e.originalSource) : node.path.resolve(loaded.dir, e.originalSource);
    return `${src}:${e.originalLine + 1}:${(e.originalColumn ?? 0) + 1}`;
  } catch {
    return site;
  }
}

function isInternalFrame(line: string): boolean {
  if (line.includes('node:internal') || line.includes('node_modules')) return true;
  return SRC_ROOT !== '' && (line.includes(SRC_ROOT + SEP) || line.includes(SRC_ROOT + '/'));
}

/** "file:line:col" of the first stack frame outside nexgrad's own sources, or "" if none. */
export function userCallSite(): string {
  // The default limit (10 frames) is often all inside nexgrad (pytree walks, nested traces).
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 200;
  let stack: string;
  try {
    stack = new Error().stack ?? '';
  } finally {
    Error.stackTraceLimit = limit;
  }
  for (const raw of stack.split('\n').slice(1)) {
    const line = raw.trim();
    if (!line.startsWith('at ') || isInternalFrame(line)) continue;
    const m = /\(([^()]+:\d+:\d+)\)$/.exec(line) ?? /at ([^ ]+:\d+:\d+)$/.exec(line);
    if (m) return mapCallSite(m[1]!).replace(/^file:\/\//, '');
  }
  return '';
}

export class NexgradError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NexgradError';
  }
}

/**
 * An error about one operation: "<op>: <what> (called at <site>)". The site is the user's
 * frame, found from the stack when the error is made.
 */
export class OpError extends NexgradError {
  readonly op: string;
  readonly site: string;
  constructor(op: string, message: string, site: string = userCallSite()) {
    super(`${op}: ${message}${site ? ` (called at ${site})` : ''}`);
    this.name = 'OpError';
    this.op = op;
    this.site = site;
  }
}
