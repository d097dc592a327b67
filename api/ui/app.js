// The analyst page: themes (map + recurrence), one theme, search, cycles.
// Plain ES modules, no build step; every /v1 call goes through api.js.

import { ApiError, get, getAll, itemsOf, onAuthError, storeKey, storedKey } from "./api.js";
import {
  assignThemeColours, colourFor, drawThemeMap, drawTimeline, drawTrend, extentOf, fillMonths, loadPlotly, purge,
  STATE_COLOURS,
} from "./charts.js";

// ---- small DOM helpers (no innerHTML with data: statements are user text) ----

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "style" && typeof v === "object") {
      for (const [prop, val] of Object.entries(v)) el.style.setProperty(prop.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`), val);
    }
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const $ = (sel) => document.querySelector(sel);

/** replaceChildren without the "null" text nodes it would make of skipped parts. */
function fill(el, ...kids) {
  el.replaceChildren(...kids.flat(Infinity).filter((k) => k !== null && k !== undefined && k !== false));
}

/** The cycle API gives instants as {utc, local}; everything else as ISO strings. */
const instant = (v) => (v && typeof v === "object" ? v.utc || v.local : v);

function errorBox(err) {
  const msg = err instanceof ApiError ? err.message : err && err.message ? err.message : String(err);
  const hint = err instanceof ApiError && err.isAuth ? " Check your API key (button at the top right)." : "";
  return h("p", { class: "error", role: "alert" }, msg + hint);
}

function toast(message) {
  const t = $("#toast");
  t.textContent = message;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (t.hidden = true), 4000);
}

// ---- formatting ----

const languageNames = (() => {
  try {
    return new Intl.DisplayNames(["en"], { type: "language" });
  } catch {
    return null;
  }
})();

export function languageName(code) {
  if (!code) return "unknown language";
  try {
    return (languageNames && languageNames.of(code)) || code;
  } catch {
    return code;
  }
}

function langBadge(code, count) {
  return h("span", { class: "lang", title: languageName(code) }, code, count !== undefined ? h("b", {}, ` ${count}`) : null);
}

function fmtDate(value, { time = false, zone } = {}) {
  if (!value) return "—";
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  const opts = time
    ? { day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit" }
    : { day: "numeric", month: "short", year: "numeric" };
  try {
    return new Intl.DateTimeFormat("en-GB", zone ? { ...opts, timeZone: zone } : opts).format(d);
  } catch {
    return new Intl.DateTimeFormat("en-GB", opts).format(d);
  }
}

function fmtMonth(value) {
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  return new Intl.DateTimeFormat("en-GB", { month: "short", year: "numeric" }).format(d);
}

function relative(value) {
  if (!value) return "";
  const diff = new Date(value).getTime() - Date.now();
  const days = Math.round(diff / 86400000);
  const rtf = new Intl.RelativeTimeFormat("en", { numeric: "auto" });
  if (Math.abs(days) >= 1) return rtf.format(days, "day");
  return rtf.format(Math.round(diff / 3600000), "hour");
}

const humanise = (s) => String(s || "").replace(/_/g, " ");
const pick = (obj, ...keys) => {
  for (const k of keys) {
    const v = k.split(".").reduce((o, p) => (o == null ? undefined : o[p]), obj);
    if (v !== undefined && v !== null) return v;
  }
  return undefined;
};

// ---- shared state ----

const state = {
  map: null, // the /v1/themes/map answer, unfiltered, loaded once per page
  mapPromise: null,
  programmes: null,
  themeLabels: new Map(),
  recurrence: { items: [], cursor: null, key: "" },
  searchAbort: null,
};

function keyphrasesOf(theme) {
  return (theme.keyphrases || []).map((k) => (typeof k === "string" ? k : k.text || k.phrase || k.keyphrase || "")).filter(Boolean);
}

function recurrenceOf(theme) {
  const r = theme.recurrence || {};
  return {
    cycles: pick(r, "cycles", "distinct_cycles") ?? pick(theme, "cycles") ?? 0,
    programmes: pick(r, "programmes", "distinct_programmes") ?? pick(theme, "programmes") ?? 0,
    organisations: pick(r, "organisations", "distinct_organisations") ?? pick(theme, "organisations") ?? 0,
    languages: pick(r, "languages", "distinct_languages") ?? Object.keys(theme.languages || {}).length,
    first_seen: pick(r, "first_seen") ?? theme.first_seen,
    last_seen: pick(r, "last_seen") ?? theme.last_seen,
  };
}

const asCount = (v) => (Array.isArray(v) ? v.length : Number(v) || 0);

async function loadMap() {
  if (!state.mapPromise) {
    state.mapPromise = get("themes/map", { limit: 8000 }).then((m) => {
      state.map = m;
      state.mapExtent = extentOf(m.points);
      assignThemeColours(m.themes.map((t) => t.id));
      for (const t of m.themes) state.themeLabels.set(t.id, t.label);
      return m;
    });
    state.mapPromise.catch(() => (state.mapPromise = null));
  }
  return state.mapPromise;
}

async function loadProgrammes() {
  if (!state.programmes) {
    try {
      state.programmes = (await getAll("programmes", {}, { max: 500 })).map((p) => ({
        id: p.id || p.programme_id,
        name: p.name || p.title || p.id || p.programme_id,
      }));
    } catch (err) {
      if (err instanceof ApiError && err.isAuth) throw err;
      state.programmes = []; // fall back on what the map knows
    }
    const known = new Set(state.programmes.map((p) => p.id));
    for (const p of (state.map && state.map.points) || []) {
      if (p.programme_id && !known.has(p.programme_id)) {
        known.add(p.programme_id);
        state.programmes.push({ id: p.programme_id, name: p.programme_id });
      }
    }
  }
  return state.programmes;
}

function fillSelect(select, options, value) {
  const first = select.options[0];
  select.replaceChildren(first, ...options.map(([v, label]) => h("option", { value: v }, label)));
  select.value = options.some(([v]) => v === value) ? value : "";
}

function languageOptions() {
  const langs = new Map(Object.entries((state.map && state.map.languages) || {}));
  return [...langs.entries()].sort((a, b) => b[1] - a[1]).map(([code, n]) => [code, `${languageName(code)} (${code}) · ${n}`]);
}

// ---- routing: #/themes, #/themes/<id>, #/search?q=, #/cycles, #/cycles/<id> ----

function parseHash() {
  const raw = window.location.hash.replace(/^#\/?/, "") || "themes";
  const [path, query] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, params: new URLSearchParams(query || "") };
}

function setHashParams(base, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const next = `#/${base}${q.toString() ? `?${q}` : ""}`;
  if (window.location.hash !== next) history.replaceState(null, "", next);
}

function show(view) {
  for (const s of document.querySelectorAll("main > [data-view]")) s.hidden = s.dataset.view !== view;
  const top = view === "theme" ? "themes" : view === "cycle" ? "cycles" : view;
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (a.dataset.nav === top) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.body.dataset.currentView = view;
}

function focusHeading(sel) {
  const el = document.querySelector(sel);
  if (el && document.activeElement && document.activeElement.tagName !== "INPUT") el.focus({ preventScroll: true });
}

let routeSeq = 0;
let started = false;
async function route() {
  started = true;
  const seq = ++routeSeq;
  const { parts, params } = parseHash();
  const [top, id] = parts;
  document.body.setAttribute("aria-busy", "true");
  try {
    if (top === "themes" && id) {
      show("theme");
      await viewTheme(id, seq);
    } else if (top === "search") {
      show("search");
      await viewSearch(params, seq);
    } else if (top === "cycles" && id) {
      show("cycle");
      await viewCycle(id, seq);
    } else if (top === "cycles") {
      show("cycles");
      focusHeading("#cycles-title");
      await viewCycles(seq);
    } else if (top === "mail") {
      show("mail");
      focusHeading("#mail-title");
      await viewMail(id, seq);
    } else {
      show("themes");
      await viewThemes(params, seq);
    }
  } finally {
    if (seq === routeSeq) document.body.removeAttribute("aria-busy");
  }
}

// ---- themes: map + recurrence ----

function currentFilters() {
  return {
    language: $("#filter-language").value,
    programme: $("#filter-programme").value,
    sort: $("#filter-sort").value,
  };
}

async function viewThemes(params, seq) {
  document.title = "Themes · peerlearn";
  $("#filter-sort").value = params.get("sort") || "recurrence";
  const mapEl = $("#theme-map");
  let map;
  try {
    map = await loadMap();
  } catch (err) {
    mapEl.replaceChildren(errorBox(err));
  }
  if (seq !== routeSeq) return;
  try {
    await loadProgrammes();
  } catch {
    /* the recurrence table reports auth errors */
  }
  fillSelect($("#filter-language"), languageOptions(), params.get("language") || "");
  fillSelect($("#filter-programme"), (state.programmes || []).map((p) => [p.id, p.name]), params.get("programme") || "");
  const filters = currentFilters();
  await Promise.all([map ? renderMap(filters) : null, renderRecurrence(filters, false)]);
}

async function renderMap({ language, programme }) {
  const map = state.map;
  const el = $("#theme-map");
  const points = map.points.filter(
    (p) => (!language || p.language === language) && (!programme || p.programme_id === programme),
  );
  const caption = $("#map-caption");
  if (!map.points.length) {
    purge(el);
    el.replaceChildren(h("p", { class: "empty" }, "No statements yet. Themes appear here once notes are submitted and mined."));
    caption.textContent = "";
    return;
  }
  if (el.querySelector(".empty, .error")) el.replaceChildren();
  const how =
    map.projection === "stored"
      ? "the miner's projection"
      : `PCA of embeddings, language signal removed${map.explained_variance ? ` (${Math.round(100 * (map.explained_variance[0] + map.explained_variance[1]))}% of variance)` : ""}`;
  const sampled = map.total > map.count ? ` (a sample of ${map.total.toLocaleString("en")})` : "";
  caption.textContent = `${points.length.toLocaleString("en")} statements${sampled} · ${map.themes.length} themes · ${how}`;
  el.dataset.points = String(points.length);
  try {
    await drawThemeMap(el, points, map.themes, {
      languageName,
      extent: state.mapExtent,
      onThemeClick: (id) => {
        window.location.hash = `#/themes/${encodeURIComponent(id)}`;
      },
    });
  } catch (err) {
    el.replaceChildren(errorBox(err));
  }
}

const LANG_ORDER = ["en", "sv", "pl", "de", "et", "da", "no", "fi"];

function recurrenceLanguages(items) {
  const seen = new Set(Object.keys((state.map && state.map.languages) || {}));
  for (const t of items) for (const l of Object.keys(t.languages || {})) seen.add(l);
  return [...seen].sort((a, b) => {
    const ia = LANG_ORDER.indexOf(a);
    const ib = LANG_ORDER.indexOf(b);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
  });
}

function renderRecurrenceRows(items) {
  const table = $("#recurrence-table");
  const langs = recurrenceLanguages(items);
  table.tHead.replaceChildren(
    h("tr", {},
      h("th", { scope: "col" }, "Theme"),
      h("th", { scope: "col", class: "num", title: "distinct cycles" }, "Cycles"),
      h("th", { scope: "col", class: "num", title: "distinct programmes" }, "Progs"),
      h("th", { scope: "col", class: "num", title: "distinct organisations" }, "Orgs"),
      h("th", { scope: "col", class: "num", title: "statements" }, "Stmts"),
      langs.map((l) => h("th", { scope: "col", class: "num lang-col", title: `statements in ${languageName(l)}` }, l)),
      h("th", { scope: "col" }, "Last seen"),
    ),
  );
  table.tBodies[0].replaceChildren(
    ...items.map((t) => {
      const r = recurrenceOf(t);
      const cycles = asCount(r.cycles);
      state.themeLabels.set(t.id, t.title || t.label);
      return h("tr", { "data-theme": t.id },
        h("th", { scope: "row", class: "theme-cell" },
          h("span", { class: "swatch", style: { background: colourFor(t.id) }, "aria-hidden": "true" }),
          h("a", { href: `#/themes/${encodeURIComponent(t.id)}` }, t.title || t.label || t.id),
          h("span", { class: "muted small kp" }, keyphrasesOf(t).slice(0, 3).join(" · ")),
        ),
        h("td", { class: "num strong" }, cycles),
        h("td", { class: "num" }, asCount(r.programmes)),
        h("td", { class: "num" }, asCount(r.organisations)),
        h("td", { class: "num" }, t.size ?? "—"),
        langs.map((l) => {
          const n = (t.languages || {})[l] || 0;
          return h("td", { class: n ? "num" : "num zero" }, n);
        }),
        h("td", { class: "nowrap" }, r.last_seen ? fmtMonth(r.last_seen) : "—"),
      );
    }),
  );
  if (!items.length) {
    table.tBodies[0].replaceChildren(
      h("tr", {}, h("td", { colspan: 6 + langs.length, class: "empty" }, "No themes match these filters yet.")),
    );
  }
}

async function renderRecurrence({ language, programme, sort }, more) {
  const caption = $("#recurrence-caption");
  const moreBtn = $("#recurrence-more");
  const key = JSON.stringify({ language, programme, sort });
  const rec = state.recurrence;
  if (!more) {
    rec.items = [];
    rec.cursor = null;
    rec.key = key;
  }
  const tbody = $("#recurrence-table").tBodies[0];
  tbody.setAttribute("aria-busy", "true");
  try {
    const body = await get("themes", { language, programme, sort, limit: 50, cursor: more ? rec.cursor : undefined });
    if (rec.key !== key) return; // filters changed meanwhile
    rec.items.push(...itemsOf(body));
    rec.cursor = body && body.next_cursor;
    renderRecurrenceRows(rec.items);
    moreBtn.hidden = !rec.cursor;
    const multi = rec.items.filter((t) => asCount(recurrenceOf(t).cycles) > 1).length;
    caption.textContent = `${rec.items.length}${rec.cursor ? "+" : ""} themes · ${multi} recur in more than one cycle`;
  } catch (err) {
    $("#recurrence-table").tBodies[0].replaceChildren(h("tr", {}, h("td", { colspan: 8 }, errorBox(err))));
    caption.textContent = "";
  } finally {
    tbody.removeAttribute("aria-busy");
  }
}

function onFiltersChanged() {
  const f = currentFilters();
  setHashParams("themes", { language: f.language, programme: f.programme, sort: f.sort === "recurrence" ? "" : f.sort });
  if (state.map) renderMap(f);
  renderRecurrence(f, false);
}

// ---- one theme ----

function representativesOf(theme) {
  const reps = theme.representatives || {};
  const byLang = new Map();
  if (Array.isArray(reps)) {
    for (const r of reps) {
      const l = r.language || "?";
      if (!byLang.has(l)) byLang.set(l, []);
      byLang.get(l).push(r);
    }
  } else {
    for (const [l, list] of Object.entries(reps)) byLang.set(l, Array.isArray(list) ? list : [list]);
  }
  return byLang;
}

function sourceLine(s) {
  if (!s) return null;
  const bits = [
    pick(s, "organisation_name", "organisation", "organisation_id"),
    pick(s, "meeting_title", "meeting", "meeting_id"),
    pick(s, "cycle_title", "cycle", "cycle_id"),
    pick(s, "programme_name", "programme", "programme_id"),
  ].filter((b) => b && typeof b !== "object");
  const date = pick(s, "date", "source_date", "held_at", "submitted_at");
  return h("span", { class: "source" }, bits.join(" · "), date ? ` · ${fmtDate(date)}` : "");
}

// An English statement of the same theme close to a non-English one: shown as
// what it is (a similar statement), never as a translation.
function glossEl(g) {
  if (!g || !g.english_text) return null;
  return h("p", { class: "gloss small", title: `similarity ${Number(g.similarity).toFixed(2)}` },
    h("span", { class: "gloss-label" }, `${g.label || "similar English statement (not a translation)"}: `),
    h("span", { lang: "en" }, g.english_text));
}

function practiceItem(p, i) {
  const text = pick(p, "title", "text", "statement.text") || "";
  const kind = pick(p, "kind") || "practice";
  const cycles = asCount(pick(p, "support_cycles", "support.cycles", "cycles") ?? 1);
  const orgs = asCount(pick(p, "support_organisations", "support.organisations", "organisations") ?? 1);
  const sources = pick(p, "sources") || (p.source ? [p.source] : []);
  const lang = pick(p, "title_language", "language", "statement.language");
  const wordings = Object.entries(p.wordings || {});
  const head = (p.wordings || {})[lang];
  const others = wordings.filter(([l]) => l !== lang);
  return h("li", { class: "practice", "data-practice": p.id || "" },
    h("div", { class: "practice-head" },
      h("span", { class: `kind kind-${kind}` }, humanise(kind)),
      lang ? langBadge(lang) : null,
      h("span", { class: "support", title: "independent support: distinct cycles and organisations that said something close" },
        `${cycles} cycle${cycles === 1 ? "" : "s"} · ${orgs} organisation${orgs === 1 ? "" : "s"}`),
      p.audience && kind === "recommendation" ? h("span", { class: "muted small" }, `for ${humanise(p.audience)}`) : null,
    ),
    h("blockquote", { lang: lang || undefined }, text),
    head && lang !== "en" ? glossEl(head.gloss) : null,
    others.length
      ? h("ul", { class: "wordings", "aria-label": "the same idea in other languages" },
        others.map(([l, w]) => h("li", { class: "wording" },
          langBadge(l), " ", h("span", { lang: l }, w.text),
          l !== "en" ? glossEl(w.gloss) : null)))
      : null,
    sources.length
      ? h("p", { class: "sources small" }, "Said by ", sources.slice(0, 6).map((s, j) => [
        j ? ", " : "",
        s.language ? langBadge(s.language) : null,
        pick(s, "organisation_name", "organisation_id", "organisation") || "?",
        ` (${[pick(s, "cycle_title", "cycle_id"), s.date ? fmtMonth(s.date) : null].filter(Boolean).join(", ")})`,
      ]), sources.length > 6 ? ` and ${sources.length - 6} more` : "")
      : null,
  );
}

async function viewTheme(id, seq) {
  const box = $("#theme-detail");
  box.replaceChildren(h("p", { class: "muted" }, "Loading theme…"));
  let theme;
  try {
    theme = await get(`themes/${encodeURIComponent(id)}`);
  } catch (err) {
    if (seq !== routeSeq) return;
    box.replaceChildren(h("h1", { id: "theme-title", tabindex: "-1" }, "Theme"), errorBox(err));
    return;
  }
  await loadMap().catch(() => null); // colours follow the map's order (cached after the first)
  if (seq !== routeSeq) return;
  const title = theme.title || theme.label || theme.id;
  const otherTitles = Object.entries(theme.titles || {}).filter(([, t]) => t && t !== title);
  document.title = `${title} · peerlearn`;
  const r = recurrenceOf(theme);
  const langs = Object.entries(theme.languages || {}).sort((a, b) => b[1] - a[1]);
  const months = fillMonths(theme.trend || (theme.recurrence && theme.recurrence.trend) || []);
  const reps = representativesOf(theme);
  const practices = [...(theme.practices || [])].sort((a, b) => (a.rank ?? 1e9) - (b.rank ?? 1e9));
  const sources = theme.sources || [];
  const trendEl = h("div", { class: "chart chart-trend", id: "theme-trend", role: "img", "aria-label": `Statements per month about ${theme.label}` });

  fill(box,
    h("header", { class: "theme-head" },
      h("span", { class: "swatch big", style: { background: colourFor(theme.id) }, "aria-hidden": "true" }),
      h("div", {},
        h("h1", { id: "theme-title", tabindex: "-1" }, title),
        otherTitles.length
          ? h("p", { class: "titles small muted" }, otherTitles.map(([l, t], j) => [
            j ? " · " : "", langBadge(l), " ", h("span", { lang: l }, t)]))
          : null,
        h("p", { class: "keyphrases" }, keyphrasesOf(theme).map((k) => h("span", { class: "chip" }, k))),
      ),
    ),
    h("dl", { class: "stats" },
      [["Statements", theme.size ?? "—"], ["Cycles", asCount(r.cycles)], ["Programmes", asCount(r.programmes)],
        ["Organisations", asCount(r.organisations)], ["First seen", fmtDate(r.first_seen)], ["Last seen", fmtDate(r.last_seen)]]
        .map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, v))),
      h("div", {}, h("dt", {}, "Languages"), h("dd", { class: "langs" }, langs.map(([l, n]) => langBadge(l, n)))),
    ),
    h("div", { class: "theme-grid" },
      h("section", { class: "card", "aria-labelledby": "trend-title" },
        h("h2", { id: "trend-title" }, "Trend"),
        months.length ? trendEl : h("p", { class: "empty" }, "No dated statements yet."),
        months.length
          ? h("table", { class: "visually-hidden" }, h("caption", {}, "Statements per month"),
            h("tbody", {}, months.map((m) => h("tr", {}, h("th", { scope: "row" }, m.month), h("td", {}, m.count)))))
          : null,
      ),
      h("section", { class: "card", "aria-labelledby": "reps-title" },
        h("h2", { id: "reps-title" }, "What was said, per language"),
        reps.size
          ? h("div", { class: "reps" }, [...reps.entries()].map(([l, list]) =>
            h("div", { class: "rep-lang" },
              h("h3", {}, langBadge(l), " ", languageName(l)),
              h("ul", {}, list.slice(0, 3).map((s) => h("li", {},
                h("span", { lang: l }, typeof s === "string" ? s : s.text),
                typeof s === "string" || l === "en" ? null : glossEl(s.gloss)))),
            )))
          : h("p", { class: "empty" }, "No representative statements."),
      ),
    ),
    h("section", { class: "card", "aria-labelledby": "practices-title" },
      h("h2", { id: "practices-title" }, "Practices and lessons, one per idea, ranked by independent support"),
      practices.length ? h("ol", { class: "practices" }, practices.slice(0, 20).map(practiceItem)) : h("p", { class: "empty" }, "No lessons, recommendations or best practices in this theme yet."),
    ),
    sources.length
      ? h("section", { class: "card", "aria-labelledby": "sources-title" },
        h("h2", { id: "sources-title" }, `Sources (${sources.length})`),
        h("div", { class: "table-wrap" },
          h("table", { class: "data" },
            h("thead", {}, h("tr", {}, ["Date", "Organisation", "Meeting", "Cycle", "Programme", "Note"].map((c) => h("th", { scope: "col" }, c)))),
            h("tbody", {}, sources.slice(0, 100).map((s) => h("tr", {},
              h("td", { class: "nowrap" }, fmtDate(pick(s, "date", "source_date"))),
              h("td", {}, pick(s, "organisation_name", "organisation_id", "organisation") ?? "—"),
              h("td", {}, pick(s, "meeting_title", "meeting_id", "meeting") ?? "—"),
              h("td", {}, pick(s, "cycle_title", "cycle_id", "cycle") ?? "—"),
              h("td", {}, pick(s, "programme_name", "programme_id", "programme") ?? "—"),
              h("td", { class: "mono small" }, pick(s, "note_id", "note") ?? "—"),
            ))),
          ),
        ),
      )
      : null,
  );
  focusHeading("#theme-title");
  if (months.length) {
    try {
      await drawTrend(trendEl, months, colourFor(theme.id));
    } catch (err) {
      trendEl.replaceChildren(errorBox(err));
    }
  }
}

