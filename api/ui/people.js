// Manager and partner pages of the /ui app (#/manage, #/partner).
// What a key may do decides what it sees: GET /v1/me names the role, and only
// the tabs that role can use are shown (the server still checks every call).
// app.js owns the analyst views; this module shows its own sections after
// app.js's router has run (listeners registered later run later).

import { call, storedKey } from "./api.js";

const $ = (s, root = document) => root.querySelector(s);

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "value") e.value = v;
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
  return e;
}

function flash(root, msg, ok = true) {
  const p = el("p", { class: ok ? "notice" : "error", role: ok ? "status" : "alert", "data-flash": "" }, msg);
  document.querySelectorAll("[data-flash]").forEach((x) => x.remove());
  root.prepend(p);
}

/** "2031-02-01T09:00" read as wall time in `tz` -> ISO with that zone's offset. */
function zonedIso(local, tz) {
  const [d, t] = local.split("T");
  const [y, mo, da] = d.split("-").map(Number);
  const [hh, mm] = t.split(":").map(Number);
  const want = Date.UTC(y, mo - 1, da, hh, mm);
  let guess = want;
  for (let i = 0; i < 3; i++) {
    const parts = Object.fromEntries(new Intl.DateTimeFormat("en-GB", {
      timeZone: tz, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
    }).formatToParts(new Date(guess)).map((p) => [p.type, p.value]));
    const shown = Date.UTC(+parts.year, +parts.month - 1, +parts.day, +parts.hour, +parts.minute);
    guess += want - shown;
  }
  return new Date(guess).toISOString();
}

/** ISO instant -> "YYYY-MM-DDTHH:MM" wall time in `tz` (for datetime-local inputs). */
function localInput(iso, tz) {
  const parts = Object.fromEntries(new Intl.DateTimeFormat("en-GB", {
    timeZone: tz, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
  }).formatToParts(new Date(iso)).map((p) => [p.type, p.value]));
  return `${parts.year}-${parts.month}-${parts.day}T${parts.hour}:${parts.minute}`;
}

// "2031-02-01T09:00:00+01:00" (seconds kept, microseconds dropped)
// A date as people read it, in the programme's own time zone (the API's
// ``local`` ISO string carries its offset): "Fri 4 Dec 2026, 09:00 (UTC+01:00)".
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const fmt = (x) => {
  if (!x) return "—";
  const s = String(x.local || x.utc || x);
  const m = s.match(/^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::\d{2}(?:\.\d+)?)?(Z|[+-]\d{2}:\d{2})?$/);
  if (!m) return s;
  const day = DAYS[new Date(Date.UTC(+m[1], +m[2] - 1, +m[3])).getUTCDay()];
  const zone = !m[6] || m[6] === "Z" ? "UTC" : `UTC${m[6]}`;
  return `${day} ${+m[3]} ${MONTHS[+m[2] - 1]} ${m[1]}, ${m[4]}:${m[5]} (${zone})`;
};

// ---- who am I ----

let me = null;
async function loadMe() {
  if (!storedKey()) { // no key yet: nothing to ask (a 401 would only add console noise)
    me = null;
    $('[data-nav="manage"]').hidden = true;
    $('[data-nav="partner"]').hidden = true;
    return;
  }
  try {
    me = await call("GET", "me");
  } catch {
    me = null;
  }
  const role = me && me.role;
  $('[data-nav="manage"]').hidden = !(role === "manager" || role === "admin");
  $('[data-nav="partner"]').hidden = role !== "partner";
  document.body.dataset.role = role || "";
}

// ---- manager: programmes ----

function partnerRow(p = {}) {
  const roleSel = el("select", { name: "role", "aria-label": "Role" },
    ["frontrunner", "follower", "organiser"].map((r) => el("option", { value: r, selected: (p.role || "follower") === r }, r)));
  return el("tr", { class: "partner-row" },
    el("td", {}, el("input", { name: "id", value: p.id || "", "aria-label": "Partner id", required: true, readonly: p.id ? true : null })),
    el("td", {}, el("input", { name: "name", value: p.name || "", "aria-label": "Partner name", required: true })),
    el("td", {}, el("input", { name: "country", value: p.country || "", size: 2, maxlength: 2, "aria-label": "Country" })),
    el("td", {}, roleSel));
}

