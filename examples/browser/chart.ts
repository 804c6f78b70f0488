/** The live loss plot: a canvas line chart of the loss per step, redrawn as steps arrive. */

/** The few canvas calls the chart makes (the project compiles without the DOM library). */
export interface Canvas2D {
  canvas: { width: number; height: number };
  fillStyle: string;
  strokeStyle: string;
  lineWidth: number;
  font: string;
  fillRect(x: number, y: number, w: number, h: number): void;
  fillText(text: string, x: number, y: number): void;
  beginPath(): void;
  moveTo(x: number, y: number): void;
  lineTo(x: number, y: number): void;
  stroke(): void;
}

const PAD = { left: 48, right: 12, top: 12, bottom: 28 };

export function drawLoss(ctx: Canvas2D, losses: readonly number[], totalSteps: number): void {
  const { width: W, height: H } = ctx.canvas;
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, W, H);
  const finite = losses.filter((v) => Number.isFinite(v));
  const hi = Math.max(1e-6, ...finite);
  const lo = Math.min(hi * 0.999, ...finite, 0);
  const x = (i: number): number => PAD.left + ((W - PAD.left - PAD.right) * i) / Math.max(1, totalSteps - 1);
  const y = (v: number): number => PAD.top + ((H - PAD.top - PAD.bottom) * (hi - v)) / (hi - lo);
  ctx.strokeStyle = '#999';
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(PAD.left, PAD.top);
  ctx.lineTo(PAD.left, H - PAD.bottom);
  ctx.lineTo(W - PAD.right, H - PAD.bottom);
  ctx.stroke();
  ctx.fillStyle = '#444';
  ctx.font = '11px sans-serif';
  for (const v of [lo, (lo + hi) / 2, hi]) ctx.fillText(v.toFixed(2), 4, y(v) + 4);
  ctx.fillText('step', W / 2 - 12, H - 8);
  ctx.fillText(String(totalSteps), W - PAD.right - 20, H - 8);
  if (losses.length === 0) return;
  ctx.strokeStyle = '#1f6feb';
  ctx.lineWidth = 2;
  ctx.beginPath();
  losses.forEach((v, i) => (i === 0 ? ctx.moveTo(x(i), y(v)) : ctx.lineTo(x(i), y(v))));
  ctx.stroke();
}
