// History graphs drawn as SVG: numbers as a line (average) over a min/max band, on/off and
// text values as a timeline band of their transitions. No library: a few hundred bytes of SVG.
const NS = "http://www.w3.org/2000/svg";
const W = 600;
const PAD = { l: 44, r: 8, t: 8, b: 22 };

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function label(ts, span) {
  const d = new Date(ts * 1000);
  if (span > 2 * 86400) return d.toLocaleDateString(undefined, { weekday: "short", day: "numeric" });
  return d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
}

function timeAxis(svg, since, until, x, y) {
  for (let i = 0; i <= 4; i++) {
    const ts = since + ((until - since) * i) / 4;
    svg.append(s("text", { x: x(ts), y, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle",
      class: "axis" }, label(ts, until - since)));
  }
}

// series: [{ts, min, max, avg, held?}] sorted by ts; bucket: seconds per point; a `held`
// point is a value that still held then (recorded earlier): the line goes on from it.
export function lineChart(series, { since, until, bucket, unit = "", title = "" }) {
  const H = 160;
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img",
    "aria-label": `${title}: ${series.length} points` });
  if (!series.length) return svg;
  let lo = Math.min(...series.map((p) => p.min));
  let hi = Math.max(...series.map((p) => p.max));
  if (hi === lo) { hi += 1; lo -= 1; }
  const x = (ts) => PAD.l + ((ts - since) / (until - since)) * (W - PAD.l - PAD.r);
  const y = (v) => PAD.t + (1 - (v - lo) / (hi - lo)) * (H - PAD.t - PAD.b);
  for (const v of [lo, (lo + hi) / 2, hi]) {
    svg.append(s("line", { x1: PAD.l, x2: W - PAD.r, y1: y(v), y2: y(v), class: "grid" }),
      s("text", { x: PAD.l - 4, y: y(v) + 4, "text-anchor": "end", class: "axis" },
        `${+v.toFixed(1)}${unit ? ` ${unit}` : ""}`));
  }
  // a gap longer than three buckets breaks the line instead of drawing across it
  const runs = [];
  let run = [];
  for (const p of series) {
    const prev = run[run.length - 1];
    if (prev && !prev.held && p.ts - prev.ts > bucket * 3) { runs.push(run); run = []; }
    run.push(p);
  }
  runs.push(run);
  for (const r of runs) {
    if (r.length === 1) {  // a lone bucket: its range as a whisker, its average as a dot
      const p = r[0];
      svg.append(s("line", { x1: x(p.ts), x2: x(p.ts), y1: y(p.min), y2: y(p.max), class: "line" }),
        s("circle", { cx: x(p.ts), cy: y(p.avg), r: 3, class: "dot" }));
      continue;
    }
    const band = r.map((p) => `${x(p.ts).toFixed(1)},${y(p.max).toFixed(1)}`)
      .concat(r.slice().reverse().map((p) => `${x(p.ts).toFixed(1)},${y(p.min).toFixed(1)}`));
    svg.append(s("polygon", { points: band.join(" "), class: "band" }),
      s("polyline", { points: r.map((p) => `${x(p.ts).toFixed(1)},${y(p.avg).toFixed(1)}`).join(" "),
        class: "line" }));
  }
  timeAxis(svg, since, until, x, H - 6);
  return svg;
}

// changes: [{ts, value}] sorted by ts — each value lasts until the next change.
export function bandChart(changes, { since, until, title = "" }) {
  const H = 48;
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart timeline", role: "img",
    "aria-label": `${title}: ${changes.length} changes` });
  const x = (ts) => PAD.l + ((Math.max(ts, since) - since) / (until - since)) * (W - PAD.l - PAD.r);
  changes.forEach((c, i) => {
    const end = i + 1 < changes.length ? changes[i + 1].ts : until;
    const on = c.value === true;
    const rect = s("rect", { x: x(c.ts), y: 6, width: Math.max(x(end) - x(c.ts), 1), height: 18,
      class: on ? "on" : c.value === false ? "off" : "other" });
    rect.append(s("title", {}, `${c.value === true ? "on" : c.value === false ? "off" : String(c.value)} from ${new Date(c.ts * 1000).toLocaleString()}`));
    svg.append(rect);
    // a mark at each change, so short ones stay visible
    svg.append(s("line", { x1: x(c.ts), x2: x(c.ts), y1: 2, y2: 28, class: "mark" }));
  });
  timeAxis(svg, since, until, x, H - 6);
  return svg;
}

// events: [{ts, event_type, n}] — device events (button presses) as marks, one row per type;
// a mark counts the events of its bucket (the server groups them, so a week stays small).
export function eventChart(events, { since, until, title = "Events" }) {
  const types = [...new Set(events.map((e) => e.event_type))].sort();
  const H = 22 * types.length + 22;
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart events", role: "img",
    "aria-label": `${title}: ${events.reduce((t, e) => t + (e.n || 1), 0)} events` });
  const x = (ts) => PAD.l + ((Math.max(ts, since) - since) / (until - since)) * (W - PAD.l - PAD.r);
  types.forEach((t, row) => {
    const y = 4 + row * 22;
    svg.append(s("text", { x: PAD.l - 4, y: y + 13, "text-anchor": "end", class: "axis" }, t.slice(0, 8)));
    for (const e of events.filter((ev) => ev.event_type === t)) {
      const cx = x(e.ts);
      const mark = s("g", { class: "event", "data-event": t, "data-n": e.n || 1 },
        s("path", { d: `M${(cx - 5).toFixed(1)},${y + 2} h10 l-5,8 z`, class: "mark-event" }),
        s("line", { x1: cx, x2: cx, y1: y + 10, y2: y + 18, class: "mark" }),
        s("title", {}, `${t}${e.n > 1 ? ` ×${e.n}` : ""} at ${new Date(e.ts * 1000).toLocaleString()}`));
      const left = cx > W - 40;  // near the right edge the count goes before the mark
      if (e.n > 1) mark.append(s("text", { x: cx + (left ? -7 : 7), y: y + 10, "text-anchor": left ? "end" : "start", class: "axis" }, `×${e.n}`));
      svg.append(mark);
    }
  });
  timeAxis(svg, since, until, x, H - 6);
  return svg;
}