function programmeForm(root, prog, onSaved) {
  const tbody = el("tbody", {}, (prog ? prog.partners : [{}, {}]).map((p) => partnerRow(p)));
  const form = el("form", { id: "programme-form", class: "card" },
    el("h2", {}, prog ? `Edit programme ${prog.id}` : "New programme"),
    el("label", {}, "Id ", el("input", { name: "pid", value: prog ? prog.id : "", readonly: prog ? true : null, placeholder: "optional" })),
    el("label", {}, "Name ", el("input", { name: "prog_name", value: prog ? prog.name : "", required: true })),
    el("label", {}, "Time zone ", el("input", { name: "time_zone", value: prog ? prog.time_zone : "Europe/Stockholm" })),
    el("label", {}, "Languages ", el("input", { name: "languages", value: prog ? prog.languages.join(", ") : "en, sv, pl", placeholder: "en, sv" })),
    el("label", {}, "Webhook ", el("input", { name: "webhook_url", type: "url", value: (prog && prog.webhook_url) || "", placeholder: "https://…" })),
    el("table", { class: "data" }, el("thead", {}, el("tr", {}, ["Partner id", "Name", "Country", "Role"].map((t) => el("th", {}, t)))), tbody),
    el("button", { type: "button", class: "ghost", onclick: () => tbody.append(partnerRow()) }, "Add partner"),
    el("button", { type: "submit", id: "programme-save" }, prog ? "Save changes" : "Create programme"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    const partners = [...tbody.querySelectorAll("tr")].map((tr) => ({
      id: $('[name="id"]', tr).value.trim(),
      name: $('[name="name"]', tr).value.trim(),
      country: $('[name="country"]', tr).value.trim().toUpperCase() || "SE",
      role: $('[name="role"]', tr).value,
    })).filter((p) => p.id);
    const body = {
      name: f.get("prog_name"),
      time_zone: f.get("time_zone"),
      languages: String(f.get("languages")).split(",").map((s) => s.trim()).filter(Boolean),
      webhook_url: f.get("webhook_url") || null,
      partners: prog ? partners.map((p) => ({ ...(prog.partners.find((q) => q.id === p.id) || {}), ...p })) : partners,
    };
    try {
      const saved = prog
        ? await call("PATCH", `programmes/${encodeURIComponent(prog.id)}`, body)
        : await call("POST", "programmes", { ...body, id: f.get("pid") || undefined });
      onSaved(saved, prog ? "Programme updated." : `Programme ${saved.id} created.`);
    } catch (e) {
      flash(form, e.message, false);
    }
  });
  root.append(form);
}

// ---- manager: plan a cycle ----

