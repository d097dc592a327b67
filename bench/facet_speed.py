"""GET /v1/themes query latency with facilitators-only notes (issue 12).

The theme list's counters come from ``theme_facets`` (migration 0005). Since
migration 0018 the statements of facilitators-only notes are counted in their
own ``hidden`` rows, which keys that may not read those notes skip. This
prints, per share of hidden notes, the latency of ``list_themes`` (the query
the endpoint runs, on one warm connection, no HTTP):

- ``before``: the counters of both classes, the query every key ran before
  the fix (measured with a manager key of the same grant, which still runs it);
- ``after``: an analyst key of the same grant: only the visible class;
- ``statements``: the same analyst answer counted from the statements (the
  path a cycle/date filter takes; the fallback the counters avoid).

Synthetic data (no model): ``--statements`` statements in notes of 5, over 3
programmes, 12 organisations, 9 cycles, 4 languages, 3 years, ``--themes``
themes. Figures are medians and p95 over ``--runs`` calls.

    .venv/bin/python bench/facet_speed.py [--statements 10000] [--runs 60]
    DATABASE_URL=... .venv/bin/python bench/facet_speed.py   # an existing empty, migrated db
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
from datetime import date, timedelta
from typing import Any

from _service_bench import fresh_database, percentile

PROGRAMMES = ["bench-p1", "bench-p2", "bench-p3"]
LANGUAGES = ["en", "sv", "pl", "de"]


def seed(url: str, statements: int, themes: int) -> None:
    """Notes, themes and statements written in bulk (the triggers keep the facets)."""
    import psycopg

    rnd = random.Random(7)
    notes, rows = [], []
    start = date(2023, 1, 1)
    for k in range(statements // 5):
        p = PROGRAMMES[k % len(PROGRAMMES)]
        cycle = f"{p}-c{rnd.randrange(3)}"
        org = f"org-{rnd.randrange(12)}"
        lang = LANGUAGES[rnd.randrange(len(LANGUAGES))]
        day = start + timedelta(days=rnd.randrange(3 * 365))
        nid = f"n{k}"
        notes.append((nid, cycle, p, "m1", org, lang, "text", f"ck{k}", day))
        for j in range(5):
            theme = f"T{min(int(rnd.paretovariate(1.2)) - 1, themes - 1)}"
            rows.append((f"{nid}#{j}", nid, j, p, cycle, "m1", org, "s", lang, f"h{k}-{j}",
                         theme, day))  # fmt: skip
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT EXISTS (SELECT 1 FROM statements)")
        if (cur.fetchone() or (False,))[0]:
            raise SystemExit("the database has statements already: pass an empty one")
        cur.executemany("INSERT INTO themes (id, label) VALUES (%s, %s)",
                        [(f"T{i}", f"theme {i}") for i in range(themes)])  # fmt: skip
        with cur.copy(
            "COPY notes (id, cycle_id, programme_id, meeting_id, author_organisation, language,"
            " text, client_key, submitted_at) FROM STDIN"
        ) as cp:
            for n in notes:
                cp.write_row(n)
        cur.execute("CREATE TEMP TABLE st (LIKE statements INCLUDING DEFAULTS) ON COMMIT DROP;")
        with cur.copy(
            "COPY st (id, note_id, position, programme_id, cycle_id, meeting_id,"
            " organisation_id, text, language, content_hash, theme_id, source_date) FROM STDIN"
        ) as cp:
            for r in rows:
                cp.write_row(r)
        cur.execute("INSERT INTO statements SELECT * FROM st")  # one statement: one trigger run
        cur.execute("ANALYZE")


def hide(url: str, share: float) -> int:
    """Make ``share`` of the notes facilitators-only (the rest programme)."""
    import psycopg

    with psycopg.connect(url) as conn:
        conn.execute("UPDATE notes SET visibility = 'programme'")
        cur = conn.execute(
            "UPDATE notes SET visibility = 'facilitators' WHERE (hashtext(id) & 1023) < %s",
            (int(share * 1024),),
        )
        conn.execute("ANALYZE notes")
        return cur.rowcount


async def timed(url: str, runs: int) -> dict[str, tuple[float, float]]:
    import peerlearn.readside.themes as themes
    from peerlearn.access import Principal, Role

    grant = frozenset(PROGRAMMES[:2])
    cases: dict[str, tuple[Principal, bool]] = {
        "before": (Principal("m", Role.manager, grant), True),
        "after": (Principal("a", Role.analyst, grant), True),
        "statements": (Principal("a", Role.analyst, grant), False),
    }
    facets = themes.facets_answer
    out = {}
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        for name, (principal, fast) in cases.items():
            themes.facets_answer = facets if fast else (lambda f: False)
            ms: list[float] = []
            for i in range(runs + 3):
                t0 = time.perf_counter()
                await themes.list_themes(conn, principal, themes.Filters(), limit=50)
                if i >= 3:  # warm-up
                    ms.append((time.perf_counter() - t0) * 1000)
            out[name] = (statistics.median(ms), percentile(ms, 95))
    themes.facets_answer = facets
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--statements", type=int, default=10_000)
    ap.add_argument("--themes", type=int, default=150)
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("--shares", default="0,0.05,0.25")
    args = ap.parse_args()
    url = os.environ.get("DATABASE_URL") or fresh_database()
    t0 = time.perf_counter()
    seed(url, args.statements, args.themes)
    print(f"seeded {args.statements} statements, {args.themes} themes "
          f"in {time.perf_counter() - t0:.1f} s")  # fmt: skip
    print(
        f"{'hidden notes':>14} {'before ms (p50/p95)':>20} {'after ms':>14} {'statements ms':>16}"
    )
    for share in (float(s) for s in args.shares.split(",")):
        t0 = time.perf_counter()
        n = hide(url, share)
        moved = (time.perf_counter() - t0) * 1000
        r: dict[str, Any] = asyncio.run(timed(url, args.runs))
        cells = [f"{r[k][0]:6.1f}/{r[k][1]:6.1f}" for k in ("before", "after", "statements")]
        print(
            f"{n:>6} ({share:4.0%}) {cells[0]:>20} {cells[1]:>14} {cells[2]:>16}"
            f"   (visibility of every note set in {moved:.0f} ms)"
        )


if __name__ == "__main__":
    main()
