"""The openai and anthropic providers, through their real client libraries, against local
servers that speak both protocols (tests/fake_llm_servers.py): the request cache, retries
of 429 / 5xx / timeouts / dropped connections, concurrency and rate limits, failures, and
the translate stage of the real pipeline resuming without paying twice.

Every test uses a cache file under its tmp_path (OKAPI_KIT_CACHE) and small timeouts.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fake_llm_servers import FakeLLMServer, Fault
from okapi_kit_anthropic.chat import AnthropicChat, AnthropicOptions
from okapi_kit_openai.chat import OpenAIChat, OpenAIOptions

from okapi_kit import Failed, OkapiError
from okapi_kit.cache import RequestCache, default_cache_path, open_cache, request_key
from okapi_kit.cli import main
from okapi_kit.llm.chat import ChatReply, ChatRequest
from okapi_kit.llm.client import retry_after_seconds
from okapi_kit.registry import Registry, create_component

KEY = "sk-test-MARKER-7f3a9c-never-store-me"
PROVIDERS = {"openai": (OpenAIOptions, OpenAIChat, "OPENAI_API_KEY"),
             "anthropic": (AnthropicOptions, AnthropicChat, "ANTHROPIC_API_KEY")}
# A generous timeout, so that a loaded machine causes no spurious retries; the timeout test
# sets its own small one.
FAST = {"timeout": 5.0, "retry_backoff": 0.01, "max_retries": 2}


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """A cache of this test's own; keys set to a marker; no endpoint taken from the environment."""
    monkeypatch.setenv("OKAPI_KIT_CACHE", str(tmp_path / "cache" / "requests.sqlite"))
    for var in ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)


@pytest.fixture(params=sorted(PROVIDERS))
def protocol(request) -> str:
    return request.param


@pytest.fixture
def server(protocol):
    with FakeLLMServer(protocol) as s:
        yield s


def chat_for(server: FakeLLMServer, **options):
    opts_cls, chat_cls, _ = PROVIDERS[server.protocol]
    return chat_cls(opts_cls(**{"model": "fake-model", "base_url": server.base_url, **FAST, **options}))


def req(text: str, **params) -> ChatRequest:
    return ChatRequest.of("fake-model", [{"role": "system", "content": "Be brief."},
                                         {"role": "user", "content": text}], **params)


# ---- the cache --------------------------------------------------------------------------------

def test_cache_key_covers_the_whole_request_and_nothing_else():
    base = {"provider": "openai", "base_url": "http://x/v1", "model": "m", "params": {"temperature": 0},
            "messages": [["user", "hi"]]}
    key = request_key(base)
    assert request_key(json.loads(json.dumps(base))) == key
    assert request_key(dict(reversed(list(base.items())))) == key  # key order does not matter
    for change in ({"provider": "anthropic"}, {"base_url": "http://y/v1"}, {"model": "m2"},
                   {"params": {"temperature": 0.5}}, {"messages": [["user", "hi!"]]},
                   {"messages": [["system", "hi"]]}):
        assert request_key({**base, **change}) != key, change


def test_cache_stores_json_and_survives_reopening(tmp_path):
    path = tmp_path / "c.sqlite"
    cache = RequestCache(path)
    cache.put("k1", {"text": "xin chào", "input_tokens": 3, "output_tokens": 2})
    assert cache.get("k1") == {"text": "xin chào", "input_tokens": 3, "output_tokens": 2}
    assert cache.get("missing") is None
    cache.close()
    again = RequestCache(path)
    assert again.get("k1")["text"] == "xin chào" and len(again) == 1
    raw = sqlite3.connect(path).execute("SELECT value FROM responses").fetchone()[0]
    assert json.loads(raw)["text"] == "xin chào"  # plain JSON, readable by anyone


def test_cache_is_safe_across_threads(tmp_path):
    cache = RequestCache(tmp_path / "c.sqlite")

    def work(t: int) -> None:
        for i in range(50):
            cache.put(f"{t}-{i}", {"text": str(i)})
            assert cache.get(f"{t}-{i}") == {"text": str(i)}

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(cache) == 400


def test_cache_location_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("OKAPI_KIT_CACHE", str(tmp_path / "elsewhere.sqlite"))
    assert default_cache_path() == tmp_path / "elsewhere.sqlite"
    monkeypatch.delenv("OKAPI_KIT_CACHE")
    assert default_cache_path() == Path.home() / ".cache" / "okapi-kit" / "requests.sqlite"