function planner(root, prog, onStarted) {
  const tz = prog.time_zone;
  const today = new Date();
  const iso = (d) => d.toISOString().slice(0, 10);
  const later = new Date(today.getTime() + 180 * 864e5);
  const table = el("tbody");
  const checks = prog.partners.map((p) => el("label", { class: "check" },
    el("input", { type: "checkbox", name: "partner", value: p.id, checked: true }), ` ${p.name} (${p.role || "follower"})`));
  const form = el("form", { id: "plan-form", class: "card" },
    el("h2", {}, `Plan a cycle of ${prog.name}`),
    el("p", { class: "muted small" }, `Dates and times are in the programme's time zone, ${tz}.`),
    el("label", {}, "Title ", el("input", { name: "title", value: "Peer review cycle", required: true })),
    el("label", {}, "From ", el("input", { type: "date", name: "start", value: iso(new Date(today.getTime() + 864e5)) })),
    el("label", {}, "To ", el("input", { type: "date", name: "end", value: iso(later) })),
    el("fieldset", {}, el("legend", {}, "Partners"), checks),
    el("fieldset", {}, el("legend", {}, "Visits hosted per partner"),
      el("label", {}, "Frontrunners ", el("input", { type: "number", name: "frontrunner", value: 2, min: 0, max: 20 })),
      el("label", {}, "Followers ", el("input", { type: "number", name: "follower", value: 1, min: 0, max: 20 })),
      el("label", {}, "Organisers ", el("input", { type: "number", name: "organiser", value: 0, min: 0, max: 20 }))),
    el("label", {}, "Minimum days between meetings ", el("input", { type: "number", name: "gap", value: 14, min: 1 })),
    el("button", { type: "submit", id: "plan-propose" }, "Propose schedule"),
    el("table", { class: "data", id: "plan-table" },
      el("thead", {}, el("tr", {}, ["Meeting", `Starts (${tz})`, "Host", ""].map((t) => el("th", {}, t)))), table),
    el("button", { type: "button", id: "plan-start", hidden: true }, "Start cycle"));
  const hostSelect = (value) => el("select", { name: "host", "aria-label": "Host" },
    prog.partners.map((p) => el("option", { value: p.id, selected: p.id === value }, p.name)));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    try {
      const plan = await call("POST", "cycles/plan", {
        programme_id: prog.id,
        start_date: f.get("start"),
        end_date: f.get("end"),
        partners: f.getAll("partner"),
        hosts_per_role: { frontrunner: +f.get("frontrunner"), follower: +f.get("follower"), organiser: +f.get("organiser") },
        min_days_between: +f.get("gap"),
      });
      table.replaceChildren(...plan.meetings.map((m) => el("tr", { class: "plan-row", "data-id": m.meeting_id, "data-kind": m.kind, "data-duration": m.duration_minutes },
        el("td", {}, el("input", { name: "title", value: m.title, "aria-label": "Title" })),
        el("td", {}, el("input", { type: "datetime-local", name: "starts", value: localInput(m.starts_at, tz), "aria-label": "Starts" })),
        el("td", {}, hostSelect(m.host)),
        el("td", {}, el("button", { type: "button", class: "ghost", onclick: (e) => e.target.closest("tr").remove() }, "Remove")))));
      $("#plan-start", form).hidden = false;
      flash(form, `Proposed ${plan.meetings.length} meetings; adjust them, then start the cycle.`);
    } catch (e) {
      flash(form, e.message, false);
    }
  });
  $("#plan-start", form).addEventListener("click", async () => {
    const meetings = [...table.querySelectorAll("tr")].map((tr) => ({
      meeting_id: tr.dataset.id,
      kind: tr.dataset.kind,
      duration_minutes: +tr.dataset.duration,
      title: $('[name="title"]', tr).value,
      starts_at: zonedIso($('[name="starts"]', tr).value, tz),
      host: $('[name="host"]', tr).value,
    }));
    try {
      const out = await call("POST", "cycles", { programme_id: prog.id, title: new FormData(form).get("title"), meetings });
      onStarted(out.cycle_id);
    } catch (e) {
      flash(form, e.message, false);
    }
  });
  root.append(form);
}

// ---- manager: steer a running cycle ----

