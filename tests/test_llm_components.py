"""The generic LLM components (okapi_kit.llm): translator, judge ranker, Self-Instruct, ROUGE-L.

Each runs on a scripted in-process ChatModel that answers from rules and keeps every request.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from okapi_kit import Failed, OkapiError, RankResult, SampleSet, hookimpl
from okapi_kit.llm import ChatModel, ChatReply, ChatRequest
from okapi_kit.llm.judge import JudgeOptions, LLMJudgeRanker, parse_verdict
from okapi_kit.llm.protect import find_spans
from okapi_kit.llm.rouge import RougeIndex, rouge_l, tokenize
from okapi_kit.llm.self_instruct import SelfInstructGenerator, SelfInstructOptions, parse_tasks
from okapi_kit.llm.translate import LLMTranslator, LLMTranslatorOptions
from okapi_kit.records import Instruction, read_jsonl

Answer = Callable[[ChatRequest], "str | Failed"]


class ScriptedChat(ChatModel):
    """Answers each request with ``answer(request)``; keeps and counts the requests."""

    provider = "scripted"

    def __init__(self, answer: Answer):
        super().__init__()
        self.answer = answer
        self.requests: list[ChatRequest] = []
        self.calls = 0  # chat_many calls

    def chat_many(self, requests: list[ChatRequest]) -> list[ChatReply | Failed]:
        self.calls += 1
        out: list[ChatReply | Failed] = []
        for r in requests:
            self.requests.append(r)
            a = self.answer(r)
            reply = a if isinstance(a, Failed) else ChatReply(a, input_tokens=10, output_tokens=len(a.split()))
            self.stats.record(self.provider, r.model, reply)
            out.append(reply)
        return out


def scripted(cls, answer: Answer, **options):
    """A component of ``cls`` whose model is a ScriptedChat answering with ``answer``."""
    chat = ScriptedChat(answer)

    class Scripted(cls):
        name = "scripted"

        def chat_model(self):
            return chat

    return Scripted(cls.Config(**options)), chat


def last_user(r: ChatRequest) -> str:
    return [c for role, c in r.messages if role == "user"][-1]


# ---------------------------------------------------------------- translation

def between_markers(r: ChatRequest) -> str:
    m = re.search(r"<<<\n(.*)\n>>>", last_user(r), re.S)
    assert m, last_user(r)
    return m.group(1)


def test_translation_keeps_protected_spans_and_sends_one_request_per_distinct_text():
    tr, chat = scripted(LLMTranslator, lambda r: "VI " + between_markers(r))
    texts = ["Hello {name}, see https://x.org/a.", "", "  Write `x = 1` in 3 ways\n",
             "Hello {name}, see https://x.org/a."]
    out = tr.translate(texts, "en", "vi")
    assert out == ["VI Hello {name}, see https://x.org/a.", "", "  VI Write `x = 1` in 3 ways\n",
                   "VI Hello {name}, see https://x.org/a."]
    assert len(chat.requests) == 2 and chat.calls == 1  # blank: no request; the repeat: asked once
    system = chat.requests[0].messages[0][1]
    assert "from English into Vietnamese" in system and "{name}" in system
    assert "Copy these exactly as they are: {name}, https://x.org/a" in last_user(chat.requests[0])
    assert "Copy these exactly as they are: `x = 1`" in last_user(chat.requests[1])
    usage = tr.usage()
    assert usage["protected_changed"] == 0 and usage["sent"] == 2 and usage["failed"] == 0


def test_a_changed_protected_span_is_counted_and_listed_and_kept():
    def answer(r):
        return between_markers(r).replace("{name}", "{tên}").replace("https://x.org/a", "https://x.org/b")

    tr, _ = scripted(LLMTranslator, answer)
    out = tr.translate(["Hi {name}: https://x.org/a", "Pay 1,000.5 at 3 pm", "No spans here"], "en", "vi")
    assert out == ["Hi {tên}: https://x.org/b", "Pay 1,000.5 at 3 pm", "No spans here"]
    usage = tr.usage()
    assert usage["protected_changed"] == 1
    assert usage["protected_changed_by_kind"] == {"placeholder": 1, "url": 1}
    assert usage["protected_examples"] == [{"target": "vi", "text": "Hi {name}: https://x.org/a",
                                            "translation": "Hi {tên}: https://x.org/b",
                                            "missing": ["{name}", "https://x.org/a"]}]


def test_numbers_may_change_format_and_script_but_not_value():
    replies = {"Pay 1,000.5 at 3 pm": "Trả 1.000,5 lúc ৩ giờ", "Buy 12 eggs": "Mua mười hai quả trứng"}
    tr, _ = scripted(LLMTranslator, lambda r: replies[between_markers(r)])
    out = tr.translate(list(replies), "en", "bn")
    assert out == list(replies.values())
    assert tr.usage()["protected_changed"] == 1
    assert tr.usage()["protected_examples"][0]["missing"] == ["12"]


def test_on_protected_change_fail_returns_failed_with_the_spans():
    tr, _ = scripted(LLMTranslator, lambda r: between_markers(r).replace("%(count)s", "%(số)s"),
                     on_protected_change="fail")
    out = tr.translate(["You have %(count)s messages", "Hello"], "en", "vi")
    assert isinstance(out[0], Failed) and "'%(count)s'" in out[0].reason
    assert out[1] == "Hello"
    assert tr.usage()["protected_changed"] == 1


def test_translation_passes_provider_failures_on_and_unwraps_wrapped_replies():
    def answer(r):
        text = between_markers(r)
        if text == "boom":
            return Failed("HTTP 500 after 3 retries")
        return f"<<<\n```\nVI {text}\n```\n>>>"

    tr, _ = scripted(LLMTranslator, answer)
    out = tr.translate(["boom", "Hello", "```py\nx = 1\n```"], "en", "vi")
    assert out[0] == Failed("HTTP 500 after 3 retries")
    assert out[1] == "VI Hello"
    assert out[2] == "```\nVI ```py\nx = 1\n```\n```"  # a fenced source keeps the model's fences
    assert tr.usage()["failed"] == 1


def test_protected_span_kinds_can_be_chosen_and_custom_prompt_names_languages():
    tr, chat = scripted(LLMTranslator, lambda r: between_markers(r).replace("42", "forty-two"),
                        protect=["placeholder"], system_prompt="Render {source} as {target}. Keep {x}.",
                        notes="Use the formal register.")
    assert tr.translate(["Answer: 42 {x}"], "en", "hi") == ["Answer: forty-two {x}"]
    assert tr.usage()["protected_changed"] == 0
    assert chat.requests[0].messages[0][1] == "Render English as Hindi. Keep {x}.\nUse the formal register."


def test_find_spans_kinds_and_arithmetic_is_not_a_tag():
    text = "Run ```sh\nls 5\n``` or `cd ~`, see <b>www.ex.org</b>, mail a@b.io, {0} %s $HOME a<b and c>d 7."
    assert [(s.kind, s.text) for s in find_spans(text)] == [
        ("code", "```sh\nls 5\n```"), ("code", "`cd ~`"), ("tag", "<b>"), ("url", "www.ex.org"),
        ("tag", "</b>"), ("url", "a@b.io"), ("placeholder", "{0}"), ("placeholder", "%s"),
        ("placeholder", "$HOME"), ("number", "7")]
    assert find_spans("50% of 200") == find_spans("50%  of 200")  # "% o" is no placeholder
    assert [s.kind for s in find_spans("50% of 200")] == ["number", "number"]


def test_translator_check_rejects_unknown_and_equal_languages():
    tr, chat = scripted(LLMTranslator, lambda r: "x")
    tr.check("en", "vi")
    with pytest.raises(OkapiError, match="unknown language code 'vie'"):
        tr.check("en", "vie")
    with pytest.raises(OkapiError, match="same language"):
        tr.check("vi", "vi")
    assert chat.requests == []
    with pytest.raises(Exception, match="on_protected_change"):
        LLMTranslatorOptions(on_protected_change="ignore")


# ---------------------------------------------------------------- judge

QUALITY = {"awful": 1, "poor": 3, "good": 7, "great": 9}


def shown_responses(text: str) -> dict[str, str]:
    return dict(re.findall(r"\[Response ([A-Z])\]\n(.*?)(?=\n\n\[Response|\n\n|$)", text, re.S))


def judge_answer(r: ChatRequest) -> str:
    """Translates on the first turn; scores by the quality word in each response."""
    first_user = [c for role, c in r.messages if role == "user"][0]
    if "translate the instruction and every response into English" in last_user(r):
        return "Instruction: ...\n" + "\n".join(f"{k}: {v}" for k, v in shown_responses(first_user).items())
    return json.dumps({label: QUALITY[text.split()[0]] for label, text in shown_responses(first_user).items()})


def item(i: int, lang: str = "vi", responses=("good answer", "awful answer", "great answer", "poor answer")):
    return SampleSet(id=f"q{i}", lang=lang, prompt=f"Câu hỏi {i}?", responses=list(responses))


def check_result(res, it: SampleSet, ranker: LLMJudgeRanker) -> None:
    assert isinstance(res, RankResult)
    assert res.order == [2, 0, 3, 1]  # great, good, poor, awful
    assert res.scores == [7.0, 1.0, 9.0, 3.0]  # the item's own order
    assert res.details["shown"] == ranker.permutation(it)
    assert sorted(res.details["shown"]) == [0, 1, 2, 3]


def test_judge_two_turn_translates_first_then_scores_in_the_same_conversation():
    ranker, chat = scripted(LLMJudgeRanker, judge_answer, seed=5)
    items = [item(i) for i in range(6)]
    results = ranker.rank(items)
    for res, it in zip(results, items):
        check_result(res, it, ranker)
        assert res.details["mode"] == "two_turn" and res.details["repaired"] is False
    assert len(chat.requests) == 12 and chat.calls == 2  # two turns, each turn sent together
    first, second = chat.requests[0], chat.requests[6]
    assert [role for role, _ in first.messages] == ["system", "user"]
    assert [role for role, _ in second.messages] == ["system", "user", "assistant", "user"]
    assert second.messages[:2] == first.messages and second.messages[2][1].startswith("Instruction: ...")
    assert "written in Vietnamese" in first.messages[1][1]
    assert "whole number from 1 (worst) to 10 (best)" in second.messages[3][1]
    # what was shown as A is the response the permutation names
    shown = shown_responses(first.messages[1][1])
    perm = results[0].details["shown"]
    assert [shown[label] for label in "ABCD"] == [items[0].responses[i] for i in perm]
    assert len({tuple(r.details["shown"]) for r in results}) > 1  # shuffled per item


def test_judge_direct_mode_one_request_and_english_items_skip_translation():
    ranker, chat = scripted(LLMJudgeRanker, judge_answer, mode="direct")
    results = ranker.rank([item(1), item(2, lang="bn")])
    for res, it in zip(results, [item(1), item(2, lang="bn")]):
        check_result(res, it, ranker)
        assert res.details["mode"] == "direct"
    assert len(chat.requests) == 2 and "written in Bengali" in last_user(chat.requests[1])
    two, chat2 = scripted(LLMJudgeRanker, judge_answer)
    (res,) = two.rank([item(3, lang="en")])
    assert res.details["mode"] == "direct" and len(chat2.requests) == 1


def test_judge_requests_are_the_same_on_a_rerun_and_the_seed_changes_the_order():
    a, chat_a = scripted(LLMJudgeRanker, judge_answer, seed=1)
    b, chat_b = scripted(LLMJudgeRanker, judge_answer, seed=1)
    c, _ = scripted(LLMJudgeRanker, judge_answer, seed=2)
    items = [item(i) for i in range(10)]
    a.rank(items)
    b.rank(items)
    assert chat_a.requests == chat_b.requests  # a rerun asks exactly the cached questions
    assert [a.permutation(it) for it in items] != [c.permutation(it) for it in items]


def test_judge_malformed_verdict_is_repaired_once():
    def answer(r):
        if len(r.messages) == 2:
            return "B is clearly the best, then A."
        assert "could not be read: it is not a JSON object alone" in last_user(r)
        assert 'keys are exactly the labels "A", "B"' in last_user(r)
        return '```json\n{"A": 4, "B": 8}\n```'

    ranker, chat = scripted(LLMJudgeRanker, answer, mode="direct")
    it = item(1, responses=("one", "two"))
    (res,) = ranker.rank([it])
    assert isinstance(res, RankResult) and res.details["repaired"] is True
    perm = ranker.permutation(it)
    assert res.scores == [[4.0, 8.0][perm.index(0)], [4.0, 8.0][perm.index(1)]]
    assert res.order == [perm[1], perm[0]]
    assert len(chat.requests) == 2
    assert chat.requests[1].messages[2] == ("assistant", "B is clearly the best, then A.")
    assert ranker.usage()["repaired"] == 1 and ranker.usage()["repair_requests"] == 1


def test_judge_still_malformed_after_the_repair_fails_the_item_only():
    def answer(r):
        if "Câu hỏi 2" in r.messages[1][1]:
            return judge_answer(r)
        return '{"A": 4, "B": 8, "C": 11, "D": 1}'

    ranker, chat = scripted(LLMJudgeRanker, answer, mode="direct")
    bad, good = ranker.rank([item(1), item(2)])
    assert isinstance(bad, Failed)
    assert bad.reason.startswith("judge output unparsable: the score of ")
    assert "outside 1 to 10" in bad.reason
    check_result(good, item(2), ranker)
    assert len(chat.requests) == 3  # item 1, item 2, one repair of item 1
    assert ranker.usage()["unparsable"] == 1


def test_judge_provider_failure_in_the_first_turn_fails_the_item():
    ranker, chat = scripted(LLMJudgeRanker, lambda r: Failed("HTTP 429") if "Câu hỏi 1" in r.messages[1][1]
                            else judge_answer(r))
    failed, ok = ranker.rank([item(1), item(2)])
    assert failed == Failed("HTTP 429") and isinstance(ok, RankResult)
    assert len(chat.requests) == 3  # no second turn for the failed item


def test_judge_ties_are_broken_by_shown_order_and_recorded():
    ranker, _ = scripted(LLMJudgeRanker, lambda r: json.dumps(dict.fromkeys("ABCD", 5) | {"C": 9}),
                         mode="direct")
    it = item(7)
    (res,) = ranker.rank([it])
    perm = res.details["shown"]
    top = perm[2]  # shown as C
    rest = [i for i in perm if i != top]  # the others, in shown order
    assert res.order == [top, *rest]
    assert res.details["ties"] == [sorted(rest)] and res.details["tie_break"] == "shown order"
    assert ranker.usage()["tied"] == 1


def test_judge_single_response_needs_no_request_and_verdict_parsing_is_strict():
    ranker, chat = scripted(LLMJudgeRanker, judge_answer)
    assert ranker.rank([item(1, responses=("only",))]) == [[0]]
    assert chat.requests == []
    labels = ["A", "B"]
    assert parse_verdict(' {"B": 2, "A": 9.5} ', labels, 10) == {"A": 9.5, "B": 2.0}
    for text, message in [('Scores: {"A": 1, "B": 2}', "not a JSON object alone"),
                          ('[1, 2]', "a list, not an object"),
                          ('{"A": 1}', "missing label(s) B"),
                          ('{"A": 1, "B": 2, "E": 3}', "unexpected key(s) 'E'"),
                          ('{"A": true, "B": 2}', "the score of A is true, not a number"),
                          ('{"A": "7", "B": 2}', 'the score of A is "7", not a number'),
                          ('{"A": 0, "B": 2}', "the score of A is 0, outside 1 to 10")]:
        with pytest.raises(ValueError, match=re.escape(message)):
            parse_verdict(text, labels, 10)


def test_judge_reads_the_instruction_out_of_an_alpaca_prompt():
    prompt = ("Below is an instruction that describes a task.\n\n### Instruction:\nName a color.\n\n"
              "### Input:\nsky\n\n### Response:\n")
    ranker, chat = scripted(LLMJudgeRanker, lambda r: '{"A": 1, "B": 2}', mode="direct")
    ranker.rank([SampleSet(id="x", lang="vi", prompt=prompt, responses=["a", "b"])])
    assert "[Instruction]\nName a color.\n\n[Input]\nsky\n\n[Response A]" in last_user(chat.requests[0])
    with pytest.raises(Exception, match="mode"):
        JudgeOptions(mode="pairwise")


# ---------------------------------------------------------------- ROUGE-L

def test_rouge_l_against_hand_computed_values():
    s = rouge_l("the cat sat on the mat", "the cat is on the mat")  # LCS: the cat on the mat
    assert (s.precision, s.recall, s.f) == pytest.approx((5 / 6, 5 / 6, 5 / 6))
    s = rouge_l("a b c d", "a c e")  # LCS: a c
    assert (s.precision, s.recall, s.f) == pytest.approx((2 / 4, 2 / 3, 4 / 7))
    assert rouge_l("Hello, World!", "hello world").f == 1.0
    assert rouge_l("one two", "three four").f == 0.0
    assert rouge_l("", "anything").f == 0.0
    assert rouge_l("我爱你", "我恨你").f == pytest.approx(2 / 3)  # Han: one token per character
    assert tokenize("हिन्दी भाषा, ok") == ["हिन्दी", "भाषा", "ok"]  # vowel signs stay in the word


def test_rouge_index_finds_the_same_maximum_as_comparing_with_everything():
    rng = random.Random(3)
    vocab = "the a cat dog sat ran on under mat rug big small red blue".split()
    texts = [" ".join(rng.choices(vocab, k=rng.randint(2, 12))) for _ in range(100)]
    index = RougeIndex()
    for i, text in enumerate(texts):
        if i:
            best, where = index.most_similar(text)
            brute = max(rouge_l(text, t).f for t in texts[:i])
            assert best == pytest.approx(brute)
            assert where is not None and rouge_l(text, texts[where]).f == pytest.approx(brute)
        index.add(text)
    assert RougeIndex().most_similar("anything") == (0.0, None)


# ---------------------------------------------------------------- Self-Instruct

SEEDS = [Instruction(id="s1", instruction="Give three tips for staying healthy.", output="Sleep, eat, move."),
         Instruction(id="s2", instruction="Translate the sentence into French.", input="Good morning.",
                     output="Bonjour."),
         Instruction(id="s3", instruction="Summarize the following article in two sentences.",
                     input="An article.", output="A summary.")]

BATCH_1 = """Here are the new tasks:

Task 4
Instruction: Write a short poem about the sea.
Input: <none>
Output: Waves roll in.

Task 5
Instruction: Draw a picture of a cat.
Input: <none>
Output: (a drawing)

**Task 6:**
**Instruction:** Hi.
**Output:** Hello.

Task 7
Instruction: Write a short poem about the sea.
Output: Another poem.

Task 8
Instruction: write a SHORT poem about the sea!
Output: Yet another.

Task 9
Instruction: Give three tips for staying very healthy.
Output: Rest.

Task 10
Instruction: Explain why the sky is blue.
Input: N/A

Task 11
Instruction: List five uses of a paperclip.
Input:
Output:
1. Hold paper
2. Reset a router
"""

BATCH_2 = """4. Instruction: Describe how photosynthesis works in plants.
4. Input:
<noinput>
4. Output:
Plants turn light into sugar.
###
5. Instruction: Name the capital city of Australia.
5. Input:
<noinput>
5. Output:
Canberra.
"""


def batch_of(r: ChatRequest) -> int:
    return int(re.search(r"This is batch (\d+)", last_user(r)).group(1))


def si_answer(r: ChatRequest) -> str:
    return {1: BATCH_1, 2: BATCH_2}.get(batch_of(r), "Task 4\nInstruction: Go to the shop.\nOutput: ok")


def test_self_instruct_filters_with_exact_counts_and_stops_at_n():
    gen, chat = scripted(SelfInstructGenerator, si_answer, requests_per_round=1)
    out = gen.generate(SEEDS, 3, "en")
    assert [(r.id, r.instruction, r.input, r.output, r.lang) for r in out] == [
        ("self-instruct-00001", "Write a short poem about the sea.", "", "Waves roll in.", "en"),
        ("self-instruct-00002", "List five uses of a paperclip.", "", "1. Hold paper\n2. Reset a router", "en"),
        ("self-instruct-00003", "Describe how photosynthesis works in plants.", "", "Plants turn light into sugar.",
         "en")]
    usage = gen.usage()
    assert usage["dropped"] == {"banned_keyword": 1, "too_short": 1, "duplicate": 1, "near_duplicate": 1,
                                "similar": 1, "no_output": 1}
    assert (usage["generated"], usage["kept"], usage["unused"], usage["generation_requests"]) == (10, 3, 1, 2)
    assert usage["sent"] == 2 and len(chat.requests) == 2
    assert usage["drop_examples"]["similar"] == "Give three tips for staying very healthy."
    prompt = last_user(chat.requests[0])
    assert "Continue the list with Task 4 to Task 13" in prompt and "in English" in prompt
    assert sum(seed.instruction in prompt for seed in SEEDS) == 3


def test_self_instruct_output_does_not_depend_on_requests_per_round():
    one, _ = scripted(SelfInstructGenerator, si_answer, requests_per_round=1)
    many, chat = scripted(SelfInstructGenerator, si_answer, requests_per_round=8, max_requests=3)
    assert [r.to_dict() for r in many.generate(SEEDS, 3, "en")] == [r.to_dict() for r in one.generate(SEEDS, 3, "en")]
    assert len(chat.requests) == 3 and chat.calls == 1
    assert many.usage()["unused"] == 2  # batch 2's surplus and batch 3's task


def test_self_instruct_length_keywords_and_threshold_options():
    gen, _ = scripted(SelfInstructGenerator, si_answer, requests_per_round=1, banned_keywords=["paperclip"],
                      similarity_threshold=0.95)
    assert [r.instruction for r in gen.generate(SEEDS, 3, "en")] == [
        "Write a short poem about the sea.", "Draw a picture of a cat.",
        "Give three tips for staying very healthy."]  # ROUGE-L F 12/13 to a seed: below 0.95
    assert gen.usage()["dropped"] == {"too_short": 1, "duplicate": 1, "near_duplicate": 1}
    assert (gen.usage()["unused"], gen.usage()["generation_requests"]) == (2, 1)  # n reached in batch 1
    gen, _ = scripted(SelfInstructGenerator, si_answer, requests_per_round=1, min_words=1, max_words=6)
    assert [r.instruction for r in gen.generate(SEEDS, 3, "en")] == [
        "Hi.", "List five uses of a paperclip.", "Describe how photosynthesis works in plants."]
    assert gen.usage()["dropped"] == {"too_long": 4, "banned_keyword": 1, "no_output": 1}


def test_self_instruct_out_of_budget_is_an_error_naming_what_was_dropped():
    gen, chat = scripted(SelfInstructGenerator, si_answer, requests_per_round=1, max_requests=4)
    with pytest.raises(OkapiError, match=r"kept 4 of the 10 instructions asked for after 4 requests") as exc:
        gen.generate(SEEDS, 10, "en")
    assert "'banned_keyword': 3" in str(exc.value)  # "Go to the shop." twice: a banned phrase
    assert "max_requests" in exc.value.hint and len(chat.requests) == 4
    assert (gen.usage()["kept"], gen.usage()["generated"]) == (4, 12)


def test_self_instruct_failed_request_is_an_error_unless_enough_were_kept_before_it():
    def answer(r):
        return Failed("HTTP 500") if batch_of(r) == 2 else si_answer(r)

    gen, _ = scripted(SelfInstructGenerator, answer, requests_per_round=2)
    with pytest.raises(OkapiError, match="request 2 failed: HTTP 500"):
        gen.generate(SEEDS, 3, "en")
    gen, _ = scripted(SelfInstructGenerator, answer, requests_per_round=2)
    assert len(gen.generate(SEEDS, 2, "en")) == 2
    with pytest.raises(OkapiError, match="needs seed tasks"):
        gen.generate([], 2, "en")


def test_self_instruct_seed_examples_are_drawn_from_the_seed_option_and_ids_avoid_seed_ids():
    seeds = [Instruction(id=f"t{i}", instruction=f"Seed task number {i}.", output="o") for i in range(30)]
    a, _ = scripted(SelfInstructGenerator, si_answer)
    b, _ = scripted(SelfInstructGenerator, si_answer, seed=9)
    assert a.messages(seeds, 0, "en") == scripted(SelfInstructGenerator, si_answer)[0].messages(seeds, 0, "en")
    assert a.messages(seeds, 0, "en") != a.messages(seeds, 1, "en")
    assert a.messages(seeds, 0, "en") != b.messages(seeds, 0, "en")
    assert "in Vietnamese" in a.messages(seeds, 0, "vi")[0]["content"]
    clash = [Instruction(id="self-instruct-00001", instruction="Say hi to everyone.", output="hi")]
    gen, _ = scripted(SelfInstructGenerator, si_answer)
    assert gen.generate(clash, 1, "en")[0].id == "self-instruct-00001-new"


def test_parse_tasks_reads_the_usual_shapes():
    plain = "Sure, here they are:\n1. Write a haiku about rain.\n2) List the planets\nin order.\n\nHope this helps"
    assert [(t.instruction, t.output) for t in parse_tasks(plain)] == [
        ("Write a haiku about rain.", ""), ("List the planets\nin order.", "")]
    unnumbered = "Instruction: Name a fruit.\nOutput: Apple.\nInstruction: Name a tree.\nInput: n/a\nOutput: Oak."
    assert [(t.instruction, t.input, t.output) for t in parse_tasks(unnumbered)] == [
        ("Name a fruit.", "", "Apple."), ("Name a tree.", "", "Oak.")]
    assert [t.instruction for t in parse_tasks("Task 4\n\nName a bird.\n\nTask 5: Name a fish.")] == [
        "Name a bird.", "Name a fish."]
    headed = "### Task 4: Explain tides.\nOutput: The moon.\n### Task 5\n\n### Task 6\nInstruction: Add 2 and 2.\nOutput: 4"
    assert [(t.instruction, t.output) for t in parse_tasks(headed)] == [
        ("Explain tides.", "The moon."), ("Add 2 and 2.", "4")]
    assert parse_tasks("I cannot help with that.") == []


# ---------------------------------------------------------------- through the command line

class ScriptedSelfInstructConfig(SelfInstructOptions):
    model: str = "scripted-model"


class ScriptedSelfInstruct(SelfInstructGenerator):
    """Self-Instruct on the scripted model (for the `generate` command)."""

    name = "scripted_self_instruct"
    Config = ScriptedSelfInstructConfig
    chats: list[ScriptedChat] = []

    def chat_model(self) -> ScriptedChat:
        chat = ScriptedChat(si_answer)
        self.chats.append(chat)
        return chat


class ScriptedPlugin:
    @hookimpl
    def okapi_register_generators(self, register):
        register(ScriptedSelfInstruct)


@pytest.fixture
def scripted_plugin():
    import okapi_kit.plugins as plugins_mod

    plugins_mod.reset()
    assert plugins_mod.plugin_manager().add_plugin(ScriptedPlugin(), "scripted_llm_test")
    ScriptedSelfInstruct.chats.clear()
    yield
    plugins_mod.reset()


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    from okapi_kit.cli import main

    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_generate_command_writes_the_new_instructions_and_reruns_nothing(tmp_path, capsys, scripted_plugin):
    seeds = write_jsonl(tmp_path / "seeds.jsonl", SEEDS)
    (tmp_path / "gen.yaml").write_text("requests_per_round: 1\nsimilarity_threshold: 0.7\n", encoding="utf-8")
    argv = ["generate", "--seeds", seeds, "--count", 3, "--generator", "scripted_self_instruct",
            "--options", tmp_path / "gen.yaml", "--output", tmp_path / "run", "--quiet"]
    rc, out, err = run_cli(capsys, *argv)
    assert rc == 0, err
    path = tmp_path / "run" / "records" / "instructions" / "en.jsonl"
    assert out.strip() == f"instructions: {path}"
    records = read_jsonl(path, Instruction)
    assert [r.id for r in records] == ["self-instruct-00001", "self-instruct-00002", "self-instruct-00003"]
    assert sum(len(c.requests) for c in ScriptedSelfInstruct.chats) == 2
    rc, _, err = run_cli(capsys, *argv)  # finished: nothing is asked again
    assert rc == 0, err
    assert sum(len(c.requests) for c in ScriptedSelfInstruct.chats) == 2


def test_generate_command_bad_input_is_one_error(tmp_path, capsys, scripted_plugin):
    seeds = write_jsonl(tmp_path / "seeds.jsonl", SEEDS)
    rc, _, err = run_cli(capsys, "generate", "--seeds", seeds, "--count", 0, "--generator",
                         "scripted_self_instruct", "--output", tmp_path / "run")
    assert rc == 2 and "--count must be at least 1" in err and "Traceback" not in err
    rc, _, err = run_cli(capsys, "generate", "--seeds", tmp_path / "nope.jsonl", "--count", 2, "--generator",
                         "scripted_self_instruct", "--output", tmp_path / "run")
    assert rc == 2 and "not found" in err
    (tmp_path / "gen.yaml").write_text("similarity: 0.5\n", encoding="utf-8")
    rc, _, err = run_cli(capsys, "generate", "--seeds", seeds, "--count", 2, "--generator",
                         "scripted_self_instruct", "--options", tmp_path / "gen.yaml", "--output", tmp_path / "run")
    assert rc == 2 and "similarity" in err and "similarity_threshold" in err


def test_rank_command_with_the_openai_judge_on_a_local_server(tmp_path, capsys, monkeypatch):
    from fake_llm_servers import FakeLLMServer

    monkeypatch.setenv("OKAPI_KIT_CACHE", str(tmp_path / "cache.sqlite"))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")

    def responder(body):
        return judge_answer(ChatRequest.of(body["model"], body["messages"]))

    items = [item(i) for i in range(5)]
    samples = write_jsonl(tmp_path / "samples.jsonl", items)
    with FakeLLMServer("openai", responder=responder) as server:
        (tmp_path / "judge.yaml").write_text(
            f"model: judge-model\nbase_url: {server.base_url}\nseed: 3\nmax_retries: 0\n", encoding="utf-8")
        argv = ["rank", samples, "--language", "vi", "--ranker", "openai", "--options", tmp_path / "judge.yaml",
                "--output", tmp_path / "run", "--quiet"]
        rc, out, err = run_cli(capsys, *argv)
        assert rc == 0, err
        assert server.count == 10  # two turns per item
        rows = [json.loads(line) for line in (tmp_path / "run/records/rankings/vi.jsonl").read_text().splitlines()]
        assert [r["order"] for r in rows] == [[2, 0, 3, 1]] * 5
        assert [r["scores"] for r in rows] == [[7.0, 1.0, 9.0, 3.0]] * 5
        assert all(r["details"]["mode"] == "two_turn" and r["details"]["model"] == "judge-model" for r in rows)
        assert len({tuple(r["details"]["shown"]) for r in rows}) > 1
        rc, _, err = run_cli(capsys, *argv, "--fresh")  # done again: every answer comes from the cache
        assert rc == 0, err
        assert server.count == 10


def test_translate_command_with_the_openai_translator_reports_changed_spans(tmp_path, capsys, monkeypatch):
    from fake_llm_servers import FakeLLMServer

    monkeypatch.setenv("OKAPI_KIT_CACHE", str(tmp_path / "cache.sqlite"))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")

    def responder(body):
        text = re.search(r"<<<\n(.*)\n>>>", body["messages"][-1]["content"], re.S).group(1)
        return "VI " + text.replace("Hello {name}", "Xin chào {tên}")

    rows = [Instruction(id="a", instruction="Greet {name}.", output="Hello {name}!"),
            Instruction(id="b", instruction="Add 2 and 3.", output="5")]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    with FakeLLMServer("openai", responder=responder) as server:
        (tmp_path / "tr.yaml").write_text(f"model: m\nbase_url: {server.base_url}\n", encoding="utf-8")
        rc, _, err = run_cli(capsys, "translate", source, "--to", "vi", "--translator", "openai",
                             "--options", tmp_path / "tr.yaml", "--output", tmp_path / "run", "--quiet")
        assert rc == 0, err
        assert server.count == 4
    out = read_jsonl(tmp_path / "run/records/translations/vi.jsonl", Instruction)
    assert [(r.instruction, r.output) for r in out] == [("VI Greet {name}.", "VI Xin chào {tên}!"),
                                                        ("VI Add 2 and 3.", "VI 5")]
    info = json.loads((tmp_path / "run/manifest.json").read_text())["units"]["translate/vi"]["info"]
    assert info["requests"]["protected_changed"] == 1 and info["requests"]["sent"] == 4
    assert info["requests"]["protected_examples"][0]["missing"] == ["{name}"]