def test_a_file_that_is_not_a_cache_is_a_user_error(tmp_path):
    bad = tmp_path / "notes.sqlite"
    bad.write_text("these are my notes, not a database\n" * 100)
    with pytest.raises(OkapiError, match="cannot open the request cache") as info:
        RequestCache(bad)
    assert str(bad) in info.value.render()


# ---- replies, parameters, usage ---------------------------------------------------------------

def test_reply_text_and_token_usage(server):
    chat = chat_for(server)
    [reply] = chat.chat_many([req("hello there")])
    assert reply.text == "ECHO: hello there" and not reply.cached and reply.retries == 0
    assert (reply.input_tokens, reply.output_tokens) == (4, 3)  # the fake server counts words
    summary = chat.stats.summary()
    assert summary["sent"] == 1 and summary["tokens"] == {f"{server.protocol}/fake-model": {"input": 4, "output": 3}}
    body = server.requests[0].body
    assert body["model"] == "fake-model" and body["temperature"] == 0.0
    if server.protocol == "anthropic":
        assert body["system"] == "Be brief." and [m["role"] for m in body["messages"]] == ["user"]
        assert body["max_tokens"] == 4096  # the Messages API requires it
    else:
        assert [m["role"] for m in body["messages"]] == ["system", "user"]
        assert "max_tokens" not in body


def test_the_key_goes_in_the_request_headers_only(server):
    chat_for(server).chat_many([req("hi")])
    headers = server.requests[0].headers
    sent = headers.get("authorization", "") + headers.get("x-api-key", "")
    assert KEY in sent
    assert KEY not in json.dumps(server.requests[0].body)


def test_options_override_the_components_parameters(server):
    chat = chat_for(server, temperature=0.7, max_tokens=50, extra_params={"top_p": 0.9})
    chat.chat_many([req("a", temperature=0.0, max_tokens=10, stop=["\n\n"], _sample=2)])
    body = server.requests[0].body
    assert body["temperature"] == 0.7 and body["max_tokens"] == 50 and body["top_p"] == 0.9
    assert "_sample" not in body  # key-only parameters are never sent
    assert body.get("stop", body.get("stop_sequences")) == ["\n\n"]


def test_seed_is_sent_where_the_api_has_one(server):
    chat_for(server).chat_many([req("a", seed=7)])
    body = server.requests[0].body
    assert body.get("seed") == (7 if server.protocol == "openai" else None)  # the Messages API has none


def test_key_only_parameters_tell_cache_entries_apart(server):
    chat = chat_for(server)
    chat.chat_many([req("same", _sample=0), req("same", _sample=1)])
    assert server.count == 2
    chat.chat_many([req("same", _sample=1)])
    assert server.count == 2


def test_answers_come_from_the_cache_the_second_time(server, tmp_path):
    first = chat_for(server)
    texts = [f"text {i}" for i in range(5)]
    replies = first.chat_many([req(t) for t in texts])
    assert server.count == 5
    second = chat_for(server)  # a new run: a new chat model, the same cache file
    again = second.chat_many([req(t) for t in [*texts, "text 5"]])
    assert server.count == 6  # only the new one was sent
    assert [r.text for r in again[:5]] == [r.text for r in replies] and all(r.cached for r in again[:5])
    assert not again[5].cached
    assert second.stats.summary()["cached"] == 5 and second.stats.summary()["sent"] == 1
    assert (tmp_path / "cache" / "requests.sqlite").exists()


def test_a_parameter_change_misses_the_cache(server):
    chat_for(server).chat_many([req("x")])
    chat_for(server, temperature=0.3).chat_many([req("x")])
    chat_for(server, model="other").chat_many([ChatRequest.of("other", [{"role": "user", "content": "x"}])])
    assert server.count == 3


def test_cache_false_always_sends_and_writes_nothing(server, tmp_path):
    for _ in range(2):
        chat_for(server, cache=False).chat_many([req("x")])
    assert server.count == 2
    assert not (tmp_path / "cache").exists()


def test_forgotten_answers_are_asked_again(server):
    chat = chat_for(server)
    chat.chat_many([req("a"), req("b")])
    assert chat.forget([req("a"), req("never asked")]) == 1
    again = chat_for(server).chat_many([req("a"), req("b")])
    assert [r.cached for r in again] == [False, True] and server.count == 3


