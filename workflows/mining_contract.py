"""Contract between the cycle workflow and the mining activities.

The cycle workflow calls these activities by name, so the cycle engine does
not import the miner (numpy/torch stay out of the workflow sandbox).
"""

from __future__ import annotations

from dataclasses import dataclass, field

ASSIGN_NOTE_THEMES = "assign_note_themes"


@dataclass
class AssignNoteThemesInput:
    note_id: str
    cycle_id: str
    meeting_id: str


@dataclass
class AssignNoteThemesOutput:
    statement_count: int = 0
    theme_ids: list[str] = field(default_factory=list)
    unassigned: int = 0
