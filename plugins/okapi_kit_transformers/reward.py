"""A reward model (sequence classifier with one output) as a reward source."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from okapi_kit import ComponentConfig, RewardSource


class RewardModelConfig(ComponentConfig):
    path: str = Field(description="folder or hub id of a reward model (num_labels=1)")
    batch_size: int = Field(16, ge=1)
    max_length: int = Field(1024, ge=8, description="prompt+response tokens kept (left-truncated)")
    device: str = "auto"


class RewardModelSource(RewardSource):
    """Scores responses with a trained reward model: r(x, y) = the classifier's single logit."""

    name = "reward_model"
    Config = RewardModelConfig

    def __init__(self, config: RewardModelConfig | None = None):
        super().__init__(config)
        self._loaded = None

    def _load(self):
        if self._loaded is None:
            from .device import pick_device
            from .loading import load_sequence_classifier, load_tokenizer

            tok = load_tokenizer(self.config.path, padding_side="right")
            tok.truncation_side = "left"
            model = load_sequence_classifier(self.config.path).to(pick_device(self.config.device)).eval()
            if model.config.pad_token_id is None:
                model.config.pad_token_id = tok.pad_token_id
            self._loaded = (model, tok)
        return self._loaded

    def score(self, prompts: Sequence[str], responses: Sequence[str], languages: Sequence[str]) -> list[float]:
        import torch

        model, tok = self._load()
        out: list[float] = []
        bs = self.config.batch_size
        for start in range(0, len(prompts), bs):
            texts = [p + r for p, r in zip(prompts[start:start + bs], responses[start:start + bs])]
            enc = tok(texts, return_tensors="pt", padding=True, truncation=True,
                      max_length=self.config.max_length).to(model.device)
            with torch.no_grad():
                out += model(**enc).logits[:, 0].float().tolist()
        return out
