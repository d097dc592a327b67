"""The ONE wrap-up report: a typed model built from the read models, and its renderers.

Shaped like the lessons-learnt summaries programmes publish: what the cycle
did (meetings held, notes), the recurring themes with their best practices and
who said them, recommendations grouped by audience (future partnerships / the
organisations themselves / funders), open action items, and what changed since
the previous cycle.

Both the cycle engine's wrap-up activity (``activities/reports.py``, which
stores the report as an event) and the live report endpoints
(``api/routers/reports.py``) call :func:`build_report`, and both print it with
:func:`render_markdown` / :func:`render_html`: one model, one renderer per
format, no text surgery. The pure steps (:func:`extract_action_items`,
:func:`cycle_sections`, :func:`mining_sections`) are testable without a
database.

Everything a report shows is read through the caller's grant; the worker uses
:data:`peerlearn.access.SYSTEM`.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from nlp.types import PRACTICE_KINDS
from peerlearn import action_plan
from peerlearn.access import NotFound, Principal
from peerlearn.readside.filters import Filters, facilitator, statement_where
from peerlearn.readside.themes import list_themes, theme_practices

AUDIENCE_TITLES = {
    "future_partnerships": "For future partnerships",
    "organisations": "For the organisations themselves",
    "funders": "For funders and programme authorities",
}
THEMES_IN_REPORT = 12
PRACTICES_PER_THEME = 3
RECOMMENDATIONS_PER_AUDIENCE = 6
# The practice kinds a theme section shows first (then any practice of the theme).
_THEME_PRACTICE_KINDS = tuple(k for k in PRACTICE_KINDS if k != "recommendation")

# A note line that is an action item: "Action: ...", "TODO: ...", "- [ ] ...".
_ACTION_LINE = re.compile(r"^\s*(?:[-*]\s*)?(?:\[ \]\s*|action:\s*|todo:\s*)(.+)$", re.IGNORECASE)


# ---- the model ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """Where a statement was said: organisation, meeting, cycle, note, date, language."""

    organisation: str | None
    meeting: str | None
    cycle: str | None
    note: str | None
    date: str | None
    language: str | None


@dataclass(frozen=True)
class Gloss:
    """The closest English statement of the theme: NOT a translation."""

    english_text: str
    similarity: float
    label: str


@dataclass(frozen=True)
class Wording:
    """How one idea was written in one language (with its English gloss)."""

    language: str
    text: str
    gloss: Gloss | None = None


@dataclass(frozen=True)
class Practice:
    """One idea (however many languages it was written in)."""

    statement_id: str
    text: str
    language: str
    kind: str
    audience: str | None
    theme_id: str
    theme: str | None
    support_cycles: int
    support_organisations: int
    sources: list[Source]
    gloss: Gloss | None = None
    wordings: list[Wording] = field(default_factory=list)  # the other languages
    id: str | None = None


@dataclass
class Names:
    """Readable names for ids: organisations, meetings, cycles, and the
    programme's time zone dates are shown in."""

    organisations: dict[str, str] = field(default_factory=dict)
    meetings: dict[str, str] = field(default_factory=dict)  # "cycle/meeting" and "meeting"
    cycles: dict[str, str] = field(default_factory=dict)
    programme: str | None = None
    time_zone: str = "UTC"
    # Issue 12 (sources=anonymous): what the programme knows of each partner
    # (its role and country), so a report can describe a source without naming it.
    partners: dict[str, dict[str, str]] = field(default_factory=dict)
    anonymous: bool = False
    aliases: dict[str, str] = field(default_factory=dict)

    def org(self, oid: str | None) -> str | None:
        if not oid:
            return oid
        if self.anonymous:
            return self.alias(oid)
        return self.organisations.get(oid, oid)

    def alias(self, oid: str) -> str:
        """A neutral description of an organisation ("a frontrunner partner in SE
        (partner A)"), stable within one report; the letter keeps two partners of
        the same role and country apart."""
        if oid not in self.aliases:
            meta = self.partners.get(oid, {})
            role, country = meta.get("role"), meta.get("country")
            desc = f"a {role} partner" if role else "a partner organisation"
            if country:
                desc += f" in {country}"
            self.aliases[oid] = f"{desc} (partner {_letter(len(self.aliases))})"
        return self.aliases[oid]

    def scrub(self, text: str) -> str:
        """``text`` with every known organisation name and id (whole words,
        case-insensitive) replaced by its alias; unchanged unless anonymous."""
        if not self.anonymous:
            return text
        for oid, name in sorted(
            self.organisations.items(), key=lambda kv: -len(kv[1])
        ):  # longest names first: "Växa Cluster" before "Växa"
            pattern = "|".join(rf"(?<!\w){re.escape(w)}(?!\w)" for w in (name, oid))
            if re.search(pattern, text, flags=re.IGNORECASE):  # letters only for who is named
                text = re.sub(pattern, self.alias(oid), text, flags=re.IGNORECASE)
        return text

    def meeting(self, cycle: str | None, mid: str | None) -> str | None:
        if not mid:
            return mid
        return self.scrub(self.meetings.get(f"{cycle}/{mid}") or self.meetings.get(mid) or mid)

    def when(self, v: date | datetime | str | None, *, time: bool = True) -> str | None:
        """A date, or a timestamp in the programme's zone to the minute (no
        microseconds, no UTC offset puzzle): '2024-10-08 14:00 CEST'."""
        if v is None or v == "":
            return None
        if isinstance(v, str):
            try:
                parsed: date = datetime.fromisoformat(v) if len(v) > 10 else date.fromisoformat(v)
            except ValueError:
                return v
            v = parsed
        if isinstance(v, datetime):
            try:
                zone = ZoneInfo(self.time_zone)
            except (ZoneInfoNotFoundError, ValueError):
                zone = ZoneInfo("UTC")
            local = v.astimezone(zone) if v.tzinfo else v
            return local.strftime("%Y-%m-%d %H:%M %Z").strip() if time else local.date().isoformat()
        return v.isoformat()


