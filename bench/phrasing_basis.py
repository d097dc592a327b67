"""Learn the phrasing subspace the miner removes: kind directions within topic.

    .venv/bin/python bench/phrasing_basis.py [--cache DIR] [--out nlp/phrasing_basis.json]

Reads the labelled kind set (``nlp/kinds_data/train.jsonl``: statements with
language, kind and topic, in 17 languages). After removing each language's
mean, each statement's *topic* mean is subtracted too, so what is left is how
the statement is put, not what it is about; the mean of those residuals per
kind is a phrasing direction ("we recommend …", "we learned …"). The
orthonormal basis of these directions (SVD, components above 1% of the
largest) is written as JSON and projected out by ``nlp.debias`` before
clustering. Learnt on a set with many topics per kind, so, unlike kind means
estimated on the corpus being mined, it does not carry that corpus's topics.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    ap.add_argument("--cache", type=Path, default=tmp / "peerlearn-bench-cache")
    ap.add_argument("--data", type=Path, default=ROOT / "nlp" / "kinds_data" / "train.jsonl")
    ap.add_argument("--out", type=Path, default=ROOT / "nlp" / "phrasing_basis.json")
    args = ap.parse_args()

    from nlp.cache import FileCache
    from nlp.debias import remove_group_means
    from nlp.model import ensure_model
    from nlp.pipeline import Miner
    from nlp.types import KINDS

    rows = [json.loads(x) for x in args.data.read_text(encoding="utf-8").splitlines() if x]
    miner = Miner.from_model_dir(ensure_model(), cache=FileCache(args.cache))
    X = miner.encoder.encode([r["text"] for r in rows])
    Z = remove_group_means(X, [r["language"] for r in rows])
    topics = np.asarray([r.get("topic") or "?" for r in rows])
    R = Z.copy()
    for t in set(topics.tolist()):
        m = topics == t
        R[m] -= Z[m].mean(0)
    kinds = np.asarray([r["kind"] for r in rows])
    offs = np.stack([R[kinds == k].mean(0) if (kinds == k).any() else R[0] * 0 for k in KINDS])
    _, s, vt = np.linalg.svd(offs - offs.mean(0), full_matrices=False)
    keep = s > 0.01 * s.max()
    basis = vt[keep].astype(np.float32)
    print(
        f"{len(rows)} statements, {len(set(topics.tolist()))} topics; kind offset norms "
        + ", ".join(f"{k} {np.linalg.norm(o):.3f}" for k, o in zip(KINDS, offs, strict=True))
        + f"; basis {basis.shape[0]} x {basis.shape[1]} (singular values {np.round(s, 3).tolist()})"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "source": str(args.data.relative_to(ROOT)),
                "statements": len(rows),
                "basis": basis.round(6).tolist(),
            }
        )
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
