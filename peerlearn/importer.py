"""Importing past programmes: one line per note, in JSONL or CSV.

Programmes run for years before any tool arrives, and their history is what
makes trends, recurrence across cycles and "what changed since the previous
cycle" mean something. A file of past notes (columns below) becomes the same
events a live programme writes, carrying their real dates:

- ``ProgrammeCreated`` when the programme is new, else ``ProgrammeUpdated``
  adding the partners (authors and hosts) it does not have yet;
- per cycle ``CycleStarted`` (``imported: true``, no workflow: the cycle is
  over), ``MeetingHeld`` per meeting, ``NotesSubmitted`` per note and
  ``CycleCompleted``; a cycle imported before gets only what is new.

Columns: ``programme_id``, ``programme_name``, ``cycle_id``, ``cycle_title``,
``meeting_id``, ``meeting_kind``, ``meeting_date`` (ISO date or datetime, in
the past), ``host``, ``author_organisation``, ``language`` (optional, detected
when absent), ``text``, ``submitted_at`` (optional), ``author_person`` (optional: who wrote
it, sealed in the log like the text).

Two rules make it safe to run on real data:

- **All or nothing.** Every line is validated first (each field, consistency
  between lines, duplicates, clashes with what is stored) and every bad line is
  reported with its number and reason; if any line is bad nothing is written.
  Then everything is appended in one transaction.
- **Idempotent.** Every event's idempotency key and every note id derive from
  the line's content (cycle, meeting, author, text), so importing the same file
  again appends nothing, and a file that grew appends only the new lines.

Note texts go through the caller's note-text validation (the API's one path
for every note body), passed in as ``check_text``; this module never decides
on its own what a valid note is.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, LiteralString

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from peerlearn import documents, eventstore
from peerlearn.events import EventType
from peerlearn.text_rules import person_name
from workflows.types import MEETING_KINDS

Conn = eventstore.Conn

COLUMNS = (
    "programme_id",
    "programme_name",
    "cycle_id",
    "cycle_title",
    "meeting_id",
    "meeting_kind",
    "meeting_date",
    "host",
    "author_organisation",
    "language",
    "text",
    "submitted_at",
    "author_person",
)
REQUIRED = frozenset(COLUMNS) - {"host", "language", "submitted_at", "author_person"}
ID_FIELDS = ("programme_id", "cycle_id", "meeting_id", "author_organisation", "host")
# The API's id rule (api/schemas_cycles.ID_PATTERN): ids become stream names and URL parts.
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*$")
EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
MEETING_LENGTH = timedelta(hours=2)
NOTES_DUE_AFTER = timedelta(days=7)
KEY_PREFIX = "import"
_NOTE_NAMESPACE = uuid.UUID("5b7f3f1e-2f6c-4c71-9a55-3b1f2d0c7a11")

#: Returns why a note text is refused (None: accepted).
TextCheck = Callable[[str], str | None]
#: Called inside the import's transaction when a programme is created.
OnProgrammeCreated = Callable[[Conn, str], Awaitable[None]]


@dataclass(frozen=True)
class LineError:
    line: int  # 1-based line of the file (0: the file as a whole)
    reason: str


class ImportInvalid(Exception):
    """The file has bad lines; nothing was written. ``errors`` lists them all."""

    def __init__(self, errors: Sequence[LineError]) -> None:
        self.errors = sorted(errors, key=lambda e: (e.line, e.reason))
        first = "; ".join(f"line {e.line}: {e.reason}" for e in self.errors[:3])
        more = f" (and {len(self.errors) - 3} more)" if len(self.errors) > 3 else ""
        super().__init__(f"{len(self.errors)} bad line(s): {first}{more}")


@dataclass(frozen=True)
class ImportLine:
    """One validated note line."""

    line: int
    programme_id: str
    programme_name: str
    cycle_id: str
    cycle_title: str
    meeting_id: str
    meeting_kind: str
    meeting_at: datetime
    host: str | None
    author_organisation: str
    language: str
    text: str
    submitted_at: datetime
    author_person: str | None = None  # who wrote it (optional; sealed in the log)

    @property
    def note_key(self) -> str:
        """The note's identity: same cycle, meeting, author and text, same note."""
        raw = "\x1f".join((self.cycle_id, self.meeting_id, self.author_organisation, self.text))
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:32]

    @property
    def note_id(self) -> str:
        return str(uuid.uuid5(_NOTE_NAMESPACE, f"{self.cycle_id}/{self.note_key}"))


