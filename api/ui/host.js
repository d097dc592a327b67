// The host's pages of the /ui app (#/host): the review loop of issue 13 as a
// site visit's host sees it. Before the visit it fills in its programme's
// self-assessment; after it, it reads the peers' feedback and acknowledges it;
// then it turns the peers' recommendations into an action plan (owner, due
// date, status, progress notes). Partner keys see the visits their own
// organisation hosts; managers and admins see every hosted visit and act on
// the host's behalf. The server checks every call; this page only arranges
// them. Like people.js it renders after app.js's router (listeners run in
// registration order) and owns only its own section.

import { call, storedKey } from "./api.js";

const $ = (s, root = document) => root.querySelector(s);
const enc = encodeURIComponent;

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

/** GET that answers null for 404 (nothing there yet is a normal state here). */
async function maybe(path) {
  try {
    return await call("GET", path);
  } catch (e) {
    if (e.status === 404) return null;
    throw e;
  }
}

function flash(root, msg, ok = true) {
  root.querySelectorAll("[data-flash]").forEach((x) => x.remove());
  root.prepend(el("p", { class: ok ? "notice" : "error", role: ok ? "status" : "alert", "data-flash": "" }, msg));
}

const day = (iso) => (iso ? String(iso).slice(0, 10) : "");
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");
const wall = (t) => String(t.local || t.utc || "").slice(0, 16).replace("T", " "); // programme's zone
const LANGS = ["en", "sv", "pl", "de", "fi", "et", "lv", "lt", "da", "nb", "es", "fr", "it"];
const STATUSES = ["open", "in_progress", "done", "dropped"];

// ---- which visits: the key's hosted site visits ----

async function hostedVisits(me) {
  const cycles = ((await call("GET", "cycles")) || {}).items || [];
  const out = [];
  for (const c of cycles.slice(0, 50)) {
    let st;
    try {
      st = await call("GET", `cycles/${enc(c.id)}`);
    } catch {
      continue;
    }
    for (const m of st.meetings || []) {
      if (!m.host || m.state === "cancelled") continue;
      if (me.role === "partner" && m.host !== me.organisation) continue;
      out.push({ cycle: st, meeting: m });
    }
  }
  return out;
}

// ---- self-assessment ----

function answerInput(q, value) {
  const name = `q_${q.id}`;
  if (q.type === "scale") {
    return el("select", { name, "aria-label": q.text },
      el("option", { value: "" }, "—"),
      [1, 2, 3, 4, 5].map((n) => el("option", { value: n, selected: value === n }, String(n))));
  }
  if (q.type === "choice") {
    return el("select", { name, "aria-label": q.text },
      el("option", { value: "" }, "—"),
      (q.choices || []).map((c) => el("option", { value: c, selected: value === c }, c)));
  }
  return el("textarea", { name, rows: 3, cols: 70, "aria-label": q.text, maxlength: 5000 }, value || "");
}

async function selfAssessmentCard(ctx) {
  const { cycle, meeting, programme } = ctx;
  const card = el("section", { class: "card", id: "host-self-assessment", "aria-labelledby": "host-sa-title" },
    el("h2", { id: "host-sa-title" }, "Self-assessment"));
  const questions = programme.self_assessment_questions || [];
  if (!questions.length) {
    card.append(el("p", { class: "muted" }, "This programme has no self-assessment questionnaire."));
    return card;
  }
  const path = `cycles/${enc(cycle.cycle_id)}/meetings/${enc(meeting.meeting_id)}/self-assessment`;
  const current = await maybe(path);
  const given = Object.fromEntries(((current && current.answers) || []).map((a) => [a.question_id, a.value]));
  const open = meeting.state === "scheduled";
  if (!open && !current) {
    card.append(el("p", { class: "muted", id: "host-sa-none" }, `No self-assessment was submitted before this visit (${meeting.state}).`));
    return card;
  }
  card.append(el("p", { class: "muted small" }, current
    ? `Last saved ${when(current.submitted_at)}. The peers read it in their preparation pack; free-text answers are mined like notes.`
    : `Answer before the visit on ${wall(meeting.starts_at)}. The peers read it in their preparation pack.`));
  const lang = el("select", { name: "language", "aria-label": "Language of the answers" },
    [...new Set([...(programme.languages || []), ...LANGS])].map((l) => el("option", { value: l, selected: l === ((current && current.language) || (programme.languages || ["en"])[0]) }, l)));
  const form = el("form", { id: "host-sa-form" },
    el("label", {}, "Language ", lang),
    questions.map((q) => el("div", { class: "sa-question", "data-question": q.id },
      el("label", {}, el("strong", {}, q.text), q.type === "scale" ? " (1 = not at all, 5 = fully)" : "", el("br"), answerInput(q, given[q.id])))),
    el("button", { type: "submit", id: "host-sa-save", disabled: !open }, current ? "Save changes" : "Submit self-assessment"));
  if (!open) form.append(el("p", { class: "muted small" }, `The visit is ${meeting.state}: answers come before it.`));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const answers = [];
    for (const q of questions) {
      const raw = form.elements[`q_${q.id}`].value.trim();
      if (!raw) continue;
      answers.push({ question_id: q.id, value: q.type === "scale" ? Number(raw) : raw });
    }
    try {
      await call("PUT", path, { language: lang.value, answers });
      await render(ctx, "Self-assessment saved.");
    } catch (e) {
      flash(card, e.message, false);
    }
  });
  card.append(form);
  return card;
}

