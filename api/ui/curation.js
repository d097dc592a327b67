// Curation panel of the theme view (#/themes/<id>), issue 11 item 6.
// Analysts correct the miner here: rename or pin the title, merge the theme
// into another, move selected statements to another or a new theme, correct a
// statement's kind, hide a statement. Each action is one /v1 call (an event on
// the mining stream, applied at once and kept by every re-mine); the panel
// then lists the theme's curation events. app.js owns the theme detail above
// it; after a change we re-run its router so the detail shows the new state.

import { call } from "./api.js";

const KINDS = ["lesson", "recommendation", "best_practice", "challenge", "success", "other"];
const $ = (s, root = document) => root.querySelector(s);

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "value") e.value = v;
    else if (k === "checked") e.checked = Boolean(v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
  return e;
}

const enc = encodeURIComponent;

function themeIdFromHash() {
  const m = window.location.hash.match(/^#\/themes\/([^?]+)/);
  return m ? decodeURIComponent(m[1]) : null;
}

function panelBox() {
  let box = $("#curation-panel");
  if (!box) {
    const detail = $("#theme-detail");
    if (!detail) return null;
    box = el("section", { id: "curation-panel", class: "card curation", "aria-labelledby": "curation-title" });
    detail.after(box);
  }
  return box;
}

let renderSeq = 0;

async function render() {
  const id = themeIdFromHash();
  const box = panelBox();
  if (!box) return;
  if (!id) {
    box.hidden = true;
    box.replaceChildren();
    return;
  }
  const seq = ++renderSeq;
  let statements;
  let themes;
  let events;
  try {
    [statements, themes, events] = await Promise.all([
      call("GET", `themes/${enc(id)}/statements`),
      call("GET", "themes", undefined).catch(() => ({ items: [] })),
      call("GET", `curation/events?theme_id=${enc(id)}&limit=20`),
    ]);
  } catch (err) {
    if (seq !== renderSeq) return;
    // partners (403) and themes outside the grant (404) get no panel
    box.hidden = true;
    box.replaceChildren();
    return;
  }
  if (seq !== renderSeq) return;
  box.hidden = false;
  const status = el("p", { class: "muted", role: "status", id: "curation-status" });
  const act = async (what, fn) => {
    status.textContent = `${what}…`;
    try {
      await fn();
      status.textContent = `${what}: done.`;
      window.dispatchEvent(new HashChangeEvent("hashchange")); // app.js re-renders the detail
    } catch (err) {
      status.textContent = `${what} failed: ${err.message}`;
    }
  };
  const others = (themes.items || []).filter((t) => t.id !== id);
  const themeOptions = () =>
    others.map((t) => el("option", { value: t.id }, `${t.title || t.label || t.id} (${t.id})`));

  // title
  const titleInput = el("input", { type: "text", name: "title", maxlength: "200", required: true, "aria-label": "New title" });
  const pinned = el("input", { type: "checkbox", name: "pinned", checked: true });
  const titleForm = el(
    "form",
    {
      class: "curation-row",
      id: "curation-title-form",
      onsubmit: (e) => {
        e.preventDefault();
        act("Rename", () => call("PUT", `themes/${enc(id)}/title`, { title: titleInput.value, pinned: pinned.checked }));
      },
    },
    el("label", {}, "Title ", titleInput),
    el("label", {}, pinned, " pin (keep at re-mines)"),
    el("button", { type: "submit" }, "Rename"),
  );

  // merge
  const mergeSelect = el("select", { name: "into", "aria-label": "Merge into theme" }, themeOptions());
  const mergeForm = el(
    "form",
    {
      class: "curation-row",
      id: "curation-merge-form",
      onsubmit: (e) => {
        e.preventDefault();
        if (!mergeSelect.value) return;
        act("Merge", async () => {
          await call("POST", `themes/${enc(id)}/merge`, { into: mergeSelect.value });
          window.location.hash = `#/themes/${enc(mergeSelect.value)}`;
        });
      },
    },
    el("label", {}, "Merge this theme into ", mergeSelect),
    el("button", { type: "submit" }, "Merge"),
  );

  // statements: select, kind, hide
  const rows = (statements.items || []).map((s) =>
    el(
      "tr",
      { "data-id": s.id },
      el("td", {}, el("input", { type: "checkbox", class: "curation-pick", value: s.id, "aria-label": `Select ${s.id}` })),
      el("td", { lang: s.language }, s.text),
      el("td", {}, s.language),
      el(
        "td",
        {},
        el(
          "select",
          {
            "aria-label": `Kind of ${s.id}`,
            onchange: (e) => act("Correct kind", () => call("PUT", `statements/${enc(s.id)}/kind`, { kind: e.target.value })),
          },
          KINDS.map((k) => el("option", { value: k, selected: k === s.kind }, k.replace("_", " "))),
        ),
      ),
      el(
        "td",
        {},
        el("button", { type: "button", class: "ghost", onclick: () => act("Hide", () => call("PUT", `statements/${enc(s.id)}/hidden`, { hidden: true })) }, "Hide"),
      ),
    ),
  );
  const table = el(
    "table",
    { class: "curation-statements" },
    el("thead", {}, el("tr", {}, el("th", {}, ""), el("th", {}, "Statement"), el("th", {}, "Language"), el("th", {}, "Kind"), el("th", {}, ""))),
    el("tbody", {}, rows),
  );
  const NEW = "__new__";
  const moveSelect = el("select", { name: "target", "aria-label": "Move to theme" }, el("option", { value: NEW }, "a new theme…"), themeOptions());
  const newTitle = el("input", { type: "text", name: "new_title", maxlength: "200", placeholder: "title of the new theme", "aria-label": "Title of the new theme" });
  const moveForm = el(
    "form",
    {
      class: "curation-row",
      id: "curation-move-form",
      onsubmit: (e) => {
        e.preventDefault();
        const ids = [...box.querySelectorAll(".curation-pick:checked")].map((c) => c.value);
        if (!ids.length) {
          status.textContent = "Select statements to move first.";
          return;
        }
        const body =
          moveSelect.value === NEW
            ? { statement_ids: ids, new_theme_title: newTitle.value }
            : { statement_ids: ids, theme_id: moveSelect.value };
        act("Move", () => call("POST", "statements/move", body));
      },
    },
    el("label", {}, "Move selected statements to ", moveSelect),
    newTitle,
    el("button", { type: "submit" }, "Move"),
  );

  const evList = el(
    "ol",
    { class: "curation-events", id: "curation-events" },
    (events.items || []).map((ev) =>
      el(
        "li",
        {},
        el("time", { datetime: ev.at }, ev.at.replace("T", " ").slice(0, 16)),
        " ",
        el("strong", {}, ev.type),
        " ",
        describe(ev),
        el("span", { class: "muted" }, ` by key ${ev.key_id}`),
      ),
    ),
  );

  box.replaceChildren(
    el("h2", { id: "curation-title" }, "Correct the miner"),
    el("p", { class: "muted" }, "Corrections are kept by every re-mine: pinned titles, moves, merges, kinds and hidden statements stay."),
    titleForm,
    mergeForm,
    el("h3", {}, `Statements you can see (${rows.length})`),
    table,
    moveForm,
    status,
    el("h3", {}, "Curation events"),
    (events.items || []).length ? evList : el("p", { class: "muted" }, "No corrections yet."),
  );
}

function describe(ev) {
  switch (ev.type) {
    case "ThemeRenamed":
      return `“${ev.title}”${ev.pinned ? " (pinned)" : ""}`;
    case "ThemesMergedByAnalyst":
      return `${ev.theme_id} → ${ev.into}`;
    case "StatementsMoved":
      return `${ev.statement_ids.length} statement(s) → ${ev.title ? `new theme “${ev.title}”` : ev.theme_id}`;
    case "StatementKindCorrected":
      return `${ev.statement_id}: ${ev.kind}`;
    case "StatementHidden":
      return `${ev.statement_id} ${ev.hidden ? "hidden" : "shown again"}`;
    default:
      return "";
  }
}

window.addEventListener("hashchange", render);
render();