@dataclass(frozen=True)
class ParsedImport:
    import_id: str  # sha256 of the validated lines: the same content, the same id
    lines: list[ImportLine]

    @property
    def programme_ids(self) -> list[str]:
        return sorted({ln.programme_id for ln in self.lines})


@dataclass
class ImportResult:
    import_id: str
    lines: int
    programme_ids: list[str]
    created: dict[str, int] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return any(self.created.values())

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "changed": self.changed}


# ------------------------------------------------------------------ reading the file


def detect_format(filename: str | None, content_type: str | None, text: str) -> str:
    """``jsonl`` or ``csv``: from the name, the content type, else the first character."""
    name = (filename or "").lower()
    ctype = (content_type or "").split(";")[0].strip().lower()
    if name.endswith((".jsonl", ".ndjson", ".json")) or "json" in ctype:
        return "jsonl"
    if name.endswith(".csv") or ctype in ("text/csv", "application/csv"):
        return "csv"
    return "jsonl" if text.lstrip()[:1] == "{" else "csv"


def decode(data: bytes) -> str:
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ImportInvalid([LineError(line, "not valid UTF-8; save the file as UTF-8")]) from exc


def raw_rows(text: str, fmt: str) -> tuple[list[tuple[int, dict[str, Any]]], list[LineError]]:
    """(line number, fields) per record, and the lines that are not records at all."""
    rows: list[tuple[int, dict[str, Any]]] = []
    errors: list[LineError] = []
    if fmt == "jsonl":
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except RecursionError:
                errors.append(LineError(n, "not valid JSON: nested too deeply"))
                continue
            except ValueError as exc:
                errors.append(LineError(n, f"not valid JSON: {exc}"))
                continue
            if not isinstance(value, dict):
                errors.append(LineError(n, "a line must be a JSON object"))
                continue
            rows.append((n, value))
        return rows, errors
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        header = reader.fieldnames or []
    except csv.Error as exc:
        return [], [LineError(1, f"the CSV header cannot be read: {exc}")]
    unknown = [h for h in header if h not in COLUMNS]
    missing = sorted(REQUIRED - set(header))
    if unknown or missing:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown column(s) {', '.join(unknown)}")
        return [], [LineError(1, "; ".join(parts))]
    start = reader.line_num + 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.append(LineError(start, f"not valid CSV: {exc}"))
            break
        if None in record:  # more cells than columns
            errors.append(LineError(start, "more cells than the header has columns"))
        else:
            rows.append((start, dict(record)))
        start = reader.line_num + 1
    return rows, errors


# ------------------------------------------------------------------ validation


def _when(value: str, what: str, now: datetime) -> datetime:
    """An ISO date (noon UTC: the same calendar day in every European zone) or
    datetime (naive means UTC), after 1990 and not in the future."""
    value = value.strip()
    try:
        if len(value) == 10:
            at = datetime.combine(date.fromisoformat(value), time(12), tzinfo=UTC)
        else:
            at = datetime.fromisoformat(value)
            at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    except ValueError:
        raise ValueError(f"{what} {value!r} is not an ISO date or datetime") from None
    if at < EARLIEST:
        raise ValueError(f"{what} {value} is before {EARLIEST.year}")
    if at > now:
        raise ValueError(f"{what} {value} is in the future; only past meetings are imported")
    return at


