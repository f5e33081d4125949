// Line charts drawn on a canvas by hand: a few series over the last 5 minutes, y from 0.
// The canvas's data-points attribute says how many points were drawn (the browser tests read it).

const WINDOW_S = 300;

export function drawChart(canvas, { now, lines }) {
  const { ctx, width, height } = fit(canvas);
  const pad = { left: 38, right: 8, top: 8, bottom: 20 };
  const plot = { x: pad.left, y: pad.top, w: width - pad.left - pad.right, h: height - pad.top - pad.bottom };
  const top = niceMax(Math.max(1, ...lines.flatMap((line) => line.points.map(([, v]) => v))));
  ctx.clearRect(0, 0, width, height);
  axes(ctx, plot, top);
  const x = (t) => plot.x + plot.w * (1 - (now - t) / WINDOW_S);
  const y = (v) => plot.y + plot.h * (1 - v / top);
  let drawn = 0;
  for (const line of lines) drawn += stroke(ctx, line, x, y, now);
  canvas.dataset.points = String(drawn);
}

function fit(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  return { ctx, width, height };
}

function niceMax(value) {
  const step = 10 ** Math.floor(Math.log10(value));
  for (const factor of [1, 2, 5, 10]) if (factor * step >= value) return factor * step;
  return 10 * step;
}

function axes(ctx, plot, top) {
  ctx.strokeStyle = "#d9dee5";
  ctx.fillStyle = "#5f6b7a";
  ctx.font = "11px system-ui, sans-serif";
  ctx.lineWidth = 1;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (const fraction of [0, 0.5, 1]) {
    const yy = plot.y + plot.h * (1 - fraction);
    ctx.beginPath();
    ctx.moveTo(plot.x, yy);
    ctx.lineTo(plot.x + plot.w, yy);
    ctx.stroke();
    ctx.fillText(formatNumber(top * fraction), plot.x - 4, yy);
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (const minutes of [5, 4, 3, 2, 1, 0]) {
    const xx = plot.x + plot.w * (1 - (minutes * 60) / WINDOW_S);
    ctx.fillText(minutes ? `-${minutes}m` : "now", Math.min(xx, plot.x + plot.w - 12), plot.y + plot.h + 5);
  }
}

function stroke(ctx, line, x, y, now) {
  const points = line.points.filter(([t]) => now - t <= WINDOW_S);
  ctx.strokeStyle = line.color;
  ctx.lineWidth = 1.8;
  ctx.beginPath();
  points.forEach(([t, v], i) => (i ? ctx.lineTo(x(t), y(v)) : ctx.moveTo(x(t), y(v))));
  ctx.stroke();
  return points.length;
}

function formatNumber(value) {
  return value >= 1000 ? `${(value / 1000).toFixed(value >= 10000 ? 0 : 1)}k` : String(Math.round(value * 10) / 10);
}
