"""The mining part of the wrap-up report, for a cycle or a whole programme.

Shaped like the lessons-learnt summaries programmes publish: the recurring
themes with their best practices and who said them, recommendations grouped by
audience (future partnerships / the organisations themselves / funders), open
action items, and what changed since the previous cycle.

:func:`load_mining_context` reads the database; :func:`mining_sections` is a
pure function of that context (the cycle engine's report builder calls it and
merges the result); :func:`render_markdown` / :func:`render_html` print a
report dict.
"""

from __future__ import annotations

import html
from datetime import date, datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

AUDIENCE_TITLES = {
    "future_partnerships": "For future partnerships",
    "organisations": "For the organisations themselves",
    "funders": "For funders and programme authorities",
}
THEMES_IN_REPORT = 12
PRACTICES_PER_THEME = 3
RECOMMENDATIONS_PER_AUDIENCE = 6


def _system_principal() -> Any:
    from api.auth import Principal, Role

    return Principal(key_id="system", role=Role.admin)


async def load_mining_context(
    conn: AsyncConnection[Any],
    *,
    cycle_id: str | None = None,
    programme_id: str | None = None,
    principal: Any = None,
) -> dict[str, Any]:
    """Everything the report needs from the mining tables, as plain data."""
    from api.analyst import Filters, list_themes, theme_practices

    principal = principal or _system_principal()
    if cycle_id and not programme_id:
        cur = await conn.cursor(row_factory=dict_row).execute(
            "SELECT programme_id FROM statements WHERE cycle_id = %s AND programme_id IS NOT NULL"
            " LIMIT 1",
            (cycle_id,),
        )
        row = await cur.fetchone()
        programme_id = row["programme_id"] if row else None
    scope = Filters(cycle=cycle_id, programme=programme_id)
    themes, _ = await list_themes(conn, principal, scope, sort="size", limit=200)
    # Recurrence of the same themes across the whole programme (or everything visible).
    wide, _ = await list_themes(
        conn,
        principal,
        Filters(programme=programme_id),
        limit=200,
        theme_ids=[t["id"] for t in themes],
    )
    wide_by_id = {t["id"]: t for t in wide}
    practices, _ = await theme_practices(conn, principal, scope, limit=200)
    previous = await _previous_cycle(conn, cycle_id, programme_id) if cycle_id else None
    prev_themes: list[dict[str, Any]] = []
    if previous:
        prev_themes, _ = await list_themes(
            conn,
            principal,
            Filters(cycle=previous, programme=programme_id),
            sort="size",
            limit=200,
        )
    cur = await conn.cursor(row_factory=dict_row).execute(
        "SELECT count(*)::int AS n, count(theme_id)::int AS assigned,"
        " count(DISTINCT language)::int AS languages, count(DISTINCT note_id)::int AS notes,"
        " count(DISTINCT organisation_id)::int AS organisations FROM statements"
        " WHERE (%(c)s::text IS NULL OR cycle_id = %(c)s)"
        " AND (%(p)s::text IS NULL OR programme_id = %(p)s)",
        {"c": cycle_id, "p": programme_id},
    )
    totals = dict(await cur.fetchone() or {})
    return {
        "cycle_id": cycle_id,
        "programme_id": programme_id,
        "themes": themes,
        "recurrence": wide_by_id,
        "practices": practices,
        "previous_cycle_id": previous,
        "previous_themes": prev_themes,
        "totals": totals,
    }


async def _previous_cycle(
    conn: AsyncConnection[Any], cycle_id: str, programme_id: str | None
) -> str | None:
    """The programme's cycle whose statements start last before this cycle's."""
    cur = await conn.cursor(row_factory=dict_row).execute(
        """
        WITH c AS (
            SELECT cycle_id, min(source_date) AS started FROM statements
            WHERE programme_id IS NOT DISTINCT FROM %(p)s AND cycle_id IS NOT NULL
            GROUP BY cycle_id
        )
        SELECT cycle_id FROM c
        WHERE started < (SELECT started FROM c WHERE cycle_id = %(c)s) AND cycle_id <> %(c)s
        ORDER BY started DESC LIMIT 1
        """,
        {"p": programme_id, "c": cycle_id},
    )
    row = await cur.fetchone()
    return row["cycle_id"] if row else None