def _line(n: int, row: dict[str, Any], check_text: TextCheck, now: datetime) -> ImportLine:
    """One validated line, or ValueError naming every problem of the line."""
    problems: list[str] = []
    values: dict[str, str | None] = {}
    for col in COLUMNS:
        v = row.get(col)
        if v is None or (isinstance(v, str) and not v.strip()):
            values[col] = None
        elif not isinstance(v, str):
            problems.append(f"{col} must be a string")
            values[col] = None
        else:
            values[col] = v if col == "text" else v.strip()
    extra = sorted(set(row) - set(COLUMNS))
    if extra:
        problems.append(f"unknown field(s) {', '.join(extra)}")
    for col in sorted(REQUIRED):
        if values[col] is None and f"{col} must be a string" not in problems:
            problems.append(f"{col} is missing")
    for col in ID_FIELDS:
        v = values[col]
        if v is not None and not ID_PATTERN.match(v):
            problems.append(f"{col} {v!r} is not an id (letters, digits, - and _; at most 64)")
    for col in ("programme_name", "cycle_title", "author_person"):
        v = values[col]
        if v is not None and len(v) > 200:
            problems.append(f"{col} is longer than 200 characters")
    person = values["author_person"]
    if person is not None and len(person) <= 200:  # (longer: reported above)
        try:
            person = person_name(person)
        except ValueError as exc:
            problems.append(f"author_person: {exc}")
    kind = values["meeting_kind"]
    if kind is not None and kind not in MEETING_KINDS:
        problems.append(f"meeting_kind {kind!r} is not one of {', '.join(MEETING_KINDS)}")
    if kind == "site_visit" and values["host"] is None:
        problems.append("a site_visit needs a host")
    meeting_at: datetime | None = None
    if values["meeting_date"] is not None:
        try:
            meeting_at = _when(values["meeting_date"], "meeting_date", now)
        except ValueError as exc:
            problems.append(str(exc))
    submitted_at: datetime | None = None
    if values["submitted_at"] is not None:
        try:
            submitted_at = _when(values["submitted_at"], "submitted_at", now)
        except ValueError as exc:
            problems.append(str(exc))
        else:
            if meeting_at is not None and submitted_at < meeting_at:
                problems.append("submitted_at is before the meeting")
    language = values["language"]
    if language is not None:
        if not LANGUAGE.match(language):
            problems.append(f"language {language!r} is not a language code such as en or sv")
        language = language.lower().replace("_", "-").split("-")[0]
    text = values["text"]
    if text is not None:
        reason = check_text(text)
        if reason:
            problems.append(f"text: {reason}")
        elif language is None:
            language = documents.guess_language(text)
            if language is None:
                problems.append("language is missing and cannot be detected from the text")
    if problems:
        raise ValueError("; ".join(problems))
    assert meeting_at is not None and text is not None and language is not None
    return ImportLine(
        line=n,
        programme_id=str(values["programme_id"]),
        programme_name=str(values["programme_name"]),
        cycle_id=str(values["cycle_id"]),
        cycle_title=str(values["cycle_title"]),
        meeting_id=str(values["meeting_id"]),
        meeting_kind=str(kind),
        meeting_at=meeting_at,
        host=values["host"],
        author_organisation=str(values["author_organisation"]),
        language=language,
        text=text,
        submitted_at=submitted_at or meeting_at + MEETING_LENGTH,
        author_person=person,
    )


def _consistency(lines: Sequence[ImportLine]) -> list[LineError]:
    """Lines that disagree with an earlier line about the same programme,
    cycle or meeting, and repeated notes."""
    errors: list[LineError] = []
    programmes: dict[str, ImportLine] = {}
    cycles: dict[str, ImportLine] = {}
    meetings: dict[tuple[str, str], ImportLine] = {}
    notes: dict[str, ImportLine] = {}
    for ln in lines:
        first = programmes.setdefault(ln.programme_id, ln)
        if first.programme_name != ln.programme_name:
            errors.append(
                LineError(
                    ln.line, f"programme_name differs from line {first.line} (same programme)"
                )
            )
        first = cycles.setdefault(ln.cycle_id, ln)
        if (first.programme_id, first.cycle_title) != (ln.programme_id, ln.cycle_title):
            errors.append(
                LineError(
                    ln.line,
                    f"cycle {ln.cycle_id!r} has another programme or title on line {first.line}",
                )
            )
        first = meetings.setdefault((ln.cycle_id, ln.meeting_id), ln)
        if (first.meeting_kind, first.meeting_at, first.host) != (
            ln.meeting_kind,
            ln.meeting_at,
            ln.host,
        ):
            errors.append(
                LineError(
                    ln.line,
                    f"meeting {ln.meeting_id!r} has another kind, date or host on line"
                    f" {first.line}",
                )
            )
        first = notes.setdefault(ln.note_key, ln)
        if first is not ln:
            errors.append(LineError(ln.line, f"the same note as line {first.line}"))
    return errors


