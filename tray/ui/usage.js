// Usage page: the pool's line and one line per account for each quota window, over the last 24 h
// or 7 d, with resets, "now" and the forecast's runout marked, and the forecast sentence above.
// Charts are uPlot (vendored in vendor/uplot with its licence; the window is offline).

import uPlot from "./vendor/uplot/uPlot.esm.js";
import { api, h, act, every } from "./lib.js";

const RANGES = [["24", "24 h"], ["168", "7 d"]];
let range = "24";

function css(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

function palette() {
  return [1, 2, 3, 4, 5, 6].map((n) => css(`--chart-${n}`));
}

// The forecast's runout, when it falls inside the chart (a quarter of its range ahead at most).
function outInView(win, data) {
  const out = win.forecast.runs_out_at;
  return Boolean(win.forecast.early && out && out > data.now && out <= data.until);
}

// Vertical marks drawn on the chart's canvas: each reset, now, and when the pool runs out.
function marks(win, data) {
  return {
    hooks: {
      draw: [(u) => {
        const { ctx } = u;
        const { left, top, width, height } = u.bbox;
        const ratio = devicePixelRatio || 1;
        // Labels: "now" to the left of its line, "runs out" to the right and a row lower, so the
        // two never overlap however close they are.
        const line = (t, color, dash, size, label, row = 0, side = "left") => {
          const x = Math.round(u.valToPos(t, "x", true));
          if (x < left || x > left + width) return;
          ctx.save();
          ctx.strokeStyle = color;
          ctx.lineWidth = size * ratio;
          ctx.setLineDash(dash.map((d) => d * ratio));
          ctx.beginPath();
          ctx.moveTo(x, top);
          ctx.lineTo(x, top + height);
          ctx.stroke();
          if (label) {
            ctx.fillStyle = color;
            ctx.font = `${11 * ratio}px system-ui, sans-serif`;
            const room = side === "left" ? x - left : left + width - x;
            const toRight = side === "right" ? room > 60 * ratio : room < 40 * ratio;
            ctx.textAlign = toRight ? "left" : "right";
            ctx.fillText(label, x + (toRight ? 4 : -4) * ratio, top + (12 + row * 14) * ratio);
          }
          ctx.restore();
        };
        for (const t of win.resets) line(t, css("--chart-reset"), [3, 3], 1, "");
        line(data.now, css("--muted"), [], 1, "now", 0, "left");
        if (outInView(win, data)) line(win.forecast.runs_out_at, css("--bad"), [6, 3], 2, "runs out", 1, "right");
      }],
    },
  };
}

function chartOptions(win, data, size) {
  const colours = palette();
  const accountSeries = win.accounts.map((a, i) => ({
    label: a.name,
    stroke: colours[i % colours.length],
    width: 1.5,
    paths: uPlot.paths.stepped({ align: 1 }),
    value: (u, v) => (v == null ? "—" : `${Math.round(v)}%`),
  }));
  const axis = { stroke: css("--muted"), grid: { stroke: css("--line"), width: 1 }, ticks: { stroke: css("--line"), width: 1 } };
  return {
    width: size.width,
    height: size.height,
    scales: { x: { time: true, min: data.since, max: data.until }, y: { range: [0, 100] } },
    axes: [axis, { ...axis, size: 52, values: (u, ticks) => ticks.map((v) => `${v}%`) }],
    series: [
      { value: (u, v) => (v == null ? "—" : new Date(v * 1000).toLocaleString([], { weekday: "short", hour: "2-digit", minute: "2-digit", hour12: false })) },
      { label: "Pool", stroke: css("--accent"), width: 3, paths: uPlot.paths.stepped({ align: 1 }),
        value: (u, v) => (v == null ? "—" : `${Math.round(v)}%`) },
      ...accountSeries,
    ],
    legend: { live: true },
    cursor: { drag: { x: false, y: false } },
    plugins: [marks(win, data)],
  };
}

function sizeOf(box) {
  const width = Math.max(240, Math.floor(box.clientWidth));
  return { width, height: width < 520 ? 190 : 250 };
}

function headline(win) {
  const f = win.forecast;
  if (f.used_percent == null) return "No readings yet";
  const pace = f.pace_percent_per_hour == null ? "pace not known yet" : `${f.pace_percent_per_hour.toFixed(1)} % per hour`;
  return `Pool ${Math.round(f.used_percent)}% used · ${pace} · ${f.accounts} account${f.accounts === 1 ? "" : "s"}`;
}

function windowPanel(win, data, charts) {
  const box = h("div", { class: "chart", role: "img", "aria-label": `${win.title}: ${win.sentence}` });
  const panel = h("section", { class: "panel usage-window", dataset: { window: win.window, early: String(win.forecast.early) } },
    h("div", { class: "usage-head" },
      h("h2", {}, win.title),
      h("span", { class: "small muted usage-now" }, headline(win))),
    h("p", { class: "forecast", dataset: { early: String(win.forecast.early) } }, win.sentence),
    box,
    h("div", { class: "small muted chart-key" },
      h("span", { class: "key-reset" }, "reset"), h("span", { class: "key-now" }, "now"),
      outInView(win, data) ? h("span", { class: "key-out" }, "runs out") : null));
  const series = [win.times, win.pool, ...win.accounts.map((a) => a.values)];
  // The chart needs its box's width, so it is made once the panel is in the page.
  charts.push(() => {
    const chart = new uPlot(chartOptions(win, data, sizeOf(box)), series, box);
    box.dataset.series = String(series.length - 1);
    return chart;
  });
  return panel;
}

export function usagePage(root, actions) {
  const buttons = RANGES.map(([hours, text]) => h("button", {
    class: "btn seg", type: "button", dataset: { hours }, "aria-pressed": String(hours === range),
    onclick: () => { range = hours; for (const b of buttons) b.setAttribute("aria-pressed", String(b.dataset.hours === range)); load(); },
  }, text));
  actions.append(h("div", { class: "segmented", role: "group", "aria-label": "Time range" }, buttons));
  const body = h("div", { id: "usage", class: "usage" });
  root.append(body);
  let charts = [];
  let last = null;

  const draw = () => {
    for (const c of charts) c.destroy();
    charts = [];
    if (!last) return;
    if (!last.windows.some((w) => w.forecast.used_percent != null)) {
      body.replaceChildren(h("div", { class: "panel empty" },
        h("h2", {}, "No quota readings yet"),
        h("p", { class: "muted" }, "Each answer the pool relays, and each quota check, adds a reading. " +
          "The chart and the forecast appear after the first requests.")));
      return;
    }
    const makers = [];
    body.replaceChildren(...last.windows.filter((w) => w.forecast.used_percent != null || w.window === "5h")
      .map((w) => windowPanel(w, last, makers)));
    charts = makers.map((make) => make());
    body.dataset.ready = range;
  };
  const load = async () => {
    const data = await act(() => api("GET", `/usage?hours=${range}`));
    if (!data) return;
    last = data;
    draw();
  };
  const resize = new ResizeObserver(() => {
    for (const c of charts) {
      const size = sizeOf(c.root.parentElement);
      if (size.width !== c.width) c.setSize(size);
    }
  });
  resize.observe(body);
  const scheme = matchMedia("(prefers-color-scheme: dark)");
  scheme.addEventListener("change", draw);  // the canvas keeps its colours until redrawn
  load();
  const stop = every(60000, load);
  return () => { stop(); resize.disconnect(); scheme.removeEventListener("change", draw); for (const c of charts) c.destroy(); };
}
