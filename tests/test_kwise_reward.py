"""The K-wise reward model (InstructGPT loss): the loss on fixed tensors, the batching, learning
a separable ranking set, LoRA, resuming, and the reward_model stage's records."""

from __future__ import annotations

import json
import math
import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported

import torch  # noqa: E402
from okapi_kit_transformers.reward import RewardModelSource  # noqa: E402
from okapi_kit_trl import RewardTrainer  # noqa: E402
from okapi_kit_trl.kwise_loss import ranking_loss, reward_table  # noqa: E402

from okapi_kit import OkapiError, TrainJob  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def nll(d: float) -> float:
    """-log sigma(d), written out."""
    return math.log(1 + math.exp(-d))


# -- the loss against the formula --------------------------------------------------------------


def test_one_ranking_averages_its_three_pairs():
    """A > B > C with rewards 2, 1, -1: pairs A>B (1), A>C (3), B>C (2), divided by C(3,2) = 3."""
    rewards = torch.tensor([[2.0, 1.0, -1.0]])
    loss, stats = ranking_loss(rewards, torch.tensor([3]))
    assert float(loss) == pytest.approx((nll(1) + nll(3) + nll(2)) / 3, rel=1e-6)
    assert (stats.correct, stats.pairs, stats.margin) == (3, 3, pytest.approx(6.0))


def test_each_prompt_weighs_the_same_whatever_its_k():
    """K = 3 next to K = 2 (the table padded with a value the loss must ignore): the batch loss is
    the mean of the two per-prompt losses, not the mean over the four pairs."""
    rewards = torch.tensor([[2.0, 1.0, -1.0], [0.5, 1.5, 99.0]])
    loss, stats = ranking_loss(rewards, torch.tensor([3, 2]))
    first, second = (nll(1) + nll(3) + nll(2)) / 3, nll(-1.0)
    assert float(loss) == pytest.approx((first + second) / 2, rel=1e-6)
    assert float(loss) != pytest.approx((nll(1) + nll(3) + nll(2) + nll(-1.0)) / 4, rel=1e-3)
    assert (stats.correct, stats.pairs, stats.prompts) == (3, 4, 2)
    assert stats.margin == pytest.approx(1 + 3 + 2 - 1)
    assert stats.loss == pytest.approx(first + second, rel=1e-6)


def test_pairs_are_bradley_terry():
    r_w, r_l = torch.tensor([0.3, -2.0]), torch.tensor([-0.2, 1.0])
    loss, _ = ranking_loss(torch.stack([r_w, r_l], dim=1), torch.tensor([2, 2]))
    assert float(loss) == pytest.approx((nll(0.5) + nll(-3.0)) / 2, rel=1e-6)


def test_gradient_of_a_ranking():
    """d loss / d r_1 = -(sigma(-(r1-r2)) + sigma(-(r1-r3))) / 3 for one prompt of K = 3."""
    rewards = torch.tensor([[2.0, 1.0, -1.0]], requires_grad=True)
    ranking_loss(rewards, torch.tensor([3]))[0].backward()

    def sig(x):
        return 1 / (1 + math.exp(-x))

    want = [-(sig(-1) + sig(-3)) / 3, (sig(-1) - sig(-2)) / 3, (sig(-3) + sig(-2)) / 3]
    assert rewards.grad[0].tolist() == pytest.approx(want, rel=1e-5)


def test_centring_penalty():
    rewards = torch.tensor([[2.0, 1.0, -1.0], [0.5, 1.5, 0.0]])
    counts = torch.tensor([3, 2])
    plain, _ = ranking_loss(rewards, counts)
    centred, _ = ranking_loss(rewards, counts, center_coefficient=0.01)
    # (2 * mean)^2 per prompt: (2 * 2/3)^2 and (r_w + r_l)^2 = 2^2
    assert float(centred - plain) == pytest.approx(0.01 * ((4 / 3) ** 2 + 4.0) / 2, rel=1e-5)


def test_a_ranking_needs_two_responses():
    with pytest.raises(ValueError, match="at least two"):
        ranking_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([1]))


def test_flat_scores_become_a_table_of_rankings():
    flat = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    table = reward_table(flat, torch.tensor([3, 2]))
    assert table.tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 0.0]]


# -- records ----------------------------------------------------------------------------------