// ---- feedback ----

const SECTIONS = [
  ["strengths", "Strengths"],
  ["challenges", "Challenges observed"],
  ["lessons", "Lessons"],
  ["recommendations", "Recommendations"],
];

async function feedbackCard(ctx) {
  const { cycle, meeting, names } = ctx;
  const card = el("section", { class: "card", id: "host-feedback", "aria-labelledby": "host-fb-title" },
    el("h2", { id: "host-fb-title" }, "Feedback from the peers"));
  const path = `cycles/${enc(cycle.cycle_id)}/meetings/${enc(meeting.meeting_id)}/feedback`;
  const fb = await maybe(path);
  if (!fb) {
    card.append(el("p", { class: "muted", id: "host-fb-none" },
      "No feedback yet: the peers' statements are compiled when the visit's note window closes."));
    return card;
  }
  card.append(el("p", { class: "muted small" },
    `Compiled ${when(fb.compiled_at)} from the peers' notes, each statement in the language it was written in.`));
  for (const [key, title] of SECTIONS) {
    const items = fb[key] || [];
    if (!items.length) continue;
    card.append(el("h3", {}, title),
      el("ul", { class: `fb-list fb-${key}` }, items.map((i) => el("li", { class: "fb-item", lang: i.language, "data-statement": i.statement_id },
        i.text, " ", el("span", { class: "muted small" }, `— ${names[i.organisation] || i.organisation || "peer"} · ${i.language}`),
        i.gloss ? el("div", { class: "gloss muted small", lang: "en" }, el("em", {}, `${i.gloss.label}: `), i.gloss.english_text) : null))));
  }
  if (fb.acknowledged_at) {
    card.append(el("p", { class: "notice", id: "host-fb-acknowledged" },
      `Acknowledged ${when(fb.acknowledged_at)}${fb.acknowledgement_note ? `: “${fb.acknowledgement_note}”` : "."}`));
    return card;
  }
  const note = el("textarea", { rows: 2, cols: 70, maxlength: 2000, "aria-label": "A word to the peers (optional)", id: "host-fb-note" });
  card.append(el("p", {}, note),
    el("button", { type: "button", id: "host-fb-ack", onclick: async () => {
      try {
        await call("POST", `${path}/acknowledge`, { note: note.value.trim() || null });
        await render(ctx, "Feedback acknowledged.");
      } catch (e) {
        flash(card, e.message, false);
      }
    } }, "Acknowledge feedback"));
  return card;
}

// ---- action plan ----

