"""After clustering: stable theme ids, labels, representatives, practices, recurrence."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from nlp.types import PRACTICE_KINDS, Statement, ThemeChange

__all__ = ["PRACTICE_KINDS", "match_themes", "multilingual_keyphrases", "recurrence"]


# --------------------------------------------------------------------------- stable ids


def match_themes(
    clusters: list[list[int]],
    hashes: Sequence[str],
    centroids: np.ndarray,
    prev_ids: Sequence[str],
    prev_members: dict[str, list[str]],
    prev_centroids: np.ndarray,
    next_id: int,
    min_score: float = 0.2,
    centroid_floor: float = 0.85,
) -> tuple[list[str], list[ThemeChange], int]:
    """Give each new cluster an id, reusing previous ids where the theme persists.

    Persistence is judged by member overlap (content hashes, Jaccard over the
    statements present now), falling back to centroid similarity for themes
    whose statements all changed. Greedy best-first matching, one-to-one. A
    new cluster fed substantially by several old themes is ``merged``; an
    unmatched cluster taking a substantial share of an old theme that lives on
    elsewhere is ``split``; old themes with no successor are ``retired``.
    """
    present = set(hashes)
    prev_sets = {pid: set(prev_members.get(pid, [])) & present for pid in prev_ids}
    new_sets = [{hashes[i] for i in c} for c in clusters]
    scores: list[tuple[float, int, int]] = []
    contrib: dict[int, list[str]] = defaultdict(list)
    pc = (
        np.asarray(prev_centroids, dtype=np.float32).reshape(len(prev_ids), -1)
        if len(prev_ids)
        else None
    )
    cos = centroids @ pc.T if pc is not None and len(pc) and len(centroids) else None
    for ci, ns in enumerate(new_sets):
        for pj, pid in enumerate(prev_ids):
            ps = prev_sets[pid]
            inter = len(ns & ps)
            if inter:
                if inter >= 0.3 * len(ps) or inter >= 0.3 * len(ns):
                    contrib[ci].append(pid)
                scores.append((inter / len(ns | ps), ci, pj))
            elif cos is not None and not ps and cos[ci, pj] >= centroid_floor:
                scores.append((0.5 * float(cos[ci, pj]) - 0.2, ci, pj))
    scores.sort(key=lambda s: (-s[0], s[1], s[2]))
    ids: list[str | None] = [None] * len(clusters)
    used: set[int] = set()
    for sc, ci, pj in scores:
        if sc < min_score or ids[ci] is not None or pj in used:
            continue
        ids[ci] = prev_ids[pj]
        used.add(pj)
    changes: list[ThemeChange] = []
    matched_prev = {prev_ids[p] for p in used}
    successors: set[str] = set()
    final: list[str] = []
    for ci in range(len(clusters)):
        cid = ids[ci]
        fed = contrib.get(ci, [])
        successors.update(fed)
        if cid is not None:
            others = [p for p in fed if p != cid]
            if others:
                changes.append(ThemeChange("merged", cid, sorted({cid, *others})))
            else:
                changes.append(ThemeChange("kept", cid, [cid]))
        else:
            cid = f"T{next_id:04d}"
            next_id += 1
            split_from = [p for p in fed if p in matched_prev]
            if split_from:
                changes.append(ThemeChange("split", cid, sorted(split_from)))
            elif fed:
                changes.append(ThemeChange("merged", cid, sorted(fed)))
            else:
                changes.append(ThemeChange("new", cid, []))
        final.append(cid)
    for pid in prev_ids:
        if pid not in matched_prev and pid not in successors:
            changes.append(ThemeChange("retired", pid, [pid]))
    return final, changes, next_id


# --------------------------------------------------------------------------- labels


def _terms(lemmas: Sequence[str]) -> list[str]:
    out = list(lemmas)
    out.extend(f"{a} {b}" for a, b in zip(lemmas, lemmas[1:], strict=False) if a != b)
    return out


def ctfidf_keyphrases(
    docs_by_class: dict[str, list[list[str]]], top: int = 8, min_df: int = 2
) -> dict[str, list[str]]:
    """Class-based TF-IDF (as in BERTopic): term weight within a class against all classes.

    Counts are presence per statement, so one long statement cannot dominate;
    a term (or bigram) must occur in ``min_df`` statements of the class unless
    the class has fewer than four statements.
    """
    tf: dict[str, Counter[str]] = {}
    for cid, docs in docs_by_class.items():
        c: Counter[str] = Counter()
        for d in docs:
            c.update(set(_terms(d)))
        tf[cid] = c
    total: Counter[str] = Counter()
    for c in tf.values():
        total.update(c)
    avg = sum(sum(c.values()) for c in tf.values()) / max(len(tf), 1)
    out: dict[str, list[str]] = {}
    for cid, c in tf.items():
        n = sum(c.values()) or 1
        need = min_df if len(docs_by_class[cid]) >= 4 else 1
        scored = []
        for term, cnt in c.items():
            if cnt < need or (" " in term and cnt < 2):
                continue
            w = (cnt / n) * math.log(1 + avg / total[term])
            if cnt >= 2:
                w *= 1.5  # recurring within the theme is what a label should say
            scored.append((w, term))
        scored.sort(key=lambda x: (-x[0], x[1]))
        chosen: list[str] = []
        for _, term in scored:
            if " " in term:
                parts = term.split(" ")
                chosen = [ch for ch in chosen if ch not in parts]
            elif any(term in ch.split(" ") for ch in chosen):
                continue
            chosen.append(term)
            if len(chosen) >= top:
                break
        out[cid] = chosen
    return out


def multilingual_keyphrases(
    docs: dict[str, list[tuple[str, list[str]]]], top: int = 8
) -> dict[str, dict[str, list[str]]]:
    """Per theme and language: c-TF-IDF computed within each language across themes.

    Lemmas of different languages never share counts, so computing the
    weights per language keeps, say, Polish keyphrases from being drowned by
    English ones.
    """
    langs = sorted({lang for items in docs.values() for lang, _ in items})
    out: dict[str, dict[str, list[str]]] = {cid: {} for cid in docs}
    for lang in langs:
        per = {cid: [lem for lg, lem in items if lg == lang] for cid, items in docs.items()}
        keys = ctfidf_keyphrases({c: d for c, d in per.items() if d}, top=top)
        for cid, k in keys.items():
            if k:
                out[cid][lang] = k
    return out


def merge_keyphrases(
    by_lang: dict[str, list[str]], counts: dict[str, int], top: int = 8
) -> list[str]:
    """Round-robin over languages, larger languages first."""
    order = sorted(by_lang, key=lambda lg: (-counts.get(lg, 0), lg))
    out: list[str] = []
    for i in range(top):
        for lg in order:
            if i < len(by_lang[lg]) and by_lang[lg][i] not in out:
                out.append(by_lang[lg][i])
    return out[:top]


def make_label(keyphrases: Sequence[str], n: int = 3) -> str:
    return ", ".join(keyphrases[:n]) if keyphrases else "(unlabelled)"


# --------------------------------------------------------------------------- recurrence


def recurrence(statements: Sequence[Statement]) -> dict[str, Any]:
    def distinct(attr: str) -> list[str]:
        return sorted({str(v) for s in statements if (v := getattr(s, attr))})

    dates = sorted(s.date[:10] for s in statements if s.date)
    months = Counter(d[:7] for d in dates)
    progs, cycles, orgs = distinct("programme"), distinct("cycle"), distinct("organisation")
    langs = sorted({s.language for s in statements})
    return {
        "programmes": progs,
        "cycles": cycles,
        "organisations": orgs,
        "languages": langs,
        "meetings": distinct("meeting"),
        "n_programmes": len(progs),
        "n_cycles": len(cycles),
        "n_organisations": len(orgs),
        "n_languages": len(langs),
        "n_notes": len({s.source_id for s in statements}),
        "first_seen": dates[0] if dates else None,
        "last_seen": dates[-1] if dates else None,
        "trend": [{"month": m, "count": months[m]} for m in sorted(months)],
    }