def job(tmp_path: Path, model: str, records, **kw) -> TrainJob:
    return TrainJob(model=model, output_dir=tmp_path / "out", work_dir=tmp_path / "work", records=records, **kw)


@pytest.mark.parametrize("record", [
    {"prompt": "p", "responses": ["only one"]},
    {"prompt": "p", "responses": "a, b"},
    {"prompt": "p", "responses": ["a", 3]},
    {"prompt": "p", "chosen": "a", "rejected": "b"},
    {"responses": ["a", "b"]},
])
def test_a_record_that_is_not_a_ranking_is_a_user_error(tmp_path, tiny, record):
    with pytest.raises(OkapiError, match="record 1 is not a ranking") as info:
        RewardTrainer().train(job(tmp_path, tiny, [{"prompt": "q", "responses": ["a", "b"]}, record]))
    assert "best first" in info.value.hint


def test_rankings_of_one_distinct_response_teach_nothing(tmp_path, tiny):
    with pytest.raises(OkapiError, match="one distinct response"):
        RewardTrainer().train(job(tmp_path, tiny, [{"prompt": "q", "responses": ["a", "a"]}]))


# -- training ---------------------------------------------------------------------------------

FAST = dict(batch_size=8, gradient_accumulation_steps=1, logging_steps=5, save_steps=1000,
            gradient_checkpointing=False, warmup_ratio=0.0, lr_scheduler="constant", max_length=128)
LATIN, CYRILLIC = "abcdefghij", "абвгдежзик"


def rankings(n: int, seed: int, k: int = 4) -> list[dict]:
    """K responses of three words each; the more Latin (less Cyrillic) words, the better."""
    rng = random.Random(seed)

    def word(alphabet):
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(2, 4)))

    out = []
    for i in range(n):
        responses = []
        for good in range(k - 1, -1, -1):  # best first
            words = [word(LATIN) for _ in range(good)] + [word(CYRILLIC) for _ in range(k - 1 - good)]
            rng.shuffle(words)
            responses.append(" ".join(words))
        out.append({"prompt": f"Question {seed}-{i}: ", "responses": responses})
    return out


def pairwise_accuracy(path, records) -> float:
    """Share of the pairs of each ranking that the model at ``path`` orders right, scored by the
    reward_model reward source (as the pipeline scores samples)."""
    source = RewardModelSource(RewardModelSource.Config(path=str(path), device="cpu"))
    right = total = 0
    for r in records:
        scores = source.score([r["prompt"]] * len(r["responses"]), r["responses"], ["xx"] * len(r["responses"]))
        for i in range(len(scores)):
            for j in range(i + 1, len(scores)):
                right += scores[i] > scores[j]
                total += 1
    return right / total


def read_metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_kwise_reward_model_ranks_held_out_prompts(tmp_path, tiny):
    train = rankings(64, seed=0)
    fresh = rankings(16, seed=1)
    torch.manual_seed(0)  # the base LM with a fresh score head, as the trainer starts
    before = pairwise_accuracy(tiny, fresh)
    config = RewardTrainer.Config(**FAST, learning_rate=3e-3, max_steps=20, eval_fraction=0.25, eval_steps=10)
    result = RewardTrainer(config).train(job(tmp_path, tiny, train))

    assert before < 0.95, before  # an untrained head does not pass (it orders 78% of the pairs)
    assert result.metrics["eval_accuracy"] >= 0.95, result.metrics
    assert result.metrics["eval_pairs"] == 16 * 6  # a quarter of 64 prompts held out, C(4,2) pairs each
    assert pairwise_accuracy(tmp_path / "out", fresh) >= 0.95
    lines = read_metrics(tmp_path / "out" / "metrics.jsonl")
    assert [m["step"] for m in lines] == [5, 10, 15, 20]  # one line per logged step
    assert [m["step"] for m in lines if "eval_accuracy" in m] == [10, 20]  # every eval_steps
    assert {"loss", "accuracy", "margin", "learning_rate", "eval_loss", "eval_margin"} <= lines[-1].keys()
    assert lines[-1]["loss"] < lines[0]["loss"]