function itemRow(ctx, item, card) {
  const path = `cycles/${enc(ctx.cycle.cycle_id)}/action-items/${enc(item.id)}`;
  const owner = el("select", { name: "owner", "aria-label": "Owner" },
    ctx.partners.map((p) => el("option", { value: p.id, selected: p.id === item.owner }, p.name || p.id)));
  const due = el("input", { type: "date", name: "due", value: day(item.due_at), "aria-label": "Due date" });
  const status = el("select", { name: "status", "aria-label": "Status" },
    STATUSES.map((s) => el("option", { value: s, selected: s === item.status }, s.replace("_", " "))));
  const note = el("input", { name: "note", size: 30, maxlength: 2000, placeholder: "Progress note", "aria-label": "Progress note" });
  const save = el("button", { type: "button", class: "item-save", onclick: async () => {
    const patch = {};
    if (owner.value !== item.owner) patch.owner = owner.value;
    if (status.value !== item.status) patch.status = status.value;
    if (due.value && due.value !== day(item.due_at)) patch.due_at = `${due.value}T12:00:00Z`;
    if (note.value.trim()) patch.note = note.value.trim();
    if (!Object.keys(patch).length) return flash(card, "Nothing changed.", false);
    try {
      await call("PATCH", path, patch);
      return await render(ctx, "Action item updated.");
    } catch (e) {
      return flash(card, e.message, false);
    }
  } }, "Save");
  const rec = item.recommendation;
  return el("tr", { class: `action-item status-${item.status}${item.overdue ? " overdue" : ""}`, "data-item": item.id },
    el("td", {}, el("strong", {}, item.what),
      rec ? el("div", { class: "muted small", lang: rec.language }, `Answers: “${rec.text}” (${ctx.names[rec.organisation] || rec.organisation || "peer"})`) : null,
      (item.progress || []).length
        ? el("ul", { class: "progress small" }, item.progress.map((p) => el("li", {},
          `${day(p.at)} `, p.status ? `→ ${p.status.replace("_", " ")} ` : "", p.note ? `“${p.note}”` : "", p.due_at ? ` due ${day(p.due_at)}` : "", p.owner ? ` owner ${p.owner}` : "")))
        : null),
    el("td", {}, owner), el("td", {}, due, item.overdue ? el("span", { class: "error small" }, " overdue") : null),
    el("td", {}, status), el("td", {}, note, " ", save));
}

