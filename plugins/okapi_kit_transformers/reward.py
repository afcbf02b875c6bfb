"""A reward model (sequence classifier with one output) as a reward source."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from okapi_kit import ComponentConfig, RewardSource

from .options import Device


class RewardModelConfig(ComponentConfig):
    path: str = Field(description="folder or hub id of a reward model (num_labels=1)")
    batch_size: int = Field(16, ge=1)
    max_length: int = Field(1024, ge=8, description="tokens kept per prompt+response: BOS (if the "
                            "tokenizer adds one) and the last ones, so the response's end is scored")
    device: Device = Field("auto", description="auto (cuda when present, else cpu), cpu, cuda, cuda:N or mps")


class RewardModelSource(RewardSource):
    """Scores responses with a trained reward model: r(x, y) = the classifier's single logit.

    Each prompt+response is encoded by the shared token rule (``tokens.py``), with the EOS
    that TRL's RewardTrainer trained the model on.
    """

    name = "reward_model"
    Config = RewardModelConfig

    def __init__(self, config: RewardModelConfig | None = None):
        super().__init__(config)
        self._loaded = None

    def _load(self):
        if self._loaded is None:
            from .device import pick_device
            from .loading import load_sequence_classifier, load_tokenizer
            from .tokens import TokenRule

            rule = TokenRule.of(load_tokenizer(self.config.path, padding_side="right"))
            model = load_sequence_classifier(self.config.path).to(pick_device(self.config.device)).eval()
            if model.config.pad_token_id is None:
                model.config.pad_token_id = rule.tokenizer.pad_token_id
            self._loaded = (model, rule)
        return self._loaded

    def score(self, prompts: Sequence[str], responses: Sequence[str], languages: Sequence[str]) -> list[float]:
        import torch

        from .tokens import pad

        model, rule = self._load()
        out: list[float] = []
        bs = self.config.batch_size
        for start in range(0, len(prompts), bs):
            rows = [rule.keep_end(rule.sequence(p, r), self.config.max_length)
                    for p, r in zip(prompts[start:start + bs], responses[start:start + bs])]
            enc = {k: v.to(model.device) for k, v in pad(rows, model.config.pad_token_id, "right").items()}
            with torch.no_grad():
                out += model(**enc).logits[:, 0].float().tolist()
        return out