def _source(s: dict[str, Any]) -> dict[str, Any]:
    return {
        "organisation": s.get("organisation_id"),
        "meeting": s.get("meeting_id"),
        "cycle": s.get("cycle_id"),
        "note": s.get("note_id"),
        "date": _iso(s.get("date") or s.get("source_date")),
        "language": s.get("language"),
    }


def _iso(v: Any) -> Any:
    return v.isoformat() if isinstance(v, date | datetime) else v


def _practice(p: dict[str, Any]) -> dict[str, Any]:
    sources = p.get("sources") or []
    return {
        "statement_id": p["statement_id"],
        "text": p["text"],
        "language": p["language"],
        "kind": p["kind"],
        "audience": p.get("audience"),
        "theme_id": p["theme_id"],
        "theme": p.get("theme_label"),
        "support_cycles": p.get("support_cycles"),
        "support_organisations": p.get("support_organisations"),
        "sources": [_source(s) for s in sources] or [_source(p)],
    }


def mining_sections(
    ctx: dict[str, Any], action_items: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The report's themes, practices, recommendations and changes (pure)."""
    recurrence = ctx.get("recurrence") or {}
    by_theme: dict[str, list[dict[str, Any]]] = {}
    for p in ctx.get("practices") or []:
        by_theme.setdefault(p["theme_id"], []).append(p)
    themes = []
    for t in ctx.get("themes") or []:
        wide = recurrence.get(t["id"], t)
        themes.append(
            {
                "id": t["id"],
                "label": t["label"],
                "keyphrases": list(t.get("keyphrases") or [])[:6],
                "statements": t["size"],
                "languages": t.get("languages") or {},
                "organisations": t["organisations"],
                "cycles_overall": wide.get("cycles", t["cycles"]),
                "organisations_overall": wide.get("organisations", t["organisations"]),
                "recurring": wide.get("cycles", 0) > 1,
                "practices": [
                    _practice(p)
                    for p in by_theme.get(t["id"], [])
                    if p["kind"] in ("best_practice", "lesson")
                ][:PRACTICES_PER_THEME]
                or [_practice(p) for p in by_theme.get(t["id"], [])][:PRACTICES_PER_THEME],
            }
        )
    themes.sort(key=lambda x: (-x["cycles_overall"], -x["statements"], x["id"]))
    themes = themes[:THEMES_IN_REPORT]
    recs: dict[str, list[dict[str, Any]]] = {a: [] for a in AUDIENCE_TITLES}
    for p in ctx.get("practices") or []:
        if p["kind"] == "recommendation":
            bucket = recs.setdefault(p.get("audience") or "future_partnerships", [])
            if len(bucket) < RECOMMENDATIONS_PER_AUDIENCE:
                bucket.append(_practice(p))
    this_ids = {t["id"] for t in ctx.get("themes") or []}
    prev = {t["id"]: t for t in ctx.get("previous_themes") or []}
    labels = {t["id"]: t["label"] for t in ctx.get("themes") or []}
    changes = None
    if ctx.get("previous_cycle_id"):
        changes = {
            "previous_cycle_id": ctx["previous_cycle_id"],
            "new_themes": [{"id": i, "label": labels[i]} for i in sorted(this_ids - set(prev))],
            "continued_themes": [
                {"id": i, "label": labels[i]} for i in sorted(this_ids & set(prev))
            ],
            "no_longer_discussed": [
                {"id": i, "label": prev[i]["label"]} for i in sorted(set(prev) - this_ids)
            ],
        }
    return {
        "summary": ctx.get("totals") or {},
        "themes": themes,
        "recommendations": [
            {"audience": a, "title": AUDIENCE_TITLES.get(a, a), "items": items}
            for a, items in recs.items()
        ],
        "action_items": list(action_items or []),
        "changes_since_previous": changes,
    }


async def build_report(
    conn: AsyncConnection[Any],
    *,
    cycle_id: str | None = None,
    programme_id: str | None = None,
    principal: Any = None,
    action_items: list[dict[str, Any]] | None = None,
    title: str | None = None,
) -> dict[str, Any]:
    ctx = await load_mining_context(
        conn, cycle_id=cycle_id, programme_id=programme_id, principal=principal
    )
    body = mining_sections(ctx, action_items)
    what = f"cycle {cycle_id}" if cycle_id else f"programme {ctx['programme_id']}"
    return {
        "title": title or f"Lessons learnt — {what}",
        "cycle_id": cycle_id,
        "programme_id": ctx["programme_id"],
        **body,
    }


# ---- rendering --------------------------------------------------------------------------


def _src_line(s: dict[str, Any]) -> str:
    parts = [s.get("organisation") or "?", s.get("meeting") or "", s.get("date") or ""]
    return ", ".join(str(p) for p in parts if p)


def render_markdown(report: dict[str, Any]) -> str:
    out = [f"# {report['title']}", ""]
    summ = report.get("summary") or {}
    if summ:
        out += [
            f"{summ.get('n', 0)} statements from {summ.get('notes', 0)} notes by "
            f"{summ.get('organisations', 0)} organisations in {summ.get('languages', 0)} "
            "languages.",
            "",
        ]
    out += ["## Recurring themes", ""]
    for t in report.get("themes") or []:
        langs = ", ".join(f"{k} {v}" for k, v in sorted((t.get("languages") or {}).items()))
        out.append(f"### {t['label']}")
        out.append("")
        out.append(
            f"{t['statements']} statements ({langs}); said in {t['cycles_overall']} cycles by "
            f"{t['organisations_overall']} organisations."
            + (f" Keyphrases: {', '.join(t['keyphrases'])}." if t.get("keyphrases") else "")
        )
        out.append("")
        for p in t.get("practices") or []:
            srcs = "; ".join(_src_line(s) for s in p["sources"][:4])
            out.append(
                f"- **{p['kind'].replace('_', ' ')}** ({p['language']}): {p['text']} — _{srcs}_"
            )
        out.append("")
    out += ["## Recommendations", ""]
    for group in report.get("recommendations") or []:
        out += [f"### {group['title']}", ""]
        if not group["items"]:
            out += ["_None recorded._", ""]
        for p in group["items"]:
            srcs = "; ".join(_src_line(s) for s in p["sources"][:3])
            out.append(f"- {p['text']} ({p['language']}; {srcs})")
        out.append("")
    out += ["## Open action items", ""]
    items = report.get("action_items") or []
    if not items:
        out += ["_None open._", ""]
    for a in items:
        owner = a.get("owner") or a.get("organisation") or "unassigned"
        due = a.get("due") or a.get("due_at") or a.get("date") or "no date"
        out.append(f"- {a.get('what') or a.get('text') or a.get('title')} — {owner}, {due}")
    out.append("")
    ch = report.get("changes_since_previous")
    out += ["## What changed since the previous cycle", ""]
    if not ch:
        out += ["_This is the first cycle with mined notes._", ""]
    else:
        out.append(f"Compared with cycle {ch['previous_cycle_id']}:")
        out.append("")
        for key, title in (
            ("new_themes", "New"),
            ("continued_themes", "Continued"),
            ("no_longer_discussed", "No longer discussed"),
        ):
            names = ", ".join(x["label"] for x in ch[key]) or "none"
            out.append(f"- {title}: {names}")
        out.append("")
    return "\n".join(out)


_CSS = """
body{font-family:Georgia,serif;max-width:48rem;margin:2rem auto;color:#222;line-height:1.45}
h1{border-bottom:2px solid #444}h2{margin-top:2rem;border-bottom:1px solid #aaa}
.src{color:#555;font-size:.9em}.kind{font-variant:small-caps;color:#335}
@media print{body{margin:0;max-width:none}h2{page-break-after:avoid}}
"""


def render_html(report: dict[str, Any]) -> str:
    e = html.escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{e(report['title'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(report['title'])}</h1>",
        "<h2>Recurring themes</h2>",
    ]
    for t in report.get("themes") or []:
        langs = ", ".join(f"{k}: {v}" for k, v in sorted((t.get("languages") or {}).items()))
        parts.append(f"<section class='theme'><h3>{e(t['label'])}</h3>")
        parts.append(
            f"<p>{t['statements']} statements ({e(langs)}); {t['cycles_overall']} cycles, "
            f"{t['organisations_overall']} organisations.</p><ul>"
        )
        for p in t.get("practices") or []:
            srcs = "; ".join(_src_line(s) for s in p["sources"][:4])
            parts.append(
                f"<li><span class='kind'>{e(p['kind'].replace('_', ' '))}</span> "
                f"<span lang='{e(p['language'])}'>{e(p['text'])}</span> "
                f"<span class='src'>({e(srcs)})</span></li>"
            )
        parts.append("</ul></section>")
    parts.append("<h2>Recommendations</h2>")
    for group in report.get("recommendations") or []:
        parts.append(f"<h3>{e(group['title'])}</h3><ul>")
        for p in group["items"]:
            srcs = "; ".join(_src_line(s) for s in p["sources"][:3])
            parts.append(
                f"<li lang='{e(p['language'])}'>{e(p['text'])} "
                f"<span class='src'>({e(srcs)})</span></li>"
            )
        if not group["items"]:
            parts.append("<li><em>None recorded.</em></li>")
        parts.append("</ul>")
    parts.append("<h2>Open action items</h2><ul>")
    for a in report.get("action_items") or []:
        owner = a.get("owner") or a.get("organisation") or "unassigned"
        due = a.get("due") or a.get("due_at") or a.get("date") or "no date"
        parts.append(
            f"<li>{e(str(a.get('what') or a.get('text') or a.get('title')))} — "
            f"{e(str(owner))}, {e(str(due))}</li>"
        )
    if not report.get("action_items"):
        parts.append("<li><em>None open.</em></li>")
    parts.append("</ul><h2>What changed since the previous cycle</h2>")
    ch = report.get("changes_since_previous")
    if not ch:
        parts.append("<p><em>This is the first cycle with mined notes.</em></p>")
    else:
        parts.append(f"<p>Compared with cycle {e(str(ch['previous_cycle_id']))}:</p><ul>")
        for key, title in (
            ("new_themes", "New"),
            ("continued_themes", "Continued"),
            ("no_longer_discussed", "No longer discussed"),
        ):
            names = ", ".join(x["label"] for x in ch[key]) or "none"
            parts.append(f"<li>{title}: {e(names)}</li>")
        parts.append("</ul>")
    parts.append("</body></html>")
    return "".join(parts)


async def enrich_wrapup(
    conn: AsyncConnection[Any], content: dict[str, Any], markdown: str
) -> tuple[dict[str, Any], str]:
    """Add the mining sections to the cycle engine's wrap-up content (used by
    ``activities/reports.py``); the cycle's own action items are kept."""
    ctx = await load_mining_context(
        conn, cycle_id=content.get("cycle_id"), programme_id=content.get("programme_id")
    )
    sections = mining_sections(ctx, content.get("action_items") or [])
    merged = {**content, **{k: v for k, v in sections.items() if k != "summary"}}
    merged["mining_summary"] = sections["summary"]
    merged["practices"] = [p for t in sections["themes"] for p in t["practices"]]
    mined = render_markdown({"title": content.get("title") or "Lessons learnt", **sections})
    body = mined.split("\n", 2)[2] if mined.startswith("# ") else mined
    body = body.replace("## Open action items", "## Action items", 1)
    return merged, markdown.rstrip() + "\n\n" + body