def parse(
    data: bytes,
    *,
    check_text: TextCheck,
    filename: str | None = None,
    content_type: str | None = None,
    now: datetime | None = None,
) -> ParsedImport:
    """Every line validated, or :class:`ImportInvalid` listing every bad line."""
    now = now or datetime.now(UTC)
    text = decode(data)
    fmt = detect_format(filename, content_type, text)
    rows, errors = raw_rows(text, fmt)
    lines: list[ImportLine] = []
    for n, row in rows:
        try:
            lines.append(_line(n, row, check_text, now))
        except ValueError as exc:
            errors.append(LineError(n, str(exc)))
    errors += _consistency(lines)
    if not lines and not errors:
        errors.append(LineError(0, "the file has no lines"))
    if errors:
        raise ImportInvalid(errors)
    digest = hashlib.sha256()
    for ln in sorted(lines, key=lambda x: (x.cycle_id, x.meeting_id, x.note_key)):
        digest.update(json.dumps(_canonical(ln), sort_keys=True).encode("utf-8") + b"\n")
    return ParsedImport(import_id=digest.hexdigest()[:32], lines=lines)


def _canonical(ln: ImportLine) -> dict[str, Any]:
    d = asdict(ln)
    d.pop("line")
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in d.items()}


# ------------------------------------------------------------------ checks against the store


async def check_store(conn: Conn, parsed: ParsedImport) -> None:
    """Lines that clash with what is stored: a cycle id taken by a live (not
    imported) cycle or by another programme, a meeting stored with another
    kind or date. Raises :class:`ImportInvalid`."""
    cycle_ids = sorted({ln.cycle_id for ln in parsed.lines})
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT id, programme_id, workflow_id FROM cycles WHERE id = ANY(%s)", (cycle_ids,)
        )
        cycles = {r["id"]: r for r in await cur.fetchall()}
        await cur.execute(
            "SELECT cycle_id, id, kind, starts_at FROM meetings WHERE cycle_id = ANY(%s)",
            (cycle_ids,),
        )
        meetings = {(r["cycle_id"], r["id"]): r for r in await cur.fetchall()}
    errors: list[LineError] = []
    for ln in parsed.lines:
        c = cycles.get(ln.cycle_id)
        if c is not None and not str(c["workflow_id"]).startswith(f"{KEY_PREFIX}:"):
            errors.append(LineError(ln.line, f"cycle {ln.cycle_id!r} exists and was not imported"))
            continue
        if c is not None and c["programme_id"] != ln.programme_id:
            errors.append(LineError(ln.line, f"cycle {ln.cycle_id!r} belongs to another programme"))
            continue
        m = meetings.get((ln.cycle_id, ln.meeting_id))
        if m is not None and (m["kind"], m["starts_at"]) != (ln.meeting_kind, ln.meeting_at):
            errors.append(
                LineError(
                    ln.line,
                    f"meeting {ln.meeting_id!r} is stored as a {m['kind']} on"
                    f" {m['starts_at'].isoformat()}",
                )
            )
    if errors:
        raise ImportInvalid(errors)


# ------------------------------------------------------------------ writing


class _Writer:
    """Appends the import's events in the caller's transaction, counting what was new."""

    def __init__(self, conn: Conn, import_id: str, submitted_by: str | None) -> None:
        self.conn = conn
        self.import_id = import_id
        self.submitted_by = submitted_by or f"{KEY_PREFIX}:{import_id}"
        self.created = dict.fromkeys(("programmes", "partners", "cycles", "meetings", "notes"), 0)

    async def append(
        self,
        stream: str,
        type_: EventType,
        payload: dict[str, Any],
        key: str,
        at: datetime,
        *,
        new_stream: bool = False,
    ) -> bool:
        res = await eventstore.append(
            self.conn,
            stream_id=stream,
            type=type_,
            payload={**payload, "imported": True, "import_id": self.import_id},
            idempotency_key=f"{KEY_PREFIX}:{key}",
            occurred_at=at,
            expect_new_stream=new_stream,
        )
        return not res.duplicate


async def _one(conn: Conn, sql: LiteralString, params: Sequence[Any]) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params)
        return await cur.fetchone()


def _partner(org: str) -> dict[str, str]:
    # Imported files name organisations by id only; "ZZ" is the code for an
    # unknown region (CLDR). A manager can edit the partner afterwards.
    return {"id": org, "name": org, "country": "ZZ", "kind": "cluster"}