def _letter(i: int) -> str:
    """A, B, ..., Z, AA, AB, ...: the suffix of the i-th alias."""
    out = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        out = chr(ord("A") + r) + out
    return out


def plural(n: int, word: str, many: str | None = None) -> str:
    """'1 note', '2 notes', '0 notes' ('1 activity', '2 activities' via ``many``)."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


@dataclass(frozen=True)
class ThemeSection:
    id: str
    label: str
    keyphrases: list[str]
    statements: int
    languages: dict[str, int]
    organisations: int
    cycles_overall: int
    organisations_overall: int
    recurring: bool
    practices: list[Practice]


@dataclass(frozen=True)
class RecommendationGroup:
    audience: str
    title: str
    items: list[Practice]


@dataclass(frozen=True)
class ActionItem:
    """Who does what by when (the ``action_items`` projection's columns)."""

    id: str
    owner: str
    what: str
    due_at: str | None
    meeting_id: str | None
    cycle_id: str | None = None
    owner_name: str | None = None  # the partner's name, for readers
    meeting_title: str | None = None
    #: the note whose line this is: its words are sealed under that note's
    #: key in the log, so erasing the note erases the item (peerlearn.writings)
    source_note_id: str | None = None


@dataclass(frozen=True)
class ThemeRef:
    id: str
    label: str


@dataclass(frozen=True)
class Changes:
    previous_cycle_id: str
    new_themes: list[ThemeRef]
    continued_themes: list[ThemeRef]
    no_longer_discussed: list[ThemeRef]


@dataclass(frozen=True)
class MinedTotals:
    """Counts over the mined statements in the report's scope."""

    statements: int = 0
    assigned: int = 0
    languages: int = 0
    notes: int = 0
    organisations: int = 0


@dataclass(frozen=True)
class MeetingLine:
    meeting_id: str
    kind: str
    title: str
    host: str | None
    state: str
    starts_at: str
    held_at: str | None
    topics: list[str]
    note_count: int
    theme_ids: list[str]
    escalated: bool


@dataclass(frozen=True)
class CycleSummary:
    """What the cycle engine knows: meetings and notes (absent for a programme
    report, or a cycle that only exists in the mined statements)."""

    meetings_planned: int
    meetings_held: int
    meetings_cancelled: int
    notes: int
    organisations: list[str]
    languages: list[str]


@dataclass(frozen=True)
class ReviewPath:
    """Issue 13: one host's path from the peers' recommendations (on the
    visits it hosted) to action items and to done; host "*" is the total."""

    host: str
    host_name: str
    recommendations: int
    answered: int
    open: int
    in_progress: int
    done: int
    dropped: int


@dataclass(frozen=True)
class Report:
    title: str
    cycle_id: str | None
    programme_id: str | None
    summary: CycleSummary | None
    mined: MinedTotals
    meetings: list[MeetingLine] = field(default_factory=list)
    themes: list[ThemeSection] = field(default_factory=list)
    recommendations: list[RecommendationGroup] = field(default_factory=list)
    action_items: list[ActionItem] = field(default_factory=list)
    changes_since_previous: Changes | None = None
    generated_at: str | None = None
    follow_up_at: str | None = None
    review_path: list[ReviewPath] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types only (dates are ISO strings already)."""
        return asdict(self)


@dataclass(frozen=True)
class CycleRows:
    """The cycle engine's read models of one cycle (rows of ``cycles``,
    ``meetings`` and ``notes``, migration 0002)."""

    cycle: dict[str, Any]
    meetings: list[dict[str, Any]]
    notes: list[dict[str, Any]]


@dataclass(frozen=True)
class MiningContext:
    """Rows from the mining read models, as :func:`list_themes` and
    :func:`theme_practices` return them."""

    themes: list[dict[str, Any]]
    recurrence: dict[str, dict[str, Any]]
    practices: list[dict[str, Any]]
    previous_cycle_id: str | None
    previous_themes: list[dict[str, Any]]
    totals: MinedTotals


# ---- pure steps -----------------------------------------------------------------------------


def _iso(v: date | datetime | None) -> str | None:
    return v.isoformat() if v is not None else None


def owner_named(what: str, partners: dict[str, str] | None, default: str) -> str:
    """The partner an action line names (by id or by name, whole words,
    case-insensitive) when it names exactly one; else ``default`` (the
    note's author). "Action: Umeå Energikluster sends the template" is
    Umeå's item even when Gdańsk wrote the note."""
    if not partners:
        return default
    low = what.casefold()
    found = {
        pid
        for pid, name in partners.items()
        if any(re.search(rf"(?<!\w){re.escape(x.casefold())}(?!\w)", low) for x in (pid, name) if x)
    }
    return found.pop() if len(found) == 1 else default


def extract_action_items(
    meetings: list[dict[str, Any]],
    notes: list[dict[str, Any]],
    follow_up_at: datetime,
    partners: dict[str, str] | None = None,
) -> list[ActionItem]:
    """Who does what by when: one action plan per site-visit host, plus every
    line of a note written as an action ("Action: ...", "TODO: ...", "- [ ] ...").
    ``partners`` (id -> name) lets a line name its owner (:func:`owner_named`)."""
    due = follow_up_at.isoformat()
    items: list[ActionItem] = []
    for m in meetings:
        if m["state"] == "held" and m["kind"] == "site_visit" and m["host"]:
            items.append(
                ActionItem(
                    id=f"plan-{m['id']}",
                    owner=m["host"],
                    what="Action plan answering the peers' recommendations from "
                    + (m.get("title") or m["id"]),
                    due_at=due,
                    meeting_id=m["id"],
                )
            )
    for n in notes:
        for i, line in enumerate(str(n["text"]).splitlines()):
            hit = _ACTION_LINE.match(line)
            if hit and hit.group(1).strip():
                items.append(
                    ActionItem(
                        id=f"note-{n['id']}-{i}",
                        owner=owner_named(hit.group(1).strip(), partners, n["author_organisation"]),
                        what=hit.group(1).strip(),
                        due_at=due,
                        meeting_id=n["meeting_id"],
                        source_note_id=n["id"],
                    )
                )
    return items


def cycle_sections(rows: CycleRows) -> tuple[CycleSummary, list[MeetingLine]]:
    """The cycle engine's part of the report: counts and one line per meeting."""
    per_meeting: dict[str, int] = {}
    for n in rows.notes:
        per_meeting[n["meeting_id"]] = per_meeting.get(n["meeting_id"], 0) + 1
    meetings = rows.meetings
    summary = CycleSummary(
        meetings_planned=len(meetings),
        meetings_held=sum(1 for m in meetings if m["state"] == "held"),
        meetings_cancelled=sum(1 for m in meetings if m["state"] == "cancelled"),
        notes=len(rows.notes),
        organisations=sorted({n["author_organisation"] for n in rows.notes}),
        languages=sorted({n["language"] for n in rows.notes}),
    )
    lines = [
        MeetingLine(
            meeting_id=m["id"],
            kind=m["kind"],
            title=m["title"],
            host=m["host"],
            state=m["state"],
            starts_at=m["starts_at"].isoformat(),
            held_at=_iso(m["held_at"]),
            topics=list(m["topics"] or []),
            note_count=per_meeting.get(m["id"], 0),
            theme_ids=list(m["theme_ids"] or []),
            escalated=m["escalated_at"] is not None,
        )
        for m in meetings
    ]
    return summary, lines


def _source_of(s: dict[str, Any], names: Names) -> Source:
    """A member statement of an idea as ``theme_practices`` lists it, named."""
    return Source(
        organisation=names.org(s["organisation_id"]),
        meeting=names.meeting(s["cycle_id"], s["meeting_id"]),
        cycle=names.cycles.get(s["cycle_id"] or "", s["cycle_id"]),
        note=s["note_id"],
        date=names.when(s["date"], time=False),
        language=s["language"],
    )


def _gloss(g: dict[str, Any] | None) -> Gloss | None:
    if not g:
        return None
    return Gloss(g["english_text"], float(g["similarity"]), g["label"])


def _practice(p: dict[str, Any], names: Names | None = None) -> Practice:
    names = names or Names()
    sources: list[Source] = []
    for src in (_source_of(s, names) for s in p.get("sources") or []):
        if all(
            (x.organisation, x.meeting, x.date) != (src.organisation, src.meeting, src.date)
            for x in sources
        ):  # each source once
            sources.append(src)
    if not sources:  # no visible member: the practice's own statement
        sources = [
            Source(
                organisation=names.org(p["organisation_id"]),
                meeting=names.meeting(p["cycle_id"], p["meeting_id"]),
                cycle=p["cycle_id"],
                note=p["note_id"],
                date=names.when(p["source_date"], time=False),
                language=p["language"],
            )
        ]
    wordings = p.get("wordings") or {}
    head = wordings.get(p["language"]) or {}
    return Practice(
        statement_id=p["statement_id"],
        text=names.scrub(p["text"]),
        language=p["language"],
        kind=p["kind"],
        audience=p["audience"],
        theme_id=p["theme_id"],
        theme=p["theme_label"],
        support_cycles=p["support_cycles"],
        support_organisations=p["support_organisations"],
        sources=sources,
        gloss=_gloss(head.get("gloss")),
        wordings=[
            Wording(lang, names.scrub(w["text"]), _gloss(w.get("gloss")))
            for lang, w in sorted(wordings.items())
            if lang != p["language"]
        ],
        id=p.get("id"),
    )


def mining_sections(
    ctx: MiningContext, names: Names | None = None
) -> tuple[list[ThemeSection], list[RecommendationGroup], Changes | None]:
    """The report's themes, recommendations by audience and changes since the
    previous cycle, from the mining read models (pure)."""
    by_theme: dict[str, list[dict[str, Any]]] = {}
    for p in ctx.practices:
        by_theme.setdefault(p["theme_id"], []).append(p)
    themes = []
    for t in ctx.themes:
        wide = ctx.recurrence.get(t["id"], t)
        own = by_theme.get(t["id"], [])
        chosen = [p for p in own if p["kind"] in _THEME_PRACTICE_KINDS] or own
        themes.append(
            ThemeSection(
                id=t["id"],
                label=t.get("title") or t["label"],
                keyphrases=list(t["keyphrases"] or [])[:6],
                statements=t["size"],
                languages=dict(t["languages"] or {}),
                organisations=t["organisations"],
                cycles_overall=wide["cycles"],
                organisations_overall=wide["organisations"],
                recurring=wide["cycles"] > 1,
                practices=[_practice(p, names) for p in chosen[:PRACTICES_PER_THEME]],
            )
        )
    themes.sort(key=lambda x: (-x.cycles_overall, -x.statements, x.id))
    recs: dict[str, list[Practice]] = {a: [] for a in AUDIENCE_TITLES}
    for p in ctx.practices:
        if p["kind"] == "recommendation":
            bucket = recs.setdefault(p["audience"] or "future_partnerships", [])
            if len(bucket) < RECOMMENDATIONS_PER_AUDIENCE:
                bucket.append(_practice(p, names))
    groups = [
        RecommendationGroup(audience=a, title=AUDIENCE_TITLES.get(a, a), items=items)
        for a, items in recs.items()
    ]
    changes = None
    if ctx.previous_cycle_id:
        labels = {t["id"]: t.get("title") or t["label"] for t in ctx.themes}
        prev = {t["id"]: t.get("title") or t["label"] for t in ctx.previous_themes}
        this_ids, prev_ids = set(labels), set(prev)
        changes = Changes(
            previous_cycle_id=ctx.previous_cycle_id,
            new_themes=[ThemeRef(i, labels[i]) for i in sorted(this_ids - prev_ids)],
            continued_themes=[ThemeRef(i, labels[i]) for i in sorted(this_ids & prev_ids)],
            no_longer_discussed=[ThemeRef(i, prev[i]) for i in sorted(prev_ids - this_ids)],
        )
    return themes[:THEMES_IN_REPORT], groups, changes


# ---- reading the read models ------------------------------------------------------------------


async def load_cycle(conn: AsyncConnection[Any], cycle_id: str) -> CycleRows | None:
    """The cycle engine's rows of one cycle, or None when it has none (a cycle
    known only from mined statements)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT * FROM cycles WHERE id = %s", (cycle_id,))
        cycle = await cur.fetchone()
        if cycle is None:
            return None
        await cur.execute(
            "SELECT * FROM meetings WHERE cycle_id = %s ORDER BY starts_at, id", (cycle_id,)
        )
        meetings = [dict(r) for r in await cur.fetchall()]
        await cur.execute(
            "SELECT * FROM notes WHERE cycle_id = %s ORDER BY submitted_at, id", (cycle_id,)
        )
        notes = [dict(r) for r in await cur.fetchall()]
    return CycleRows(dict(cycle), meetings, notes)


async def open_action_items(
    conn: AsyncConnection[Any], *, cycle_id: str | None = None, programme_id: str | None = None
) -> list[ActionItem]:
    """Open items of the ``action_items`` projection, of a cycle or a programme."""
    cur = await conn.cursor(row_factory=dict_row).execute(
        "SELECT a.id, a.owner, a.what, a.due_at, a.meeting_id, a.cycle_id"
        " FROM action_items a JOIN cycles c ON c.id = a.cycle_id"
        " WHERE a.status = 'open'"
        " AND (%(c)s::text IS NULL OR a.cycle_id = %(c)s)"
        " AND (%(p)s::text IS NULL OR c.programme_id = %(p)s)"
        " ORDER BY a.due_at, a.cycle_id, a.id",
        {"c": cycle_id, "p": programme_id},
    )
    return [
        ActionItem(
            id=r["id"],
            owner=r["owner"],
            what=r["what"],
            due_at=_iso(r["due_at"]),
            meeting_id=r["meeting_id"],
            cycle_id=r["cycle_id"],
        )
        for r in await cur.fetchall()
    ]


async def cycle_programme(conn: AsyncConnection[Any], cycle_id: str) -> str | None:
    """The programme of a cycle: the cycle engine's row, else its mined statements."""
    cur = await conn.cursor(row_factory=dict_row).execute(
        "SELECT programme_id FROM cycles WHERE id = %(c)s"
        " UNION ALL (SELECT programme_id FROM statements"
        "            WHERE cycle_id = %(c)s AND programme_id IS NOT NULL LIMIT 1)"
        " LIMIT 1",
        {"c": cycle_id},
    )
    row = await cur.fetchone()
    return str(row["programme_id"]) if row else None


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


async def load_mining_context(
    conn: AsyncConnection[Any],
    principal: Principal,
    *,
    cycle_id: str | None,
    programme_id: str | None,
) -> MiningContext:
    """Everything the report needs from the mining read models, as the caller sees it."""
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
    practices, _ = await theme_practices(conn, principal, scope, limit=200)
    previous = await _previous_cycle(conn, cycle_id, programme_id) if cycle_id else None
    prev_themes: list[dict[str, Any]] = []
    if previous:
        prev_themes, _ = await list_themes(
            conn, principal, Filters(cycle=previous, programme=programme_id), sort="size", limit=200
        )
    where, params = statement_where(principal, scope)
    cur = await conn.cursor(row_factory=dict_row).execute(
        "SELECT count(*)::int AS statements, count(s.theme_id)::int AS assigned,"
        " count(DISTINCT s.language)::int AS languages, count(DISTINCT s.note_id)::int AS notes,"
        f" count(DISTINCT s.organisation_id)::int AS organisations FROM statements s WHERE {where}",
        params,
    )
    totals = await cur.fetchone()
    return MiningContext(
        themes=themes,
        recurrence={t["id"]: t for t in wide},
        practices=practices,
        previous_cycle_id=previous,
        previous_themes=prev_themes,
        totals=MinedTotals(**totals) if totals else MinedTotals(),
    )


async def load_names(conn: AsyncConnection[Any], programme_id: str) -> Names:
    """The programme's names for ids: partners (programme and cycle partner
    lists), cycle titles, meeting titles, and its time zone."""
    names = Names()
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT name, time_zone, partners FROM programmes WHERE id = %s", (programme_id,)
        )
        prog = await cur.fetchone()
        await cur.execute(
            "SELECT id, title, partners, time_zone FROM cycles WHERE programme_id = %s",
            (programme_id,),
        )
        cycles = [dict(r) for r in await cur.fetchall()]
        await cur.execute(
            "SELECT m.cycle_id, m.id, m.title FROM meetings m JOIN cycles c ON c.id = m.cycle_id"
            " WHERE c.programme_id = %s",
            (programme_id,),
        )
        meetings = [dict(r) for r in await cur.fetchall()]
    partner_lists = [c["partners"] for c in cycles]
    if prog is not None:
        names.programme = prog["name"]
        names.time_zone = prog["time_zone"] or "UTC"
        partner_lists.insert(0, prog["partners"])
    elif cycles:
        names.time_zone = cycles[0]["time_zone"] or "UTC"
    for partners in partner_lists:
        for pt in partners or []:
            if isinstance(pt, dict) and pt.get("id") and pt.get("name"):
                names.organisations.setdefault(str(pt["id"]), str(pt["name"]))
                meta = {k: str(pt[k]) for k in ("role", "country") if pt.get(k)}
                names.partners.setdefault(str(pt["id"]), meta)
    for c in cycles:
        if c["title"]:
            names.cycles[c["id"]] = c["title"]
    for m in meetings:
        if m["title"]:
            names.meetings[f"{m['cycle_id']}/{m['id']}"] = m["title"]
            names.meetings.setdefault(m["id"], m["title"])
    return names