// ---- search ----

async function viewSearch(params, seq) {
  document.title = "Search · peerlearn";
  const q = (params.get("q") || "").trim();
  $("#search-q").value = q;
  loadMap().catch(() => null);
  try {
    await loadProgrammes();
  } catch {
    /* reported by the search itself */
  }
  fillSelect($("#search-language"), languageOptions(), params.get("language") || "");
  fillSelect($("#search-programme"), (state.programmes || []).map((p) => [p.id, p.name]), params.get("programme") || "");
  if (seq !== routeSeq) return;
  const list = $("#search-results");
  const caption = $("#search-caption");
  if (!q) {
    list.replaceChildren();
    focusHeading("#search-title");
    return;
  }
  if (state.searchAbort) state.searchAbort.abort();
  const abort = new AbortController();
  state.searchAbort = abort;
  caption.textContent = `Searching for “${q}”…`;
  list.setAttribute("aria-busy", "true");
  const language = $("#search-language").value;
  const programme = $("#search-programme").value;
  let body;
  const started = performance.now();
  try {
    body = await get("search", { q, language, programme, limit: 20 }, { signal: abort.signal });
  } catch (err) {
    if (err.name === "AbortError") return;
    list.replaceChildren();
    caption.replaceChildren(errorBox(err));
    return;
  } finally {
    list.removeAttribute("aria-busy");
  }
  if (seq !== routeSeq) return;
  const hits = itemsOf(body);
  const ms = Math.round(performance.now() - started);
  const langs = new Set(hits.map((x) => pick(x, "language", "statement.language")).filter(Boolean));
  caption.textContent = hits.length
    ? `${hits.length} statements for “${q}”, in ${[...langs].map(languageName).join(", ")} (${ms} ms)`
    : `Nothing found for “${q}”.`;
  list.replaceChildren(
    ...hits.map((x) => {
      const lang = pick(x, "language", "statement.language");
      const themeId = pick(x, "theme_id", "theme.id");
      const themeLabel = pick(x, "theme_label", "theme.label") || (themeId && state.themeLabels.get(themeId));
      const score = pick(x, "score", "similarity");
      return h("li", { class: "hit" },
        h("div", { class: "hit-meta" },
          lang ? langBadge(lang) : null,
          themeId
            ? h("a", { class: "theme-link", href: `#/themes/${encodeURIComponent(themeId)}` },
              h("span", { class: "swatch", style: { background: colourFor(themeId) }, "aria-hidden": "true" }),
              themeLabel || themeId)
            : h("span", { class: "muted small" }, "not yet in a theme"),
          pick(x, "kind") && x.kind !== "other" ? h("span", { class: `kind kind-${x.kind}` }, humanise(x.kind)) : null,
          typeof score === "number" ? h("span", { class: "score", title: "cosine similarity" }, score.toFixed(2)) : null,
        ),
        h("p", { class: "hit-text", lang: lang || undefined }, pick(x, "text", "statement.text") || ""),
        lang !== "en" ? glossEl(x.gloss) : null,
        sourceLine(x.source || x),
      );
    }),
  );
}

