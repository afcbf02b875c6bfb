"""BOS/EOS: sampling, the reward source, SFT / reward / DPO training and lm-eval see the same ids.

The rule (okapi_kit_transformers.tokens): a generation prompt is START + tokens(prompt), a
trained or scored sequence START + tokens(prompt + response) + EOS, where START is what the
tokenizer puts before a text and nothing it appends by itself is kept.

The expected ids are written out here from the tokenizer's plain encoding, and the ids
each component uses are taken from what it hands to the model (generate's inputs, the
reward model's forward inputs) or to its trainer loop (TRL's or transformers', the
trainer's processed dataset).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import okapi_kit_trl.kwise as kwise  # noqa: E402
import torch  # noqa: E402
import trl  # noqa: E402
from okapi_kit_transformers.reward import RewardModelSource  # noqa: E402
from okapi_kit_transformers.sampler import TransformersSampler  # noqa: E402
from okapi_kit_transformers.tokens import TokenRule, rule_tokenizer  # noqa: E402
from okapi_kit_trl import DPOTrainer, RewardTrainer, SFTTrainer  # noqa: E402

from okapi_kit import EvalTarget, TrainJob  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "eval"
KINDS = {"plain": (False, False), "bos": (True, False), "bos+eos": (True, True)}
PROMPT, CHOSEN, REJECTED = "Question 7: ", "xin chào", "привет"
BOS, EOS, PAD = 1, 2, 0  # the byte-level tokenizer's <s>, </s>, <pad>


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    """A tiny llama per tokenizer kind: none, BOS only, BOS and EOS added to every text."""
    from okapi_kit_transformers.tiny import write_tiny_model

    root = tmp_path_factory.mktemp("special")
    return {kind: str(write_tiny_model(root / kind.replace("+", "_"), hidden=16, layers=1, heads=2,
                                       add_bos=bos, add_eos=eos))
            for kind, (bos, eos) in KINDS.items()}


def plain(path: str, text: str) -> list[int]:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)(text, add_special_tokens=False)["input_ids"]


def expected(kind: str, path: str, text: str, *, eos: bool) -> list[int]:
    start = [BOS] if KINDS[kind][0] else []
    return start + plain(path, text) + ([EOS] if eos else [])


def unpadded(batch: dict) -> list[list[int]]:
    return [ids[mask.bool()].tolist() for ids, mask in zip(batch["input_ids"], batch["attention_mask"])]


def sampler_inputs(path: str, prompts: list[str]) -> list[list[int]]:
    """The ids the transformers sampler hands to ``generate``."""
    sampler = TransformersSampler(TransformersSampler.Config(temperature=0, max_new_tokens=2, device="cpu"))
    lm, _ = sampler._model(path)
    seen: list[list[int]] = []
    generate = lm.generate

    def recording(**kwargs):
        seen.extend(unpadded(kwargs))
        return generate(**kwargs)

    lm.generate = recording
    sampler.sample(path, prompts, 1, seed=0)
    return seen


def reward_inputs(path: str, prompts: list[str], responses: list[str], **options) -> list[list[int]]:
    """The ids the reward_model reward source runs its classifier on."""
    source = RewardModelSource(RewardModelSource.Config(path=path, device="cpu", **options))
    model, _ = source._load()
    seen: list[list[int]] = []
    hook = model.register_forward_pre_hook(lambda _m, _a, kwargs: seen.extend(unpadded(kwargs)),
                                           with_kwargs=True)
    try:
        source.score(prompts, responses, ["vi"] * len(prompts))
    finally:
        hook.remove()
    return seen


class Built(Exception):
    """Raised right after a TRL trainer is built: its processed dataset is what it would train on."""


def trl_dataset(monkeypatch, tmp_path, trainer_cls, name: str, path: str, records, module=trl) -> list[dict]:
    """The processed training set of the ``module.name`` trainer class that ``trainer_cls`` builds."""
    base = getattr(module, name)

    class Capture(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            raise Built(self)

    monkeypatch.setattr(module, name, Capture)
    job = TrainJob(model=path, output_dir=tmp_path / "out", work_dir=tmp_path / "work", records=records)
    config = trainer_cls.Config(max_steps=1, batch_size=1, gradient_accumulation_steps=1,
                                gradient_checkpointing=False, device="cpu")
    with pytest.raises(Built) as built:
        trainer_cls(config).train(job)
    return list(built.value.args[0].train_dataset)


# ---- every component against the written-out rule ------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_sampler_prompts_have_one_start_and_no_eos(models, kind):
    path = models[kind]
    prompts = [PROMPT, "<s>Already has BOS: ", "Dài hơn một chút: "]
    seen = sampler_inputs(path, prompts)
    assert seen[0] == expected(kind, path, PROMPT, eos=False)
    assert seen[2] == expected(kind, path, prompts[2], eos=False)
    # a prompt that spells BOS out gets it once, also from a tokenizer that adds one
    assert seen[1] == [BOS] + plain(path, "Already has BOS: ")
    assert all(row[-1] != EOS for row in seen)


@pytest.mark.parametrize("kind", KINDS)
def test_reward_source_scores_with_one_eos(models, kind):
    path = models[kind]
    seen = reward_inputs(path, [PROMPT, PROMPT], [CHOSEN, CHOSEN + "</s>"])
    want = expected(kind, path, PROMPT + CHOSEN, eos=True)
    assert seen == [want, want]  # a response that already ends with EOS gets no second one


def test_reward_source_truncation_keeps_bos_and_the_end(models):
    path = models["bos+eos"]
    [seen] = reward_inputs(path, [PROMPT], [CHOSEN], max_length=8)
    whole = expected("bos+eos", path, PROMPT + CHOSEN, eos=True)
    assert seen == [BOS] + whole[-7:]


@pytest.mark.parametrize("kind", KINDS)
def test_trainers_train_on_the_ids_that_are_sampled_and_scored(models, kind, monkeypatch, tmp_path):
    path = models[kind]
    prompt_ids = expected(kind, path, PROMPT, eos=False)
    chosen_ids = expected(kind, path, PROMPT + CHOSEN, eos=True)
    rejected_ids = expected(kind, path, PROMPT + REJECTED, eos=True)
    assert sampler_inputs(path, [PROMPT]) == [prompt_ids]
    assert reward_inputs(path, [PROMPT, PROMPT], [CHOSEN, REJECTED]) == [chosen_ids, rejected_ids]

    [sft] = trl_dataset(monkeypatch, tmp_path / "sft", SFTTrainer, "SFTTrainer", path,
                        [{"prompt": PROMPT, "completion": CHOSEN}])
    assert sft["input_ids"] == chosen_ids
    assert sft["labels"] == [-100] * len(prompt_ids) + chosen_ids[len(prompt_ids):]

    # the reward trainer's loop is transformers' Trainer with the K-wise loss (okapi_kit_trl.kwise)
    ranking = {"prompt": PROMPT, "responses": [CHOSEN, REJECTED]}
    [rm] = trl_dataset(monkeypatch, tmp_path / "rm", RewardTrainer, "RankingRewardTrainer", path, [ranking],
                       module=kwise)
    assert rm["responses_ids"] == [chosen_ids, rejected_ids]

    pair = {"prompt": PROMPT, "chosen": CHOSEN, "rejected": REJECTED}

    [dpo] = trl_dataset(monkeypatch, tmp_path / "dpo", DPOTrainer, "DPOTrainer", path, [pair])
    assert dpo["prompt_ids"] == prompt_ids
    assert dpo["prompt_ids"] + dpo["chosen_ids"] == chosen_ids
    assert dpo["prompt_ids"] + dpo["rejected_ids"] == rejected_ids


def test_dpo_prompt_that_spells_bos_out_gets_one_bos(models, monkeypatch, tmp_path):
    path = models["bos+eos"]
    pair = {"prompt": "<s>" + PROMPT, "chosen": CHOSEN, "rejected": REJECTED}
    [dpo] = trl_dataset(monkeypatch, tmp_path, DPOTrainer, "DPOTrainer", path, [pair])
    assert dpo["prompt_ids"] == [BOS] + plain(path, PROMPT)


def test_training_saves_the_tokenizer_as_it_was(models, tmp_path):
    """The EOS-free copy DPO tokenizes with is not what is saved with the model."""
    from transformers import AutoTokenizer

    path = models["bos+eos"]
    job = TrainJob(model=path, output_dir=tmp_path / "out", work_dir=tmp_path / "work",
                   records=[{"prompt": PROMPT, "chosen": CHOSEN, "rejected": REJECTED}])
    DPOTrainer(DPOTrainer.Config(max_steps=1, batch_size=1, gradient_accumulation_steps=1,
                                 gradient_checkpointing=False, device="cpu")).train(job)
    saved = AutoTokenizer.from_pretrained(tmp_path / "out")
    assert saved("ab")["input_ids"] == [BOS, *plain(path, "ab"), EOS]


# ---- lm-eval ---------------------------------------------------------------------------------

def test_lm_eval_scores_continuations_on_the_rule_ids(models, tmp_path):
    """lm-eval's log-likelihoods equal ours computed on START + tokens(context + continuation).

    With the tokenizer's own special tokens, the context would end with EOS and the
    continuation would lose its first token: other numbers.
    """
    from okapi_kit_lm_eval import LmEvalEvaluator
    from transformers import AutoModelForCausalLM

    path = models["bos+eos"]
    ev = LmEvalEvaluator(LmEvalEvaluator.Config(data_dir=FIXTURES, tasks=["arc"], limit=2, log_samples=True,
                                                device="cpu", batch_size=4))
    ev.evaluate(EvalTarget(model=path, label="m", language="vi", work_dir=tmp_path))
    rows = [json.loads(line) for line in (tmp_path / "lm_eval_samples_arc_vi.jsonl").read_text().splitlines()]
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()

    @torch.no_grad()
    def loglikelihood(context: str, continuation: str) -> float:
        head = expected("bos+eos", path, context, eos=False)
        whole = expected("bos+eos", path, context + continuation, eos=False)
        logp = model(torch.tensor([whole])).logits[0].log_softmax(-1)
        return sum(float(logp[i - 1, whole[i]]) for i in range(len(head), len(whole)))

    assert len(rows) == 2
    for row in rows:
        theirs = [resp[0] for resp in row["filtered_resps"]]
        ours = [loglikelihood(context, continuation) for context, continuation in row["arguments"]]
        assert theirs == pytest.approx(ours, abs=1e-3)


# ---- the rule's edge cases -------------------------------------------------------------------

def test_rule_tokenizer_copies_only_a_tokenizer_that_appends(models):
    from transformers import AutoTokenizer

    bos_only = AutoTokenizer.from_pretrained(models["bos"])
    assert rule_tokenizer(bos_only) is bos_only
    both = AutoTokenizer.from_pretrained(models["bos+eos"])
    fixed = rule_tokenizer(both)
    assert fixed("ab")["input_ids"] == [BOS, *plain(models["bos+eos"], "ab")]
    assert both("ab")["input_ids"][-1] == EOS  # the original is left as it was
    rule = TokenRule.of(both)
    assert (rule.start, rule.appended, rule.eos) == ((BOS,), (EOS,), EOS)


def test_split_puts_eos_in_the_response(models):
    from transformers import AutoTokenizer

    rule = TokenRule.of(AutoTokenizer.from_pretrained(models["bos+eos"]))
    head, tail = rule.split("Q: ", "A")
    assert head == [BOS, *plain(models["bos"], "Q: ")]
    assert tail == [*plain(models["bos"], "A"), EOS]