def _named(report_items: list[ActionItem], names: Names) -> list[ActionItem]:
    """Action items with the owner's and meeting's names and a local due date."""
    return [
        ActionItem(
            id=a.id,
            owner=names.alias(a.owner) if names.anonymous and a.owner else a.owner,
            what=names.scrub(a.what),
            due_at=names.when(a.due_at, time=False),
            meeting_id=a.meeting_id,
            cycle_id=a.cycle_id,
            owner_name=names.org(a.owner) or a.owner,
            meeting_title=names.meeting(a.cycle_id, a.meeting_id),
        )
        for a in report_items
    ]


def _named_meetings(
    lines: list[MeetingLine], names: Names, cycle_id: str | None
) -> list[MeetingLine]:
    return [
        MeetingLine(
            meeting_id=m.meeting_id,
            kind=m.kind,
            title=names.scrub(m.title or names.meeting(cycle_id, m.meeting_id) or m.meeting_id),
            host=names.org(m.host),
            state=m.state,
            starts_at=names.when(m.starts_at) or m.starts_at,
            held_at=names.when(m.held_at),
            topics=[names.scrub(t) for t in m.topics],
            note_count=m.note_count,
            theme_ids=m.theme_ids,
            escalated=m.escalated,
        )
        for m in lines
    ]


