/** nexgrad's error type and the user's call site for messages. */
import { fileURLToPath } from 'node:url';
import * as path from 'node:path';

/** The package's source root (src/ or dist/src/): frames inside it are not the user's. */
const SRC_ROOT = (() => {
  try {
    return path.dirname(path.dirname(fileURLToPath(import.meta.url)));
  } catch {
    return '';
  }
})();

function isInternalFrame(line: string): boolean {
  if (line.includes('node:internal') || line.includes('node_modules')) return true;
  return SRC_ROOT !== '' && (line.includes(SRC_ROOT + path.sep) || line.includes(SRC_ROOT + '/'));
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
    if (m) return m[1]!.replace(/^file:\/\//, '');
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
