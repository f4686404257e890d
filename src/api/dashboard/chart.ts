/**
 * A small line chart on a canvas: two series of rates over the last samples. Drawn by hand
 * because a charting library would outweigh the rest of the page.
 */
import { html } from 'htm/preact';
import { useEffect, useRef } from 'preact/hooks';
import { rate } from './format.js';

export interface Series {
  label: string;
  color: string;
  values: number[];
}

function niceMax(v: number): number {
  if (v <= 0) return 1024;
  const p = Math.pow(2, Math.ceil(Math.log2(v)));
  return p;
}

function draw(canvas: HTMLCanvasElement, series: Series[], capacity: number): void {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth;
  const h = canvas.clientHeight;
  if (w === 0 || h === 0) return;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext('2d');
  if (!ctx) return;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const left = 70;
  const top = 8;
  const bottom = h - 18;
  const right = w - 8;
  const max = niceMax(Math.max(0, ...series.flatMap((s) => s.values)));
  ctx.font = '11px system-ui, sans-serif';
  ctx.fillStyle = '#6b7280';
  ctx.strokeStyle = '#e5e7eb';
  ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = Math.round(top + ((bottom - top) * i) / 4) + 0.5;
    ctx.beginPath();
    ctx.moveTo(left, y);
    ctx.lineTo(right, y);
    ctx.stroke();
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    ctx.fillText(rate((max * (4 - i)) / 4), left - 6, y);
  }
  ctx.textAlign = 'left';
  ctx.textBaseline = 'alphabetic';
  ctx.fillText(`last ${capacity} s`, left, h - 3);
  const step = (right - left) / Math.max(1, capacity - 1);
  for (const s of series) {
    const vals = s.values.slice(-capacity);
    if (vals.length < 2) continue;
    const x0 = right - (vals.length - 1) * step;
    ctx.beginPath();
    vals.forEach((v, i) => {
      const x = x0 + i * step;
      const y = bottom - (Math.min(v, max) / max) * (bottom - top);
      if (i === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    ctx.strokeStyle = s.color;
    ctx.lineWidth = 2;
    ctx.stroke();
    ctx.lineTo(right, bottom);
    ctx.lineTo(x0, bottom);
    ctx.closePath();
    ctx.globalAlpha = 0.08;
    ctx.fillStyle = s.color;
    ctx.fill();
    ctx.globalAlpha = 1;
  }
}

export function Chart(props: { title: string; series: Series[]; capacity: number; testid: string }) {
  const ref = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    if (ref.current) draw(ref.current, props.series, props.capacity);
  });
  return html`
    <div class="chart" data-testid=${props.testid}>
      <div class="chart-head">
        <h3>${props.title}</h3>
        <div class="legend">
          ${props.series.map((s) => html`<span><i style=${{ background: s.color }}></i>${s.label} <b>${rate(s.values[s.values.length - 1] ?? 0)}</b></span>`)}
        </div>
      </div>
      <canvas ref=${ref}></canvas>
    </div>
  `;
}