async def build_report(
    conn: AsyncConnection[Any],
    principal: Principal,
    *,
    cycle_id: str | None = None,
    programme_id: str | None = None,
    cycle: CycleRows | None = None,
    action_items: list[ActionItem] | None = None,
    title: str | None = None,
    generated_at: datetime | None = None,
    follow_up_at: datetime | None = None,
    anonymous: bool = False,
) -> Report:
    """The report of a cycle (``cycle_id``) or of a whole programme.

    ``cycle`` passes the cycle engine's rows when the caller already read them
    (the wrap-up activity); otherwise they are read here. ``action_items``
    default to the open items of the ``action_items`` projection. A cycle or
    programme outside the grant raises the principal's access error; one that
    exists nowhere raises :class:`NotFound`. ``anonymous`` describes every
    organisation (:meth:`Names.alias`) instead of naming it.
    """
    if cycle_id is not None:
        if cycle is None:
            cycle = await load_cycle(conn, cycle_id)
        programme_id = (
            cycle.cycle["programme_id"] if cycle else await cycle_programme(conn, cycle_id)
        )
        if programme_id is None:
            raise NotFound(f"cycle {cycle_id!r} not found")
        principal.check_cycle(cycle_id, programme_id)
    if programme_id is None:
        raise NotFound("a report needs a cycle or a programme")
    principal.check_programme(programme_id)
    names = await load_names(conn, programme_id)
    names.anonymous = anonymous
    if cycle is not None and not facilitator(principal):
        # Facilitators-only notes (issue 12) count for admin and manager keys only.
        cycle = CycleRows(
            cycle.cycle,
            cycle.meetings,
            [n for n in cycle.notes if n.get("visibility") != "facilitators"],
        )
    summary, meetings = cycle_sections(cycle) if cycle else (None, [])
    meetings = _named_meetings(meetings, names, cycle_id)
    if summary is not None:
        summary = CycleSummary(
            meetings_planned=summary.meetings_planned,
            meetings_held=summary.meetings_held,
            meetings_cancelled=summary.meetings_cancelled,
            notes=summary.notes,
            organisations=[names.org(o) or o for o in summary.organisations],
            languages=summary.languages,
        )
    ctx = await load_mining_context(conn, principal, cycle_id=cycle_id, programme_id=programme_id)
    themes, recommendations, changes = mining_sections(ctx, names)
    stored = await open_action_items(conn, cycle_id=cycle_id, programme_id=programme_id)
    if action_items is None:
        action_items = stored
    else:  # the wrap-up's items, and the ones partners added through the API (owners set)
        given = {a.id for a in action_items}
        action_items = list(action_items) + [a for a in stored if a.id not in given]
    action_items = _named(action_items, names)
    review_path = await load_review_path(conn, names, programme_id, cycle_id)
    if title is None:
        what = names.programme or programme_id
        if cycle_id:
            what += " — " + names.cycles.get(cycle_id, f"cycle {cycle_id}")
        title = "Lessons learnt — " + what
    return Report(
        title=title,
        cycle_id=cycle_id,
        programme_id=programme_id,
        summary=summary,
        mined=ctx.totals,
        meetings=meetings,
        themes=themes,
        recommendations=recommendations,
        action_items=action_items,
        changes_since_previous=changes,
        generated_at=names.when(generated_at),
        follow_up_at=names.when(follow_up_at, time=False),
        review_path=review_path,
    )