def test_the_same_request_twice_in_one_call_is_sent_once(server):
    chat = chat_for(server)
    replies = chat.chat_many([req("dup"), req("other"), req("dup")])
    assert server.count == 2
    assert replies[0].text == replies[2].text == "ECHO: dup"
    assert chat.stats.summary()["sent"] == 2 and chat.stats.summary()["cached"] == 1


# ---- faults and retries -----------------------------------------------------------------------

@pytest.mark.parametrize("fault, status", [
    (Fault(status=429, retry_after=0.05), 429),
    (Fault(status=500), 500),
    (Fault(status=503), 503),
    (Fault(delay=1.0), 0),  # slower than the 0.3 s timeout
    (Fault(drop=True), 0),  # connection closed without a reply
], ids=["429", "500", "503", "timeout", "dropped"])
def test_transient_faults_are_retried_and_counted(server, fault, status):
    server.inject(fault)
    chat = chat_for(server, timeout=0.3 if fault.delay else 5.0)
    [reply] = chat.chat_many([req("hi")])
    assert isinstance(reply, ChatReply) and reply.text == "ECHO: hi"
    assert reply.retries == 1 and chat.stats.summary()["retried"] == 1
    assert server.count == 2 and server.statuses()[0] == status and server.statuses()[1] == 200


def test_retry_after_is_honoured(server):
    server.inject(Fault(status=429, retry_after=0.4))
    chat_for(server, retry_backoff=0.0).chat_many([req("hi")])
    first, second = server.requests
    assert second.at - first.at >= 0.38


def test_retry_after_header_forms():
    assert retry_after_seconds({"retry-after": "2"}) == 2.0
    assert retry_after_seconds({"retry-after": "0.25"}) == 0.25
    assert retry_after_seconds({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    in_a_minute = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))
    assert 55 <= retry_after_seconds({"retry-after": in_a_minute}) <= 61
    assert retry_after_seconds({"retry-after": "soon"}) is None and retry_after_seconds({}) is None


def test_a_request_that_keeps_failing_is_failed_with_the_reason_and_not_cached(server):
    server.fault_for = lambda body: Fault(status=500) if "bad" in json.dumps(body) else None
    chat = chat_for(server, max_retries=2)
    replies = chat.chat_many([req("good 1"), req("bad"), req("good 2")])
    assert [type(r) for r in replies] == [ChatReply, Failed, ChatReply]
    assert "HTTP 500" in replies[1].reason and "after 3 attempts" in replies[1].reason
    assert chat.stats.summary()["failed"] == 1 and chat.stats.summary()["retried"] == 2
    bad_sent = sum("bad" in json.dumps(r.body) for r in server.requests)
    assert bad_sent == 3
    server.fault_for = None  # the next run asks again for the failed one only
    again = chat_for(server).chat_many([req("good 1"), req("bad"), req("good 2")])
    assert all(isinstance(r, ChatReply) for r in again)
    assert [r.cached for r in again] == [True, False, True]
    assert server.count == 2 + 3 + 1


def test_client_errors_are_not_retried(server):
    server.inject(Fault(status=400, message="context too long"))
    [reply] = chat_for(server).chat_many([req("hi")])
    assert isinstance(reply, Failed) and "HTTP 400" in reply.reason and "context too long" in reply.reason
    assert server.count == 1


def test_a_retry_after_beyond_the_limit_fails_at_once(server):
    server.inject(Fault(status=429, retry_after=3600))
    start = time.monotonic()
    [reply] = chat_for(server, max_retry_wait=5).chat_many([req("hi")])
    assert isinstance(reply, Failed) and "3600" in reply.reason and "max_retry_wait" in reply.reason
    assert time.monotonic() - start < 2 and server.count == 1


def test_a_refused_key_stops_the_call_and_is_never_quoted(server):
    server.fault_for = lambda body: Fault(status=401, message=f"Incorrect API key provided: {KEY}")
    chat = chat_for(server, concurrency=2)
    with pytest.raises(OkapiError) as info:
        chat.chat_many([req(f"t{i}") for i in range(20)])
    text = info.value.render()
    assert "401" in text and "refused the API key" in text and KEY not in text
    assert PROVIDERS[server.protocol][2] in text  # the hint names the variable to check
    assert server.count < 20  # the others were not sent


