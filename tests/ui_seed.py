# ruff: noqa: E501  (a table of hand-written statements reads best one per line)
"""A small, hand-written analyst data set for the UI tests.

Four themes, each said in English, Swedish and Polish by organisations of two
programmes over three cycles, with real e5 embeddings (so the page's semantic
search finds statements across languages), practices, and one cycle's read
model with meetings in every state. Written straight into the mining and cycle
tables; the texts are this project's own.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

PROGRAMMES = {
    "nordic-clusters": "Nordic Cluster Exchange",
    "city-peers": "City Peers",
}

# theme id -> (label, keyphrases, statements: (lang, kind, text))
THEMES: dict[str, tuple[str, list[str], list[tuple[str, str, str]]]] = {
    "th-crisis": (
        "Member engagement in a crisis",
        ["personal calls", "crisis", "member needs"],
        [
            (
                "en",
                "best_practice",
                "In the energy crisis our staff called each member firm to ask what help it needed.",
            ),
            (
                "en",
                "lesson",
                "Frequent short check-ins kept members engaged better than one large annual event.",
            ),
            (
                "sv",
                "best_practice",
                "Under krisen ringde vi upp varje medlemsföretag och frågade vad de behövde.",
            ),
            (
                "sv",
                "lesson",
                "Korta och täta avstämningar höll medlemmarna engagerade under det svåra året.",
            ),
            (
                "pl",
                "best_practice",
                "W czasie kryzysu dzwoniliśmy do każdej firmy członkowskiej z pytaniem o potrzeby.",
            ),
            (
                "pl",
                "recommendation",
                "Zalecamy krótkie, częste spotkania z członkami zamiast jednego dużego wydarzenia.",
            ),
        ],
    ),
    "th-online": (
        "Running good online meetings",
        ["breakout rooms", "shared whiteboard", "agenda"],
        [
            (
                "en",
                "best_practice",
                "Small breakout rooms of four or five people let everyone speak in a video call.",
            ),
            (
                "en",
                "recommendation",
                "Send the agenda a day ahead so the online session starts with prepared people.",
            ),
            (
                "sv",
                "best_practice",
                "En delad digital whiteboard gjorde att idéerna fångades medan vi pratade.",
            ),
            ("sv", "other", "Mötet hölls digitalt med deltagare från fem regioner."),
            (
                "pl",
                "lesson",
                "Spotkania online działają lepiej w małych grupach z włączonymi kamerami.",
            ),
        ],
    ),
    "th-funding": (
        "Diversifying cluster funding",
        ["membership fees", "paid services", "public grants"],
        [
            (
                "en",
                "lesson",
                "Relying on a single public grant left the cluster exposed when the call closed.",
            ),
            (
                "en",
                "recommendation",
                "Combine membership fees, paid services and project money for a stable budget.",
            ),
            ("sv", "lesson", "Klustret blev sårbart när det enda offentliga bidraget tog slut."),
            (
                "pl",
                "recommendation",
                "Klaster powinien łączyć składki członkowskie, płatne usługi i projekty.",
            ),
        ],
    ),
    "th-onboarding": (
        "Onboarding new members",
        ["mentor", "welcome meeting"],
        [
            (
                "en",
                "best_practice",
                "Each new member company gets a mentor from an established member for six months.",
            ),
            (
                "sv",
                "best_practice",
                "Nya medlemmar får en fadder och ett välkomstmöte med kansliet första månaden.",
            ),
            (
                "pl",
                "success",
                "Spotkanie powitalne pomogło nowym firmom szybko znaleźć partnerów w klastrze.",
            ),
        ],
    ),
}
# the miner's titles per language (nlp.titles), as the store writes them (migration 0014)
TITLES: dict[str, dict[str, str]] = {
    "th-crisis": {
        "en": "Member engagement in a crisis",
        "sv": "medlemmarna engagerade under krisen",
        "pl": "zaangażowanie członków w czasie kryzysu",
    },
    "th-online": {"en": "Running good online meetings"},
    "th-funding": {"en": "Diversifying cluster funding"},
    "th-onboarding": {"en": "Onboarding new members", "sv": "välkomstmöte för nya medlemmar"},
}
UNASSIGNED = [("en", "other", "The venue was close to the railway station.")]

CYCLES = [  # cycle id, programme, first month of its statements
    ("cyc-2025", "nordic-clusters", date(2025, 9, 10)),
    ("cyc-2026", "nordic-clusters", date(2026, 1, 14)),
    ("cyc-city", "city-peers", date(2025, 11, 5)),
]
ORGS = {
    "en": ["dublin-health", "leeds-digital"],
    "sv": ["umea-energi", "skane-mat"],
    "pl": ["gdansk-morski", "wroclaw-ict"],
}

TIMELINE_CYCLE = "cyc-2026"
# the partners' names (the report shows them instead of ids)
PARTNERS = [
    {"id": "dublin-health", "name": "Dublin Digital Health Cluster", "country": "IE"},
    {"id": "leeds-digital", "name": "Leeds Digital Network", "country": "GB"},
    {"id": "umea-energi", "name": "Umeå Energikluster", "country": "SE"},
    {"id": "skane-mat", "name": "Skånes Livsmedelsnätverk", "country": "SE"},
    {"id": "gdansk-morski", "name": "Pomorski Klaster Morski", "country": "PL"},
    {"id": "wroclaw-ict", "name": "Dolnośląski Klaster ICT", "country": "PL"},
]


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def embed(model_dir: Path, texts: list[str]) -> list[Any]:
    """Through the service's own miner (same prefix and normalisation as search).

    The miner is process-wide, so an API running in this process (the UI test's
    uvicorn thread) finds it loaded and its first search is fast.
    """
    from nlp.pipeline import Miner
    from peerlearn.mining.miner import encode_texts, loaded_miner, set_miner
    from peerlearn.settings import Settings

    settings = Settings(model_dir=model_dir)
    miner = loaded_miner(settings)
    if miner is None:  # search needs only the encoder: skip the miner's full warm-up
        miner = Miner.from_model_dir(model_dir)
        set_miner(settings, miner)
    return list(encode_texts(miner, texts))


def seed(conninfo: str, model_dir: Path) -> dict[str, Any]:
    """Fill the database; returns what the test should find on the page."""
    rows: list[dict[str, Any]] = []
    n = 0
    for theme_id, (_, _, statements) in THEMES.items():
        for lang, kind, text in statements:
            cycle_id, programme_id, start = CYCLES[n % len(CYCLES)]
            rows.append(
                {
                    "id": f"note-{n}#0",
                    "note_id": f"note-{n}",
                    "position": 0,
                    "programme_id": programme_id,
                    "cycle_id": cycle_id,
                    "meeting_id": f"{cycle_id}-m{n % 3}",
                    "organisation_id": ORGS[lang][n % 2],
                    "text": text,
                    "language": lang,
                    "kind": kind,
                    "theme_id": theme_id,
                    "source_date": start + timedelta(days=35 * (n % 4)),
                }
            )
            n += 1
    for lang, kind, text in UNASSIGNED:
        rows.append(
            {
                "id": f"note-{n}#0",
                "note_id": f"note-{n}",
                "position": 0,
                "programme_id": "city-peers",
                "cycle_id": "cyc-city",
                "meeting_id": "cyc-city-m0",
                "organisation_id": ORGS[lang][0],
                "text": text,
                "language": lang,
                "kind": kind,
                "theme_id": None,
                "source_date": date(2025, 11, 5),
            }
        )
    vectors = embed(model_dir, [r["text"] for r in rows])
    now = datetime.now(UTC)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        from pgvector.psycopg import register_vector

        register_vector(conn)
        with conn.cursor() as cur:
            for r, v in zip(rows, vectors, strict=True):
                h = _hash(r["text"])
                cur.execute(
                    "INSERT INTO embeddings (content_hash, embedding) VALUES (%s, %s)"
                    " ON CONFLICT DO NOTHING",
                    (h, v),
                )
                cur.execute(
                    "INSERT INTO statements (id, note_id, position, programme_id, cycle_id,"
                    " meeting_id, organisation_id, text, language, kind, content_hash, theme_id,"
                    " source_date) VALUES (%(id)s, %(note_id)s, %(position)s, %(programme_id)s,"
                    " %(cycle_id)s, %(meeting_id)s, %(organisation_id)s, %(text)s, %(language)s,"
                    " %(kind)s, %(h)s, %(theme_id)s, %(source_date)s)",
                    {**r, "h": h},
                )
            for theme_id, (label, keyphrases, _) in THEMES.items():
                members = [r for r in rows if r["theme_id"] == theme_id]
                langs: dict[str, int] = {}
                reps: dict[str, list[str]] = {}
                for r in members:
                    langs[r["language"]] = langs.get(r["language"], 0) + 1
                    reps.setdefault(r["language"], []).append(r["id"])
                cur.execute(
                    "INSERT INTO themes (id, label, title, titles, keyphrases, size, languages,"
                    " representatives, cycles, organisations, programmes, first_seen, last_seen)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (
                        theme_id,
                        label,
                        label,
                        json.dumps(TITLES.get(theme_id, {})),
                        json.dumps(keyphrases),
                        len(members),
                        json.dumps(langs),
                        json.dumps(reps),
                        len({r["cycle_id"] for r in members}),
                        len({r["organisation_id"] for r in members}),
                        len({r["programme_id"] for r in members}),
                        min(r["source_date"] for r in members),
                        max(r["source_date"] for r in members),
                    ),
                )
                for programme in sorted({r["programme_id"] for r in members}):
                    # per-programme label and titles, as the mining store writes them
                    # (migrations 0009/0014): what a programme-scoped reader sees
                    own = [r for r in members if r["programme_id"] == programme]
                    titles = TITLES.get(theme_id, {})
                    cur.execute(
                        "INSERT INTO theme_labels (theme_id, programme_id, label, keyphrases,"
                        " size, titles) VALUES (%s, %s, %s, %s, %s, %s)",
                        (
                            theme_id,
                            programme,
                            label,
                            json.dumps(keyphrases),
                            len(own),
                            json.dumps(
                                {
                                    k: v
                                    for k, v in titles.items()
                                    if k in {r["language"] for r in own}
                                }
                            ),
                        ),
                    )
            for pid, name in PROGRAMMES.items():
                cur.execute(
                    "INSERT INTO programmes (id, name, time_zone, partners, created_at,"
                    " updated_at, version) VALUES (%s, %s, 'Europe/Stockholm', %s, %s, %s, 1)",
                    (pid, name, json.dumps(PARTNERS), now, now),
                )
            _seed_cycle(cur, now)
    asyncio.run(_refresh_ideas(conninfo, list(THEMES)))
    with psycopg.connect(conninfo) as conn:
        found = conn.execute(
            "SELECT count(*) FROM theme_practices WHERE theme_id = 'th-crisis'"
        ).fetchone()
    return {
        "statements": len(rows),
        "themes": len(THEMES),
        "ideas_in_crisis": int(found[0]) if found else 0,
    }


async def _refresh_ideas(conninfo: str, theme_ids: list[str]) -> int:
    """One-idea practices and English glosses through the mining store's own
    code (what a re-mine writes), on the seeded statements."""
    from pgvector.psycopg import register_vector_async

    from peerlearn.mining import store

    async with await psycopg.AsyncConnection.connect(conninfo) as conn:
        await register_vector_async(conn)
        n = await store.refresh_ideas(conn, theme_ids)
        await conn.commit()
    return n


def _seed_cycle(cur: psycopg.Cursor[Any], now: datetime) -> None:
    """The read model of one running cycle: two meetings held, one cancelled, two ahead."""
    day = timedelta(days=1)
    cur.execute(
        "INSERT INTO cycles (id, programme_id, workflow_id, title, phase, status, time_zone,"
        " partners, ends_at, created_at, updated_at, version) VALUES"
        " (%s, 'nordic-clusters', %s, 'Resilient clusters 2026', 'meetings', 'running',"
        " 'Europe/Stockholm', %s, %s, %s, %s, 7)",
        (
            TIMELINE_CYCLE,
            f"cycle-{TIMELINE_CYCLE}",
            json.dumps(["umea-energi", "gdansk-morski"]),
            now + 120 * day,
            now - 40 * day,
            now,
        ),
    )
    meetings = [
        ("kickoff", "kickoff", "Digital kick-off", None, "online", now - 35 * day, "held", 4),
        (
            "visit-umea",
            "site_visit",
            "Peer visit to Umeå",
            "umea-energi",
            "on_site",
            now - 10 * day,
            "held",
            2,
        ),
        ("webinar-1", "webinar", "Funding webinar", None, "online", now - 3 * day, "cancelled", 0),
        (
            "visit-gdansk",
            "site_visit",
            "Peer visit to Gdańsk",
            "gdansk-morski",
            "on_site",
            now + 12 * day,
            "scheduled",
            0,
        ),
        (
            "wrap-up",
            "wrap_up",
            "Wrap-up and lessons learnt",
            None,
            "online",
            now + 60 * day,
            "scheduled",
            0,
        ),
    ]
    for mid, kind, title, host, fmt, starts, state, notes in meetings:
        cur.execute(
            "INSERT INTO meetings (cycle_id, id, kind, title, host, format, starts_at, ends_at,"
            " topics, state, held_at, notes_due_at, note_count, cancel_reason, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                TIMELINE_CYCLE,
                mid,
                kind,
                title,
                host,
                fmt,
                starts,
                starts + timedelta(hours=3),
                json.dumps(["funding diversification"] if kind == "site_visit" else []),
                state,
                starts if state == "held" else None,
                None if state == "cancelled" else starts + 7 * day,
                notes,
                "speaker ill" if state == "cancelled" else None,
                now,
            ),
        )
