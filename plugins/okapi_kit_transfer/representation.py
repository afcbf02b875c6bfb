"""Representation shift: how alike a reward model's hidden states are for the same content
in different languages, and how far they moved from its base model's, layer by layer.

For parallel inputs (the same prompt and response in several languages), each sequence is
encoded as the RM scores it and its hidden state at every layer is pooled to one vector (the
last token's, where the RM reads its score, or the mean over tokens). The measures are mean
cosine similarities over the parallel items:

- across languages: ``cos(h_l(x_a), h_l(x_b))`` for the item x written in languages a and b;
  ``mismatched`` is the same mean over pairs of *different* items, the level that shared
  anisotropy alone gives (states of unrelated inputs in a small model are far from orthogonal);
- RM against base: ``cos(h_l^RM(x), h_l^base(x))`` for the same input, per language.

The numbers need numpy; the states need torch and transformers (imported in
:func:`pooled_states` only).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any


def mean_cosine(a: Any, b: Any) -> list[float]:
    """Per layer, the mean over items of cos(a[l, i], b[l, i]); arrays of shape (layers, items, dim)."""
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"pooled states must have the same (layers, items, dim) shape: {a.shape} vs {b.shape}")
    dots = (a * b).sum(-1)
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return [float(x) for x in (dots / np.maximum(norms, 1e-12)).mean(-1)]


def mismatched_cosine(a: Any, b: Any) -> list[float]:
    """Per layer, the mean cosine between a's item i and b's item i+1 (cyclically): pairs that
    do not share content, as the baseline for :func:`mean_cosine`."""
    import numpy as np

    return mean_cosine(a, np.roll(np.asarray(b), 1, axis=1))


@dataclass
class RepresentationTable:
    """Per RM, rows of per-layer similarities: ``(rm, comparison, values)`` with comparison
    ``"en~vi"`` (across languages, the RM's own states), ``"en~vi mismatched"`` (baseline)
    or ``"rm~base vi"`` (the RM against its base model, one language)."""

    layers: int  # values per row: the embeddings (layer 0) and every block's output
    pooling: str
    items: int
    rows: list[tuple[str, str, list[float]]] = field(default_factory=list)

    def add(self, rm: str, comparison: str, values: Sequence[float]) -> None:
        if len(values) != self.layers:
            raise ValueError(f"{len(values)} values for {self.layers} layers")
        self.rows.append((rm, comparison, [float(v) for v in values]))

    def to_json(self) -> dict[str, Any]:
        return {"layers": self.layers, "pooling": self.pooling, "items": self.items,
                "rows": [{"rm": rm, "comparison": comp, "cosine": [round(v, 6) for v in vals]}
                         for rm, comp, vals in self.rows]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RepresentationTable:
        table = cls(data["layers"], data["pooling"], data["items"])
        for row in data["rows"]:
            table.add(row["rm"], row["comparison"], row["cosine"])
        return table

    def merged(self, other: RepresentationTable) -> RepresentationTable:
        if (other.layers, other.pooling) != (self.layers, self.pooling):
            raise ValueError("tables of models with different depths or pooling cannot be merged")
        out = RepresentationTable(self.layers, self.pooling, min(self.items, other.items))
        out.rows = self.rows + other.rows
        return out

    def to_markdown(self) -> str:
        head = ["RM", "comparison", *[f"L{i}" for i in range(self.layers)]]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for rm, comp, vals in self.rows:
            lines.append("| " + " | ".join([f"`{rm}`", comp, *[f"{v:.3f}" for v in vals]]) + " |")
        return "\n".join(lines)


def similarity_rows(rm: str, states: dict[str, Any], base_states: dict[str, Any] | None,
                    table: RepresentationTable) -> None:
    """Add one RM's rows to ``table``: every language pair (matched and mismatched), then the
    RM against its base model per language. ``states[lang]`` has shape (layers, items, dim)."""
    langs = list(states)
    for a, b in combinations(langs, 2):
        table.add(rm, f"{a}~{b}", mean_cosine(states[a], states[b]))
        table.add(rm, f"{a}~{b} mismatched", mismatched_cosine(states[a], states[b]))
    for lang in langs if base_states else []:
        table.add(rm, f"rm~base {lang}", mean_cosine(states[lang], base_states[lang]))


def encode_states(states: Any) -> dict[str, Any]:
    """Pooled states as JSON data: the shape and the float32 values, base64 (no pickle)."""
    import base64

    import numpy as np

    array = np.ascontiguousarray(states, dtype="<f4")
    return {"shape": list(array.shape), "float32": base64.b64encode(array.tobytes()).decode("ascii")}


def decode_states(data: dict[str, Any]) -> Any:
    """The array that :func:`encode_states` wrote."""
    import base64

    import numpy as np

    return np.frombuffer(base64.b64decode(data["float32"]), dtype="<f4").reshape(data["shape"])


def pooled_states(model: str, pairs: Sequence[tuple[str, str]], *, pooling: str = "last", batch_size: int = 16,
                  max_length: int = 1024, device: str = "auto", trust_remote_code: bool = False) -> Any:
    """Pooled hidden states of ``model`` (a reward model or its base) for each (prompt, response),
    shape (layers + 1, items, hidden): each sequence as the reward_model source scores it
    (the shared token rule: START + prompt + response + EOS, right padded)."""
    import numpy as np
    import torch

    try:
        from okapi_kit_transformers.device import pick_device
        from okapi_kit_transformers.loading import load_tokenizer
        from okapi_kit_transformers.tokens import TokenRule, pad
    except ImportError as exc:  # pragma: no cover - the first-party plugin ships with okapi-kit
        from okapi_kit.errors import OkapiError

        raise OkapiError("the representation analysis needs the okapi_kit_transformers plugin") from exc
    rule = TokenRule.of(load_tokenizer(model, trust_remote_code=trust_remote_code, padding_side="right"))
    net = _backbone(model, trust_remote_code).to(pick_device(device)).eval()
    pad_id = rule.tokenizer.pad_token_id if rule.tokenizer.pad_token_id is not None else 0
    chunks: list[Any] = []
    for start in range(0, len(pairs), batch_size):
        rows = [rule.keep_end(rule.sequence(p, r), max_length) for p, r in pairs[start:start + batch_size]]
        enc = {k: v.to(net.device) for k, v in pad(rows, pad_id, "right").items()}
        with torch.no_grad():
            hidden = net(**enc, output_hidden_states=True).hidden_states  # (layers + 1) x (b, t, d)
        mask = enc["attention_mask"]
        if pooling == "last":
            last = mask.sum(1) - 1
            picked = [h[torch.arange(h.shape[0]), last] for h in hidden]
        else:
            weights = mask.unsqueeze(-1).to(hidden[0].dtype)
            picked = [(h * weights).sum(1) / weights.sum(1) for h in hidden]
        chunks.append(torch.stack(picked).float().cpu().numpy())
    return np.concatenate(chunks, axis=1)


def _backbone(model: str, trust_remote_code: bool) -> Any:
    """The transformer without its head: the same for a reward model and the causal LM it was
    trained from, so their states are comparable layer by layer."""
    from transformers import AutoModel
    from transformers.utils import logging

    from okapi_kit.errors import OkapiError

    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()  # a reward model's score head is left out on purpose: no report
    try:
        return AutoModel.from_pretrained(model, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise OkapiError(f"could not load {model!r}: {str(exc).splitlines()[0] if str(exc) else exc}") from None
    finally:
        logging.set_verbosity(verbosity)


def plot_png(table: RepresentationTable) -> bytes:
    """One heatmap per RM: comparisons (rows) by layer (columns), the mean cosine in each cell."""
    from okapi_kit.report.plots import _matplotlib

    Figure = _matplotlib()
    rms = list(dict.fromkeys(rm for rm, _, _ in table.rows))
    per = {rm: [(c, v) for r, c, v in table.rows if r == rm] for rm in rms}
    height = sum(0.32 * len(rows) + 0.9 for rows in per.values()) + 0.6
    fig = Figure(figsize=(0.75 * table.layers + 4.2, height), layout="constrained")
    axes = fig.subplots(len(rms), 1, squeeze=False, height_ratios=[len(per[rm]) + 1 for rm in rms])[:, 0]
    image = None
    for ax, rm in zip(axes, rms):
        comps, values = [c for c, _ in per[rm]], [v for _, v in per[rm]]
        image = ax.imshow(values, vmin=-0.2, vmax=1.0, cmap="magma", aspect="auto")
        ax.set_yticks(range(len(comps)), comps, fontsize=8)
        ax.set_xticks(range(table.layers), [("emb" if i == 0 else str(i)) for i in range(table.layers)], fontsize=8)
        for i, row in enumerate(values):
            for j, v in enumerate(row):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if v > 0.55 else "white")
        ax.set_title(f"{rm}: mean cosine of {table.pooling}-token states ({table.items} parallel items)",
                     fontsize=9, loc="left")
    axes[-1].set_xlabel("layer (emb: embeddings; n: output of block n)")
    if image is not None:
        fig.colorbar(image, ax=list(axes), label="mean cosine", shrink=0.8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()