def test_an_unknown_model_is_a_user_error(server):
    server.inject(Fault(status=404, message="model 'nope' not found"))
    with pytest.raises(OkapiError, match="404") as info:
        chat_for(server, concurrency=1).chat_many([req("x"), req("y")])
    assert "model name" in info.value.render() and server.count == 1


def test_an_echoed_key_is_scrubbed_from_failure_reasons(server):
    server.inject(Fault(status=400, message=f"bad header {KEY}"))
    [reply] = chat_for(server).chat_many([req("x")])
    assert isinstance(reply, Failed) and KEY not in reply.reason and "<api key>" in reply.reason


# ---- concurrency and rate limit ---------------------------------------------------------------

def test_requests_run_concurrently_up_to_the_limit(protocol):
    with FakeLLMServer(protocol, latency=0.2) as server:
        chat = chat_for(server, concurrency=4, timeout=5)
        start = time.monotonic()
        replies = chat.chat_many([req(f"t{i}") for i in range(8)])
        took = time.monotonic() - start
    assert [r.text for r in replies] == [f"ECHO: t{i}" for i in range(8)]  # in order
    assert server.max_in_flight == 4
    assert took < 8 * 0.2 * 0.75  # well under one at a time (1.6 s); two waves take 0.4 s


def test_requests_per_minute_spaces_request_starts(server):
    chat = chat_for(server, concurrency=4, requests_per_minute=300)  # one every 0.2 s
    chat.chat_many([req("warm-up")])  # the client is built on the first request: not timed
    chat.chat_many([req(f"t{i}") for i in range(4)])
    starts = sorted(r.at for r in server.requests[1:])
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert min(gaps) >= 0.15 and starts[-1] - starts[0] >= 0.55, gaps


# ---- options ----------------------------------------------------------------------------------

def create(name: str, kind: str, options: dict, base_dir: Path | None = None):
    from okapi_kit.plugins import registry

    return create_component(registry(), kind, name, options, where=f"config.yaml: {kind}", base_dir=base_dir)


@pytest.mark.parametrize("name, env", [("openai", "OPENAI_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY")])
def test_a_missing_key_is_found_when_the_config_is_validated(name, env, monkeypatch):
    monkeypatch.delenv(env)
    with pytest.raises(OkapiError, match=f"{env} is not set"):
        create(name, "translator", {"model": "m"})
    monkeypatch.setenv("MY_KEY", "x")
    assert create(name, "translator", {"model": "m", "api_key_env": "MY_KEY"}).config.api_key_env == "MY_KEY"
    # a server of one's own may need no key
    assert create(name, "ranker", {"model": "m", "base_url": "http://localhost:8000/v1/"}).config.base_url \
        == "http://localhost:8000/v1"


@pytest.mark.parametrize("options, message", [
    ({}, "model"),
    ({"model": "m", "base_url": "localhost:8000"}, "http://"),
    ({"model": "m", "concurrency": 0}, "concurrency"),
    ({"model": "m", "temperature": 3}, "temperature"),
    ({"model": "m", "api_key": KEY}, "api_key"),
    ({"model": "m", "extra_params": {"api_key": KEY}}, "credentials"),
    ({"model": "m", "extra_params": {"messages": []}}, "okapi-kit sets them"),
])
def test_bad_options_are_user_errors(options, message):
    with pytest.raises(OkapiError, match=message):
        create("openai", "translator", options)


def test_a_relative_cache_file_is_taken_from_the_options_files_folder(tmp_path):
    comp = create("openai", "translator", {"model": "m", "cache": "here.sqlite"}, base_dir=tmp_path)
    assert comp.config.cache == tmp_path / "here.sqlite"
    assert create("openai", "translator", {"model": "m", "cache": False}).config.cache is False
    with pytest.raises(OkapiError, match="not the folder"):
        create("openai", "translator", {"model": "m", "cache": str(tmp_path)})


def test_both_providers_register_a_translator_and_a_ranker():
    from okapi_kit.plugins import registry

    reg: Registry = registry()
    for name in PROVIDERS:
        for kind in ("translator", "ranker"):
            assert reg.get(kind, name).cls.name == name


def test_building_a_component_sends_and_writes_nothing(tmp_path):
    comp = create("openai", "translator", {"model": "m", "base_url": "http://127.0.0.1:9/v1"})
    comp.check("en", "vi")
    assert not (tmp_path / "cache").exists()


