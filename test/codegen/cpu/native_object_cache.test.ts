/**
 * The native object cache's trim (src/codegen/cpu/native/object_cache.ts): least recently used
 * entries (by their record's mtime) go first, an entry's files go together, temporaries and
 * foreign files are left alone, and the directory ends at most at the cap.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { trimObjects } from '../../../src/codegen/cpu/native/object_cache.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ng-objcache-test-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('native object cache trim', () => {
  it('removes least recently used entries, whole, down to the cap', () => {
    const key = (i: number): string => i.toString(16).padStart(64, '0');
    const n = 300;
    for (let i = 0; i < n; i++) {
      fs.writeFileSync(path.join(dir, `${key(i)}.so`), Buffer.alloc(1000));
      fs.writeFileSync(path.join(dir, `${key(i)}.json`), '{}');
      // entry i used i seconds after entry 0, shuffled so that name order is not age order
      const t = new Date(1.7e12 + ((i * 7919) % n) * 1000);
      fs.utimesSync(path.join(dir, `${key(i)}.json`), t, t);
    }
    fs.writeFileSync(path.join(dir, `${key(0)}.so.tmp-123`), Buffer.alloc(10));
    fs.writeFileSync(path.join(dir, 'README'), 'foreign');
    // each entry is 1002 bytes: a cap of 10,100 keeps the 10 most recently used
    trimObjects(dir, 10100);
    const left = fs.readdirSync(dir);
    const kept = left.filter((f) => f.endsWith('.json')).map((f) => parseInt(f.slice(0, 64), 16));
    const newest = Array.from({ length: n }, (_, i) => i).sort((a, b) => ((b * 7919) % n) - ((a * 7919) % n)).slice(0, 10);
    expect(kept.sort((a, b) => a - b)).toEqual(newest.sort((a, b) => a - b));
    for (const i of kept) expect(left).toContain(`${key(i)}.so`);
    expect(left.filter((f) => f.endsWith('.so'))).toHaveLength(10);
    expect(left).toContain(`${key(0)}.so.tmp-123`);
    expect(left).toContain('README');
  });
});
