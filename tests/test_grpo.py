"""GRPO (TRL's GRPOTrainer) with okapi-kit's reward sources, on a tiny model."""

from __future__ import annotations

import json
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported

import torch  # noqa: E402
from okapi_kit_trl import GRPOTrainer  # noqa: E402

from okapi_kit import OkapiError, RewardSource, TrainJob  # noqa: E402
from okapi_kit.registry import Registry, create_component  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

LENGTH = 12  # tokens per completion
LETTERS = set("abcdefghijklmnopqrstuvwxyz")


class Letters(RewardSource):
    """A programmatic 0-10 reward: 10 x the share of a completion's tokens that are ASCII letters
    (the tokenizer is byte-level: one token per byte)."""

    name = "letters"

    def __init__(self):
        super().__init__()
        self.languages: set[str] = set()

    def score(self, prompts, responses, languages):
        self.languages.update(languages)
        return [min(10.0, 10 * sum(ch in LETTERS for ch in r) / LENGTH) for r in responses]


# Sizes for a CPU test; every other hyper-parameter is the trainer's default (beta 0.04, TRL's loss).
SMALL = dict(batch_size=8, gradient_accumulation_steps=1, num_generations=4, max_completion_length=LENGTH,
             logging_steps=1, gradient_checkpointing=False)
PROMPTS = [{"prompt": f"Q{i}: ", "language": "vi" if i % 2 else "bn"} for i in range(32)]


def job(tmp_path, model, records, **kw) -> TrainJob:
    return TrainJob(model=model, output_dir=tmp_path / "out", work_dir=tmp_path / "work", records=records, **kw)


def sampled_reward(path, reward: Letters) -> float:
    from okapi_kit_transformers.sampler import TransformersSampler

    sampler = TransformersSampler(TransformersSampler.Config(max_new_tokens=LENGTH, device="cpu"))
    prompts = [p["prompt"] for p in PROMPTS[:16]]
    samples = [s for group in sampler.sample(str(path), prompts, 4, seed=1) for s in group]
    return sum(reward.score([], samples, [])) / len(samples)


def test_grpo_raises_a_programmatic_reward(tmp_path, tiny):
    reward = Letters()
    before = sampled_reward(tiny, reward)
    config = GRPOTrainer.Config(**SMALL, learning_rate=2e-2, max_steps=30)
    result = GRPOTrainer(config).train(job(tmp_path, tiny, PROMPTS, reward=reward))
    lines = [json.loads(x) for x in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == list(range(1, 31))
    assert {"reward", "reward_std", "kl", "loss", "rewards/letters/mean"} <= lines[-1].keys()
    first, last = (sum(m["reward"] for m in part) / 5 for part in (lines[:5], lines[-5:]))
    assert last > first + 1.5, (first, last)
    assert reward.languages == {"vi", "bn"}  # each record's language reached the reward source
    after = sampled_reward(tmp_path / "out", reward)
    assert after > before + 1.5, (before, after)
    assert result.metrics["global_step"] == 30


def test_grpo_needs_a_reward_and_its_own_reference(tmp_path, tiny):
    with pytest.raises(OkapiError, match="needs a reward source"):
        GRPOTrainer().train(job(tmp_path, tiny, PROMPTS))
    with pytest.raises(OkapiError, match="takes its starting policy as the reference"):
        GRPOTrainer().train(job(tmp_path, tiny, PROMPTS, reward=Letters(), reference_model=str(tmp_path)))
    with pytest.raises(OkapiError, match="record 1 lacks string field"):
        GRPOTrainer().train(job(tmp_path, tiny, [{"prompt": "a"}, {"text": "b"}], reward=Letters()))


def test_grpo_group_sizes_are_checked_at_validation():
    reg = Registry()
    reg.add("trainer", GRPOTrainer, plugin="test")

    def create(options):
        return create_component(reg, "trainer", "grpo", options, where="config.yaml: alignment[0].trainer")

    assert create({"batch_size": 4, "gradient_accumulation_steps": 2, "num_generations": 8}).config.beta == 0.04
    with pytest.raises(OkapiError, match=r"\(12\) completions per step must be a multiple of num_generations \(8\)"):
        create({"batch_size": 6, "gradient_accumulation_steps": 2})
    with pytest.raises(OkapiError, match="leaves no room for a prompt"):
        create({"max_length": 256, "max_completion_length": 256})


def test_grpo_with_lora_trains_the_adapter(tmp_path, tiny):
    from pathlib import Path

    from safetensors.torch import load_file

    config = GRPOTrainer.Config(**SMALL, warmup_ratio=0.0, learning_rate=5e-2, max_steps=2, lora=True)
    GRPOTrainer(config).train(job(tmp_path, tiny, PROMPTS, reward=Letters()))
    weights, base = load_file(tmp_path / "out/model.safetensors"), load_file(Path(tiny) / "model.safetensors")
    assert weights.keys() == base.keys()
    assert not torch.allclose(weights["model.layers.0.self_attn.v_proj.weight"],
                              base["model.layers.0.self_attn.v_proj.weight"])
    line = json.loads((tmp_path / "out/metrics.jsonl").read_text().splitlines()[-1])
    assert line["kl"] > 0  # after one update, the policy has moved away from its reference: itself
    # without the adapter