def test_open_cache_shares_one_instance_per_file(tmp_path):
    assert open_cache(tmp_path / "a.sqlite") is open_cache(tmp_path / "a.sqlite")
    assert open_cache(tmp_path / "a.sqlite") is not open_cache(tmp_path / "b.sqlite")


# ---- the translate stage of the real pipeline ------------------------------------------------

ROWS = [{"id": f"r{i}", "instruction": f"Write sentence number {i} about cats.",
         "input": "" if i % 2 else f"Context {i}: cats like boxes.", "output": f"Cats are great ({i})."}
        for i in range(10)]


def translation_responder(body: dict) -> str:
    """Translate what the LLM translator puts between <<< and >>>: mark it as Vietnamese."""
    user = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
    text = user.split("<<<\n", 1)[1].rsplit("\n>>>", 1)[0]
    return "[vi] " + text


def expected_requests() -> int:
    return sum(1 for r in ROWS for f in ("instruction", "input", "output") if r[f].strip())


@pytest.fixture
def workdir(tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    return tmp_path


def write_options(workdir: Path, server: FakeLLMServer, **extra) -> Path:
    opts = {"model": "fake-model", "base_url": server.base_url, **FAST, **extra}
    path = workdir / "opts.yaml"
    path.write_text(json.dumps(opts), encoding="utf-8")  # JSON is YAML
    return path


def translate(workdir: Path, provider: str, output: str, *extra: str) -> int:
    args = ["translate", str(workdir / "data.jsonl"), "--to", "vi", "--translator", provider,
            "--options", str(workdir / "opts.yaml"), "--output", str(workdir / output), "--quiet", *extra]
    return main(args)


def translations(workdir: Path, output: str) -> list[dict]:
    path = workdir / output / "records" / "translations" / "vi.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_rerun_of_the_translate_stage_sends_no_request(workdir, protocol):
    with FakeLLMServer(protocol, responder=translation_responder) as server:
        write_options(workdir, server)
        assert translate(workdir, protocol, "run1") == 0
        n = expected_requests()
        assert server.count == n
        rows = translations(workdir, "run1")
        assert rows[0]["instruction"] == "[vi] " + ROWS[0]["instruction"]
        assert translate(workdir, protocol, "run1") == 0  # the same run: the stage is done
        assert translate(workdir, protocol, "run1", "--fresh") == 0  # work discarded: the cache answers
        assert translate(workdir, protocol, "run2") == 0  # another run folder, same cache
        assert server.count == n
        assert translations(workdir, "run2") == rows
        manifest = json.loads((workdir / "run2" / "manifest.json").read_text())
        assert f'"cached": {n}' in json.dumps(manifest) and '"sent": 0' in json.dumps(manifest)
        # options that cannot change a result re-run nothing
        write_options(workdir, server, concurrency=3, timeout=0.5, max_retries=4)
        assert translate(workdir, protocol, "run1") == 0
        assert server.count == n


def test_failed_rows_go_to_the_failures_file_and_a_rerun_retries_only_them(workdir, capsys):
    with FakeLLMServer("openai", responder=translation_responder) as server:
        write_options(workdir, server, max_retries=1)
        server.fault_for = lambda body: Fault(status=500) if "number 3 " in json.dumps(body) else None
        assert translate(workdir, "openai", "run") == 2
        assert "1 vi translation(s)" in capsys.readouterr().err
        failures = (workdir / "run" / "failures").rglob("*.jsonl")
        [failure] = [json.loads(line) for f in failures for line in f.read_text().splitlines()]
        assert failure["id"] == "r3.instruction" and "HTTP 500" in failure["reason"]
        sent_before = server.count
        server.fault_for = None
        assert translate(workdir, "openai", "run") == 0
        assert server.count == sent_before + 1  # only the failed text
        rows = {r["id"]: r for r in translations(workdir, "run")}
        assert rows["r3"]["instruction"] == "[vi] " + ROWS[3]["instruction"] and len(rows) == len(ROWS)


def cache_rows(path: Path) -> int:
    if not path.exists():
        return 0
    with sqlite3.connect(path, timeout=5) as db:
        try:
            return db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def test_a_killed_translate_stage_resends_nothing_it_had_finished(workdir, tmp_path):
    cache = tmp_path / "cache" / "requests.sqlite"
    with FakeLLMServer("openai", responder=translation_responder) as server:
        write_options(workdir, server, concurrency=3, timeout=30)
        server.hold_after(6)  # six answers, then the next requests hang until the kill
        cmd = [sys.executable, "-m", "okapi_kit.cli", "translate", str(workdir / "data.jsonl"), "--to", "vi",
               "--translator", "openai", "--options", str(workdir / "opts.yaml"),
               "--output", str(workdir / "run"), "--quiet"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy())
        try:
            deadline = time.monotonic() + 60
            while not (server.count > 6 and cache_rows(cache) == 6):
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.monotonic() < deadline, "the stage never reached the hold"
                time.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
            server.release()
        assert proc.returncode == -signal.SIGKILL
        assert not (workdir / "run" / "records" / "translations" / "vi.jsonl").exists()  # it was mid-stage
        finished = {json.dumps(r.body, sort_keys=True) for r in server.answered()[:6]}
        assert len(finished) == 6
        first_run = server.count
        server.hold_after(None)
        assert translate(workdir, "openai", "run") == 0
        resent = [json.dumps(r.body, sort_keys=True) for r in server.requests[first_run:]]
        assert not finished & set(resent), "a request answered before the kill was sent again"
        assert len(resent) == len(set(resent)) == expected_requests() - 6
        assert len(translations(workdir, "run")) == len(ROWS)


def test_no_api_key_is_written_anywhere(workdir, tmp_path):
    with FakeLLMServer("openai", responder=translation_responder) as server:
        write_options(workdir, server, max_retries=0)
        # one failure whose server message quotes the key, as some servers do
        server.fault_for = lambda body: (Fault(status=400, message=f"rejected for key {KEY}")
                                         if "number 5 " in json.dumps(body) else None)
        assert translate(workdir, "openai", "run") == 2
        assert any(KEY in r.headers.get("authorization", "") for r in server.requests)  # it was used
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "opts.yaml"]
    assert any(p.name == "manifest.json" for p in written)
    assert any(p.parent.name == "failures" or "failures" in p.parts for p in written)
    assert any(p.name.startswith("requests.sqlite") for p in written)
    leaks = [str(p) for p in written if KEY.encode() in p.read_bytes()]
    assert not leaks, leaks