async def _programme(
    w: _Writer, pid: str, lines: list[ImportLine], on_created: OnProgrammeCreated | None
) -> str:
    """Create the programme or add its missing partners; returns its time zone."""
    orgs = sorted({ln.author_organisation for ln in lines} | {ln.host for ln in lines if ln.host})
    languages = sorted({ln.language for ln in lines})
    first = min(ln.meeting_at for ln in lines)
    row = await _one(
        w.conn, "SELECT partners, languages, time_zone FROM programmes WHERE id = %s", (pid,)
    )
    if row is None:
        await w.append(
            eventstore.programme_stream(pid),
            EventType.PROGRAMME_CREATED,
            {
                "id": pid,
                "name": lines[0].programme_name,
                "description": "Imported from the records of past cycles.",
                "time_zone": "UTC",
                "webhook_url": None,
                "partners": [_partner(o) for o in orgs],
                "facilitators": [],
                "languages": languages,
            },
            f"programme:{pid}:created",
            first - timedelta(days=1),
            new_stream=True,
        )
        w.created["programmes"] += 1
        w.created["partners"] += len(orgs)
        if on_created is not None:
            await on_created(w.conn, pid)
        return "UTC"
    have = [p["id"] for p in row["partners"]]
    missing = [o for o in orgs if o not in have]
    new_languages = [lang for lang in languages if lang not in row["languages"]]
    if missing or new_languages:
        tag = hashlib.sha256(json.dumps([missing, new_languages]).encode()).hexdigest()[:16]
        payload: dict[str, Any] = {"id": pid}
        if missing:
            payload["partners"] = [*row["partners"], *(_partner(o) for o in missing)]
        if new_languages:
            payload["languages"] = [*row["languages"], *new_languages]
        if await w.append(
            eventstore.programme_stream(pid),
            EventType.PROGRAMME_UPDATED,
            payload,
            f"programme:{pid}:update:{tag}",
            datetime.now(UTC),
        ):
            w.created["partners"] += len(missing)
    return str(row["time_zone"])


def _plan(ln: ImportLine) -> dict[str, Any]:
    """A meeting as the cycle workflow's plan payload (``workflows.cycle.plan_payload``)."""
    return {
        "meeting_id": ln.meeting_id,
        "kind": ln.meeting_kind,
        "title": "",
        "host": ln.host,
        "format": "online" if ln.meeting_kind == "webinar" else "on_site",
        "starts_at": ln.meeting_at.isoformat(),
        "ends_at": (ln.meeting_at + MEETING_LENGTH).isoformat(),
        "topics": [],
        "target_groups": [],
        "participants": [],
    }


