"""The TRL trainers (sft, reward, dpo) on tiny models: they learn, resume and log."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from okapi_kit_trl import DPOTrainer, RewardTrainer, SFTTrainer  # noqa: E402

from okapi_kit import OkapiError, TrainJob  # noqa: E402

pytestmark = pytest.mark.slow

FAST = dict(batch_size=8, gradient_accumulation_steps=1, logging_steps=1, save_steps=1000,
            gradient_checkpointing=False, warmup_ratio=0.0, lr_scheduler="constant", max_length=128)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run fastest (and steadiest on a shared machine) on one CPU thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    from okapi_kit_transformers.tiny import write_tiny_model

    return str(write_tiny_model(tmp_path_factory.mktemp("tiny") / "llama", hidden=32, layers=1, heads=2))


def job(tmp_path: Path, model: str, records, **kw) -> TrainJob:
    return TrainJob(model=model, output_dir=tmp_path / "out", work_dir=tmp_path / "work",
                    records=records, **kw)


def words(rng: random.Random, alphabet: str, n: int = 3) -> str:
    return " ".join("".join(rng.choice(alphabet) for _ in range(rng.randint(3, 5))) for _ in range(n))


def preference_pairs(n: int = 32) -> list[dict[str, str]]:
    """Chosen replies in Latin letters, rejected ones in Cyrillic: separable by script."""
    rng = random.Random(0)
    return [{"prompt": f"Question {i}: ", "chosen": words(rng, "abcdefghij"),
             "rejected": words(rng, "абвгдежзик")} for i in range(n)]


def load_lm(path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval(), AutoTokenizer.from_pretrained(path)


@torch.no_grad()
def completion_logps(model, tok, prompt: str, completion: str) -> tuple[float, int]:
    """Sum of the completion tokens' log-probabilities given the prompt (with the EOS TRL appends)."""
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    c = tok(completion, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    ids = torch.tensor([p + c])
    logp = model(ids).logits[0, :-1].log_softmax(-1)
    token_logps = logp[torch.arange(len(p) - 1, ids.shape[1] - 1), ids[0, len(p):]]
    return float(token_logps.sum()), len(c)


def read_metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# -- plugin shape -------------------------------------------------------------------------


def test_import_is_light():
    code = ("import sys, okapi_kit_trl\nfrom okapi_kit.plugins import registry\nregistry()\n"
            "print([m for m in ('torch', 'transformers', 'trl', 'datasets') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_registered_with_documented_configs():
    from okapi_kit.plugins import registry

    reg = registry()
    expected = {"sft": ("sft", "policy"), "reward": ("preference", "reward_model"), "dpo": ("preference", "policy")}
    for name, (data, produces) in expected.items():
        cls = reg.get("trainer", name).cls
        assert (cls.data, cls.produces) == (data, produces)
        undocumented = [f for f, info in cls.Config.model_fields.items() if not info.description]
        assert not undocumented, f"{name}: {undocumented}"
    assert RewardTrainer.Config().num_epochs == 2
    assert DPOTrainer.Config(loss_type="ipo").loss_type == "ipo"
    with pytest.raises(ValueError):
        DPOTrainer.Config(loss_type="kto")


def test_bad_records_are_user_errors(tmp_path, tiny):
    with pytest.raises(OkapiError, match="record 1 lacks"):
        SFTTrainer().train(job(tmp_path, tiny, [{"prompt": "a", "completion": "b"}, {"prompt": "a"}]))
    with pytest.raises(OkapiError, match="no training records"):
        RewardTrainer().train(job(tmp_path, tiny, []))


# -- learning -----------------------------------------------------------------------------


def test_sft_learns(tmp_path, tiny):
    greetings = ["xin chào", "bonjour", "hola amigo", "hallo welt", "привет", "ciao"]
    records = [{"prompt": f"Greet #{i}: ", "completion": greetings[i % len(greetings)]} for i in range(24)]
    steps = []
    trainer = SFTTrainer(SFTTrainer.Config(**FAST, learning_rate=3e-3, max_steps=30))
    result = trainer.train(job(tmp_path, tiny, records, progress=lambda s, n: steps.append((s, n))))

    assert steps[0] == (1, 30) and steps[-1] == (30, 30)
    out = tmp_path / "out"
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    lines = read_metrics(out / "metrics.jsonl")
    assert [m["step"] for m in lines] == list(range(1, 31))
    assert {"loss", "learning_rate", "mean_token_accuracy"} <= lines[0].keys()
    first, last = sum(m["loss"] for m in lines[:3]) / 3, sum(m["loss"] for m in lines[-3:]) / 3
    assert last < first - 1.0
    assert result.metrics["global_step"] == 30

    def mean_token_logp(path):
        model, tok = load_lm(path)
        pairs = [completion_logps(model, tok, r["prompt"], r["completion"]) for r in records]
        return sum(s for s, _ in pairs) / sum(n for _, n in pairs)

    base, trained = mean_token_logp(tiny), mean_token_logp(out)
    assert trained > base + 1.5, (base, trained)


@torch.no_grad()
def rewards(path, records) -> tuple[float, float]:
    """Accuracy and mean margin r(chosen) - r(rejected) of a saved reward model on ``records``."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(path)
    model.config.pad_token_id = tok.pad_token_id

    def r(text):
        return float(model(**tok(text + tok.eos_token, return_tensors="pt", add_special_tokens=False)).logits[0, 0])

    margins = [r(x["prompt"] + x["chosen"]) - r(x["prompt"] + x["rejected"]) for x in records]
    return sum(m > 0 for m in margins) / len(margins), sum(margins) / len(margins)


def test_reward_model_separates_preferences(tmp_path, tiny):
    records = preference_pairs()
    trainer = RewardTrainer(RewardTrainer.Config(**FAST, learning_rate=3e-3, max_steps=30))
    trainer.train(job(tmp_path, tiny, records))
    out = tmp_path / "out"
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(out)
    assert config.num_labels == 1 and config.architectures[0].endswith("ForSequenceClassification")
    # before: the base LM with a fresh (seeded) score head, as the trainer starts
    torch.manual_seed(0)
    _, margin_before = rewards(tiny, records)
    accuracy, margin = rewards(out, records)
    assert accuracy >= 0.9 and margin > 0 and margin > margin_before + 1.0, (margin_before, accuracy, margin)
    lines = read_metrics(out / "metrics.jsonl")
    assert {"accuracy", "margin", "loss", "learning_rate"} <= lines[-1].keys()
    assert lines[-1]["accuracy"] >= 0.9


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo"])
def test_dpo_raises_the_implicit_reward_margin(tmp_path, tiny, loss_type):
    records = preference_pairs(16)
    beta = 0.1
    trainer = DPOTrainer(DPOTrainer.Config(**FAST, learning_rate=1e-3, max_steps=15, beta=beta,
                                           loss_type=loss_type))
    trainer.train(job(tmp_path, tiny, records, reference_model=tiny))
    ref, tok = load_lm(tiny)
    policy, _ = load_lm(tmp_path / "out")

    def margin(model):
        total = 0.0
        for x in records:
            w = completion_logps(model, tok, x["prompt"], x["chosen"])[0] - completion_logps(ref, tok, x["prompt"], x["chosen"])[0]
            l_ = completion_logps(model, tok, x["prompt"], x["rejected"])[0] - completion_logps(ref, tok, x["prompt"], x["rejected"])[0]
            total += beta * (w - l_)
        return total / len(records)

    assert margin(ref) == 0.0
    after = margin(policy)
    assert after > 0.5, after
    lines = read_metrics(tmp_path / "out" / "metrics.jsonl")
    assert lines[0]["rewards/margins"] == pytest.approx(0.0, abs=1e-6)
    assert lines[-1]["rewards/margins"] > 0.5


# -- losses on fixed tensors (ALGORITHMS.md) ----------------------------------------------


class _OneProcess:
    device = torch.device("cpu")

    def gather(self, tensor):
        return tensor

    gather_for_metrics = gather


def _stub(cls, **attrs):
    """A TRL trainer object without its __init__, carrying just what the loss code reads."""
    trainer = object.__new__(cls)
    vars(trainer).update(model=SimpleNamespace(training=True), accelerator=_OneProcess(), _tp_size=1,
                         _total_train_tokens=0, _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
                         **attrs)
    return trainer


def trl_dpo_loss(loss_type, beta, token_logps, completion_mask, ref_chosen, ref_rejected):
    import trl

    trainer = _stub(trl.DPOTrainer, beta=beta, precompute_ref_logps=True, loss_types=[loss_type],
                    loss_weights=[1.0], ld_alpha=None, f_divergence_type="reverse_kl",
                    aux_loss_enabled=False, use_weighting=False, label_smoothing=0.0)
    n, t = completion_mask.shape

    def model(**kwargs):
        zeros = torch.zeros(n, t - 1)
        return SimpleNamespace(log_probs=token_logps, entropy=zeros, mean_logits=zeros, is_top1=zeros.bool())

    inputs = {"input_ids": torch.zeros(n, t, dtype=torch.long), "attention_mask": torch.ones(n, t, dtype=torch.long),
              "completion_mask": completion_mask, "ref_chosen_logps": ref_chosen, "ref_rejected_logps": ref_rejected}
    return float(trainer._compute_loss(model, inputs, return_outputs=False))


def test_dpo_and_ipo_losses_match_the_formulas():
    # 2 pairs: rows 0-1 chosen, rows 2-3 rejected; completion lengths 3, 2, 4, 1 tokens
    completion_mask = torch.tensor([[0, 1, 1, 1, 0], [0, 0, 1, 1, 0], [0, 1, 1, 1, 1], [0, 0, 0, 0, 1]])
    shifted = completion_mask[:, 1:].float()
    token_logps = -torch.linspace(0.2, 3.0, shifted.numel()).reshape(shifted.shape) * shifted
    logps = token_logps.sum(1)
    ref_chosen, ref_rejected = torch.tensor([-4.0, -2.5]), torch.tensor([-6.0, -1.0])
    chosen_ratio, rejected_ratio = logps[:2] - ref_chosen, logps[2:] - ref_rejected
    h = chosen_ratio - rejected_ratio
    beta = 0.3

    dpo = -torch.nn.functional.logsigmoid(beta * h).mean()
    assert trl_dpo_loss("sigmoid", beta, token_logps, completion_mask, ref_chosen, ref_rejected) == pytest.approx(float(dpo), rel=1e-6)

    # IPO (Azar et al.): (h - 1/(2 tau))^2 with tau = beta. TRL 1.x divides each log-ratio by its
    # completion's token count first (mean per-token log-ratio), not the paper's sequence sums.
    lengths = completion_mask.sum(1).float()
    h_mean = chosen_ratio / lengths[:2] - rejected_ratio / lengths[2:]
    ipo_trl = ((h_mean - 1 / (2 * beta)) ** 2).mean()
    ipo_paper = ((h - 1 / (2 * beta)) ** 2).mean()
    got = trl_dpo_loss("ipo", beta, token_logps, completion_mask, ref_chosen, ref_rejected)
    assert got == pytest.approx(float(ipo_trl), rel=1e-6)
    assert got != pytest.approx(float(ipo_paper), rel=1e-3)


def test_reward_loss_matches_bradley_terry():
    import trl

    trainer = _stub(trl.RewardTrainer, args=SimpleNamespace(center_rewards_coefficient=None))
    scores = torch.tensor([[1.5], [-0.2], [0.3], [0.4], [0.0], [2.0]])  # 3 chosen then 3 rejected

    def model(**kwargs):
        return SimpleNamespace(logits=scores)

    inputs = {"input_ids": torch.zeros(6, 4, dtype=torch.long), "attention_mask": torch.ones(6, 4, dtype=torch.long)}
    got = float(trainer.compute_loss(model, inputs))
    expected = -torch.nn.functional.logsigmoid(scores[:3, 0] - scores[3:, 0]).mean()
    assert got == pytest.approx(float(expected), rel=1e-6)
    assert trainer._metrics["train"]["accuracy"] == [pytest.approx(1 / 3)]  # only 1.5 > 0.4


# -- checkpoints --------------------------------------------------------------------------


class Stop(Exception):
    pass


def test_interrupted_run_resumes_to_the_same_weights(tmp_path, tiny):
    from safetensors.torch import load_file

    records = [{"prompt": f"P{i} ", "completion": f"answer {i * 7 % 10}"} for i in range(16)]
    config = SFTTrainer.Config(**{**FAST, "batch_size": 4, "save_steps": 2, "lr_scheduler": "linear",
                                  "warmup_ratio": 0.2}, learning_rate=2e-3, max_steps=6)

    SFTTrainer(config).train(job(tmp_path / "straight", tiny, records, seed=3))

    def stop_at_5(step, total):
        if step == 5:
            raise Stop

    with pytest.raises(Stop):
        SFTTrainer(config).train(job(tmp_path / "resumed", tiny, records, seed=3, progress=stop_at_5))
    assert (tmp_path / "resumed/work/checkpoints/checkpoint-4").is_dir()
    assert not (tmp_path / "resumed/out").exists()
    seen = []
    SFTTrainer(config).train(job(tmp_path / "resumed", tiny, records, seed=3, progress=lambda s, n: seen.append(s)))
    assert seen == [5, 6]  # continued from checkpoint-4

    a = load_file(tmp_path / "straight/out/model.safetensors")
    b = load_file(tmp_path / "resumed/out/model.safetensors")
    base = load_file(Path(tiny) / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert not all(torch.allclose(a[k], base[k]) for k in a)
    steps = [m["step"] for m in read_metrics(tmp_path / "resumed/out/metrics.jsonl")]
    assert steps == [1, 2, 3, 4, 5, 6]

    # a checkpoint of another job in the same work folder is not resumed silently
    with pytest.raises(OkapiError, match="different training job"):
        SFTTrainer(config).train(job(tmp_path / "resumed", tiny, records[:8], seed=3))