# ---- the judge ranker and the generator through the providers ----------------------------------

def judge_responder(body: dict) -> str:
    """A judge: any text for the translation turn; for the scoring turn, a JSON verdict that
    gives 9 to the response saying "good" and 2 to the others."""
    last = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
    if "JSON object" not in last:
        return "Here are the English translations ..."
    first = [m for m in body["messages"] if m["role"] == "user"][0]["content"]
    shown = dict(re.findall(r"\[Response ([A-Z])\]\n(.*)", first))
    return json.dumps({label: 9 if "good" in text else 2 for label, text in shown.items()})


def test_the_judge_ranks_through_the_provider_and_repairs_malformed_verdicts(tmp_path, protocol, capsys):
    samples = tmp_path / "samples_vi.jsonl"
    items = [{"id": f"p{i}", "lang": "vi", "prompt": f"Câu hỏi {i}?",
              "responses": [f"trả lời {i} tệ", f"trả lời {i} good", f"trả lời {i} kém", f"trả lời {i} dở"]}
             for i in range(4)]
    samples.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in items), encoding="utf-8")

    def faults(body: dict) -> Fault | None:
        text = json.dumps(body, ensure_ascii=False)
        scoring = "JSON object" in body["messages"][-1]["content"] or "could not be read" in text
        if scoring and "Câu hỏi 1?" in text and "could not be read" not in text:
            return Fault(text="Response B is clearly the best.")  # malformed once, then repaired
        if scoring and "Câu hỏi 2?" in text:
            return Fault(status=500)  # the scoring turn fails (max_retries 0)
        return None

    with FakeLLMServer(protocol, responder=judge_responder) as server:
        server.fault_for = faults
        (tmp_path / "opts.yaml").write_text(json.dumps({"model": "judge", "base_url": server.base_url, **FAST,
                                                        "max_retries": 0}))
        args = ["rank", str(samples), "--language", "vi", "--ranker", protocol,
                "--options", str(tmp_path / "opts.yaml"),
                "--output", str(tmp_path / "run"), "--quiet"]
        assert main(args) == 2
        assert "p2" in capsys.readouterr().err
        # two turns per item, and one repair request for p1
        assert server.count == 4 * 2 + 1
        [failure] = [json.loads(line) for f in (tmp_path / "run" / "failures").rglob("*.jsonl")
                     for line in f.read_text().splitlines()]
        assert failure["id"] == "p2" and "HTTP 500" in failure["reason"]
        server.fault_for = None
        sent = server.count
        assert main(args) == 0
        # only p2's scoring turn was sent again (its translation turn came from the cache)
        assert server.count == sent + 1
    rankings = {r["id"]: r for r in map(json.loads, (tmp_path / "run" / "records" / "rankings" / "vi.jsonl")
                                        .read_text(encoding="utf-8").splitlines())}
    assert sorted(rankings) == ["p0", "p1", "p2", "p3"]
    for r in rankings.values():
        assert r["order"][0] == 1 and r["scores"][1] == 9  # the "good" one, whatever order it was shown in
    assert rankings["p1"]["details"]["repaired"] is True


