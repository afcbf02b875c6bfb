"""The TRL trainers (sft, reward, dpo, grpo) on tiny models: they learn, resume and log; LoRA,
model loading options and trl_args reach them."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported

import torch  # noqa: E402
from okapi_kit_transformers.reward import RewardModelSource  # noqa: E402
from okapi_kit_trl import DPOTrainer, GRPOTrainer, IPOTrainer, RewardTrainer, SFTTrainer  # noqa: E402

from okapi_kit import OkapiError, TrainJob  # noqa: E402
from okapi_kit.registry import Registry, create_component  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

FAST = dict(batch_size=8, gradient_accumulation_steps=1, logging_steps=1, save_steps=1000,
            gradient_checkpointing=False, warmup_ratio=0.0, lr_scheduler="constant", max_length=128)


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
    expected = {"sft": ("sft", "policy"), "reward": ("ranking", "reward_model"), "dpo": ("preference", "policy"),
                "ipo": ("preference", "policy"), "grpo": ("prompts", "policy")}
    for name, (data, produces) in expected.items():
        cls = reg.get("trainer", name).cls
        assert (cls.data, cls.produces) == (data, produces)
        undocumented = [f for f, info in cls.Config.model_fields.items() if not info.description]
        assert not undocumented, f"{name}: {undocumented}"
        assert {"dtype", "attn_implementation", "lora", "trl_args"} <= cls.Config.model_fields.keys()
    assert RewardTrainer.Config().num_epochs == 2
    assert DPOTrainer.Config(loss_type="ipo").loss_type == "ipo"
    with pytest.raises(ValueError):
        DPOTrainer.Config(loss_type="kto")
    # ipo: dpo with the loss fixed to IPO's; beta is IPO's tau, TRL's default 0.1
    assert (IPOTrainer.Config().loss_type, IPOTrainer.Config().beta) == ("ipo", 0.1)
    with pytest.raises(ValueError):
        IPOTrainer.Config(loss_type="sigmoid")


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


def rewards(path, records) -> tuple[float, float]:
    """Accuracy and mean margin r(chosen) - r(rejected) of a reward model, scored by okapi-kit's
    reward_model reward source (as the pipeline scores samples)."""
    source = RewardModelSource(RewardModelSource.Config(path=str(path), device="cpu"))
    prompts = [x["prompt"] for x in records]
    chosen = source.score(prompts, [x["chosen"] for x in records], ["xx"] * len(records))
    rejected = source.score(prompts, [x["rejected"] for x in records], ["xx"] * len(records))
    margins = [c - r for c, r in zip(chosen, rejected)]
    return sum(m > 0 for m in margins) / len(margins), sum(margins) / len(margins)


def test_reward_model_separates_preferences(tmp_path, tiny):
    """Pairs train the K-wise reward model as rankings of K = 2."""
    records = preference_pairs()
    trainer = RewardTrainer(RewardTrainer.Config(**FAST, learning_rate=3e-3, max_steps=30))
    trainer.train(job(tmp_path, tiny, [{"prompt": x["prompt"], "responses": [x["chosen"], x["rejected"]]}
                                       for x in records]))
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
    train_lines = [m for m in lines if "loss" in m]
    assert {"accuracy", "margin", "loss", "learning_rate"} <= train_lines[-1].keys()
    assert train_lines[-1]["accuracy"] >= 0.9
    # the default eval_fraction holds 5% of the prompts out (2 of 32) and reports their pairs
    assert lines[-1]["step"] == 30 and lines[-1]["eval_pairs"] == 2 and "eval_accuracy" in lines[-1]


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

    after = margin(policy)
    assert after > 0.5, after
    lines = read_metrics(tmp_path / "out" / "metrics.jsonl")
    assert lines[-1]["rewards/margins"] > lines[0]["rewards/margins"] + 0.5


# -- okapi-kit's options reach TRL --------------------------------------------------------


@pytest.mark.parametrize("loss_type, beta, first_loss", [
    ("sigmoid", 0.1, math.log(2)),  # -log sigma(beta * 0)
    ("ipo", 0.1, 25.0),             # (0 - 1/(2 beta))^2
    ("ipo", 0.25, 4.0),
])
def test_loss_type_and_beta_reach_trl(tmp_path, tiny, loss_type, beta, first_loss):
    """At the first step the policy is its reference (the job's model), so every log-ratio h is
    0: the first logged loss is the chosen loss's value at h = 0."""
    trainer = DPOTrainer(DPOTrainer.Config(**FAST, max_steps=1, beta=beta, loss_type=loss_type))
    trainer.train(job(tmp_path, tiny, preference_pairs(8)))
    [line] = read_metrics(tmp_path / "out" / "metrics.jsonl")
    assert line["loss"] == pytest.approx(first_loss, rel=1e-4)


def test_the_ipo_trainer_reaches_trl_as_ipo(tmp_path, tiny):
    """The ``ipo`` trainer with its defaults: the first loss is (0 - 1/(2 * 0.1))^2, as ``dpo`` with
    ``loss_type: ipo`` and beta 0.1."""
    IPOTrainer(IPOTrainer.Config(**FAST, max_steps=1)).train(job(tmp_path, tiny, preference_pairs(8)))
    [line] = read_metrics(tmp_path / "out" / "metrics.jsonl")
    assert line["loss"] == pytest.approx(25.0, rel=1e-4)


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


# -- LoRA -----------------------------------------------------------------------------------------


def test_lora_sft_learns_and_saves_a_merged_model(tmp_path, tiny):
    from safetensors.torch import load_file

    records = [{"prompt": f"Greet #{i}: ", "completion": ["xin chào", "bonjour", "hola"][i % 3]} for i in range(24)]
    config = SFTTrainer.Config(**FAST, learning_rate=1e-2, max_steps=30, lora={"r": 8})
    SFTTrainer(config).train(job(tmp_path, tiny, records))
    out = tmp_path / "out"
    assert not (out / "adapter_config.json").exists()
    weights, base = load_file(out / "model.safetensors"), load_file(Path(tiny) / "model.safetensors")
    assert weights.keys() == base.keys()
    assert torch.equal(weights["model.embed_tokens.weight"], base["model.embed_tokens.weight"])
    assert not torch.allclose(weights["model.layers.0.mlp.down_proj.weight"], base["model.layers.0.mlp.down_proj.weight"])

    def mean_token_logp(path):
        model, tok = load_lm(path)
        pairs = [completion_logps(model, tok, r["prompt"], r["completion"]) for r in records]
        return sum(s for s, _ in pairs) / sum(n for _, n in pairs)

    assert mean_token_logp(out) > mean_token_logp(tiny) + 0.3  # full fine-tuning: +1.5 (test_sft_learns)


def count_loads(monkeypatch) -> list[str]:
    """The model classes loaded with from_pretrained from now on."""
    from transformers import PreTrainedModel

    loads: list[str] = []
    original = PreTrainedModel.from_pretrained.__func__

    def counting(cls, *args, **kwargs):
        loads.append(cls.__name__)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(PreTrainedModel, "from_pretrained", classmethod(counting))
    return loads


def test_lora_dpo_uses_the_policy_without_its_adapter_as_reference(tmp_path, tiny, monkeypatch):
    """No second copy of the model is loaded for the reference: one load to train, one to merge
    the adapter at the end (against three with a reference in another folder)."""
    import shutil

    records = preference_pairs(16)
    beta = 0.1
    loads = count_loads(monkeypatch)
    config = DPOTrainer.Config(**FAST, learning_rate=1e-2, max_steps=15, beta=beta, lora=True)
    DPOTrainer(config).train(job(tmp_path / "same", tiny, records, reference_model=tiny))
    assert loads == ["LlamaForCausalLM"] * 2
    lines = read_metrics(tmp_path / "same/out/metrics.jsonl")
    assert lines[0]["loss"] == pytest.approx(math.log(2), rel=1e-4)  # the reference is the starting policy
    ref, tok = load_lm(tiny)
    policy, _ = load_lm(tmp_path / "same/out")
    margin = sum(beta * ((completion_logps(policy, tok, x["prompt"], x["chosen"])[0]
                          - completion_logps(ref, tok, x["prompt"], x["chosen"])[0])
                         - (completion_logps(policy, tok, x["prompt"], x["rejected"])[0]
                            - completion_logps(ref, tok, x["prompt"], x["rejected"])[0])) for x in records)
    assert margin / len(records) > 0.3

    other = shutil.copytree(tiny, tmp_path / "reference")
    loads.clear()
    DPOTrainer(DPOTrainer.Config(**FAST, max_steps=1, lora=True)).train(
        job(tmp_path / "other", tiny, records, reference_model=str(other)))
    assert loads == ["LlamaForCausalLM"] * 3


# -- model loading options and trl_args ---------------------------------------------------------


def test_dtype_and_attention_kernel_reach_the_model(tmp_path, tiny):
    from safetensors.torch import load_file

    records = [{"prompt": "a ", "completion": "b"}] * 8
    SFTTrainer(SFTTrainer.Config(**FAST, max_steps=1, dtype="bf16", attn_implementation="eager")).train(
        job(tmp_path, tiny, records))
    assert {t.dtype for t in load_file(tmp_path / "out/model.safetensors").values()} == {torch.bfloat16}
    with pytest.raises(OkapiError, match="attn_implementation=\"banana\"") as info:
        SFTTrainer(SFTTrainer.Config(attn_implementation="banana")).train(job(tmp_path / "bad", tiny, records))
    assert "could not load model" in info.value.message


def create(cls, options: dict):
    """A trainer as ``validate`` builds it from a config's options."""
    reg = Registry()
    reg.add("trainer", cls, plugin="test")
    return create_component(reg, "trainer", cls.name, options, where="config.yaml: alignment[0].trainer")


def test_trl_args_are_checked_at_validation():
    assert create(SFTTrainer, {"trl_args": {"optim": "sgd"}}).config.trl_args == {"optim": "sgd"}
    assert create(RewardTrainer, {"trl_args": {"optim": "sgd"}}).config.trl_args == {"optim": "sgd"}
    with pytest.raises(OkapiError, match="'packin' is not a field of trl.SFTConfig; did you mean the option packing"):
        create(SFTTrainer, {"trl_args": {"packin": True}})
    with pytest.raises(OkapiError, match="'bta' is not a field of trl.DPOConfig; did you mean the option beta"):
        create(DPOTrainer, {"trl_args": {"bta": 0.2}})
    with pytest.raises(OkapiError, match="'learning_rate' is set by the option learning_rate"):
        create(GRPOTrainer, {"trl_args": {"learning_rate": 1.0}})
    with pytest.raises(OkapiError, match="'output_dir' cannot be set"):
        create(RewardTrainer, {"trl_args": {"output_dir": "x"}})
    with pytest.raises(OkapiError, match="'loss_type' is not a field of transformers.TrainingArguments"):
        create(RewardTrainer, {"trl_args": {"loss_type": "x"}})  # the reward loop is transformers' Trainer


def test_trl_args_reach_trl(tmp_path, tiny):
    """TRL's SFT loss_type "dft" weighs each token's NLL by its (detached) probability: on a
    model that spreads its probability over ~260 tokens, the first loss is about 1/260 of the NLL."""
    records = [{"prompt": f"P{i} ", "completion": "hello"} for i in range(8)]
    first = {}
    for loss_type in ("nll", "dft"):
        options = {"trl_args": {"loss_type": loss_type}} if loss_type == "dft" else {}
        SFTTrainer(SFTTrainer.Config(**FAST, max_steps=1, **options)).train(job(tmp_path / loss_type, tiny, records))
        [line] = read_metrics(tmp_path / loss_type / "out" / "metrics.jsonl")
        first[loss_type] = line["loss"]
    assert first["nll"] > 5.0
    assert first["dft"] < first["nll"] / 50


def test_refused_training_arguments_are_user_errors(tmp_path, tiny):
    records = [{"prompt": "a ", "completion": "b"}] * 8
    config = SFTTrainer.Config(**FAST, max_steps=1, trl_args={"optim": "no_such_optimizer"})
    with pytest.raises(OkapiError, match="TRL refused the training arguments"):
        SFTTrainer(config).train(job(tmp_path, tiny, records))