async def load_review_path(
    conn: AsyncConnection[Any], names: Names, programme_id: str, cycle_id: str | None
) -> list[ReviewPath]:
    """Recommendation -> action -> done per host (and a "*" total row); empty
    when no host got recommendations and nobody planned an action."""
    rows = await action_plan.programme_path(conn, programme_id, cycle_id)
    out = [
        ReviewPath(
            host=(names.org(r["host"]) or r["host"]) if names.anonymous else r["host"],
            host_name=names.org(r["host"]) or r["host"],
            recommendations=int(r["recommendations"]),
            answered=int(r["answered"]),
            open=int(r["items"].get("open", 0)),
            in_progress=int(r["items"].get("in_progress", 0)),
            done=int(r["items"].get("done", 0)),
            dropped=int(r["items"].get("dropped", 0)),
        )
        for r in rows
    ]
    if not out:
        return []
    total = ReviewPath(
        "*", "All hosts",
        *(sum(getattr(p, f) for p in out)
          for f in ("recommendations", "answered", "open", "in_progress", "done", "dropped")),
    )  # fmt: skip
    return [*out, total]


_PATH_HEAD = ("Host", "Recommendations", "Answered by an action", "Open", "In progress", "Done",
              "Dropped")  # fmt: skip


def _path_cells(p: ReviewPath) -> list[str]:
    return [p.host_name] + [
        str(v) for v in (p.recommendations, p.answered, p.open, p.in_progress, p.done, p.dropped)
    ]


