"""Throughput of the API providers, and the cost of rerunning a finished stage.

A local server (tests/fake_llm_servers.py, in a process of its own) answers every request
after an injected latency L (50 ms). With C requests in flight, no client can do better
than C / L requests per second; the benchmark reports okapi-kit's rate as a share of that
bound (target: at least 0.8 at C = 16), next to the same requests sent by the provider's
client library from C threads with nothing around it (no cache, no retry loop, no limiter),
and the CPU time each side spends per request (this process only, not the server's).

It also times okapi-kit's own layer alone (cache, retry loop, thread pool) around a send
that only sleeps for the latency: no client library, no HTTP.

Then it translates ROWS records with ``okapi-kit translate --translator openai`` against the
same server and reruns it three ways, counting the requests the server received and the
wall time: the same command again (the stage is finished: it is skipped), ``--fresh`` (the
run's work is discarded: the request cache answers), and into a new run folder (another
run, the same cache). Target: zero requests for each.

    python benchmarks/api_throughput.py                     # C = 1, 4, 16, 64; both providers
    python benchmarks/api_throughput.py --concurrency 16 --protocols openai --per-worker 50

The cache is a temporary file (OKAPI_KIT_CACHE is set for the run): nothing is written to
the user's cache.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import report  # noqa: E402

KEY = "sk-benchmark-not-a-real-key"


class Server:
    """The fake server in a child process; ``count()`` asks it how many requests it got."""

    def __init__(self, protocol: str, latency: float):
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fake_llm_servers.py"),
                                      "--protocol", protocol, "--latency", str(latency)],
                                     stdout=subprocess.PIPE, text=True)
        self.base_url = self.proc.stdout.readline().strip()
        self.root = self.base_url.removesuffix("/v1")

    def count(self) -> int:
        with urllib.request.urlopen(self.root + "/_stats", timeout=10) as resp:
            return int(json.load(resp)["count"])

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def chat_model(protocol: str, base_url: str, concurrency: int):
    if protocol == "openai":
        from okapi_kit_openai.chat import OpenAIChat, OpenAIOptions

        return OpenAIChat(OpenAIOptions(model="bench", base_url=base_url, concurrency=concurrency))
    from okapi_kit_anthropic.chat import AnthropicChat, AnthropicOptions

    return AnthropicChat(AnthropicOptions(model="bench", base_url=base_url, concurrency=concurrency))


def requests_for(tag: str, n: int):
    from okapi_kit.llm.chat import ChatRequest

    return [ChatRequest.of("bench", [{"role": "user", "content": f"{tag} request {i}"}]) for i in range(n)]


def run_ours(protocol: str, base_url: str, c: int, n: int, tag: str) -> tuple[float, float]:
    """Wall and CPU time of one chat_many call of n new requests (cache on: every answer is
    stored)."""
    chat = chat_model(protocol, base_url, c)
    chat.chat_many(requests_for(f"warm-{tag}", c))  # build the client, open connections
    todo = requests_for(tag, n)
    cpu, start = time.process_time(), time.perf_counter()
    replies = chat.chat_many(todo)
    took, cpu = time.perf_counter() - start, time.process_time() - cpu
    bad = [r for r in replies if not hasattr(r, "text")]
    if bad:
        raise RuntimeError(f"{len(bad)} requests failed: {bad[0]}")
    return took, cpu


def run_direct(protocol: str, base_url: str, c: int, n: int, tag: str) -> tuple[float, float]:
    """The same with the client library alone, from c threads."""
    if protocol == "openai":
        import openai

        client = openai.OpenAI(api_key=KEY, base_url=base_url, max_retries=0)

        def send(i: int) -> str:
            r = client.chat.completions.create(model="bench", messages=[
                {"role": "user", "content": f"{tag} request {i}"}], temperature=0.0)
            return r.choices[0].message.content
    else:
        import anthropic

        client = anthropic.Anthropic(api_key=KEY, base_url=base_url, max_retries=0)

        def send(i: int) -> str:
            r = client.messages.create(model="bench", max_tokens=4096, messages=[
                {"role": "user", "content": f"{tag} request {i}"}])
            return r.content[0].text

    with ThreadPoolExecutor(c) as pool:
        list(pool.map(send, range(-c, 0)))  # warm-up
        cpu, start = time.process_time(), time.perf_counter()
        list(pool.map(send, range(n)))
        return time.perf_counter() - start, time.process_time() - cpu


def layer_only(args: argparse.Namespace) -> list[dict]:
    """okapi-kit's own layer (cache, retry loop, thread pool) around a ``_send`` that only
    sleeps for the latency: what is left of the bound without a client library or HTTP."""
    from okapi_kit.llm.chat import ChatReply
    from okapi_kit.llm.client import ApiChatModel, ApiOptions

    class Sleeper(ApiChatModel):
        provider = "sleeper"

        def _make_client(self, api_key):
            return None

        def _send(self, request):
            time.sleep(args.latency)
            return ChatReply("x" * 200, 10, 20)

    rows = []
    for c in args.concurrency:
        n, bound = c * args.per_worker, c / args.latency
        chat = Sleeper(ApiOptions(model="bench", base_url="http://sleeper", concurrency=c))
        runs = []
        for rep in range(args.repeats):
            todo = requests_for(f"layer-{c}-{rep}", n)
            start = time.perf_counter()
            chat.chat_many(todo)
            runs.append(time.perf_counter() - start)
        rps = n / statistics.median(runs)
        report("layer only", f"rps C={c}", rps, bound, "bound")
        rows.append({"C": c, "requests": n, "bound": bound, "rps": rps, "share": rps / bound})
    return rows


def throughput(args: argparse.Namespace) -> list[dict]:
    rows = []
    for protocol in args.protocols:
        server = Server(protocol, args.latency)
        try:
            for c in args.concurrency:
                n = c * args.per_worker
                bound = c / args.latency
                ours, direct = [], []
                for rep in range(args.repeats):  # alternate the two sides
                    ours.append(run_ours(protocol, server.base_url, c, n, f"ours-{c}-{rep}"))
                    direct.append(run_direct(protocol, server.base_url, c, n, f"direct-{c}-{rep}"))
                rps = n / statistics.median(w for w, _ in ours)
                rps_direct = n / statistics.median(w for w, _ in direct)
                cpu = statistics.median(t for _, t in ours) / n * 1000
                cpu_direct = statistics.median(t for _, t in direct) / n * 1000
                report(f"{protocol}", f"rps C={c}", rps, bound, "bound")
                report(f"{protocol}", f"rps C={c}", rps, rps_direct, "client-alone")
                report(f"{protocol}", f"cpu/req C={c}", cpu, cpu_direct, "client-alone", unit="ms")
                rows.append({"protocol": protocol, "C": c, "requests": n, "bound": bound, "rps": rps,
                             "share": rps / bound, "rps_client_alone": rps_direct,
                             "share_client_alone": rps_direct / bound, "cpu_ms_per_request": cpu,
                             "cpu_ms_per_request_client_alone": cpu_direct})
        finally:
            server.close()
    return rows


def rerun(args: argparse.Namespace, workdir: Path) -> dict:
    from okapi_kit.cli import main

    data = workdir / "data.jsonl"
    data.write_text("".join(json.dumps({"id": f"r{i}", "instruction": f"Instruction number {i}.", "input": "",
                                        "output": f"Answer number {i}."}) + "\n" for i in range(args.rows)))
    server = Server("openai", args.latency)
    try:
        opts = workdir / "opts.yaml"
        opts.write_text(json.dumps({"model": "bench", "base_url": server.base_url, "concurrency": 16}))
        base = ["translate", str(data), "--to", "vi", "--translator", "openai", "--options", str(opts), "--quiet"]
        out = {}
        for label, extra in (("first run", ["--output", str(workdir / "run")]),
                             ("rerun (stage finished)", ["--output", str(workdir / "run")]),
                             ("rerun --fresh (cache)", ["--output", str(workdir / "run"), "--fresh"]),
                             ("new run folder (cache)", ["--output", str(workdir / "run2")])):
            before = server.count()
            start = time.perf_counter()
            rc = main(base + extra)
            took = time.perf_counter() - start
            if rc:
                raise RuntimeError(f"okapi-kit translate exited with {rc}")
            out[label] = {"seconds": took, "requests": server.count() - before}
            print(f"{'rerun':<16}{label:<26}{took:8.3f} s  requests={out[label]['requests']}", flush=True)
        return out
    finally:
        server.close()


def main_() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 16, 64])
    ap.add_argument("--protocols", type=lambda s: s.split(","), default=["openai", "anthropic"])
    ap.add_argument("--latency", type=float, default=0.05, help="seconds the server waits before each answer")
    ap.add_argument("--per-worker", type=int, default=25, help="requests per unit of concurrency (n = C x this)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rows", type=int, default=200, help="records translated in the rerun benchmark")
    ap.add_argument("--json", type=Path, help="also write the figures to this file")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["OKAPI_KIT_CACHE"] = str(Path(tmp) / "requests.sqlite")
        os.environ["OPENAI_API_KEY"] = os.environ["ANTHROPIC_API_KEY"] = KEY
        figures = {"layer_only": layer_only(args), "throughput": throughput(args), "rerun": rerun(args, Path(tmp))}
    print(json.dumps(figures, indent=1))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main_()