async function steer(slot, cycleId, prog) {
  const card = el("section", { class: "card", id: "steer" }, el("h2", {}, `Steer cycle ${cycleId}`));
  slot.replaceChildren(card);
  let st;
  let notes = [];
  try {
    st = await call("GET", `cycles/${encodeURIComponent(cycleId)}`);
    notes = (await call("GET", `cycles/${encodeURIComponent(cycleId)}/notes`)).items || [];
  } catch (e) {
    flash(card, e.message, false);
    return;
  }
  const tz = st.time_zone;
  const partners = prog ? prog.partners.map((p) => p.id) : [];
  const act = async (method, path, body, msg) => {
    try {
      await call(method, `cycles/${encodeURIComponent(cycleId)}/${path}`, body);
      await steer(slot, cycleId, prog); // redraw in place, then say what happened
      flash(slot, msg);
    } catch (e) {
      flash(card, e.message, false);
    }
  };
  card.append(el("p", {}, `Phase ${st.phase} · status `, el("strong", { id: "cycle-status" }, st.status),
    ` · next: ${st.next_deadline ? `${st.next_deadline.action} ${fmt(st.next_deadline.at)}` : "—"}`),
  el("div", { class: "actions" },
    el("button", { type: "button", id: "cycle-pause", onclick: () => act("POST", "pause", { reason: "paused from the page" }, "Cycle paused.") }, "Pause"),
    el("button", { type: "button", id: "cycle-resume", onclick: () => act("POST", "resume", { reason: "resumed from the page" }, "Cycle resumed.") }, "Resume")));
  const rows = st.meetings.map((m) => {
    const authors = new Set(notes.filter((n) => n.meeting_id === m.meeting_id).map((n) => n.author_organisation));
    const missing = m.state === "held" ? partners.filter((p) => !authors.has(p)) : [];
    const when = el("input", { type: "datetime-local", "aria-label": `New start of ${m.meeting_id}`, value: localInput(m.starts_at.utc, tz) });
    const host = el("select", { "aria-label": `New host of ${m.meeting_id}` }, partners.map((p) => el("option", { value: p, selected: p === m.host }, p)));
    const live = m.state === "scheduled";
    return el("tr", { "data-meeting": m.meeting_id },
      el("th", { scope: "row" }, m.title || m.meeting_id),
      el("td", {}, fmt(m.starts_at)),
      el("td", {}, m.host || "—"),
      el("td", {}, m.state),
      el("td", {}, String(m.note_count)),
      el("td", { class: "missing" }, missing.length ? missing.join(", ") : "—"),
      el("td", {}, m.escalated ? el("strong", { class: "escalated" }, "escalated") : "—"),
      el("td", {}, live ? [when, el("button", { type: "button", class: "ghost", onclick: () => act("POST", `meetings/${m.meeting_id}/move`, { starts_at: zonedIso(when.value, tz) }, "Meeting moved.") }, "Move"),
        host, el("button", { type: "button", class: "ghost", onclick: () => act("POST", `meetings/${m.meeting_id}/host`, { host: host.value }, "Host swapped.") }, "Swap host"),
        el("button", { type: "button", class: "ghost", onclick: () => act("POST", `meetings/${m.meeting_id}/cancel`, { reason: "cancelled from the page" }, "Meeting cancelled.") }, "Cancel")] : "—"));
  });
  card.append(el("table", { class: "data", id: "steer-table" },
    el("thead", {}, el("tr", {}, ["Meeting", `Starts (${tz})`, "Host", "State", "Notes", "Missing notes", "Escalation", "Change"].map((t) => el("th", {}, t)))),
    el("tbody", {}, rows)));
  const escalated = st.meetings.filter((m) => m.escalated);
  card.append(el("p", { id: "escalations" }, escalated.length
    ? `Escalations: ${escalated.map((m) => m.meeting_id).join(", ")}` : "No escalations."));
  const addWhen = el("input", { type: "datetime-local", "aria-label": "New meeting starts" });
  const addKind = el("select", { "aria-label": "Kind" }, ["webinar", "site_visit"].map((k) => el("option", { value: k }, k)));
  const addHost = el("select", { "aria-label": "Host of the new meeting" }, partners.map((p) => el("option", { value: p }, p)));
  card.append(el("p", {}, "Add a meeting: ", addKind, addWhen, addHost,
    el("button", { type: "button", onclick: () => act("POST", "meetings", { kind: addKind.value, starts_at: zonedIso(addWhen.value, tz), host: addHost.value, duration_minutes: 120 }, "Meeting added.") }, "Add")));
}

// ---- manager: long work ----

async function progress(root) {
  const card = el("section", { class: "card", id: "progress" }, el("h2", {}, "Mining runs and imports"));
  root.append(card);
  const bar = (done, total) => el("progress", { max: total || 1, value: done || 0 });
  try {
    const runs = (await call("GET", "mining-runs")).items || [];
    card.append(el("h3", {}, "Mining runs"), runs.length ? el("ul", {}, runs.slice(0, 10).map((r) =>
      el("li", {}, `${r.id} · ${r.scope} · ${r.status} (${r.stage || "—"}) `, bar(r.done, r.total), ` ${r.done ?? 0}/${r.total ?? "?"}`))) : el("p", { class: "muted" }, "No mining runs yet."));
  } catch (e) {
    card.append(el("p", { class: "error" }, e.message));
  }
  try {
    const imports = (await call("GET", "imports")).items || [];
    card.append(el("h3", {}, "Imports"), imports.length ? el("ul", {}, imports.map((i) =>
      el("li", {}, `${i.id} · ${i.status || ""} · mining ${i.mining_status || "—"} `, bar(i.mining_done, i.mining_total)))) : el("p", { class: "muted" }, "No imports yet."));
  } catch (e) {
    card.append(el("p", { class: "error" }, e.message));
  }
}