# ---- rendering ------------------------------------------------------------------------------

_CHANGE_ROWS = (
    ("new_themes", "New"),
    ("continued_themes", "Continued"),
    ("no_longer_discussed", "No longer discussed"),
)


def md_text(text: object) -> str:
    """Text from notes, safe inside a Markdown list item: raw HTML is escaped
    (a Markdown viewer would otherwise render ``<script>`` or ``<img onerror>``
    from a note) and line breaks are folded so a note cannot start its own
    heading or list."""
    s = html.escape(str(text), quote=False)
    return " ".join(s.split())


def _src_line(s: Source) -> str:
    parts = [s.organisation or "?", s.meeting or "", s.date or ""]
    return ", ".join(p for p in parts if p)


def _changes(ch: Changes) -> list[tuple[str, list[ThemeRef]]]:
    return [(title, getattr(ch, key)) for key, title in _CHANGE_ROWS]


def _summary_lines(report: Report) -> list[str]:
    lines = []
    s = report.summary
    if s is not None:
        lines.append(
            f"{s.meetings_held} of {plural(s.meetings_planned, 'meeting')} held,"
            f" {plural(s.notes, 'note')} from {plural(len(s.organisations), 'organisation')}"
            f" in {plural(len(s.languages), 'language')}."
        )
    m = report.mined
    if m.statements:
        lines.append(
            f"{plural(m.statements, 'statement')} mined from {plural(m.notes, 'note')} by"
            f" {plural(m.organisations, 'organisation')}"
            f" in {plural(m.languages, 'language')}."
        )
    return lines