def test_all_responses_of_a_batch_in_one_forward_pass(tmp_path, tiny, monkeypatch):
    """Two rankings of K = 4 per step: one forward pass over their 8 responses (not one per pair)."""
    import okapi_kit_trl.kwise as kwise

    rows_seen: list[int] = []

    class Counting(kwise.RankingRewardTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.model.register_forward_pre_hook(
                lambda _m, _a, kw: rows_seen.append(kw["input_ids"].shape[0]), with_kwargs=True)

    monkeypatch.setattr(kwise, "RankingRewardTrainer", Counting)
    config = RewardTrainer.Config(**{**FAST, "batch_size": 2}, max_steps=3, eval_fraction=0)
    RewardTrainer(config).train(job(tmp_path, tiny, rankings(6, seed=2)))
    assert rows_seen == [8, 8, 8]


def test_lora_reward_model(tmp_path, tiny):
    from safetensors.torch import load_file

    train = rankings(64, seed=0)
    config = RewardTrainer.Config(**FAST, learning_rate=1e-2, max_steps=30, eval_fraction=0.25, lora={"r": 8})
    result = RewardTrainer(config).train(job(tmp_path, tiny, train))
    out = tmp_path / "out"
    assert result.metrics["eval_accuracy"] >= 0.9, result.metrics
    assert not (out / "adapter_config.json").exists()  # a whole model, the adapter merged in
    assert (tmp_path / "work" / "adapter" / "adapter_config.json").is_file()
    weights, base = load_file(out / "model.safetensors"), load_file(Path(tiny) / "model.safetensors")
    assert "score.weight" in weights
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.allclose(weights[q], base[q])  # LoRA changed a linear layer ...
    emb = "model.embed_tokens.weight"
    assert torch.equal(weights[emb], base[emb])  # ... and left the embeddings as they were
    assert pairwise_accuracy(out, rankings(16, seed=1)) >= 0.9


class Stop(Exception):
    pass


def test_interrupted_reward_training_resumes_to_the_same_weights(tmp_path, tiny):
    from safetensors.torch import load_file

    records = rankings(24, seed=3, k=3)
    config = RewardTrainer.Config(**{**FAST, "batch_size": 4, "save_steps": 2, "logging_steps": 1},
                                  learning_rate=3e-3, max_steps=5, eval_fraction=0)
    RewardTrainer(config).train(job(tmp_path / "straight", tiny, records, seed=3))

    def stop_at_3(step, total):
        if step == 3:
            raise Stop

    with pytest.raises(Stop):
        RewardTrainer(config).train(job(tmp_path / "resumed", tiny, records, seed=3, progress=stop_at_3))
    RewardTrainer(config).train(job(tmp_path / "resumed", tiny, records, seed=3))
    a = load_file(tmp_path / "straight/out/model.safetensors")
    b = load_file(tmp_path / "resumed/out/model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert [m["step"] for m in read_metrics(tmp_path / "resumed/out/metrics.jsonl")] == [1, 2, 3, 4, 5]


# -- the held-out split and the reward_model stage's records ----------------------------------------


def test_held_out_split_takes_whole_prompts():
    from okapi_kit_trl.kwise import split_held_out

    records = [{"prompt": f"p{i // 2}", "responses": ["a", "b"], "n": i} for i in range(40)]  # 2 per prompt
    train, held = split_held_out(records, 0.1, seed=0)
    assert len(held) == 4 and len(train) == 36
    assert not {r["prompt"] for r in held} & {r["prompt"] for r in train}
    assert split_held_out(records, 0.1, seed=0) == (train, held)
    assert split_held_out(records, 0.1, seed=1)[1] != held
    assert split_held_out(records, 0.0, seed=0) == (records, [])
    assert split_held_out(records[:2], 0.5, seed=0) == (records[:2], [])  # one prompt: nothing held out


def test_reward_model_stage_gives_rankings_best_first():
    from okapi_kit.records import Ranking
    from okapi_kit.stages.reward_model import kwise_rankings

    r = Ranking(id="1", lang="vi", prompt="P", responses=["b", "a", "c", "d"], order=[1, 0, 3, 2])
    same = Ranking(id="2", lang="vi", prompt="Q", responses=["x", "x"], order=[0, 1])
    assert kwise_rankings([r, same], "all", lambda x: x.prompt + "!") == [
        {"prompt": "P!", "responses": ["a", "b", "d", "c"]}]
    assert kwise_rankings([r], "best_worst", lambda x: x.prompt) == [{"prompt": "P", "responses": ["a", "c"]}]
