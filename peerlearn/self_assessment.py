"""The host's self-assessment (issue 13): answers checked against the programme's
questionnaire, stored through the event log, read back with their questions.

A programme defines the questions (free text, a 1-5 scale, or one of given
choices); before its site visit the host answers them. The answers travel in
the peers' preparation pack e-mail (:mod:`peerlearn.mail`). Pure validation
plus the read SQL; the API appends ``SelfAssessmentSubmitted`` on the cycle's
stream and the projector keeps the latest submission per meeting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from peerlearn.access import Invalid

MAX_TEXT = 5000
SCALE = range(1, 6)


def validate_answers(
    questions: Sequence[Mapping[str, Any]], answers: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The answers in questionnaire order, each checked against its question's type.

    Raises :class:`Invalid` (HTTP 422) naming the first problem: an unknown or
    repeated question, a scale outside 1-5, a choice not offered, text too long.
    Unanswered questions are allowed (a host may skip one); an empty result is not.
    """
    if not questions:
        raise Invalid("this programme has no self-assessment questionnaire")
    by_id = {q["id"]: q for q in questions}
    seen: dict[str, Any] = {}
    for i, a in enumerate(answers):
        qid, value = a["question_id"], a["value"]
        where = f"answers[{i}] ({qid})"
        q = by_id.get(qid)
        if q is None:
            raise Invalid(f"{where}: no such question; questions: {', '.join(by_id)}")
        if qid in seen:
            raise Invalid(f"{where}: answered twice")
        if q["type"] == "scale":
            if isinstance(value, bool) or not isinstance(value, int) or value not in SCALE:
                raise Invalid(f"{where}: a scale answer is a whole number from 1 to 5")
        elif not isinstance(value, str):
            raise Invalid(f"{where}: a {q['type']} answer is a string")
        elif q["type"] == "choice" and value not in q.get("choices", []):
            raise Invalid(f"{where}: {value!r} is not one of {q['choices']}")
        elif q["type"] == "text" and not (0 < len(value.strip()) <= MAX_TEXT):
            raise Invalid(f"{where}: a text answer has 1 to {MAX_TEXT} characters")
        seen[qid] = value.strip() if isinstance(value, str) else value
    return [{"question_id": q["id"], "value": seen[q["id"]]} for q in questions if q["id"] in seen]


def with_questions(
    questions: Sequence[Mapping[str, Any]], answers: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Answers joined with their question's text and type (a question removed
    from the questionnaire later keeps its answer, labelled by its id)."""
    by_id = {q["id"]: q for q in questions}
    out = []
    for a in answers:
        q = by_id.get(a["question_id"], {})
        out.append(
            {
                "question_id": a["question_id"],
                "question": q.get("text", a["question_id"]),
                "type": q.get("type", "text"),
                "value": a["value"],
            }
        )
    return out


NOTE_PREFIX = "sa:"


def note_id(cycle_id: str, meeting_id: str, version: int) -> str:
    """The id the miner gives a submission's free text (issue 13: mined like a
    note). One per submission (the event's version), so a new submission's
    text is mined afresh and the previous one's statements can be forgotten."""
    return f"{NOTE_PREFIX}{cycle_id}:{meeting_id}:{version}"


def free_text(questions: Sequence[Mapping[str, Any]], answers: Sequence[Mapping[str, Any]]) -> str:
    """The host's free-text answers, one paragraph each (scale and choice
    answers say nothing the miner could cluster); "" when there are none."""
    texts = [
        str(a["value"]).strip()
        for a in with_questions(questions, answers)
        if a["type"] == "text" and isinstance(a["value"], str) and a["value"].strip()
    ]
    return "\n\n".join(texts)


def as_text(answers: Sequence[Mapping[str, Any]]) -> str:
    """The answers as plain text for an e-mail (questions in the programme's wording)."""
    lines = []
    for a in answers:
        value = f"{a['value']} / 5" if a.get("type") == "scale" else str(a["value"])
        lines.append(f"- {a['question']}\n  {value}")
    return "\n".join(lines)


async def load(
    conn: AsyncConnection[Any], cycle_id: str, meeting_id: str | None = None
) -> list[dict[str, Any]]:
    """Stored self-assessments of a cycle (or one meeting), answers with their questions."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT s.*, p.self_assessment_questions AS questions FROM self_assessments s"
            " JOIN cycles c ON c.id = s.cycle_id JOIN programmes p ON p.id = c.programme_id"
            " WHERE s.cycle_id = %s AND (%s::text IS NULL OR s.meeting_id = %s)"
            " ORDER BY s.meeting_id",
            (cycle_id, meeting_id, meeting_id),
        )
        rows = await cur.fetchall()
    for r in rows:
        r["answers"] = with_questions(r.pop("questions") or [], r["answers"])
    return rows
