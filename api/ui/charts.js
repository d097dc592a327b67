// Charts of the analyst page, drawn with the Plotly bundle of the installed
// plotly Python package (served at vendor/plotly.min.js, never a CDN).
// Plotly is 4.8 MB, so it loads on the first chart, not before the tables.

let plotlyPromise = null;

export function loadPlotly() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!plotlyPromise) {
    plotlyPromise = new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = new URL("vendor/plotly.min.js", document.baseURI).href;
      s.onload = () => resolve(window.Plotly);
      s.onerror = () => {
        plotlyPromise = null;
        reject(new Error("The chart library could not be loaded."));
      };
      document.head.append(s);
    });
  }
  return plotlyPromise;
}

// Tableau 10 first (distinct, colour-blind tolerable), then lighter variants.
const PALETTE = [
  "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
  "#9c755f", "#2f4b7c", "#a0cbe8", "#ffbe7d", "#8cd17d", "#b6992d", "#499894", "#d37295",
  "#86bcb6", "#d4a6c8", "#fabfd2", "#d7b5a6",
];
export const OTHER_COLOUR = "#9aa3ad";
export const UNASSIGNED_COLOUR = "#d5dae0";
const themeColours = new Map();

/** Stable colours: the n-th largest theme of the first map gets the n-th colour. */
export function assignThemeColours(themeIds) {
  for (const id of themeIds) {
    if (!themeColours.has(id) && themeColours.size < PALETTE.length) {
      themeColours.set(id, PALETTE[themeColours.size]);
    }
  }
}

export function colourFor(themeId) {
  if (!themeId) return UNASSIGNED_COLOUR;
  return themeColours.get(themeId) || OTHER_COLOUR;
}

const FONT = { family: "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", size: 12, color: "#1f2933" };
const CONFIG = {
  displaylogo: false,
  responsive: true,
  modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d", "toggleSpikelines"],
  toImageButtonOptions: { format: "png", scale: 2 },
};

