"""Activities of the cycle workflow that write the event log.

Each call appends exactly one event (or finds it already stored under its
idempotency key and answers the same), projection included, in one
transaction. Temporal retries these without limit, so they must stay
idempotent: everything they do is keyed by the workflow's idempotency key.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from temporalio import activity
from temporalio.exceptions import ApplicationError

from peerlearn import eventstore, privacy
from peerlearn.events import EventType
from peerlearn.settings import Settings
from workflows.types import (
    APPEND_CYCLE_EVENT,
    SUBMIT_NOTE,
    AppendEventInput,
    AppendEventOutput,
    SubmitNoteActivityInput,
    SubmitNoteOutput,
)

# ApplicationError type of a note the database refused for good.
NOTE_REJECTED_ERROR = "NoteRejected"


async def _personal_fields(
    conn: psycopg.AsyncConnection[Any], inp: SubmitNoteActivityInput
) -> dict[str, str]:
    """The note's words and author as the event carries them: fields the API
    sealed pass through as they are (after checking that they open with the
    note's key, so no unreadable note is ever acknowledged); clear ones are
    sealed by the event store's storage transform (peerlearn.privacy.seal)."""
    n = inp.note
    out: dict[str, str] = {}
    fields = (
        ("text", n.text_sealed, n.text),
        ("author_person", n.author_person_sealed, n.author_person or None),
    )
    for field, sealed, clear in fields:
        if sealed is not None:
            if n.note_id != inp.note_id:
                raise privacy.Unreadable(f"the sealed {field} belongs to another note")
            name = privacy.sealed_field(field)
            if await privacy.open_field(conn, {"note_id": n.note_id, name: sealed}, field) is None:
                raise privacy.Unreadable(f"the key of note {inp.note_id} is gone")
            out[name] = sealed
        elif clear is not None:
            out[field] = clear
    return out


class CycleActivities:
    def __init__(self, pool: AsyncConnectionPool, settings: Settings) -> None:
        self.pool = pool
        self.settings = settings

    @activity.defn(name=APPEND_CYCLE_EVENT)
    async def append_cycle_event(self, inp: AppendEventInput) -> AppendEventOutput:
        res = await eventstore.append_event(
            self.pool,
            stream_id=inp.stream_id,
            type=inp.type,
            payload=inp.payload,
            idempotency_key=inp.idempotency_key,
            occurred_at=inp.occurred_at,
        )
        return AppendEventOutput(
            version=res.event.version,
            global_position=res.event.global_position,
            duplicate=res.duplicate,
            outbox_ids=res.outbox_ids,
        )

    @activity.defn(name=SUBMIT_NOTE)
    async def submit_note(self, inp: SubmitNoteActivityInput) -> SubmitNoteOutput:
        """Store a note as a NotesSubmitted event, once per client key.

        The workflow already deduplicates keys; the check here (under the
        stream lock, via the notes read model) covers the case where the
        workflow's memory of a key was lost, so the database's unique
        (cycle, client key) never turns into an endlessly retried failure.
        """
        try:
            return await self._store_note(inp)
        except privacy.Unreadable as exc:
            # A sealed field that does not open with its note's key never will.
            raise ApplicationError(str(exc), type=NOTE_REJECTED_ERROR, non_retryable=True) from exc
        except (psycopg.DataError, UnicodeError) as exc:
            # The database refused the note's content (e.g. a NUL the API let
            # through): every retry would fail the same way, so say so at once
            # and let the workflow record the rejection and move on.
            # First line only: the database's CONTEXT would quote the note's text.
            first = (str(exc).splitlines() or [""])[0][:200]
            raise ApplicationError(
                f"the database refused the note's content ({type(exc).__name__}: {first})",
                type=NOTE_REJECTED_ERROR,
                non_retryable=True,
            ) from exc

    async def _store_note(self, inp: SubmitNoteActivityInput) -> SubmitNoteOutput:
        n = inp.note
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO event_streams (stream_id) VALUES (%s) ON CONFLICT DO NOTHING",
                (inp.cycle_id,),
            )
            await conn.execute(
                "SELECT 1 FROM event_streams WHERE stream_id = %s FOR UPDATE", (inp.cycle_id,)
            )
            async with conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(
                    "SELECT id FROM notes WHERE cycle_id = %s AND client_key = %s",
                    (inp.cycle_id, n.client_key),
                )
                row: dict[str, Any] | None = await cur.fetchone()
            if row is not None:
                # Our own earlier attempt (committed, answer lost) is not a duplicate.
                return SubmitNoteOutput(note_id=row["id"], duplicate=row["id"] != inp.note_id)
            res = await eventstore.append(
                conn,
                stream_id=inp.cycle_id,
                type=EventType.NOTES_SUBMITTED,
                payload={
                    "note_id": inp.note_id,
                    "meeting_id": n.meeting_id,
                    "client_key": n.client_key,
                    "author_organisation": n.author_organisation,
                    "language": n.language,
                    **(await _personal_fields(conn, inp)),
                    "format": n.format,
                    "submitted_by": n.submitted_by,
                    "phase": inp.phase,
                    **({"late": True} if inp.late else {}),
                },
                idempotency_key=inp.idempotency_key,
                occurred_at=inp.occurred_at,
            )
            note_id = res.event.payload["note_id"]
        return SubmitNoteOutput(note_id=note_id, duplicate=False)
