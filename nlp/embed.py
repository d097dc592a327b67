"""Sentence embeddings: swappable encoder backends behind one small protocol.

``TorchEmbedder`` runs the converted folder through sentence-transformers
(the reference); ``OnnxEmbedder`` runs the same weights through ONNX Runtime
with int8 dynamic quantisation (faster on CPU, cosine ≥ 0.99 to torch,
measured by bench/encode_speed.py). ``CachedEncoder`` puts an
``EmbeddingCache`` in front of either, keyed by content hash, so re-mining
never re-encodes a statement.

Texts get e5's ``query: `` prefix (the symmetric-task prefix; measured a much
smaller cross-lingual gap than ``passage: ``) and unit-normalised output.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from nlp.cache import EmbeddingCache, content_hash
from nlp.types import EMBEDDING_DIM

PREFIX = "query: "
DIM = EMBEDDING_DIM  # kept as a name: the backends' ``dim`` attribute reads better


class Embedder(Protocol):
    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32 unit rows for raw statement texts (the prefix is added inside)."""
        ...


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(n, 1e-12)


def _threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class TorchEmbedder:
    """sentence-transformers on the converted BERT folder (CPU unless told otherwise)."""

    name = "torch-fp32"
    dim = DIM

    def __init__(self, model_dir: Path, batch_size: int = 32, device: str | None = None) -> None:
        import torch

        from nlp.model import load_sentence_transformer

        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        torch.set_num_threads(_threads())
        self.device = device
        self.model = load_sentence_transformer(Path(model_dir), device=device)
        self.model.max_seq_length = 256  # statements are short; caps cost of pasted essays
        self.batch_size = batch_size
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            out = self.model.encode(
                list(texts),
                prompt=PREFIX,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(out, dtype=np.float32)


class OnnxEmbedder:
    """ONNX Runtime, int8 dynamically quantised; exported from the folder once.

    The exported graphs live next to the model (``onnx/model.onnx`` and
    ``onnx/model_int8.onnx``), written atomically like the model itself.
    Batches are length-sorted so padding stays small.
    """

    dim = DIM

    def __init__(
        self,
        model_dir: Path,
        quantized: bool = True,
        batch_size: int = 32,
        threads: int | None = None,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.model_dir = Path(model_dir)
        self.quantized = quantized
        self.name = "onnx-int8" if quantized else "onnx-fp32"
        path = export_onnx(self.model_dir, quantized=quantized)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or _threads()
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(256)
        self.batch_size = batch_size
        self._inputs = {i.name for i in self.session.get_inputs()}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        n = len(texts)
        out = np.zeros((n, self.dim), dtype=np.float32)
        if n == 0:
            return out
        encs = self.tokenizer.encode_batch([PREFIX + t for t in texts])
        order = sorted(range(n), key=lambda i: len(encs[i].ids))
        for s in range(0, n, self.batch_size):
            idx = order[s : s + self.batch_size]
            width = max(len(encs[i].ids) for i in idx)
            ids = np.full((len(idx), width), 1, dtype=np.int64)  # <pad> = 1
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for r, i in enumerate(idx):
                e = encs[i].ids
                ids[r, : len(e)] = e
                mask[r, : len(e)] = 1
            feeds: dict[str, np.ndarray] = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feeds["token_type_ids"] = np.zeros_like(ids)
            hidden = self.session.run(None, feeds)[0]
            m = mask[..., None].astype(np.float32)
            pooled = (hidden * m).sum(1) / np.maximum(m.sum(1), 1.0)
            out[idx] = pooled
        return _normalise(out)


def export_onnx(model_dir: Path, quantized: bool = True) -> Path:
    """Export the BERT encoder to ONNX (and an int8 copy) once; return the path to use."""
    onnx_dir = Path(model_dir) / "onnx"
    fp32 = onnx_dir / "model.onnx"
    int8 = onnx_dir / "model_int8.onnx"
    want = int8 if quantized else fp32
    if want.exists():
        return want
    onnx_dir.mkdir(exist_ok=True)
    if not fp32.exists():
        import torch
        from transformers import AutoModel

        model = AutoModel.from_pretrained(str(model_dir), local_files_only=True).eval()
        ids = torch.ones((2, 16), dtype=torch.long)
        mask = torch.ones((2, 16), dtype=torch.long)
        tmp = onnx_dir / f".model.onnx.tmp{os.getpid()}"

        class Wrapped(torch.nn.Module):
            def __init__(self, inner: Any) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, input_ids: Any, attention_mask: Any) -> Any:
                return self.inner(
                    input_ids=input_ids, attention_mask=attention_mask
                ).last_hidden_state

        with torch.no_grad():
            torch.onnx.export(
                Wrapped(model),
                (ids, mask),
                str(tmp),
                input_names=["input_ids", "attention_mask"],
                output_names=["last_hidden_state"],
                dynamic_axes={
                    "input_ids": {0: "b", 1: "t"},
                    "attention_mask": {0: "b", 1: "t"},
                    "last_hidden_state": {0: "b", 1: "t"},
                },
                opset_version=17,
                dynamo=False,
            )
        os.replace(tmp, fp32)
    if quantized and not int8.exists():
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        # Per-channel weights, 7-bit range, and the FFN down-projections kept in fp32:
        # their inputs (GELU outputs) have outliers that per-tensor u8 activations
        # clip. Measured (bench/encode_speed.py): cosine to fp32 min 0.995, mean 0.999;
        # quantising everything gave min 0.968.
        graph = onnx.load(str(fp32), load_external_data=False).graph
        keep_fp32 = [
            n.name
            for n in graph.node
            if n.op_type == "MatMul"
            and n.name.endswith("/output/dense/MatMul")
            and "attention" not in n.name
        ]
        tmp = onnx_dir / f".model_int8.onnx.tmp{os.getpid()}"
        quantize_dynamic(
            str(fp32),
            str(tmp),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul", "Gemm"],
            per_channel=True,
            reduce_range=True,
            nodes_to_exclude=keep_fp32,
        )
        os.replace(tmp, int8)
    return want


def onnx_available() -> bool:
    """Whether ONNX Runtime and the tokenizers library can be imported (the dev extras)."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "tokenizers"))


def make_embedder(model_dir: Path, backend: str = "auto", **kw: Any) -> Embedder:
    """Backend by name: ``auto`` (default), ``torch`` (reference), ``onnx`` / ``onnx-int8``.

    ``auto`` is ONNX fp32 when ONNX Runtime is installed, else torch: the same
    vectors (cosine to torch ≥ 0.9999, bench/encode_speed.py) for a fraction
    of the start-up (no torch/transformers import, no sentence-transformers).
    """
    if backend == "auto":
        backend = "onnx" if onnx_available() else "torch"
    if backend in ("torch", "torch-fp32"):
        return TorchEmbedder(model_dir, **kw)
    if backend in ("onnx-int8", "onnx"):
        return OnnxEmbedder(model_dir, quantized=backend == "onnx-int8", **kw)
    raise ValueError(f"unknown embedding backend {backend!r} (auto, torch, onnx, onnx-int8)")


class CachedEncoder:
    """An embedder behind a content-hash cache; only misses are encoded."""

    def __init__(self, embedder: Embedder, cache: EmbeddingCache, tag: str | None = None) -> None:
        self.embedder = embedder
        self.cache = cache
        self.tag = tag or f"e5s-{embedder.name}"
        self.hits = 0
        self.misses = 0

    def key(self, text: str) -> str:
        return content_hash(text, self.tag)

    def encode(
        self,
        texts: Sequence[str],
        keys: Sequence[str] | None = None,
        progress: Callable[[int, int], None] | None = None,
        chunk: int = 256,
    ) -> np.ndarray:
        keys = list(keys) if keys is not None else [self.key(t) for t in texts]
        found = self.cache.get_many(list(dict.fromkeys(keys)))
        out = np.zeros((len(texts), self.embedder.dim), dtype=np.float32)
        missing: dict[str, int] = {}
        for i, k in enumerate(keys):
            v = found.get(k)
            if v is not None:
                out[i] = v
            elif k not in missing:
                missing[k] = i
        self.hits += len(texts) - len(missing)
        self.misses += len(missing)
        todo = list(missing.items())
        done = 0
        for s in range(0, len(todo), chunk):
            part = todo[s : s + chunk]
            vecs = self.embedder.encode([texts[i] for _, i in part])
            self.cache.put_many({k: v for (k, _), v in zip(part, vecs, strict=True)})
            for (_, i), v in zip(part, vecs, strict=True):
                out[i] = v
            done += len(part)
            if progress:
                progress(done, len(todo))
        if missing:
            pos = {k: i for k, i in missing.items()}
            for j, k in enumerate(keys):
                if k in pos and j != pos[k]:
                    out[j] = out[pos[k]]
        return out