def _md_glosses(p: Practice) -> list[str]:
    """Indented lines under a practice: its English gloss when it is not in
    English, and its wordings in the other languages, each with its gloss."""
    e = md_text
    out = []
    if p.gloss is not None:
        out.append(f"  - _{e(p.gloss.label)}:_ {e(p.gloss.english_text)}")
    for w in p.wordings:
        gl = (
            f" — _{e(w.gloss.label)}:_ {e(w.gloss.english_text)}"
            if w.gloss and w.language != "en"
            else ""
        )
        out.append(f"  - {w.language}: {e(w.text)}{gl}")
    return out


def _html_glosses(p: Practice) -> str:
    def e(v: object) -> str:
        return html.escape(str(v))

    items = []
    if p.gloss is not None:
        items.append(
            f"<li class='gloss'><em>{e(p.gloss.label)}:</em> "
            f"<span lang='en'>{e(p.gloss.english_text)}</span></li>"
        )
    for w in p.wordings:
        gl = ""
        if w.gloss is not None and w.language != "en":
            gl = (
                f" <span class='gloss'>— <em>{e(w.gloss.label)}:</em> "
                f"<span lang='en'>{e(w.gloss.english_text)}</span></span>"
            )
        items.append(
            f"<li>{e(w.language)}: <span lang='{e(w.language)}'>{e(w.text)}</span>{gl}</li>"
        )
    return f"<ul>{''.join(items)}</ul>" if items else ""


def render_markdown(report: Report) -> str:
    """The report as Markdown; every text that came from a note goes through
    :func:`md_text`."""
    e = md_text
    out = [f"# {e(report.title)}", ""]
    for line in _summary_lines(report):
        out += [line, ""]
    if report.meetings:
        out += ["## Meetings", ""]
        for m in report.meetings:
            host = f", hosted by {e(m.host)}" if m.host else ""
            flag = " (notes overdue)" if m.escalated else ""
            out.append(
                f"- **{e(m.title or m.meeting_id)}** ({m.kind.replace('_', ' ')}{host},"
                f" {e(m.held_at or m.starts_at)}): {m.state}, {plural(m.note_count, 'note')}{flag}"
            )
        out.append("")
    out += ["## Recurring themes", ""]
    if not report.themes:
        out += ["_No mined themes yet._", ""]
    for t in report.themes:
        langs = ", ".join(f"{k} {v}" for k, v in sorted(t.languages.items()))
        keyphrases = f" Keyphrases: {e(', '.join(t.keyphrases))}." if t.keyphrases else ""
        out += [
            f"### {e(t.label)}",
            "",
            f"{plural(t.statements, 'statement')} ({langs}); said in"
            f" {plural(t.cycles_overall, 'cycle')} by"
            f" {plural(t.organisations_overall, 'organisation')}.{keyphrases}",
            "",
        ]
        for p in t.practices:
            srcs = "; ".join(e(_src_line(s)) for s in p.sources[:4])
            out.append(f"- **{p.kind.replace('_', ' ')}** ({p.language}): {e(p.text)} — _{srcs}_")
            out += _md_glosses(p)
        out.append("")
    out += ["## Recommendations", ""]
    for group in report.recommendations:
        out += [f"### {group.title}", ""]
        if not group.items:
            out.append("_None recorded._")
        for p in group.items:
            srcs = "; ".join(e(_src_line(s)) for s in p.sources[:3])
            out.append(f"- {e(p.text)} ({p.language}; {srcs})")
            out += _md_glosses(p)
        out.append("")
    out += ["## Open action items", ""]
    if not report.action_items:
        out.append("_None open._")
    for a in report.action_items:
        due = f" (by {a.due_at})" if a.due_at else ""
        where = f" ({e(a.meeting_title)})" if a.meeting_title else ""
        out.append(f"- [ ] {e(a.owner_name or a.owner)}: {e(a.what)}{where}{due}")
    if report.review_path:  # issue 13: recommendation -> action -> done, per host
        out += ["", "## From recommendation to action", ""]
        out += ["| " + " | ".join(_PATH_HEAD) + " |", "|" + "---|" * len(_PATH_HEAD)]
        for rp in report.review_path:
            out.append("| " + " | ".join(e(c) for c in _path_cells(rp)) + " |")
    out += ["", "## What changed since the previous cycle", ""]
    ch = report.changes_since_previous
    if ch is None:
        out += ["_This is the first cycle with mined notes._", ""]
    else:
        out += [f"Compared with cycle {e(ch.previous_cycle_id)}:", ""]
        for title, refs in _changes(ch):
            out.append(f"- {title}: {e(', '.join(r.label for r in refs)) or 'none'}")
        out.append("")
    if report.follow_up_at:
        out += [f"Follow-up check: {report.follow_up_at[:10]}.", ""]
    return "\n".join(out)