def generator_responder(body: dict) -> str:
    prompt = body["messages"][-1]["content"]
    batch = re.search(r"batch (\d+)", prompt).group(1)
    first = int(re.search(r"Task (\d+) to Task", prompt).group(1))
    letters = "abcdefghijklmnopqrstuvwxyz"

    def instruction(i: int) -> str:  # words of its own: no two tasks are alike
        return " ".join(letters[int(batch) % 26] + letters[i] + letters[k] * 2 for k in range(6))

    return "\n\n".join(f"Task {first + i}\nInstruction: {instruction(i)}\nInput: <none>\nOutput: Done ({batch}-{i})."
                       for i in range(10))


def test_the_generator_works_through_the_provider_and_a_rerun_is_free(tmp_path):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"id": f"s{i}", "instruction": f"Seed task number {i} about tea.",
                                         "input": "", "output": "Tea."}) + "\n" for i in range(3)))
    with FakeLLMServer("openai", responder=generator_responder) as server:
        (tmp_path / "gen.yaml").write_text(json.dumps({"model": "gen", "base_url": server.base_url, **FAST}))
        args = ["generate", "--seeds", str(seeds), "--count", "15", "--generator", "openai",
                "--options", str(tmp_path / "gen.yaml"), "--output", str(tmp_path / "run"), "--quiet"]
        assert main(args) == 0
        sent = server.count
        assert sent >= 2 and all(r.body["temperature"] == 1.0 for r in server.requests)  # Alpaca's
        assert main([*args, "--fresh"]) == 0
        assert server.count == sent
    out = [json.loads(line) for line in (tmp_path / "run" / "records" / "instructions" / "en.jsonl")
           .read_text().splitlines()]
    assert len([r for r in out if r["id"].startswith("self-instruct-")]) == 15


@pytest.mark.parametrize("protocol", list(PROVIDERS))
def test_an_unparsable_verdict_is_not_replayed_from_the_cache(tmp_path, protocol, capsys):
    samples = tmp_path / "samples_vi.jsonl"
    samples.write_text(json.dumps({"id": "p0", "lang": "vi", "prompt": "Câu hỏi?",
                                   "responses": ["trả lời tệ", "trả lời good"]}, ensure_ascii=False) + "\n",
                       encoding="utf-8")
    with FakeLLMServer(protocol, responder=judge_responder) as server:
        def nonsense(body: dict) -> Fault | None:
            scoring = "JSON object" in body["messages"][-1]["content"] or "could not be read" in json.dumps(body)
            return Fault(text="I like them both.") if scoring else None

        server.fault_for = nonsense
        (tmp_path / "opts.yaml").write_text(json.dumps({"model": "judge", "base_url": server.base_url, **FAST,
                                                        "mode": "direct"}))
        args = ["rank", str(samples), "--language", "vi", "--ranker", protocol, "--options",
                str(tmp_path / "opts.yaml"), "--output", str(tmp_path / "run"), "--quiet"]
        assert main(args) == 2
        assert "judge output unparsable" in capsys.readouterr().err
        assert server.count == 2  # the verdict and one repair request
        server.fault_for = None  # the judge behaves now: the rerun must ask it, not replay the cache
        assert main(args) == 0, capsys.readouterr().err
        assert server.count == 3
