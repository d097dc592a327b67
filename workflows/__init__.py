"""Deterministic workflow code and the dataclasses of its contract.

Nothing here does I/O: activities/ does. ``ALL_WORKFLOWS`` is what a worker
registers; add a workflow class here when you write one.
"""

from __future__ import annotations

from workflows.cycle import PeerLearningCycle
from workflows.mining import NoteReconciliation, ThemeMining

ALL_WORKFLOWS: list[type] = [ThemeMining, PeerLearningCycle, NoteReconciliation]