// ---- cycles ----

function cycleIdOf(c) {
  return c.cycle_id || c.id;
}

async function viewCycles(seq) {
  document.title = "Cycles · peerlearn";
  const tbody = $("#cycles-table").tBodies[0];
  tbody.replaceChildren(h("tr", {}, h("td", { colspan: 6, class: "muted" }, "Loading cycles…")));
  let cycles;
  try {
    cycles = await getAll("cycles", {}, { max: 500 });
  } catch (err) {
    tbody.replaceChildren(h("tr", {}, h("td", { colspan: 6 }, errorBox(err))));
    return;
  }
  if (seq !== routeSeq) return;
  if (!cycles.length) {
    tbody.replaceChildren(h("tr", {}, h("td", { colspan: 6, class: "empty" }, "No cycles yet. A manager starts one with POST /v1/cycles.")));
    return;
  }
  try {
    await loadProgrammes();
  } catch {
    /* names fall back to ids */
  }
  const names = new Map((state.programmes || []).map((p) => [p.id, p.name]));
  fill(tbody, cycles.map((c) => {
    const id = cycleIdOf(c);
    return h("tr", {},
      h("th", { scope: "row" }, h("a", { href: `#/cycles/${encodeURIComponent(id)}` }, c.title || id), h("span", { class: "muted small mono" }, ` ${id}`)),
      h("td", {}, names.get(c.programme_id) || c.programme_id || "—"),
      h("td", {}, h("span", { class: `pill pill-${c.status}` }, humanise(c.status || "—"))),
      h("td", {}, humanise(c.phase || "—")),
      h("td", { class: "nowrap" }, fmtDate(instant(c.ends_at))),
      h("td", { class: "nowrap" }, c.updated_at ? `${fmtDate(instant(c.updated_at), { time: true })}` : "—"),
    );
  }));
}

