"""The RL trainers of okapi_kit_rl on a tiny model: each learns a programmatic reward with its
default settings (only max_steps and learning_rate given), resumes, runs with LoRA and a critic,
and runs from the command line with a `module:function` reward."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported

import torch  # noqa: E402
from okapi_kit_rl import (  # noqa: E402
    CallableReward,
    CoPGTrainer,
    OfflineCoPGTrainer,
    PPOTrainer,
    ReinforceTrainer,
    RLOOTrainer,
)
from okapi_kit_rl.rollout import cut_at_eos, layout  # noqa: E402

from okapi_kit import OkapiError, TrainJob  # noqa: E402
from okapi_kit.plugins import registry  # noqa: E402
from okapi_kit.registry import create_component  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

TARGET = "a"


def count_reward(prompts, completions, **kwargs):
    """0-10: 10 once a completion holds 8 times the target character (TRL's reward signature)."""
    return [10.0 * min(c.count(TARGET), 8) / 8 for c in completions]


REWARD_MODULE = f'''
def count_reward(prompts, completions, **kwargs):
    return [10.0 * min(c.count({TARGET!r}), 8) / 8 for c in completions]
'''


@pytest.fixture(scope="module")
def reward(tmp_path_factory) -> CallableReward:
    folder = tmp_path_factory.mktemp("rewards")
    (folder / "rl_test_rewards.py").write_text(REWARD_MODULE)
    return create_component(registry(), "reward_source", "callable",
                            {"function": "rl_test_rewards:count_reward"}, where="test", base_dir=folder)


PROMPTS = [{"prompt": f"Question {i}: write a word. Answer: ", "language": "en"} for i in range(32)]


def job(tmp_path: Path, model: str, records=PROMPTS, **kw) -> TrainJob:
    return TrainJob(model=model, output_dir=tmp_path / "out", work_dir=tmp_path / "work", records=records,
                    seed=0, languages=["en"], **kw)


def read_metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@torch.no_grad()
def sampled_reward(path: str, n: int = 64) -> float:
    """Mean reward of ``n`` completions sampled from a saved model (plain transformers generate,
    the trainers' default sampling: temperature 1, 64 new tokens)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(path)
    ids = tok([PROMPTS[i % 4]["prompt"] for i in range(n)], return_tensors="pt", add_special_tokens=False)
    torch.manual_seed(1234)
    out = model.generate(**ids, do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=64,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    completions = []
    for row in out[:, ids["input_ids"].shape[1]:].tolist():
        cut, ended = cut_at_eos(row, {tok.eos_token_id}, 64)
        completions.append(tok.decode(cut[:-1] if ended else cut))
    return sum(count_reward([], completions)) / n


@pytest.fixture(scope="module")
def base_reward(tiny) -> float:
    return sampled_reward(tiny)


# Steps and learning rates for a tiny random model; everything else is the trainers' default.
LEARNING = {
    "ppo": (PPOTrainer, 30, 6e-3),
    "reinforce": (ReinforceTrainer, 20, 1e-2),
    "rloo": (RLOOTrainer, 20, 1e-2),
    "copg": (CoPGTrainer, 30, 1e-2),
}


@pytest.mark.parametrize("method", list(LEARNING))
def test_each_trainer_learns_the_reward_with_its_defaults(method, tiny, reward, base_reward, tmp_path):
    cls, steps, lr = LEARNING[method]
    result = cls(cls.Config(max_steps=steps, learning_rate=lr)).train(job(tmp_path, tiny, reward=reward))
    after = sampled_reward(str(result.output_dir))
    print(f"{method}: sampled reward {base_reward:.2f} -> {after:.2f}")
    assert after >= base_reward + 1.5 and after >= 3 * base_reward, (base_reward, after)
    lines = read_metrics(tmp_path / "out" / "metrics.jsonl")
    assert [m["step"] for m in lines] == [1, *range(10, steps + 1, 10)]  # logging_steps 10, and the first step
    for key in ("reward", "kl", "kl_coef", "eos_rate", "response_length", "lr"):
        assert all(key in m for m in lines), key
    if method == "ppo":
        assert all("value_loss" in m and "clip_frac" in m for m in lines)
    assert lines[0]["kl"] == pytest.approx(0.0, abs=1e-4)  # the policy starts as the reference
    assert lines[-1]["reward"] > lines[0]["reward"]
    assert result.metrics["global_step"] == steps


def scored_pairs(n: int = 32) -> list[dict]:
    """Pairs that differ only in how often the target character appears, with their rewards."""
    import random

    rng = random.Random(0)
    letters = "bcdefghij "
    out = []
    for i in range(n):
        good = "".join(TARGET if rng.random() < 0.5 else rng.choice(letters) for _ in range(16))
        bad = "".join(rng.choice(letters) for _ in range(16))
        r_good, r_bad = count_reward([], [good, bad])
        out.append({"prompt": PROMPTS[i % len(PROMPTS)]["prompt"], "chosen": good, "rejected": bad,
                    "chosen_reward": r_good, "rejected_reward": r_bad})
    return out


def test_offline_copg_learns_from_scored_pairs(tiny, base_reward, tmp_path):
    trainer = OfflineCoPGTrainer(OfflineCoPGTrainer.Config(max_steps=60, learning_rate=1e-2))
    result = trainer.train(job(tmp_path, tiny, records=scored_pairs()))
    after = sampled_reward(str(result.output_dir))
    print(f"copg_offline: sampled reward {base_reward:.2f} -> {after:.2f}")
    assert after >= base_reward + 1.5 and after >= 3 * base_reward, (base_reward, after)
    lines = read_metrics(tmp_path / "out" / "metrics.jsonl")
    assert lines[0]["kl"] == pytest.approx(0.0, abs=1e-4) and lines[-1]["loss"] < lines[0]["loss"]


class Killed(Exception):
    pass


def test_resume_after_a_checkpoint_ends_like_an_uninterrupted_run(tiny, reward, tmp_path):
    from safetensors.torch import load_file

    config = ReinforceTrainer.Config(max_steps=4, learning_rate=1e-2, save_steps=2, logging_steps=1)
    whole = ReinforceTrainer(config).train(job(tmp_path / "whole", tiny, reward=reward))

    def kill_at_3(step, total):
        if step == 3:
            raise Killed

    killed = job(tmp_path / "killed", tiny, reward=reward, progress=kill_at_3)
    with pytest.raises(Killed):
        ReinforceTrainer(config).train(killed)
    assert (tmp_path / "killed" / "work" / "checkpoints" / "step-2" / "state.json").is_file()
    assert not (tmp_path / "killed" / "out").exists()
    resumed = ReinforceTrainer(config).train(job(tmp_path / "killed", tiny, reward=reward))
    a = load_file(str(whole.output_dir / "model.safetensors"))
    b = load_file(str(resumed.output_dir / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=0)
    assert [m["step"] for m in read_metrics(tmp_path / "killed" / "out" / "metrics.jsonl")] == [1, 2, 3, 4]
    # a checkpoint of another job is never resumed
    changed = ReinforceTrainer.Config(max_steps=4, learning_rate=1e-2, save_steps=2, kl_coef=0.5)
    with pytest.raises(OkapiError, match="different training job"):
        ReinforceTrainer(changed).train(job(tmp_path / "killed", tiny, reward=reward))


def test_lora_ppo_uses_the_disabled_adapter_as_reference_and_saves_a_merged_model(tiny, reward, tmp_path):
    from safetensors.torch import load_file

    config = PPOTrainer.Config(max_steps=2, learning_rate=1e-2, lora=True, logging_steps=1,
                               gradient_checkpointing=True, adaptive_kl=True)
    result = PPOTrainer(config).train(job(tmp_path, tiny, reward=reward))
    lines = read_metrics(result.output_dir / "metrics.jsonl")
    assert lines[0]["kl"] == pytest.approx(0.0, abs=1e-5)  # LoRA starts as the identity: policy = reference
    assert lines[1]["kl"] != pytest.approx(0.0, abs=1e-5)
    # the adaptive controller saw KL 0 < target 6 after 16 samples: beta * (1 - 0.2 * 16 / 10000)
    assert lines[1]["kl_coef"] == pytest.approx(0.05 * (1 - 0.2 * 16 / 10000), rel=1e-5)
    assert not (result.output_dir / "adapter_config.json").exists()
    base, merged = load_file(str(Path(tiny) / "model.safetensors")), load_file(str(result.output_dir / "model.safetensors"))
    assert base.keys() == merged.keys()  # a complete plain model, adapters merged in
    assert any(not torch.equal(base[k], merged[k]) for k in base)
    assert sampled_reward(str(result.output_dir)) >= 0  # it loads and generates


def test_ppo_with_a_critic_from_the_reward_model_and_ptx(tiny, tmp_path):
    from okapi_kit_transformers.reward import RewardModelConfig, RewardModelSource
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    rm = tmp_path / "rm"
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_pretrained(tiny, num_labels=1).save_pretrained(rm)
    AutoTokenizer.from_pretrained(tiny).save_pretrained(rm)
    ptx = tmp_path / "ptx.jsonl"
    ptx.write_text("".join(json.dumps({"text": f"Some pretraining text number {i}."}) + "\n" for i in range(5)))
    config = PPOTrainer.Config(max_steps=2, learning_rate=1e-3, critic="reward_model", ptx_data=ptx,
                               logging_steps=1)
    source = RewardModelSource(RewardModelConfig(path=str(rm), device="cpu"))
    result = PPOTrainer(config).train(job(tmp_path, tiny, reward=source))
    lines = read_metrics(result.output_dir / "metrics.jsonl")
    assert all("ptx_loss" in m and m["ptx_loss"] > 0 and "value_loss" in m for m in lines)
    assert (result.output_dir / "model.safetensors").is_file()


def test_callable_reward_source_checks_its_function_and_results(tmp_path):
    (tmp_path / "my_rewards.py").write_text(
        "def good(prompts, completions, languages):\n    return [float(len(c)) for c in completions]\n"
        "def short(prompts, completions, **kw):\n    return [1.0]\n"
        "def nan(prompts, completions, **kw):\n    return [float('nan')] * len(completions)\n"
        "def no_completions(prompts):\n    return []\n")
    reg = registry()

    def make(spec, **options):
        return create_component(reg, "reward_source", "callable", {"function": spec, **options}, where="t",
                                base_dir=tmp_path)

    assert make("my_rewards:good").score(["p", "q"], ["ab", "c"], ["vi", "bn"]) == [2.0, 1.0]
    assert make("my_rewards.py:good").score(["p"], ["abc"], ["vi"]) == [3.0]
    with pytest.raises(OkapiError, match="returned 1 scores for 2"):
        make("my_rewards:short").score(["p", "q"], ["a", "b"], ["vi", "vi"])
    with pytest.raises(OkapiError, match="nan"):
        make("my_rewards:nan").score(["p"], ["a"], ["vi"])
    for spec, message in [("my_rewards", "not module:function"), ("no_such_module_xyz:f", "no module named"),
                          ("my_rewards:missing", "has no attribute"), ("my_rewards:no_completions", "completions")]:
        with pytest.raises(OkapiError, match=message):
            make(spec)
    with pytest.raises(OkapiError, match="takes no argument"):
        make("my_rewards:good", kwargs={"scale": 2})


def test_the_reward_function_gets_languages_and_its_kwargs(tiny, tmp_path):
    (tmp_path / "lang_rewards.py").write_text(
        "import json\n"
        "def logged(prompts, completions, log, **kwargs):\n"
        "    with open(log, 'a') as fh:\n"
        "        fh.write(json.dumps(kwargs['languages']) + '\\n')\n"
        "    return [0.0] * len(completions)\n")
    log = tmp_path / "calls.jsonl"
    source = create_component(registry(), "reward_source", "callable",
                              {"function": "lang_rewards:logged", "kwargs": {"log": str(log)}}, where="t",
                              base_dir=tmp_path)
    records = [{"prompt": "Xin chao: ", "language": "vi"}, {"prompt": "Hello: "}]
    config = RLOOTrainer.Config(max_steps=1, learning_rate=1e-3, batch_size=2, k=2, max_new_tokens=4)
    one = job(tmp_path, tiny, records=records, reward=source)
    one.languages = ["bn"]  # the language of records that name none
    RLOOTrainer(config).train(one)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(calls) == 1 and sorted(calls[0]) == ["bn", "bn", "vi", "vi"]


def test_bad_jobs_are_okapi_errors(tiny, reward, tmp_path):
    config = ReinforceTrainer.Config(max_steps=1)
    with pytest.raises(OkapiError, match="learns from a reward"):
        ReinforceTrainer(config).train(job(tmp_path, tiny))
    with pytest.raises(OkapiError, match="no string field 'prompt'"):
        ReinforceTrainer(config).train(job(tmp_path, tiny, records=[{"text": "x"}], reward=reward))
    with pytest.raises(OkapiError, match="not a scored pair"):
        OfflineCoPGTrainer(OfflineCoPGTrainer.Config(max_steps=1)).train(
            job(tmp_path, tiny, records=[{"prompt": "p", "chosen": "a", "rejected": "b"}]))
    with pytest.raises(OkapiError, match="reward source is not one"):
        PPOTrainer(PPOTrainer.Config(max_steps=1, critic="reward_model")).train(job(tmp_path, tiny, reward=reward))


def test_rollout_layout_and_eos_cut():
    assert cut_at_eos([5, 6, 2, 7], {2}, 8) == ([5, 6, 2], True)
    assert cut_at_eos([5, 6, 7], {2}, 2) == ([5, 6], False)
    ids, mask, response = layout([[9, 8], [7]], [[5, 2], [4, 4, 4]], pad_id=0, device="cpu")
    assert ids.tolist() == [[9, 8, 5, 2, 0], [0, 7, 4, 4, 4]]
    assert mask.tolist() == [[1, 1, 1, 1, 0], [0, 1, 1, 1, 1]]
    assert response.tolist() == [[1, 1, 0], [1, 1, 1]]


@torch.no_grad()
def test_training_log_probs_match_what_the_sampler_saw(tiny):
    """A forward pass over the rollout layout (prompts left-padded, completions after them) gives
    the log-probabilities of the logits generate() sampled from, token for token."""
    from okapi_kit_rl.modules import lm_logprobs
    from okapi_kit_transformers.tokens import pad
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(tiny)
    prompts = [tok(text, add_special_tokens=False)["input_ids"] for text in ("Hi", "A much longer prompt: ")]
    torch.manual_seed(0)
    out = model.generate(**pad(prompts, tok.pad_token_id, "left"), do_sample=True, max_new_tokens=6,
                         min_new_tokens=6, output_logits=True, return_dict_in_generate=True,
                         pad_token_id=tok.pad_token_id)
    sampled = out.sequences[:, -6:]
    expected = torch.stack(out.logits, 1).log_softmax(-1).gather(-1, sampled[..., None]).squeeze(-1)
    ids, mask, _ = layout(prompts, sampled.tolist(), tok.pad_token_id, "cpu")
    logps, _ = lm_logprobs(model, ids, mask, width=6, temperature=1.0)
    torch.testing.assert_close(logps, expected, atol=1e-4, rtol=0)


def test_train_command_with_a_python_reward_function(tiny, tmp_path, monkeypatch, capsys):
    """`okapi-kit train rloo ... --reward module:function`, through the command's entry function."""
    from okapi_kit.cli import main

    (tmp_path / "cli_rewards.py").write_text(REWARD_MODULE)
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps({"prompt": p["prompt"]}) + "\n" for p in PROMPTS))
    (tmp_path / "rloo.yaml").write_text("max_steps: 2\nlearning_rate: 0.001\nmax_new_tokens: 8\n")
    monkeypatch.chdir(tmp_path)  # the module is found in the working directory
    args = ["train", "rloo", "--model", tiny, "--data", "prompts.jsonl", "--options", "rloo.yaml", "--quiet"]
    assert main([*args, "--output", "run", "--reward", "cli_rewards:count_reward"]) == 0, capsys.readouterr().err
    model = tmp_path / "run" / "models" / "rloo"
    assert (model / "model.safetensors").is_file() and (model / "tokenizer.json").is_file()
    assert [m["step"] for m in read_metrics(model / "metrics.jsonl")] == [1, 2]
    # a bad spec is one error line (exit 2), no traceback
    capsys.readouterr()
    assert main([*args, "--output", "run2", "--reward", "cli_rewards:nope"]) == 2
    err = capsys.readouterr().err
    assert "has no attribute 'nope'" in err and "Traceback" not in err
