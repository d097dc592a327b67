"""The demo programme, loaded through the public HTTP API: ``peerlearn demo load``.

Cluster organisations writing in English, Swedish, Polish and (since 2024)
German about the same recurring topics: a history of four completed cycles
from 2023 to 2025 (``demo_data/history.jsonl``, brought in through
``POST /v1/imports`` with its real dates, so trends and recurrence across
cycles show something) and two live cycles, so the miner has cross-lingual
themes to find on a fresh ``make run``. Loading goes through the API (and so
through the cycle workflows and the mining activities) rather than straight
into tables: the demo then exercises the same path a real programme does.

Meetings are scheduled a few days ahead (the API refuses dates in the past)
and then marked held early, which is what lets their notes in.
Everything is idempotent (fixed ids, idempotency keys), so a load interrupted
half way can simply be run again: ``load_once`` writes the demo keys to
``demo.json`` *before* loading and marks the file loaded only at the end, so
the next ``peerlearn run`` resumes with the same keys, and the wait for the
notes' statements gives up on a stall instead of sitting out a fixed timeout.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import httpx

from peerlearn.settings import get_settings

MARKER = "demo.json"
# Stop waiting for statements when none arrived for this long: the mining run
# that follows picks up notes still without statements, and a stuck note must
# not hold every later start for the full timeout (issue 10 measured 612 s).
STALL_S = 60.0


def demo_data() -> dict[str, Any]:
    text = resources.files("service.demo_data").joinpath("programme.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


class DemoError(RuntimeError):
    pass


def _check(resp: httpx.Response, what: str, ok: tuple[int, ...] = (200, 201, 202, 204)) -> Any:
    if resp.status_code in ok:
        return resp.json() if resp.content else None
    detail = resp.text[:300].replace("\n", " ")
    raise DemoError(f"{what}: HTTP {resp.status_code} {detail}")


def _programme_body(p: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": p["id"],
        "name": p["name"],
        "description": p.get("description", ""),
        "time_zone": p["time_zone"],
        "languages": p["languages"],
        "partners": [
            {k: v for k, v in partner.items() if k in ("id", "name", "country", "kind", "contacts")}
            for partner in p["partners"]
        ],
        # contacts and facilitators with e-mail: the demo's cycles mail the catcher
        "facilitators": [
            f if isinstance(f, dict) else {"name": f} for f in p.get("facilitators", [])
        ],
    }


def _cycle_body(programme_id: str, cycle: dict[str, Any], now: datetime) -> dict[str, Any]:
    base = (now + timedelta(days=1)).replace(hour=9, minute=0, second=0, microsecond=0)
    meetings = []
    last = base
    for m in cycle["meetings"]:
        starts = base + timedelta(days=m["day"])
        last = max(last, starts)
        meetings.append(
            {
                "meeting_id": m["id"],
                "kind": m["kind"],
                "title": m.get("title", ""),
                "starts_at": starts.isoformat(),
                "duration_minutes": 120 if m["kind"] == "kickoff" else 480,
                "host": m.get("host"),
                "format": m.get("format", "on_site"),
                "topics": m.get("topics", []),
            }
        )
    wrap = last + timedelta(days=14)
    meetings.append(
        {
            "meeting_id": "wrap-up",
            "kind": "wrap_up",
            "title": "Wrap-up of the lessons learnt",
            "starts_at": wrap.isoformat(),
            "duration_minutes": 120,
            "format": "online",
        }
    )
    return {
        "cycle_id": cycle["id"],
        "programme_id": programme_id,
        "title": cycle["title"],
        "ends_at": (wrap + timedelta(days=120)).isoformat(),
        "meetings": meetings,
    }


def load(
    api_url: str,
    token: str | None = None,
    *,
    now: datetime | None = None,
    admin_token: str | None = None,
) -> dict[str, int]:
    """Create the programme, import its history, start its live cycles, mark
    meetings held, submit notes, mine.

    Returns counts. Safe to call again: existing objects are answered with
    409 (or found) and notes carry fixed idempotency keys.
    """
    data = demo_data()
    now = now or datetime.now(UTC)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    counts = {"programmes": 0, "cycles": 0, "meetings_held": 0, "notes": 0}
    prog = data["programme"]
    with httpx.Client(base_url=api_url, headers=headers, timeout=60) as http:
        r = http.post("/v1/programmes", json=_programme_body(prog))
        _check(r, "create programme", ok=(200, 201, 409))
        counts["programmes"] += r.status_code in (200, 201)
        # The past cycles, with their real dates, through the importer (idempotent:
        # a second load imports nothing). Mined by the full run at the end.
        history = resources.files("service.demo_data").joinpath("history.jsonl").read_bytes()
        r = http.post(
            "/v1/imports",
            params={"mine": "false"},
            content=history,
            headers={"Content-Type": "application/x-ndjson"},
        )
        counts["history_notes"] = int(_check(r, "import the demo history", ok=(200, 201))["lines"])
        for cycle in data["cycles"]:
            r = http.post("/v1/cycles", json=_cycle_body(prog["id"], cycle, now))
            _check(r, f"start cycle {cycle['id']}", ok=(200, 201, 202, 409))
            counts["cycles"] += r.status_code != 409
            cid = cycle["id"]
            for m in cycle["meetings"]:
                mid = m["id"]
                r = http.post(f"/v1/cycles/{cid}/meetings/{mid}/held", json={})
                _check(r, f"mark {cid}/{mid} held", ok=(200, 201, 202, 204, 409))
                counts["meetings_held"] += 1
                for i, note in enumerate(m["notes"]):
                    key = f"demo:{cid}:{mid}:{i}"
                    body = {
                        "author_organisation": note["author"],
                        "language": note["language"],
                        "text": note["text"],
                        "client_key": key,
                    }
                    r = _post_retrying(http, f"/v1/cycles/{cid}/meetings/{mid}/notes", body, key)
                    _check(r, f"submit note {key}", ok=(200, 201, 202))
                    counts["notes"] += 1
        # Each note's statements are written by the cycle workflow's mining step a
        # moment after the note is stored; mine once they are in (or stopped coming).
        counts["notes_mined"] = _wait_for_statements(
            http, [c["id"] for c in data["cycles"]], counts["notes"]
        )
        # New notes only join existing themes; the first themes come from a full mine.
        # "all" with the admin key: the demo is loaded into a fresh state folder.
        scope = "all" if token and token == admin_token else prog["id"]
        r = http.post("/v1/mining-runs", json={"scope": scope})
        run = _check(r, "start a mining run", ok=(200, 201, 202, 409))
        counts["themes"] = _wait_for_run(http, run) if r.status_code != 409 else 0
    return counts


def _wait_for_statements(
    http: httpx.Client,
    cycle_ids: list[str],
    notes: int,
    timeout: float = 600,
    stall_s: float = STALL_S,
) -> int:
    """Wait until every submitted note has its ThemesUpdated event (statements
    stored), or until none arrived for ``stall_s``; returns how many have."""
    now = time.monotonic()
    deadline, progress_at, best = now + timeout, now, -1
    while True:
        mined = 0
        for cid in cycle_ids:
            r = http.get(f"/v1/cycles/{cid}/events", params={"limit": 5000})
            events = _check(r, f"events of {cid}")["items"]
            mined += sum(1 for e in events if e["type"] == "ThemesUpdated")
        now = time.monotonic()
        if mined > best:
            best, progress_at = mined, now
        if mined >= notes or now > deadline or now - progress_at > stall_s:
            return min(mined, notes)
        time.sleep(1.0)


def _wait_for_run(http: httpx.Client, run: dict[str, Any], timeout: float = 600) -> int:
    """Theme count once the mining run finishes (0 if it is still going at the timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = http.get(f"/v1/mining-runs/{run['id']}")
        cur = _check(r, "mining run progress")
        if cur["status"] not in ("running", "pending", "started"):
            if cur["status"] != "completed":
                raise DemoError(f"mining run {run['id']} ended {cur['status']}: {cur.get('error')}")
            return int(cur.get("theme_count") or 0)
        time.sleep(1.0)
    return 0


def _post_retrying(http: httpx.Client, path: str, body: dict[str, Any], key: str) -> httpx.Response:
    """A meeting marked held a moment ago may not accept notes yet (signal in
    flight): retry briefly on 409, with the same idempotency key."""
    deadline = time.monotonic() + 15
    while True:
        r = http.post(path, json=body, headers={"Idempotency-Key": key})
        if r.status_code != 409 or time.monotonic() > deadline:
            return r
        time.sleep(0.3)


def create_demo_keys(conninfo: str, programme_id: str) -> dict[str, str]:
    """One key per role for the demo programme (shown on every start: it is a demo)."""
    from peerlearn import keys

    out: dict[str, str] = {}
    for role, org in (
        ("admin", None),
        ("manager", None),
        ("analyst", None),
        ("partner", "dublin-health"),
    ):
        _, token = keys.create_key(
            conninfo, role, [programme_id], organisation=org, name=f"demo {role}"
        )
        out[role] = token
    return out


def load_once(api_url: str, home: Path, conninfo: str) -> str | None:
    """Load the demo the first time a state folder is used; later, just show its keys.

    ``demo.json`` holds the keys from before the first request and ``loaded_at``
    only once everything is in, so a load interrupted by Ctrl-C resumes on the
    next start with the same keys (every step is idempotent).
    """
    marker = home / MARKER
    state: dict[str, Any] = json.loads(marker.read_text()) if marker.exists() else {}
    if state.get("loaded_at"):
        return _keys_message(state.get("keys", {}))
    resumed = "keys" in state
    demo_keys: dict[str, str] = state.get("keys", {})
    if not resumed:
        programme_id = demo_data()["programme"]["id"]
        try:
            demo_keys = create_demo_keys(conninfo, programme_id)
        except ModuleNotFoundError:
            demo_keys = {}
        _write_marker(marker, {"loaded_at": None, "keys": demo_keys})
    t0 = time.perf_counter()
    admin = demo_keys.get("admin")
    counts = load(api_url, admin, admin_token=admin)
    _write_marker(
        marker, {"loaded_at": datetime.now(UTC).isoformat(), "counts": counts, "keys": demo_keys}
    )
    summary = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items())
    how = "resumed and loaded" if resumed else "loaded"
    return f"demo data {how} in {time.perf_counter() - t0:.1f}s: {summary}\n" + (
        _keys_message(demo_keys) or ""
    )


def _write_marker(marker: Path, state: dict[str, Any]) -> None:
    """Replace demo.json atomically, readable by its owner only (it holds keys)."""
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.chmod(0o600)
    tmp.replace(marker)


def _keys_message(demo_keys: dict[str, str]) -> str | None:
    if not demo_keys:
        return None
    lines = ["demo API keys (Authorization: Bearer <key>):"]
    lines += [f"  {role:<8} {token}" for role, token in demo_keys.items()]
    return "\n".join(lines)


def _cmd_load(args: argparse.Namespace) -> int:
    settings = get_settings()
    host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "") else settings.api_host
    api_url = args.api_url or f"http://{host}:{settings.api_port}"
    counts = load(api_url, args.key)
    print(json.dumps(counts))
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo", help="the demo programme (English, Swedish, Polish, German notes)"
    )
    sub = p.add_subparsers(dest="demo_command", required=True, metavar="ACTION")
    load_p = sub.add_parser("load", help="load the demo programme through the HTTP API")
    load_p.add_argument("--api-url", help="default: the local API from PEERLEARN_API_HOST/PORT")
    load_p.add_argument("--key", help="an admin (or manager) API key")
    load_p.set_defaults(func=_cmd_load)