function escapeHover(text) {
  return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** Wrap at word boundaries for Plotly's hover label (it does not wrap by itself). */
function wrap(text, width = 64) {
  const words = escapeHover(text).split(/\s+/);
  const lines = [];
  let line = "";
  for (const w of words) {
    if (line && line.length + w.length + 1 > width) {
      lines.push(line);
      line = w;
    } else {
      line = line ? `${line} ${w}` : w;
    }
  }
  if (line) lines.push(line);
  return lines.join("<br>");
}

function short(label, n = 28) {
  return label.length > n ? `${label.slice(0, n - 1)}…` : label;
}

function hasWebGL() {
  try {
    const c = document.createElement("canvas");
    return Boolean(c.getContext("webgl2") || c.getContext("webgl"));
  } catch {
    return false;
  }
}

/**
 * The theme map: one trace per colour-assigned theme, the rest as "other
 * themes", unassigned statements last. `points` are already filtered.
 */
export async function drawThemeMap(el, points, themes, { onThemeClick, languageName, extent }) {
  const Plotly = await loadPlotly();
  const labels = new Map(themes.map((t) => [t.id, t.label]));
  const groups = new Map();
  for (const p of points) {
    const key = !p.theme_id ? "__none" : themeColours.has(p.theme_id) ? p.theme_id : "__other";
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(p);
  }
  const order = [...themeColours.keys()].filter((id) => groups.has(id));
  if (groups.has("__other")) order.push("__other");
  if (groups.has("__none")) order.push("__none");
  const type = points.length > 2500 && hasWebGL() ? "scattergl" : "scatter";
  const traces = order.map((key) => {
    const pts = groups.get(key);
    const name = key === "__none" ? "Not yet in a theme" : key === "__other" ? "Other themes" : short(labels.get(key) || key);
    const colour = key === "__none" ? UNASSIGNED_COLOUR : key === "__other" ? OTHER_COLOUR : colourFor(key);
    return {
      type,
      mode: "markers",
      name,
      x: pts.map((p) => p.x),
      y: pts.map((p) => p.y),
      customdata: pts.map((p) => [
        escapeHover(p.theme_id ? labels.get(p.theme_id) || p.theme_id : "not yet in a theme"),
        languageName(p.language) + (p.approximate ? " · placed near its theme until the next re-mine" : ""),
        wrap(p.text),
        p.theme_id || "",
      ]),
      hovertemplate: "<b>%{customdata[0]}</b> · %{customdata[1]}<br>%{customdata[2]}<extra></extra>",
      marker: {
        color: colour,
        size: points.length > 3000 ? 5 : points.length > 300 ? 7 : 10,
        opacity: key === "__none" ? 0.6 : 0.85,
        line: { width: points.length > 3000 ? 0 : 0.5, color: "#ffffff" },
      },
    };
  });
  const layout = {
    font: FONT,
    margin: { l: 8, r: 8, t: 30, b: 8 },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "#fbfcfd",
    hovermode: "closest",
    hoverlabel: { bgcolor: "#ffffff", bordercolor: "#c3ccd5", font: { ...FONT, size: 13 }, align: "left" },
    dragmode: "pan",
    // The full map's extent, so filtering never moves the points under the reader's eyes.
    xaxis: { showticklabels: false, zeroline: false, showgrid: true, gridcolor: "#eef1f4", range: extent && extent.x },
    yaxis: { showticklabels: false, zeroline: false, showgrid: true, gridcolor: "#eef1f4", range: extent && extent.y },
    legend: { orientation: "v", x: 1.01, xanchor: "left", y: 1, itemsizing: "constant", font: { size: 11 } },
    showlegend: traces.length > 1,
    uirevision: "theme-map",
  };
  await Plotly.react(el, traces, layout, { ...CONFIG, scrollZoom: true });
  if (!el.dataset.bound) {
    el.dataset.bound = "1";
    el.on("plotly_click", (ev) => {
      const pt = ev && ev.points && ev.points[0];
      const id = pt && pt.customdata && pt.customdata[3];
      if (id) onThemeClick(id);
    });
  }
}

/** Months between the first and last, so quiet months show as zero, not as gaps. */
export function fillMonths(trend) {
  const counts = new Map();
  for (const t of trend || []) {
    const m = String(t.month || t.period || "").slice(0, 7);
    if (m) counts.set(m, (counts.get(m) || 0) + Number(t.count || t.statements || 0));
  }
  const months = [...counts.keys()].sort();
  if (!months.length) return [];
  const out = [];
  let [y, mo] = months[0].split("-").map(Number);
  const [ly, lm] = months[months.length - 1].split("-").map(Number);
  while (y < ly || (y === ly && mo <= lm)) {
    const key = `${y}-${String(mo).padStart(2, "0")}`;
    out.push({ month: key, count: counts.get(key) || 0 });
    mo += 1;
    if (mo > 12) {
      mo = 1;
      y += 1;
    }
  }
  return out;
}

export async function drawTrend(el, months, colour) {
  const Plotly = await loadPlotly();
  const trace = {
    type: "bar",
    x: months.map((m) => `${m.month}-01`),
    y: months.map((m) => m.count),
    marker: { color: colour || PALETTE[0] },
    hovertemplate: "%{x|%B %Y}: %{y} statements<extra></extra>",
  };
  const layout = {
    font: FONT,
    margin: { l: 40, r: 8, t: 8, b: 36 },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "rgba(0,0,0,0)",
    bargap: 0.25,
    xaxis: { type: "date", tickformat: "%b %Y", showgrid: false, dtick: months.length > 14 ? "M3" : "M1" },
    yaxis: {
      rangemode: "tozero", gridcolor: "#eef1f4", title: { text: "statements", standoff: 6 }, tickformat: "d",
      dtick: Math.max(...months.map((m) => m.count)) <= 8 ? 1 : undefined,
    },
  };
  await Plotly.react(el, [trace], layout, { ...CONFIG, displayModeBar: false });
}

export const STATE_COLOURS = { scheduled: "#4e79a7", held: "#59a14f", cancelled: "#9aa3ad" };

/**
 * A cycle's timeline: each meeting a row, its date a marker coloured by state,
 * its note window a bar to the notes deadline, today a vertical line.
 */
export async function drawTimeline(el, meetings, { now, nextDeadline, fmt }) {
  const Plotly = await loadPlotly();
  const rows = meetings.map((m, i) => `${i + 1}. ${short(m.title || m.kind, 34)}`);
  const windows = { x: [], y: [], text: [] };
  meetings.forEach((m, i) => {
    if (m.state !== "cancelled" && m.notes_due_at) {
      windows.x.push(m.ends_at || m.starts_at, m.notes_due_at, null);
      windows.y.push(rows[i], rows[i], null);
    }
  });
  const traces = [
    {
      type: "scatter",
      mode: "lines",
      name: "Note window",
      x: windows.x,
      y: windows.y,
      line: { color: "rgba(242,142,43,0.45)", width: 10 },
      hoverinfo: "skip",
    },
  ];
  const deadlines = meetings
    .map((m, i) => ({ m, row: rows[i] }))
    .filter(({ m }) => m.state !== "cancelled" && m.notes_due_at);
  traces.push({
    type: "scatter",
    mode: "markers",
    name: "Notes due",
    x: deadlines.map(({ m }) => m.notes_due_at),
    y: deadlines.map(({ row }) => row),
    marker: {
      symbol: "diamond",
      size: 11,
      color: deadlines.map(({ m }) => (m.escalated ? "#e15759" : "#f28e2b")),
      line: { color: "#ffffff", width: 1 },
    },
    text: deadlines.map(({ m }) => `Notes due ${fmt(m.notes_due_at)} · ${m.note_count || 0} received${m.escalated ? " · escalated" : ""}`),
    hovertemplate: "%{text}<extra></extra>",
  });
  for (const state of ["held", "scheduled", "cancelled"]) {
    const ms = meetings.map((m, i) => ({ m, row: rows[i] })).filter(({ m }) => m.state === state);
    if (!ms.length) continue;
    traces.push({
      type: "scatter",
      mode: "markers",
      name: state[0].toUpperCase() + state.slice(1),
      x: ms.map(({ m }) => m.starts_at),
      y: ms.map(({ row }) => row),
      marker: {
        size: 15,
        symbol: state === "cancelled" ? "x" : state === "held" ? "circle" : "circle-open",
        color: STATE_COLOURS[state],
        line: { width: state === "scheduled" ? 3 : 1, color: STATE_COLOURS[state] },
      },
      text: ms.map(({ m }) => `${escapeHover(m.title || m.kind)}<br>${fmt(m.starts_at)}${m.host ? ` · host ${escapeHover(m.host)}` : ""}<br>${state}`),
      hovertemplate: "%{text}<extra></extra>",
    });
  }
  const shapes = [
    { type: "line", xref: "x", yref: "paper", x0: now, x1: now, y0: 0, y1: 1, line: { color: "#1f2933", width: 1, dash: "dot" } },
  ];
  const annotations = [
    { xref: "x", yref: "paper", x: now, y: 1, yanchor: "bottom", text: "today", showarrow: false, font: { size: 11, color: "#52606d" } },
  ];
  if (nextDeadline && nextDeadline.at) {
    shapes.push({ type: "line", xref: "x", yref: "paper", x0: nextDeadline.at, x1: nextDeadline.at, y0: 0, y1: 1, line: { color: "#e15759", width: 1.5 } });
    annotations.push({ xref: "x", yref: "paper", x: nextDeadline.at, y: 1, yanchor: "bottom", xanchor: "left", text: "next deadline", showarrow: false, font: { size: 11, color: "#c23b3e" } });
  }
  const height = Math.max(240, 110 + 38 * meetings.length);
  const bottom = 96; // date ticks on two lines, then the legend
  const layout = {
    font: FONT,
    height,
    margin: { l: 220, r: 16, t: 28, b: bottom },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "#fbfcfd",
    hovermode: "closest",
    hoverlabel: { bgcolor: "#ffffff", bordercolor: "#c3ccd5", font: { ...FONT, size: 13 }, align: "left" },
    xaxis: { type: "date", gridcolor: "#eef1f4", tickformat: "%d %b\n%Y" },
    yaxis: { type: "category", autorange: "reversed", categoryorder: "array", categoryarray: rows, automargin: true },
    legend: { orientation: "h", x: 0, y: -58 / (height - 28 - bottom), yanchor: "top" },
    shapes,
    annotations,
  };
  await Plotly.react(el, traces, layout, { ...CONFIG, displayModeBar: false });
}

/** [min, max] of x and y over all points, with a margin. */
export function extentOf(points) {
  if (!points.length) return null;
  const span = (vals) => {
    const lo = Math.min(...vals);
    const hi = Math.max(...vals);
    const pad = (hi - lo || 1) * 0.06;
    return [lo - pad, hi + pad];
  };
  return { x: span(points.map((p) => p.x)), y: span(points.map((p) => p.y)) };
}

export function purge(el) {
  if (window.Plotly && el) window.Plotly.purge(el);
}
