"""Analyst curation of the miner's output (issue 11 item 6): commands, their
projectors, and the overrides every re-mine re-applies.

An analyst renames or pins a theme's title, merges two themes, moves
statements to another or a new theme, corrects a statement's kind, or hides a
statement. Each is an event on the ``mining`` stream carrying the analyst's key
id; its projector records the decision in the curation tables (migration 0016)
and applies it to the read models at once. The miner (``nlp/``) knows nothing
of this: the mining store calls :func:`apply_curation` after each clustering
and after each incremental assignment, so a re-mine can never undo a
correction (pinned titles, moves, merges, kinds and hidden statements stay,
theme ids stay stable).

Grant rule: a theme is in the caller's grant when the key may see at least one
of its statements; statements outside the grant can't be touched. Anything
outside the grant is :class:`NotFound`, worded as for an unknown id.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from nlp.types import KINDS
from peerlearn import eventstore
from peerlearn.access import Invalid, NotFound, Principal
from peerlearn.events import EventType
from peerlearn.eventstore import Event
from peerlearn.mining import store
from peerlearn.mining.store import MINING_STREAM, Conn, fetch_all, fetch_one
from peerlearn.readside.filters import facilitator

#: The curation event types, newest first in the analyst page's list.
CURATION_EVENTS = (
    EventType.THEME_RENAMED,
    EventType.THEMES_MERGED_BY_ANALYST,
    EventType.STATEMENTS_MOVED,
    EventType.STATEMENT_KIND_CORRECTED,
    EventType.STATEMENT_HIDDEN,
)
MAX_TITLE = 200
MAX_MOVE = 500


# ---- grant checks -----------------------------------------------------------------------


async def theme_in_grant(conn: Conn, principal: Principal, theme_id: str) -> dict[str, Any]:
    """The active theme row, or NotFound when unknown, retired or outside the grant."""
    row = await fetch_one(
        conn,
        "SELECT id, scope FROM themes WHERE id = %s AND retired_at IS NULL",
        (theme_id,),
    )
    visible = principal.programme_filter()
    if row is not None and visible is not None:
        seen = await fetch_one(
            conn,
            "SELECT 1 AS ok FROM statements WHERE theme_id = %s AND programme_id = ANY(%s)"
            " AND (%s OR NOT note_hidden) LIMIT 1",  # facilitators-only notes (0018)
            (theme_id, visible, facilitator(principal)),
        )
        row = row if seen else None
    if row is None:
        raise NotFound(f"theme {theme_id!r} not found")
    return row


async def statements_in_grant(
    conn: Conn, principal: Principal, ids: Sequence[str]
) -> list[dict[str, Any]]:
    """The statement rows (in ``ids`` order), or NotFound naming the first one
    unknown or outside the grant."""
    rows = await fetch_all(
        conn,
        "SELECT s.id, s.theme_id, s.kind, s.hidden, s.programme_id, t.scope"
        " FROM statements s LEFT JOIN themes t ON t.id = s.theme_id WHERE s.id = ANY(%s)",
        (list(ids),),
    )
    by_id = {r["id"]: r for r in rows if principal.can_see(r["programme_id"] or "")}
    for sid in ids:
        if sid not in by_id:
            raise NotFound(f"statement {sid!r} not found")
    return [by_id[s] for s in ids]


# ---- commands (validate, then append: the projector applies) ------------------------------


async def _append(conn: Conn, etype: EventType, payload: dict[str, Any]) -> Event:
    res = await eventstore.append(
        conn,
        stream_id=MINING_STREAM,
        type=etype,
        payload=payload,
        idempotency_key=f"curation:{uuid.uuid4().hex}",
        occurred_at=datetime.now(UTC),
    )
    return res.event


def _title(title: str) -> str:
    clean = " ".join(title.split())
    if not clean or len(clean) > MAX_TITLE:
        raise Invalid(f"title must be 1 to {MAX_TITLE} characters")
    return clean


async def rename_theme(
    conn: Conn, principal: Principal, theme_id: str, title: str, pinned: bool
) -> Event:
    await theme_in_grant(conn, principal, theme_id)
    return await _append(
        conn,
        EventType.THEME_RENAMED,
        {
            "theme_id": theme_id,
            "title": _title(title),
            "pinned": pinned,
            "key_id": principal.key_id,
        },
    )


async def merge_themes(conn: Conn, principal: Principal, theme_id: str, into: str) -> Event:
    if theme_id == into:
        raise Invalid("a theme cannot be merged into itself")
    await theme_in_grant(conn, principal, theme_id)
    await theme_in_grant(conn, principal, into)
    return await _append(
        conn,
        EventType.THEMES_MERGED_BY_ANALYST,
        {"theme_id": theme_id, "into": into, "key_id": principal.key_id},
    )


async def move_statements(
    conn: Conn,
    principal: Principal,
    statement_ids: Sequence[str],
    theme_id: str | None,
    new_theme_title: str | None,
) -> Event:
    ids = list(dict.fromkeys(statement_ids))
    if not ids or len(ids) > MAX_MOVE:
        raise Invalid(f"statement_ids must hold 1 to {MAX_MOVE} ids")
    if (theme_id is None) == (new_theme_title is None):
        raise Invalid("give exactly one of theme_id and new_theme_title")
    rows = await statements_in_grant(conn, principal, ids)
    payload: dict[str, Any] = {
        "statement_ids": ids,
        "from_theme_ids": sorted({r["theme_id"] for r in rows if r["theme_id"]}),
        "key_id": principal.key_id,
    }
    if theme_id is not None:
        await theme_in_grant(conn, principal, theme_id)
        payload["theme_id"] = theme_id
    else:
        assert new_theme_title is not None
        scopes = {r["scope"] for r in rows if r["scope"]}
        scope = scopes.pop() if len(scopes) == 1 else "all"
        new_id = store.theme_key(scope, f"c{uuid.uuid4().hex[:10]}")
        payload["theme_id"] = new_id
        payload["new_theme"] = {"id": new_id, "scope": scope, "title": _title(new_theme_title)}
    return await _append(conn, EventType.STATEMENTS_MOVED, payload)


async def correct_kind(conn: Conn, principal: Principal, statement_id: str, kind: str) -> Event:
    if kind not in KINDS:
        raise Invalid(f"kind must be one of {', '.join(KINDS)}")
    await statements_in_grant(conn, principal, [statement_id])
    return await _append(
        conn,
        EventType.STATEMENT_KIND_CORRECTED,
        {"statement_id": statement_id, "kind": kind, "key_id": principal.key_id},
    )


async def hide_statement(
    conn: Conn, principal: Principal, statement_id: str, hidden: bool
) -> Event:
    (row,) = await statements_in_grant(conn, principal, [statement_id])
    return await _append(
        conn,
        EventType.STATEMENT_HIDDEN,
        {
            "statement_id": statement_id,
            "hidden": hidden,
            "from_theme_id": row["theme_id"],
            "key_id": principal.key_id,
        },
    )


async def theme_statements(
    conn: Conn, principal: Principal, theme_id: str, limit: int
) -> list[dict[str, Any]]:
    """The theme's statements the caller may see (what the curation panel
    selects from): id, text, language, kind, programme."""
    await theme_in_grant(conn, principal, theme_id)
    rows = await fetch_all(
        conn,
        "SELECT id, text, language, kind, programme_id, organisation_id FROM statements"
        " WHERE theme_id = %s AND NOT hidden AND (%s::text[] IS NULL OR programme_id = ANY(%s))"
        " AND (%s OR NOT note_hidden) ORDER BY id LIMIT %s",  # facilitators-only notes (0018)
        (
            theme_id,
            principal.programme_filter(),
            principal.programme_filter(),
            facilitator(principal),
            limit,
        ),
    )
    return [dict(r) for r in rows]


async def curation_events(
    conn: Conn, principal: Principal, theme_id: str | None, limit: int
) -> list[dict[str, Any]]:
    """The latest curation events (of one theme, when given) the caller may see:
    those naming a theme in the grant or a statement in the grant."""
    rows = await fetch_all(
        conn,
        "SELECT global_position, type, payload, occurred_at FROM events"
        " WHERE stream_id = %s AND type = ANY(%s)"
        " AND (%s::text IS NULL OR payload->>'theme_id' = %s OR payload->>'into' = %s"
        "      OR payload->>'from_theme_id' = %s OR payload->'from_theme_ids' ? %s"
        "      OR EXISTS (SELECT 1 FROM statements s WHERE s.theme_id = %s"
        "                 AND (s.id = payload->>'statement_id'"
        "                      OR payload->'statement_ids' ? s.id)))"
        " ORDER BY global_position DESC LIMIT %s",
        (
            MINING_STREAM,
            [t.value for t in CURATION_EVENTS],
            theme_id,
            theme_id,
            theme_id,
            theme_id,
            theme_id,
            theme_id,
            limit * 4,
        ),
    )
    visible = principal.programme_filter()
    out: list[dict[str, Any]] = []
    for r in rows:
        p = r["payload"]
        sids = [p["statement_id"]] if "statement_id" in p else list(p.get("statement_ids", []))
        if visible is not None:
            if sids:
                seen = await fetch_all(
                    conn,
                    "SELECT id FROM statements WHERE id = ANY(%s) AND programme_id = ANY(%s)",
                    (sids, visible),
                )
                if not seen:
                    continue
            else:  # a merged-away theme's statements now sit in its "into"
                tids = [t for t in (p.get("theme_id"), p.get("into")) if t]
                seen = await fetch_all(
                    conn,
                    "SELECT 1 AS ok FROM statements WHERE theme_id = ANY(%s)"
                    " AND programme_id = ANY(%s) LIMIT 1",
                    (tids, visible),
                )
                if not seen:
                    continue
        out.append(
            {
                "position": r["global_position"],
                "type": r["type"],
                "at": r["occurred_at"].isoformat(),
                **{k: v for k, v in p.items() if k != "new_theme"},
                **({"title": p["new_theme"]["title"]} if "new_theme" in p else {}),
            }
        )
        if len(out) >= limit:
            break
    return out


# ---- projectors -------------------------------------------------------------------------


async def project_renamed(conn: Conn, ev: Event) -> list[str]:
    p = ev.payload
    await conn.execute(
        "INSERT INTO curated_theme_titles (theme_id, title, pinned, key_id, updated_at)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (theme_id) DO UPDATE SET title = EXCLUDED.title,"
        " pinned = EXCLUDED.pinned, key_id = EXCLUDED.key_id, updated_at = EXCLUDED.updated_at",
        (p["theme_id"], p["title"], bool(p["pinned"]), p["key_id"], ev.occurred_at),
    )
    await apply_curation(conn)
    return []


async def project_merged(conn: Conn, ev: Event) -> list[str]:
    p = ev.payload
    src, into = p["theme_id"], p["into"]
    await conn.execute(
        "INSERT INTO curated_theme_merges (theme_id, into_id, key_id, updated_at)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT (theme_id) DO UPDATE SET into_id = EXCLUDED.into_id,"
        " key_id = EXCLUDED.key_id, updated_at = EXCLUDED.updated_at",
        (src, into, p["key_id"], ev.occurred_at),
    )
    # keep merges resolved in one hop, and moves pointing at the merged theme
    await conn.execute(
        "UPDATE curated_theme_merges SET into_id = %s WHERE into_id = %s", (into, src)
    )
    await conn.execute("DELETE FROM curated_theme_merges WHERE theme_id = into_id")
    await conn.execute(
        "UPDATE curated_statements SET theme_id = %s WHERE theme_id = %s", (into, src)
    )
    await store.delete_practices(conn, [src])
    await _apply_and_refresh(conn, {src, into})
    return []


async def project_moved(conn: Conn, ev: Event) -> list[str]:
    p = ev.payload
    new = p.get("new_theme")
    if new:
        await conn.execute(
            "INSERT INTO themes (id, scope, label, title) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (id) DO NOTHING",
            (new["id"], new["scope"], new["title"], new["title"]),
        )
        await conn.execute(
            "INSERT INTO curated_themes (theme_id, scope, key_id, created_at)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (new["id"], new["scope"], p["key_id"], ev.occurred_at),
        )
        await conn.execute(
            "INSERT INTO curated_theme_titles (theme_id, title, pinned, key_id, updated_at)"
            " VALUES (%s, %s, true, %s, %s) ON CONFLICT (theme_id) DO NOTHING",
            (new["id"], new["title"], p["key_id"], ev.occurred_at),
        )
    await conn.execute(
        "INSERT INTO curated_statements (statement_id, theme_id, key_id, updated_at)"
        " SELECT unnest(%s::text[]), %s, %s, %s ON CONFLICT (statement_id) DO UPDATE"
        " SET theme_id = EXCLUDED.theme_id, key_id = EXCLUDED.key_id,"
        " updated_at = EXCLUDED.updated_at",
        (list(p["statement_ids"]), p["theme_id"], p["key_id"], ev.occurred_at),
    )
    await _apply_and_refresh(conn, {p["theme_id"]})
    return []


async def project_kind(conn: Conn, ev: Event) -> list[str]:
    p = ev.payload
    await conn.execute(
        "INSERT INTO curated_statements (statement_id, kind, key_id, updated_at)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT (statement_id) DO UPDATE SET kind = EXCLUDED.kind,"
        " key_id = EXCLUDED.key_id, updated_at = EXCLUDED.updated_at",
        (p["statement_id"], p["kind"], p["key_id"], ev.occurred_at),
    )
    await _apply_and_refresh(conn, set())
    return []


async def project_hidden(conn: Conn, ev: Event) -> list[str]:
    p = ev.payload
    hidden = bool(p["hidden"])
    await conn.execute(
        "INSERT INTO curated_statements (statement_id, hidden, hidden_from, key_id, updated_at)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (statement_id) DO UPDATE SET"
        " hidden = EXCLUDED.hidden, key_id = EXCLUDED.key_id, updated_at = EXCLUDED.updated_at,"
        " hidden_from = CASE WHEN EXCLUDED.hidden THEN EXCLUDED.hidden_from"
        "  ELSE curated_statements.hidden_from END",
        (p["statement_id"], hidden, p.get("from_theme_id"), p["key_id"], ev.occurred_at),
    )
    back: set[str] = set()
    if not hidden:
        # shown again: back in the theme it was moved to, else the one it left
        # (merges followed); a re-mine places it afresh otherwise
        row = await fetch_one(
            conn,
            "UPDATE statements s SET hidden = false, theme_id = coalesce(m.into_id, t.id)"
            " FROM curated_statements c LEFT JOIN themes t"
            "  ON t.id = coalesce(c.theme_id, c.hidden_from)"
            " LEFT JOIN curated_theme_merges m ON m.theme_id = t.id"
            " WHERE c.statement_id = s.id AND s.id = %s AND s.hidden RETURNING s.theme_id",
            (p["statement_id"],),
        )
        if row and row["theme_id"]:
            back.add(row["theme_id"])
    await _apply_and_refresh(conn, back)
    return []


async def _apply_and_refresh(conn: Conn, extra: set[str]) -> None:
    affected = await apply_curation(conn) | extra
    await store.refresh_practices(conn, affected)


# ---- the overrides ----------------------------------------------------------------------


async def apply_curation(conn: Conn, *, remined: Sequence[str] = ()) -> set[str]:
    """Re-apply every recorded correction to ``statements`` and ``themes``;
    returns the ids of themes whose statements or kinds changed (their
    practices need a refresh).

    ``remined``: themes a re-mine just rewrote; their unpinned renames are
    dropped (the miner's fresh title wins), pinned titles are written back.
    Idempotent, and cheap when nothing changed (joins on the small curation
    tables)."""
    affected: set[str] = set()
    if remined:
        await conn.execute(
            "DELETE FROM curated_theme_titles c WHERE NOT c.pinned AND c.theme_id = ANY(%s)",
            (list(remined),),
        )
    # 1. statements of a merged-away theme go to the theme it was merged into
    for r in await fetch_all(
        conn,
        "UPDATE statements s SET theme_id = m.into_id FROM curated_theme_merges m"
        " WHERE s.theme_id = m.theme_id RETURNING m.theme_id AS src, m.into_id AS dst",
    ):
        affected |= {r["src"], r["dst"]}
    # 2. per-statement decisions: moved theme, corrected kind, hidden
    rows = await fetch_all(
        conn,
        "SELECT s.id, s.theme_id AS old_theme, s.kind AS old_kind, s.hidden AS old_hidden,"
        " CASE WHEN c.hidden THEN NULL ELSE coalesce(mt.into_id, c.theme_id, s.theme_id) END"
        "  AS new_theme, coalesce(c.kind, s.kind) AS new_kind, c.hidden AS new_hidden"
        " FROM curated_statements c JOIN statements s ON s.id = c.statement_id"
        " LEFT JOIN curated_theme_merges mt ON mt.theme_id = c.theme_id",
    )
    changed = [
        r
        for r in rows
        if (r["old_theme"], r["old_kind"], r["old_hidden"])
        != (r["new_theme"], r["new_kind"], r["new_hidden"])
    ]
    if changed:
        await conn.execute(
            "UPDATE statements s SET theme_id = u.theme_id, kind = u.kind, hidden = u.hidden"
            " FROM (SELECT unnest(%s::text[]) AS id, unnest(%s::text[]) AS theme_id,"
            " unnest(%s::text[]) AS kind, unnest(%s::boolean[]) AS hidden) u WHERE s.id = u.id",
            (
                [r["id"] for r in changed],
                [r["new_theme"] for r in changed],
                [r["new_kind"] for r in changed],
                [r["new_hidden"] for r in changed],
            ),
        )
        for r in changed:
            affected |= {t for t in (r["old_theme"], r["new_theme"]) if t}
    # 3. themes: merged-away stay retired, curated or curation-fed themes stay
    # active, pinned/renamed titles win, sizes follow the moves
    await conn.execute(
        "UPDATE themes SET retired_at = now() WHERE retired_at IS NULL"
        " AND id IN (SELECT theme_id FROM curated_theme_merges)"
    )
    await conn.execute(
        "UPDATE themes t SET retired_at = NULL WHERE t.retired_at IS NOT NULL"
        " AND t.id NOT IN (SELECT theme_id FROM curated_theme_merges)"
        " AND (t.id IN (SELECT into_id FROM curated_theme_merges)"
        "      OR t.id IN (SELECT theme_id FROM curated_themes)"
        "      OR t.id IN (SELECT theme_id FROM curated_statements WHERE theme_id IS NOT NULL))"
        " AND EXISTS (SELECT 1 FROM statements s WHERE s.theme_id = t.id)"
    )
    await conn.execute(
        "UPDATE themes t SET title = c.title, label = c.title FROM curated_theme_titles c"
        " WHERE t.id = c.theme_id AND (t.title IS DISTINCT FROM c.title OR t.label <> c.title)"
    )
    if affected:
        await conn.execute(
            "UPDATE themes t SET size = (SELECT count(*) FROM statements s"
            " WHERE s.theme_id = t.id), updated_at = now() WHERE t.id = ANY(%s)",
            (sorted(affected),),
        )
    return affected