async function actionPlanCard(ctx) {
  const { cycle, meeting } = ctx;
  const card = el("section", { class: "card", id: "host-action-plan", "aria-labelledby": "host-ap-title" },
    el("h2", { id: "host-ap-title" }, "Action plan"));
  const base = `cycles/${enc(cycle.cycle_id)}/action-items`;
  const [page, sugg] = await Promise.all([
    call("GET", base),
    call("GET", `${base}/suggestions?meeting_id=${enc(meeting.meeting_id)}`),
  ]);
  const items = (page.items || []).filter((i) => i.meeting_id === meeting.meeting_id || (!i.meeting_id && i.owner === meeting.host));
  card.append(el("p", { class: "muted small" },
    "Turn the peers' recommendations into actions: who does what by when. Status changes and progress notes are kept as the item's history."));
  card.append(el("table", { class: "data", id: "host-items" },
    el("thead", {}, el("tr", {}, ["Action", "Owner", "Due", "Status", "Progress"].map((t) => el("th", { scope: "col" }, t)))),
    el("tbody", {}, items.length ? items.map((i) => itemRow(ctx, i, card)) : el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No action items yet.")))));

  const what = el("textarea", { name: "what", rows: 2, cols: 70, maxlength: 2000, required: true, "aria-label": "What will be done", id: "host-new-what" });
  const owner = el("select", { name: "owner", "aria-label": "Owner", id: "host-new-owner" },
    ctx.partners.map((p) => el("option", { value: p.id, selected: p.id === meeting.host }, p.name || p.id)));
  const due = el("input", { type: "date", name: "due", "aria-label": "Due date", id: "host-new-due" });
  const recId = el("input", { type: "hidden", name: "rec" });
  const recText = el("p", { class: "muted small", id: "host-new-rec" });
  const form = el("form", { id: "host-new-item" }, el("h3", {}, "New action item"), recText,
    el("label", {}, "What ", what), el("label", {}, "Owner ", owner), el("label", {}, "Due ", due), recId,
    el("button", { type: "submit", id: "host-add-item" }, "Add action item"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = { owner: owner.value, what: what.value.trim(), meeting_id: meeting.meeting_id };
    if (due.value) body.due_at = `${due.value}T12:00:00Z`;
    if (recId.value) body.recommendation_statement_id = recId.value;
    try {
      await call("POST", base, body);
      await render(ctx, "Action item added.");
    } catch (e) {
      flash(card, e.message, false);
    }
  });

  const suggestions = (sugg.items || []).filter((s) => !s.meeting_id || s.meeting_id === meeting.meeting_id);
  card.append(el("h3", {}, "The peers' recommendations"),
    suggestions.length
      ? el("ul", { class: "suggestions", id: "host-suggestions" }, suggestions.map((s) => el("li", { class: "suggestion", lang: s.language, "data-statement": s.statement_id },
        s.text, " ", el("span", { class: "muted small" }, `— ${ctx.names[s.organisation] || s.organisation || "peer"} · ${s.language}`),
        s.action_item_ids.length ? el("span", { class: "muted small" }, ` · answered by ${s.action_item_ids.length} item(s)`) : null, " ",
        el("button", { type: "button", class: "ghost use-suggestion", onclick: () => {
          recId.value = s.statement_id;
          recText.textContent = `Answers: “${s.text}”`;
          what.value = s.language === "en" ? s.text : "";
          what.focus();
        } }, "Make it an action"))))
      : el("p", { class: "muted" }, "No recommendations mined for this visit yet."),
    form);
  return card;
}

// ---- the page ----

let state = null;

async function render(ctx, message) {
  const root = $("#host-page");
  const head = el("div", { class: "view-head" },
    el("h1", { id: "host-title", tabindex: -1 }, `Host: ${ctx.meeting.title || ctx.meeting.meeting_id}`),
    el("p", { class: "muted" }, `${ctx.names[ctx.meeting.host] || ctx.meeting.host} hosts this ${ctx.meeting.kind.replace("_", " ")} on ${wall(ctx.meeting.starts_at)} (${ctx.cycle.title}, ${ctx.meeting.state}).`));
  const picker = el("label", {}, "Visit ", el("select", { id: "host-meeting", onchange: (ev) => {
    window.location.hash = `#/host?visit=${enc(ev.target.value)}`;
  } }, state.visits.map((v) => {
    const id = `${v.cycle.cycle_id}/${v.meeting.meeting_id}`;
    return el("option", { value: id, selected: v.meeting === ctx.meeting }, `${v.cycle.title} · ${v.meeting.title || v.meeting.meeting_id} (${v.meeting.host})`);
  })));
  const cards = await Promise.all([selfAssessmentCard(ctx), feedbackCard(ctx), actionPlanCard(ctx)]);
  root.replaceChildren(head, picker, el("div", { class: "host-cards" }, cards));
  if (message) flash(root, message);
  document.body.dataset.hostReady = `${ctx.cycle.cycle_id}/${ctx.meeting.meeting_id}`;
}

async function viewHost(params) {
  const root = $("#host-page");
  root.replaceChildren(el("p", { class: "muted" }, "Loading…"));
  let me;
  try {
    me = storedKey() ? await call("GET", "me") : null;
  } catch {
    me = null;
  }
  if (!me || !["partner", "manager", "admin"].includes(me.role)) {
    root.replaceChildren(el("p", {}, "The host pages need a partner, manager or admin key."));
    return;
  }
  const visits = await hostedVisits(me);
  state = { me, visits };
  if (!visits.length) {
    root.replaceChildren(el("p", { id: "host-none" }, me.role === "partner"
      ? "Your organisation hosts no visit in the cycles this key can see."
      : "No hosted visit in the cycles this key can see."));
    return;
  }
  const want = params.get("visit");
  const pick = visits.find((v) => `${v.cycle.cycle_id}/${v.meeting.meeting_id}` === want)
    || visits.find((v) => v.meeting.state === "scheduled") || visits[0];
  const programme = await call("GET", `programmes/${enc(pick.cycle.programme_id)}`);
  const partners = programme.partners || [];
  const names = Object.fromEntries(partners.map((p) => [p.id, p.name || p.id]));
  await render({ me, cycle: pick.cycle, meeting: pick.meeting, programme, partners, names });
}

async function route() {
  const raw = window.location.hash.replace(/^#\/?/, "");
  const [path, query] = raw.split("?");
  if (path.split("/")[0] !== "host") return;
  for (const s of document.querySelectorAll("main > [data-view]")) s.hidden = s.dataset.view !== "host";
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (a.dataset.nav === "host") a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.body.dataset.currentView = "host";
  document.title = "Host · peerlearn";
  document.body.setAttribute("aria-busy", "true");
  try {
    await viewHost(new URLSearchParams(query || ""));
  } catch (e) {
    flash($("#host-page"), e.message, false);
  } finally {
    document.body.removeAttribute("aria-busy");
  }
}

/** The Host tab shows for keys that can host or act for a host. */
async function showTab() {
  const tab = $('[data-nav="host"]');
  if (!tab) return;
  let role = null;
  try {
    role = storedKey() ? (await call("GET", "me")).role : null;
  } catch {
    role = null;
  }
  tab.hidden = !["partner", "manager", "admin"].includes(role);
}

window.addEventListener("hashchange", route);
$("#key-dialog").addEventListener("close", () => setTimeout(() => { showTab(); route(); }, 0));
showTab().then(route);