async function viewManage(root, params) {
  root.replaceChildren(el("h1", { tabindex: -1 }, "Manage programmes and cycles"));
  let programmes = [];
  try {
    programmes = (await call("GET", "programmes")).items || [];
  } catch (e) {
    flash(root, e.message, false);
  }
  const pid = params.get("programme");
  const prog = programmes.find((p) => p.id === pid);
  const go = (q) => { window.location.hash = `#/manage?${new URLSearchParams(q)}`; };
  root.append(el("p", {}, "Programme: ",
    el("select", { id: "manage-programme", onchange: (e) => go(e.target.value ? { programme: e.target.value } : {}) },
      el("option", { value: "" }, "— new programme —"),
      programmes.map((p) => el("option", { value: p.id, selected: p.id === pid }, `${p.name} (${p.id})`)))));
  programmeForm(root, prog, (saved, msg) => { go({ programme: saved.id, msg }); });
  if (params.get("msg")) flash(root, params.get("msg"));
  if (!prog) return progress(root);
  planner(root, prog, (cid) => go({ programme: prog.id, cycle: cid, msg: `Cycle ${cid} started.` }));
  let cycles = [];
  try {
    cycles = (await call("GET", "cycles", undefined).catch(() => ({ items: [] }))).items || [];
  } catch {
    cycles = [];
  }
  cycles = cycles.filter((c) => c.programme_id === prog.id);
  root.append(el("p", {}, "Cycles: ", cycles.length ? cycles.map((c) => el("a", { href: `#/manage?programme=${prog.id}&cycle=${c.id}`, class: "cycle-link" }, `${c.title} (${c.status}) `)) : "none yet"));
  const cid = params.get("cycle");
  if (cid) {
    const slot = el("div", { id: "steer-slot" });
    root.append(slot);
    await steer(slot, cid, prog);
  }
  await progress(root);
}

// ---- partner ----

async function viewPartner(root) {
  const org = me && me.organisation;
  root.replaceChildren(el("h1", { tabindex: -1 }, `My organisation: ${org || "?"}`));
  let cycles = [];
  try {
    cycles = (await call("GET", "cycles")).items || [];
  } catch (e) {
    flash(root, e.message, false);
    return;
  }
  const now = Date.now();
  for (const c of cycles) {
    let st;
    let notes = [];
    try {
      st = await call("GET", `cycles/${encodeURIComponent(c.id)}`);
      notes = (await call("GET", `cycles/${encodeURIComponent(c.id)}/notes`)).items || [];
    } catch {
      continue;
    }
    const card = el("section", { class: "card partner-cycle", "data-cycle": c.id }, el("h2", {}, st.title));
    const open = (m) => m.state === "held" && (!m.notes_due_at || new Date(m.notes_due_at.utc).getTime() > now);
    card.append(el("table", { class: "data" },
      el("thead", {}, el("tr", {}, ["Meeting", `Starts (${st.time_zone})`, "Host", "State", "Note window"].map((t) => el("th", {}, t)))),
      el("tbody", {}, st.meetings.filter((m) => m.state !== "cancelled").map((m) => el("tr", {},
        el("th", { scope: "row" }, m.title || m.meeting_id), el("td", {}, fmt(m.starts_at)), el("td", {}, m.host || "—"),
        el("td", {}, m.state),
        el("td", {}, open(m) ? `open until ${fmt(m.notes_due_at)}` : m.state === "held" ? "closed" : "opens after the meeting"))))));
    for (const m of st.meetings.filter(open)) card.append(noteForms(c.id, m, org, () => viewPartner(root)));
    card.append(el("h3", {}, "What we submitted"), notes.length ? el("ul", { class: "my-notes" }, notes.map((n) => myNote(n, st, () => viewPartner(root), open))) : el("p", { class: "muted" }, "Nothing yet."));
    root.append(card);
  }
  if (!cycles.length) root.append(el("p", { class: "muted" }, "No cycles in your programmes yet."));
}