async function viewCycle(id, seq) {
  const box = $("#cycle-detail");
  box.replaceChildren(h("p", { class: "muted" }, "Loading cycle…"));
  let c;
  try {
    c = await get(`cycles/${encodeURIComponent(id)}`);
  } catch (err) {
    if (seq !== routeSeq) return;
    box.replaceChildren(h("h1", { id: "cycle-title", tabindex: "-1" }, `Cycle ${id}`), errorBox(err));
    return;
  }
  if (seq !== routeSeq) return;
  const zone = c.time_zone || "UTC";
  const fmt = (v) => fmtDate(v, { time: true, zone });
  // The status query and the read model name a few fields differently.
  const meetings = (c.meetings || [])
    .map((m) => ({
      ...m,
      starts_at: instant(m.starts_at),
      ends_at: instant(m.ends_at),
      held_at: instant(m.held_at),
      notes_due_at: instant(m.notes_due_at),
      meeting_id: m.meeting_id || m.id,
      escalated: Boolean(m.escalated || m.escalated_at),
      theme_ids: m.theme_ids || (m.themes || []).map((t) => (typeof t === "string" ? t : t.id)),
    }))
    .sort((a, b) => String(a.starts_at).localeCompare(String(b.starts_at)));
  loadMap().catch(() => null); // theme labels for the meetings' themes
  document.title = `${c.title || id} · peerlearn`;
  const status = c.status || c.phase;
  const next = c.next_deadline ? { ...c.next_deadline, at: instant(c.next_deadline.at) } : null;
  const counts = { held: 0, scheduled: 0, cancelled: 0 };
  for (const m of meetings) counts[m.state] = (counts[m.state] || 0) + 1;
  const chart = h("div", { class: "chart chart-timeline", id: "cycle-timeline", role: "img", "aria-label": "Timeline of the cycle's meetings and note deadlines" });
  fill(box,
    h("header", { class: "cycle-head" },
      h("h1", { id: "cycle-title", tabindex: "-1" }, c.title || id),
      h("p", { class: "muted" }, h("span", { class: "mono" }, cycleIdOf(c) || id), " · programme ", c.programme_id || "—", " · times in ", zone),
    ),
    h("dl", { class: "stats" },
      h("div", {}, h("dt", {}, "Status"), h("dd", {}, h("span", { class: `pill pill-${status}` }, humanise(status)))),
      h("div", {}, h("dt", {}, "Phase"), h("dd", {}, humanise(c.phase || "—"))),
      h("div", {}, h("dt", {}, "Meetings"), h("dd", {}, `${counts.held} held · ${counts.scheduled} scheduled${counts.cancelled ? ` · ${counts.cancelled} cancelled` : ""}`)),
      h("div", {}, h("dt", {}, "Next deadline"), h("dd", {}, next && next.at ? `${humanise(next.action)} · ${fmt(next.at)} (${relative(next.at)})` : "—")),
      h("div", {}, h("dt", {}, "Ends"), h("dd", {}, fmtDate(instant(c.ends_at)))),
      c.cancel_reason ? h("div", {}, h("dt", {}, "Cancelled because"), h("dd", {}, c.cancel_reason)) : null,
    ),
    h("section", { class: "card", "aria-labelledby": "timeline-title" },
      h("h2", { id: "timeline-title" }, "Timeline"),
      meetings.length ? chart : h("p", { class: "empty" }, "No meetings scheduled."),
    ),
    h("section", { class: "card", "aria-labelledby": "meetings-title" },
      h("h2", { id: "meetings-title" }, "Meetings"),
      h("div", { class: "table-wrap" },
        h("table", { class: "data", id: "meetings-table" },
          h("thead", {}, h("tr", {}, ["#", "Meeting", "Kind", "Host", "Starts", "State", "Notes due", "Notes", "Themes"].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, meetings.map((m, i) => h("tr", { "data-meeting": m.meeting_id, "data-state": m.state },
            h("td", { class: "num" }, i + 1),
            h("th", { scope: "row" }, m.title || m.meeting_id, m.topics && m.topics.length ? h("span", { class: "muted small kp" }, m.topics.join(" · ")) : null),
            h("td", {}, humanise(m.kind), m.format ? h("span", { class: "muted small" }, ` · ${humanise(m.format)}`) : null),
            h("td", {}, m.host || "—"),
            h("td", { class: "nowrap" }, fmt(m.starts_at)),
            h("td", {}, h("span", { class: "state", style: { "--state": STATE_COLOURS[m.state] || "#52606d" } }, humanise(m.state)),
              m.cancel_reason ? h("span", { class: "muted small" }, ` ${m.cancel_reason}`) : null),
            h("td", { class: "nowrap" }, m.state === "cancelled" ? "—" : fmt(m.notes_due_at),
              m.escalated ? h("span", { class: "flag" }, " escalated") : null),
            h("td", { class: "num" }, m.note_count ?? 0),
            h("td", { class: "meeting-themes" }, m.theme_ids.length
              ? m.theme_ids.slice(0, 4).map((t) => h("a", { href: `#/themes/${encodeURIComponent(t)}`, class: "theme-link small" },
                h("span", { class: "swatch", style: { background: colourFor(t) }, "aria-hidden": "true" }), state.themeLabels.get(t) || t))
              : h("span", { class: "muted" }, "—")),
          ))),
        ),
      ),
    ),
    c.pending_reminders && c.pending_reminders.length
      ? h("section", { class: "card", "aria-labelledby": "reminders-title" },
        h("h2", { id: "reminders-title" }, "Coming up"),
        h("ul", { class: "upcoming" }, c.pending_reminders.slice(0, 10).map((d) =>
          h("li", {}, h("span", { class: "nowrap" }, fmt(instant(d.at))), " · ", humanise(d.action), d.meeting_id ? h("span", { class: "muted" }, ` (${d.meeting_id})`) : null))),
      )
      : null,
  );
  focusHeading("#cycle-title");
  if (meetings.length) {
    try {
      await drawTimeline(chart, meetings, { now: new Date().toISOString(), nextDeadline: next, fmt });
    } catch (err) {
      chart.replaceChildren(errorBox(err));
    }
  }
}

// ---- the API key ----

function askForKey(reason) {
  const dialog = $("#key-dialog");
  const err = $("#key-error");
  err.hidden = !reason;
  err.textContent = reason || "";
  $("#key-input").value = storedKey() || "";
  if (!dialog.open) dialog.showModal();
  $("#key-input").focus();
}

function initKeyDialog() {
  const dialog = $("#key-dialog");
  dialog.addEventListener("close", () => {
    const choice = dialog.returnValue;
    dialog.returnValue = "";
    if (choice === "save") {
      storeKey($("#key-input").value);
      toast("API key saved in this browser.");
    } else if (choice === "skip" || storedKey() === null) {
      storeKey("");
    } else if (started) {
      return; // Escape on a later visit: keep the page as it is
    }
    state.mapPromise = null;
    state.programmes = null;
    route();
  });
  $("#key-button").addEventListener("click", () => askForKey());
  let shown = false;
  onAuthError((e) => {
    if (shown || dialog.open) return;
    shown = true;
    askForKey(`The API refused the request: ${e.message}`);
    setTimeout(() => (shown = false), 2000);
  });
}

// ---- caught mail (admins; GET /v1/mail) ----

async function viewMail(id, seq) {
  document.title = "Caught mail · peerlearn";
  const tbody = $("#mail-table").tBodies[0];
  const detail = $("#mail-detail");
  tbody.replaceChildren(h("tr", {}, h("td", { colspan: 7, class: "muted" }, "Loading mail…")));
  let page;
  try {
    page = await get("mail", { limit: 100 });
  } catch (err) {
    tbody.replaceChildren(h("tr", {}, h("td", { colspan: 7 }, errorBox(err))));
    detail.replaceChildren();
    return;
  }
  if (seq !== routeSeq) return;
  const items = page.items || [];
  if (!items.length) {
    tbody.replaceChildren(h("tr", {}, h("td", { colspan: 7, class: "empty" }, "No mail caught yet. Cycles send invitations when they start.")));
  } else {
    fill(tbody, items.map((m) => h("tr", { "aria-current": String(m.id) === id ? "true" : null },
      h("td", { class: "nowrap" }, fmtDate(m.received_at, { time: true })),
      h("td", {}, m.to || (m.rcpt_to || []).join(", ")),
      h("th", { scope: "row" }, h("a", { href: `#/mail/${m.id}` }, m.subject || "(no subject)")),
      h("td", {}, humanise(m.kind || "—")),
      h("td", {}, m.language ? langBadge(m.language) : "—"),
      h("td", {}, m.calendar_method || "—"),
      h("td", { title: "Receipts with this Message-ID: more than one means a re-send, which receivers deduplicate" },
        String(m.copies)),
    )));
  }
  if (!id) {
    detail.replaceChildren();
    return;
  }
  let m;
  try {
    m = await get(`mail/${encodeURIComponent(id)}`);
  } catch (err) {
    detail.replaceChildren(errorBox(err));
    return;
  }
  if (seq !== routeSeq) return;
  detail.replaceChildren(h("section", { class: "card", "aria-labelledby": "mail-detail-title" },
    h("h2", { id: "mail-detail-title" }, m.subject || "(no subject)"),
    h("p", { class: "muted small" }, `From ${m.from} to ${m.to} · ${fmtDate(m.received_at, { time: true })} · `,
      h("span", { class: "mono" }, m.message_id || "no Message-ID")),
    h("pre", { class: "mail-text" }, m.text || ""),
    m.calendar ? h("details", {}, h("summary", {}, `Calendar part (METHOD:${m.calendar_method || "?"})`),
      h("pre", { class: "mail-text mono" }, m.calendar)) : null,
    (m.attachments || []).length ? h("p", { class: "muted small" }, `Attachments: ${m.attachments.join(", ")}`) : null,
  ));
}

// ---- start ----

function init() {
  initKeyDialog();
  $("#search-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = $("#search-q").value.trim();
    if (!q) return;
    const params = new URLSearchParams({ q });
    const lang = $("#search-language").value;
    if (lang) params.set("language", lang);
    const next = `#/search?${params}`;
    if (window.location.hash === next) route();
    else window.location.hash = next;
  });
  for (const sel of ["#search-language", "#search-programme"]) {
    $(sel).addEventListener("change", () => {
      const q = $("#search-q").value.trim();
      if (!q) return;
      const params = { q, language: $("#search-language").value, programme: $("#search-programme").value };
      setHashParams("search", params);
      route();
    });
  }
  $("#theme-filters").addEventListener("change", onFiltersChanged);
  $("#theme-filters").addEventListener("submit", (ev) => ev.preventDefault());
  $("#search-filters").addEventListener("submit", (ev) => ev.preventDefault());
  $("#recurrence-more").addEventListener("click", () => renderRecurrence(currentFilters(), true));
  window.addEventListener("hashchange", route);
  if (storedKey() === null) askForKey();
  else route();
  loadPlotly().catch(() => null); // 1.4 MB compressed: fetch it while the first answers arrive
}

init();
