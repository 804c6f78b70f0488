/**
 * The metrics log: one JSON object per line (JSONL). Training lines carry `step` (0-based);
 * when a run resumes from a checkpoint after `step` steps, lines of later steps (written
 * before the kill, about to be redone) are dropped, so the log of a resumed run equals the log
 * of an uninterrupted one.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export type MetricsRecord = Record<string, number | string | boolean | null | number[] | Record<string, unknown>>;

/** Parsed lines of a JSONL file (a torn last line from a kill is skipped). */
export function readJsonl(file: string): Record<string, unknown>[] {
  if (!fs.existsSync(file)) return [];
  const out: Record<string, unknown>[] = [];
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      const v = JSON.parse(line) as unknown;
      if (v && typeof v === 'object' && !Array.isArray(v)) out.push(v as Record<string, unknown>);
    } catch {
      // a line cut by a kill
    }
  }
  return out;
}

export class MetricsLog {
  readonly file: string;
  constructor(file: string) {
    this.file = file;
    fs.mkdirSync(path.dirname(file), { recursive: true });
  }

  /** Starts a fresh log (a new run). */
  reset(): void {
    fs.writeFileSync(this.file, '');
  }

  /** Keeps only the lines a run resumed after `step` steps has already done (atomically). */
  truncateTo(step: number): void {
    const keep = readJsonl(this.file).filter((r) => typeof r.step !== 'number' || r.step < step);
    const tmp = `${this.file}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, keep.map((r) => JSON.stringify(r) + '\n').join(''));
    fs.renameSync(tmp, this.file);
  }

  append(records: readonly MetricsRecord[]): void {
    if (records.length) fs.appendFileSync(this.file, records.map((r) => JSON.stringify(r) + '\n').join(''));
  }

  read(): Record<string, unknown>[] {
    return readJsonl(this.file);
  }
}