function noteForms(cycleId, m, org, done) {
  const base = `cycles/${encodeURIComponent(cycleId)}/meetings/${encodeURIComponent(m.meeting_id)}/notes`;
  const lang = el("input", { name: "language", value: "en", size: 4, "aria-label": "Language" });
  const text = el("textarea", { name: "text", rows: 6, cols: 60, "aria-label": `Note for ${m.meeting_id} (Markdown)`, placeholder: "## What we learned\n- …" });
  const file = el("input", { type: "file", name: "file", accept: ".docx,.odt,.pdf,.md,.txt,.html,.eml", "aria-label": `Document for ${m.meeting_id}` });
  // Who wrote it (optional; sealed like the text, and what "erase everything
  // I wrote" finds) and who may read it.
  const own = me && me.person; // a person's own key signs as them
  const who = el("input", { name: "author_person", size: 24, maxlength: 200, "aria-label": "Written by", placeholder: "your name (optional)", value: own || localStorage.getItem("peerlearn.author_person") || "" });
  if (own) who.readOnly = true;
  const vis = el("select", { name: "visibility", "aria-label": "Who may read it" },
    el("option", { value: "programme" }, "the programme (default)"),
    el("option", { value: "facilitators" }, "facilitators only"),
    el("option", { value: "public" }, "public"));
  const extra = () => {
    const person = who.value.trim();
    if (own) return { visibility: vis.value };
    if (person) localStorage.setItem("peerlearn.author_person", person); else localStorage.removeItem("peerlearn.author_person");
    return { ...(person ? { author_person: person } : {}), visibility: vis.value };
  };
  const box = el("div", { class: "note-forms", "data-meeting": m.meeting_id },
    el("h3", {}, `Notes for ${m.title || m.meeting_id}`));
  const send = async (body) => {
    try {
      const out = await call("POST", base, body);
      done();
      setTimeout(() => flash($("#people-partner"), `Note ${out.note_id} received.`), 300);
    } catch (e) {
      flash(box, e.message, false);
    }
  };
  box.append(el("p", {}, "Language ", lang, " · Written by ", who, " · Readable by ", vis),
    text, el("button", { type: "button", class: "note-submit", onclick: () => send({ author_organisation: org, language: lang.value, text: text.value, format: "markdown", ...extra() }) }, "Submit note"),
    el("p", {}, "Or upload a document: ", file, el("button", { type: "button", class: "note-upload", onclick: () => {
      if (!file.files.length) return flash(box, "Choose a file first.", false);
      const fd = new FormData();
      fd.append("file", file.files[0]);
      fd.append("author_organisation", org);
      if (lang.value) fd.append("language", lang.value);
      for (const [k, v] of Object.entries(extra())) fd.append(k, v);
      return send(fd);
    } }, "Upload")));
  return box;
}

function myNote(n, st, done, open) {
  const m = st.meetings.find((x) => x.meeting_id === n.meeting_id);
  const editable = m && open(m);
  const li = el("li", { class: "my-note", "data-note": n.id },
    el("strong", {}, n.meeting_id), ` · ${n.language} · ${new Date(n.submitted_at).toLocaleString()}`,
    n.author_person ? ` · by ${n.author_person}` : "", n.visibility && n.visibility !== "programme" ? ` · ${n.visibility === "facilitators" ? "facilitators only" : n.visibility}` : "", " ",
    el("pre", { class: "note-text" }, n.text.length > 400 ? `${n.text.slice(0, 400)}…` : n.text));
  if (!editable) return li;
  const area = el("textarea", { rows: 5, cols: 60, "aria-label": `Correct note ${n.id}`, hidden: true }, n.text);
  const save = el("button", { type: "button", class: "note-save", hidden: true, onclick: async () => {
    try {
      await call("PUT", `notes/${encodeURIComponent(n.id)}`, { author_organisation: n.author_organisation, language: n.language, text: area.value, format: "markdown" });
      done();
    } catch (e) {
      flash(li, e.status === 404 || e.status === 405 ? "Correcting notes is not available on this server yet." : e.message, false);
    }
  } }, "Save correction");
  li.append(el("button", { type: "button", class: "ghost note-correct", onclick: () => { area.hidden = false; save.hidden = false; } }, "Correct"),
    el("button", { type: "button", class: "ghost note-withdraw", onclick: async () => {
      try {
        await call("DELETE", `notes/${encodeURIComponent(n.id)}`);
        done();
      } catch (e) {
        flash(li, e.status === 404 || e.status === 405 ? "Withdrawing notes is not available on this server yet." : e.message, false);
      }
    } }, "Withdraw"), area, save);
  return li;
}

// ---- routing (after app.js's own router) ----

async function route() {
  const raw = window.location.hash.replace(/^#\/?/, "");
  const [path, query] = raw.split("?");
  const top = path.split("/")[0];
  if (top !== "manage" && top !== "partner") return;
  for (const s of document.querySelectorAll("main > [data-view]")) s.hidden = s.dataset.view !== top;
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (a.dataset.nav === top) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.body.dataset.currentView = top;
  document.title = `${top === "manage" ? "Manage" : "My organisation"} · peerlearn`;
  if (me === null) await loadMe();
  const root = $(`#people-${top}`);
  document.body.setAttribute("aria-busy", "true");
  try {
    if (top === "manage") await viewManage(root, new URLSearchParams(query || ""));
    else await viewPartner(root);
  } finally {
    document.body.removeAttribute("aria-busy");
    document.body.dataset.peopleReady = top;
  }
}

window.addEventListener("hashchange", route);
$("#key-dialog").addEventListener("close", () => setTimeout(async () => { me = null; await loadMe(); route(); }, 0));
loadMe().then(route);
