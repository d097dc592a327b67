"""Histories recorded before the self-assessment patch still replay against the
current workflow code (tests/histories/*.json, recorded with the pre-patch code
by ``PEERLEARN_RECORD_HISTORIES=1 pytest tests/test_cycle_workflow.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.cycle import SELF_ASSESSMENT_PATCH, PeerLearningCycle

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_saved_history_replays(path: Path) -> None:
    text = path.read_text()  # noqa: ASYNC240  (small local file)
    raw = json.loads(text)
    # Recorded before the patch: no marker, so replay takes the old branch.
    assert SELF_ASSESSMENT_PATCH not in text
    history = WorkflowHistory.from_json("cycle-replay", raw)
    replayer = Replayer(workflows=[PeerLearningCycle], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