_CSS = """
body{font-family:Georgia,serif;max-width:48rem;margin:2rem auto;color:#222;line-height:1.45}
h1{border-bottom:2px solid #444}h2{margin-top:2rem;border-bottom:1px solid #aaa}
.src{color:#555;font-size:.9em}.kind{font-variant:small-caps;color:#335}
.gloss{color:#444;font-size:.92em}
@media print{body{margin:0;max-width:none}h2{page-break-after:avoid}}
"""


def _csp() -> str:
    """The Content-Security-Policy the HTML page needs and nothing more: no
    script, no image, no frame, no form, no base; only its own inline style,
    allowed by hash (so even HTML that slipped past escaping could not run)."""
    digest = base64.b64encode(hashlib.sha256(_CSS.encode()).digest()).decode()
    return (
        "default-src 'none'; "
        f"style-src 'sha256-{digest}'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


HTML_CSP = _csp()


def render_html(report: Report) -> str:
    """The report as a printable HTML page; every value is escaped."""

    def e(v: object) -> str:
        return html.escape(str(v))

    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{e(report.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(report.title)}</h1>",
    ]
    parts += [f"<p>{e(line)}</p>" for line in _summary_lines(report)]
    if report.meetings:
        parts.append("<h2>Meetings</h2><ul>")
        for m in report.meetings:
            host = f", hosted by {m.host}" if m.host else ""
            flag = " (notes overdue)" if m.escalated else ""
            parts.append(
                f"<li><strong>{e(m.title or m.meeting_id)}</strong> "
                f"({e(m.kind.replace('_', ' ') + host)}, {e(m.held_at or m.starts_at)}):"
                f" {e(m.state)}, {e(plural(m.note_count, 'note'))}{e(flag)}</li>"
            )
        parts.append("</ul>")
    parts.append("<h2>Recurring themes</h2>")
    if not report.themes:
        parts.append("<p><em>No mined themes yet.</em></p>")
    for t in report.themes:
        langs = ", ".join(f"{k}: {v}" for k, v in sorted(t.languages.items()))
        parts.append(f"<section class='theme'><h3>{e(t.label)}</h3>")
        parts.append(
            f"<p>{e(plural(t.statements, 'statement'))} ({e(langs)});"
            f" {e(plural(t.cycles_overall, 'cycle'))},"
            f" {e(plural(t.organisations_overall, 'organisation'))}.</p><ul>"
        )
        for p in t.practices:
            srcs = "; ".join(_src_line(s) for s in p.sources[:4])
            parts.append(
                f"<li><span class='kind'>{e(p.kind.replace('_', ' '))}</span> "
                f"<span lang='{e(p.language)}'>{e(p.text)}</span> "
                f"<span class='src'>({e(srcs)})</span>{_html_glosses(p)}</li>"
            )
        parts.append("</ul></section>")
    parts.append("<h2>Recommendations</h2>")
    for group in report.recommendations:
        parts.append(f"<h3>{e(group.title)}</h3><ul>")
        for p in group.items:
            srcs = "; ".join(_src_line(s) for s in p.sources[:3])
            parts.append(
                f"<li><span lang='{e(p.language)}'>{e(p.text)}</span>"
                f" <span class='src'>({e(srcs)})</span>{_html_glosses(p)}</li>"
            )
        if not group.items:
            parts.append("<li><em>None recorded.</em></li>")
        parts.append("</ul>")
    parts.append("<h2>Open action items</h2><ul>")
    for a in report.action_items:
        due = f", by {a.due_at}" if a.due_at else ""
        parts.append(f"<li>{e(a.what)} — {e(a.owner_name or a.owner)}{e(due)}</li>")
    if not report.action_items:
        parts.append("<li><em>None open.</em></li>")
    parts.append("</ul>")
    if report.review_path:  # issue 13: recommendation -> action -> done, per host
        parts.append("<h2>From recommendation to action</h2><table><tr>")
        parts += [f"<th>{h}</th>" for h in _PATH_HEAD]
        for rp in report.review_path:
            parts.append("</tr><tr>" + "".join(f"<td>{e(c)}</td>" for c in _path_cells(rp)))
        parts.append("</tr></table>")
    parts.append("<h2>What changed since the previous cycle</h2>")
    ch = report.changes_since_previous
    if ch is None:
        parts.append("<p><em>This is the first cycle with mined notes.</em></p>")
    else:
        parts.append(f"<p>Compared with cycle {e(ch.previous_cycle_id)}:</p><ul>")
        for title, refs in _changes(ch):
            names = ", ".join(r.label for r in refs) or "none"
            parts.append(f"<li>{title}: {e(names)}</li>")
        parts.append("</ul>")
    if report.follow_up_at:
        parts.append(f"<p>Follow-up check: {e(report.follow_up_at[:10])}.</p>")
    parts.append("</body></html>")
    return "".join(parts)
