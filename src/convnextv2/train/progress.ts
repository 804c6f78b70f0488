/**
 * Progress of a training run: a cli-progress bar on a terminal (steps/s, images/s, loss, ETA),
 * or a plain line per report when stderr is not a terminal (logs, CI, tests).
 */
import cliProgress from 'cli-progress';

export interface ProgressUpdate {
  step: number;
  loss: number;
  stepsPerSec: number;
  imagesPerSec: number;
  extra?: string;
}

export interface Progress {
  update(u: ProgressUpdate): void;
  stop(): void;
}

function fmtEta(sec: number): string {
  if (!Number.isFinite(sec) || sec < 0) return '?';
  const m = Math.floor(sec / 60);
  const s = Math.round(sec % 60);
  return m > 0 ? `${m}m${String(s).padStart(2, '0')}s` : `${s}s`;
}

export function createProgress(label: string, total: number, start: number, opts: { quiet?: boolean; stream?: NodeJS.WriteStream } = {}): Progress {
  const stream = opts.stream ?? process.stderr;
  if (opts.quiet) return { update: () => undefined, stop: () => undefined };
  if (stream.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        format: `${label} {bar} {value}/{total} | {sps} steps/s | {ips} img/s | loss {loss} | ETA {etaText}{extra}`,
        stream,
        hideCursor: true,
        etaBuffer: 50,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, start, { sps: '-', ips: '-', loss: '-', etaText: '?', extra: '' });
    return {
      update: (u) =>
        bar.update(u.step, {
          sps: u.stepsPerSec.toFixed(2),
          ips: u.imagesPerSec.toFixed(0),
          loss: u.loss.toFixed(4),
          etaText: fmtEta((total - u.step) / u.stepsPerSec),
          extra: u.extra ? ` | ${u.extra}` : '',
        }),
      stop: () => bar.stop(),
    };
  }
  return {
    update: (u) =>
      stream.write(
        `${label} ${u.step}/${total} | ${u.stepsPerSec.toFixed(2)} steps/s | ${u.imagesPerSec.toFixed(0)} img/s | loss ${u.loss.toFixed(4)} | ETA ${fmtEta((total - u.step) / u.stepsPerSec)}${u.extra ? ` | ${u.extra}` : ''}\n`,
      ),
    stop: () => undefined,
  };
}
