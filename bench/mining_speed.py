"""Mining speed: end to end vs the raw encode rate, warm re-mine, incremental assignment.

    .venv/bin/python bench/mining_speed.py [--sizes 1000,3000] [--remine 10000] [--backend torch]

Statements are SIB-200 sentences from all six languages (made unique with a
short suffix when more are needed than exist). Each size runs with a cold
embedding cache and a warm model (model load is reported separately):
segment (language id, lemmas) + embed + mine (kinds, de-biasing, clustering,
labels). ``--remine N`` fills a cache with N statements (real vectors for
those encoded above, perturbed copies for the rest, so a busy 2-core machine
need not encode 10k), then times a full re-mine that needs no encoding.
Peak RSS at the end. Not a test.
"""

from __future__ import annotations

import argparse
import csv
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def sentences(sib: Path, n: int) -> list[str]:
    base: list[str] = []
    for lang in sorted(p.name for p in sib.iterdir() if p.is_dir()):
        for split in ("train", "dev"):
            with open(sib / lang / f"{split}.tsv", encoding="utf-8", newline="") as fh:
                base += [
                    r["text"] for r in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
                ]
    out: list[str] = []
    i = 0
    while len(out) < n:
        s = base[i % len(base)]
        rnd = i // len(base)
        out.append(s if rnd == 0 else f"{s} ({rnd})")
        i += 1
    return out


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sib", type=Path, default=Path("/work/shared/data/sib200"))
    ap.add_argument("--sizes", default="1000,3000")
    ap.add_argument("--remine", type=int, default=10000, help="0 to skip")
    ap.add_argument("--backend", default="torch")
    ap.add_argument("--raw", type=int, default=300, help="statements for the raw encode rate")
    args = ap.parse_args()

    from nlp.cache import InMemoryCache
    from nlp.model import ensure_model
    from nlp.pipeline import Miner, MinerConfig
    from nlp.types import NoteIn

    cfg = MinerConfig(backend=args.backend)
    t = time.perf_counter()
    miner = Miner.from_model_dir(ensure_model(), config=cfg, cache=InMemoryCache())
    miner.warm()
    print(
        f"backend {args.backend}; warm-up (model, language detector, lemmatiser, prototypes): "
        f"{time.perf_counter() - t:.1f}s",
        flush=True,
    )

    texts = sentences(args.sib, args.raw)
    miner.embedder.encode(texts[:64])
    t = time.perf_counter()
    miner.embedder.encode(texts)
    raw_rate = len(texts) / (time.perf_counter() - t)
    print(
        f"raw encode rate ({len(texts)} statements, model alone): {raw_rate:.0f} statements/s",
        flush=True,
    )

    print(
        f"\n{'n':>6s} {'total s':>8s} {'stmt/s':>7s} {'segment':>8s} {'embed':>7s} {'kinds':>6s} "
        f"{'cluster':>8s} {'themes':>7s} {'non-enc/enc':>11s} {'themes#':>7s}"
    )
    store: dict = {}
    res = None
    for n in [int(x) for x in args.sizes.split(",") if x]:
        miner.cache = InMemoryCache()
        miner._encoder = None
        notes = [NoteIn(id=f"s{i}", text=s) for i, s in enumerate(sentences(args.sib, n))]
        t0 = time.perf_counter()
        sts = miner.segment(notes, unit="statement")
        seg = time.perf_counter() - t0
        res = miner.mine(sts, seed=0)
        total = time.perf_counter() - t0
        store.update(miner.cache.get_many([s.content_hash for s in sts]))
        tm = res.timings
        non_enc = total - tm["embed"]
        print(
            f"{n:6d} {total:8.1f} {n / total:7.0f} {seg:8.2f} {tm['embed']:7.1f} {tm['kinds']:6.2f} "  # noqa: E501
            f"{tm['cluster']:8.2f} {tm['themes']:7.2f} {non_enc / tm['embed']:10.0%} {len(res.themes):7d}",  # noqa: E501
            flush=True,
        )

    if args.remine:
        # The cache is filled without encoding N statements on this machine: statements
        # encoded above keep their real vectors; the others get the vector of an encoded
        # statement plus small noise (re-mining cost does not depend on the values).
        import numpy as np

        from nlp.cache import content_hash

        n = args.remine
        real = store
        rng = np.random.default_rng(0)
        notes = [NoteIn(id=f"s{i}", text=s) for i, s in enumerate(sentences(args.sib, n))]
        miner.cache = InMemoryCache()
        miner._encoder = None
        base = list(real.values())
        fill = {}
        for i, nt in enumerate(notes):
            h = content_hash(" ".join(nt.text.split()), miner.tag)
            v = real.get(h)
            if v is None:
                v = base[i % len(base)] + rng.normal(0, 0.02, len(base[0])).astype(np.float32)
                v = v / np.linalg.norm(v)
            fill[h] = v
        miner.cache.put_many(fill)
        print(f"\ncache filled with {n} vectors ({sum(h in real for h in fill)} really encoded)")
        sts = miner.segment(notes, unit="statement")
        first = miner.mine(sts, seed=0)
        # (a) the service's case: statements are stored (language, lemmas, kind), vectors cached
        t = time.perf_counter()
        stored = miner.mine(sts, previous=first.model, seed=0)
        print(
            f"re-mine of {n} stored statements, warm cache: {time.perf_counter() - t:.1f}s "
            f"(embed lookups {stored.timings['embed']:.2f}s, kinds {stored.timings['kinds']:.2f}s, "
            f"cluster {stored.timings['cluster']:.2f}s, themes {stored.timings['themes']:.2f}s)"
        )
        # (b) from the raw notes again: language id, segmentation and lemmas redone
        t = time.perf_counter()
        sts2 = miner.segment(notes, unit="statement")
        seg = time.perf_counter() - t
        again = miner.mine(sts2, previous=first.model, seed=0)
        total = time.perf_counter() - t
        kept = sum(c.kind == "kept" for c in again.changes)
        print(
            f"re-mine of {n} from the notes, warm cache: {total:.1f}s (segment {seg:.1f}s, "
            f"kinds {again.timings['kinds']:.2f}s, cluster {again.timings['cluster']:.2f}s, "
            f"themes {again.timings['themes']:.2f}s); {kept}/{len(again.themes)} theme ids kept, "
            f"encoder misses {miner.encoder.misses}"
        )
        model = again.model
    else:
        assert res is not None, "give --sizes or --remine"
        model = res.model

    note = NoteIn(id="inc", text="\n".join(f"- {s}" for s in sentences(args.sib, 4000)[3000:3010]))
    times = []
    for i in range(21):
        n2 = NoteIn(id=f"inc{i}", text=note.text + f" v{i}")  # new text: really encodes
        t = time.perf_counter()
        sts = miner.segment([n2])
        miner.assign(sts, None, model)
        times.append(time.perf_counter() - t)
    print(
        f"\nincremental assignment of a 10-statement note (segment + encode + assign), after "
        f"warm-up: median {statistics.median(times[1:]) * 1000:.0f} ms, max {max(times[1:]) * 1000:.0f} ms"  # noqa: E501
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
