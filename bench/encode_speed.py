"""Encoder backends: speed and agreement with the torch fp32 reference.

    .venv/bin/python bench/encode_speed.py [--n 500] [--backends torch,onnx,onnx-int8]

Encodes the same SIB-200 sentences (six languages) with each backend, prints
statements per second and the cosine of each embedding to torch fp32 (min and
mean), plus how often the nearest neighbour of each sentence agrees. The first
ONNX use exports the graph (and the int8 copy) next to the model, once.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sib", type=Path, default=Path("/work/shared/data/sib200"))
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--backends", default="torch,onnx,onnx-int8")
    args = ap.parse_args()

    sys.path.insert(0, str(ROOT / "bench"))
    from mining_speed import sentences

    from nlp.embed import make_embedder
    from nlp.model import ensure_model

    texts = sentences(args.sib, 4812)[:: max(1, 4812 // args.n)][: args.n]
    path = ensure_model()
    ref = None
    print(f"{len(texts)} sentences (six languages)")
    print(
        f"{'backend':12s} {'load s':>7s} {'stmt/s':>7s} {'cos min':>8s} {'cos mean':>8s} {'NN agree':>8s}"  # noqa: E501
    )
    for name in args.backends.split(","):
        t = time.perf_counter()
        emb = make_embedder(path, name)
        emb.encode(texts[:32])
        load = time.perf_counter() - t
        t = time.perf_counter()
        X = emb.encode(texts)
        rate = len(texts) / (time.perf_counter() - t)
        if ref is None:
            ref = X
        cos = (X * ref).sum(1)
        S, R = X @ X.T, ref @ ref.T
        np.fill_diagonal(S, -1)
        np.fill_diagonal(R, -1)
        nn = float((S.argmax(1) == R.argmax(1)).mean())
        print(
            f"{name:12s} {load:7.1f} {rate:7.0f} {cos.min():8.4f} {cos.mean():8.4f} {nn:8.2f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