async def _cycle(w: _Writer, cid: str, lines: list[ImportLine], time_zone: str) -> None:
    """The cycle's events in date order; only those not stored yet are appended
    (and counted)."""
    firsts: dict[str, ImportLine] = {}
    for ln in sorted(lines, key=lambda x: (x.meeting_at, x.meeting_id)):
        firsts.setdefault(ln.meeting_id, ln)
    meetings = list(firsts.values())
    held = {m.meeting_id: m.meeting_at + MEETING_LENGTH for m in meetings}
    stored = await _one(w.conn, "SELECT phase FROM cycles WHERE id = %s", (cid,))
    async with w.conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT id, state FROM meetings WHERE cycle_id = %s", (cid,))
        known = {r["id"]: r["state"] for r in await cur.fetchall()}
    last = max([*held.values(), *(ln.submitted_at for ln in lines)])
    # A stored (imported) cycle is complete: what it gains keeps it so.
    phase = "completed" if stored is not None else "meetings"
    # (when, order within the same instant, type, payload, key, counter)
    todo: list[tuple[datetime, int, EventType, dict[str, Any], str, str | None]] = []
    if stored is None:
        orgs = {ln.author_organisation for ln in lines} | {m.host for m in meetings if m.host}
        started = {
            "programme_id": lines[0].programme_id,
            "workflow_id": f"{KEY_PREFIX}:{cid}",
            "title": lines[0].cycle_title,
            "time_zone": time_zone,
            "partners": sorted(orgs),
            "ends_at": (last + timedelta(days=1)).isoformat(),
            "policies": {"imported": True},
            "meetings": [_plan(m) for m in meetings],
            "phase": "kickoff",
        }
        todo.append((meetings[0].meeting_at, 0, EventType.CYCLE_STARTED, started, "started", None))
        w.created["meetings"] += len(meetings)
    else:
        for m in meetings:
            if m.meeting_id not in known:
                todo.append(
                    (
                        m.meeting_at,
                        1,
                        EventType.MEETING_SCHEDULED,
                        {**_plan(m), "phase": phase},
                        f"{m.meeting_id}:scheduled",
                        "meetings",
                    )
                )
    for m in meetings:
        if known.get(m.meeting_id) != "held":
            at = held[m.meeting_id]
            payload = {
                "meeting_id": m.meeting_id,
                "held_at": at.isoformat(),
                "notes_due_at": (at + NOTES_DUE_AFTER).isoformat(),
                "phase": phase,
            }
            todo.append((at, 2, EventType.MEETING_HELD, payload, f"{m.meeting_id}:held", None))
    for ln in lines:
        payload = {
            "note_id": ln.note_id,
            "meeting_id": ln.meeting_id,
            "client_key": f"{KEY_PREFIX}:{ln.note_key}",
            "author_organisation": ln.author_organisation,
            "language": ln.language,
            "text": ln.text,
            **({"author_person": ln.author_person} if ln.author_person else {}),
            "format": "text",
            "submitted_by": w.submitted_by,
            "phase": phase,
        }
        todo.append(
            (ln.submitted_at, 3, EventType.NOTES_SUBMITTED, payload, f"note:{ln.note_key}", "notes")
        )
    if stored is None or stored["phase"] != "completed":
        todo.append((last, 4, EventType.CYCLE_COMPLETED, {"phase": "completed"}, "completed", None))
    for at, _, type_, payload, key, counter in sorted(todo, key=lambda t: (t[0], t[1], t[4])):
        new = await w.append(cid, type_, payload, f"{cid}:{key}", at)
        if type_ is EventType.CYCLE_STARTED and new:
            w.created["cycles"] += 1
        if counter is not None and new:
            w.created[counter] += 1


async def write(
    conn: Conn,
    parsed: ParsedImport,
    *,
    submitted_by: str | None = None,
    on_programme_created: OnProgrammeCreated | None = None,
) -> ImportResult:
    """Append the import's events inside the caller's transaction (checks
    against the store first: :class:`ImportInvalid`), and record the import."""
    w = _Writer(conn, parsed.import_id, submitted_by)
    # The same content was imported before: its events were written in that
    # import's transaction, so there is nothing to check or append (the keys
    # would all be duplicates; this answers without the thousands of lookups).
    if await _one(conn, "SELECT 1 AS x FROM imports WHERE id = %s", (parsed.import_id,)):
        return ImportResult(parsed.import_id, len(parsed.lines), parsed.programme_ids, w.created)
    await check_store(conn, parsed)
    by_programme: dict[str, list[ImportLine]] = {}
    for ln in parsed.lines:
        by_programme.setdefault(ln.programme_id, []).append(ln)
    for pid in sorted(by_programme):
        tz = await _programme(w, pid, by_programme[pid], on_programme_created)
        by_cycle: dict[str, list[ImportLine]] = {}
        for ln in by_programme[pid]:
            by_cycle.setdefault(ln.cycle_id, []).append(ln)
        for cid in sorted(by_cycle, key=lambda c: (min(x.meeting_at for x in by_cycle[c]), c)):
            await _cycle(w, cid, by_cycle[cid], tz)
    result = ImportResult(parsed.import_id, len(parsed.lines), parsed.programme_ids, w.created)
    await conn.execute(
        "INSERT INTO imports (id, status, lines, programme_ids, created, submitted_by)"
        " VALUES (%s, 'written', %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
        (
            parsed.import_id,
            len(parsed.lines),
            Jsonb(parsed.programme_ids),
            Jsonb(w.created),
            submitted_by,
        ),
    )
    return result


async def set_mining_run(conn: Conn, import_id: str, run_id: str | None, status: str) -> None:
    await conn.execute(
        "UPDATE imports SET mining_run_id = COALESCE(%s, mining_run_id), status = %s,"
        " updated_at = now() WHERE id = %s",
        (run_id, status, import_id),
    )
