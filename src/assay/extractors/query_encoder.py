"""MiniLM for search queries on onnxruntime: the packaged weights, exported once per process.

A query is one short text. torch spends most of such a forward pass dispatching modules from
Python (~13 ms on one thread); the same graph on onnxruntime takes ~5 ms and gives the same
vector (cosine 1 - 1e-7 to `embed_texts`). The graph is exported from the already loaded
SentenceTransformer into memory (~1 s), never fetched. Queries get their own tokenizer and
session, so they never wait behind a document batch holding the encoder.
"""

from __future__ import annotations

import io
import logging
import threading
import warnings
from typing import TYPE_CHECKING, Any

from assay.extractors.models import encode_lock, text_encoder

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger("assay.extractors")
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_load_lock = threading.Lock()
_encoder: OnnxQueryEncoder | None = None
_unavailable = False


class OnnxQueryEncoder:
    """Tokenizer + onnxruntime session of the process's MiniLM, on one intra-op thread."""

    def __init__(self) -> None:
        import copy

        import onnxruntime as ort

        model = text_encoder()
        self.max_length = int(model.max_seq_length)
        # The document encoder may be busy in another thread: copy its tokenizer (fast
        # tokenizers refuse concurrent use, "Already borrowed") and trace its model in turn.
        with encode_lock:
            self.tokenizer = copy.deepcopy(model.tokenizer)
            graph = _export(model[0].auto_model)
        self._tokenizer_lock = threading.Lock()
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])

    def embed(self, text: str) -> np.ndarray:
        """The unit mean-pooled vector of `text` (truncated as the document encoder does)."""
        import numpy as np

        with self._tokenizer_lock:
            tokens = self.tokenizer(
                [text], truncation=True, max_length=self.max_length, return_tensors="np"
            )
        feeds = {name: np.asarray(tokens[name], dtype=np.int64) for name in _INPUTS}
        (hidden,) = self.session.run(None, feeds)
        mask = feeds["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        vector: np.ndarray = pooled[0] / max(float(np.linalg.norm(pooled[0])), 1e-12)
        return vector


def query_encoder() -> OnnxQueryEncoder | None:
    """The process's ONNX query encoder, or None where it cannot be built (the caller then
    uses torch; the reason is logged once)."""
    global _encoder, _unavailable
    if _encoder is not None or _unavailable:
        return _encoder
    with _load_lock:
        if _encoder is None and not _unavailable:
            try:
                _encoder = OnnxQueryEncoder()
            except Exception as exc:  # a missing exporter or runtime: torch still answers
                _unavailable = True
                log.warning("query encoding falls back to torch: %s", exc)
    return _encoder


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


def _export(bert: Any) -> bytes:
    """The BERT model as ONNX bytes, with dynamic batch and sequence axes."""
    import torch

    sample = {name: torch.ones((1, 8), dtype=torch.int64) for name in _INPUTS}
    sample["token_type_ids"] = torch.zeros((1, 8), dtype=torch.int64)
    axes = {name: {0: "batch", 1: "sequence"} for name in (*_INPUTS, "last_hidden_state")}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notes
        torch.onnx.export(
            _hidden_states(bert),
            tuple(sample[name] for name in _INPUTS),
            buffer,
            input_names=list(_INPUTS),
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    return buffer.getvalue()
