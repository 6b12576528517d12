"""The real OpenAI-compatible server (CPU build, tiny Llama) with the bundled `priority` set, over HTTP on loopback.

Two servers, each started once (~40-90 s) and stopped with its whole process group: one with
VLLM_SURGEON_HUNKS=priority (applied by the .pth bootstrap, as for a user), one without. Each is
driven by examples/server/low_priority_wait.py (the client of docs/running.md, the `openai` package vLLM
brings): bursts of priority-0 requests (128 tokens each) that outgrow what the server answers,
and one priority-10 request, for two stream lengths. Asserted are ordering facts, not timings;
the waits are printed (`pytest -s`).

The server runs on one CPU and the client on the others (docs/running.md "Serving with a set"). Sharing
both cores, vLLM's three busy processes starved the client for 1-4 s at a time (its run queue
wait, /proc/PID/schedstat): it then sent nothing, the engine's queue ran dry and the low request
was served in the gap, set or no set, which made the no-set runs measure the client, not vLLM.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import REPO, SURGEON_LINE, surgeon_env

pytestmark = pytest.mark.vllm

AGING = "20"  # priority levels per second: a priority-10 request is ahead of priority-0 arrivals 0.5 s younger
STREAMS = (10.0, 20.0)  # seconds of high-priority stream
# Tokens per request: 0.5-0.9 s each alone here (the server on one CPU); the table of docs/running.md is measured with these.
MAX_TOKENS = "128"
# The server command of docs/running.md, after `--model MODEL` ("Serving with a set" there shows the same flags).
SERVE_ARGS = ["--served-model-name", "tiny", "--scheduling-policy", "priority", "--max-num-seqs", "1",
              "--gpu-memory-utilization", "0.1", "--max-model-len", "256"]
CLIENT = REPO / "examples" / "server" / "low_priority_wait.py"
_CPUS = sorted(os.sched_getaffinity(0))
# The server (API server, EngineCore, worker) on the first CPU, the client on the rest; one CPU: shared.
SERVER_CPUS = _CPUS[:1]
CLIENT_CPUS = _CPUS[1:] or _CPUS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m vllm.entrypoints.openai.api_server` in its own process group, logging to a file."""

    def __init__(self, model: Path, env: dict[str, str], log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.log = log
        command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model), *SERVE_ARGS,
                   "--host", "127.0.0.1", "--port", str(self.port)]
        # vLLM's CPU worker binds its OpenMP threads itself; it is told the same CPU.
        env = {**env, "VLLM_CPU_OMP_THREADS_BIND": ",".join(map(str, SERVER_CPUS))}
        with log.open("w") as out:
            self.proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True, preexec_fn=lambda: os.sched_setaffinity(0, SERVER_CPUS))
        self.exit_code: int | None = None
        self.group_gone = False

    def wait_ready(self, timeout: float = 600) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode} before it was ready:\n{self.tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(1)
        raise RuntimeError(f"the server was not ready after {timeout:.0f} s:\n{self.tail()}")

    def stop(self) -> None:
        """SIGTERM to the whole group (API server, EngineCore, worker); SIGKILL what is left after 60 s."""
        pgid = self.proc.pid
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.exit_code = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.exit_code = self.proc.wait()
        for _ in range(60):  # the EngineCore and worker leave after the API server
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                self.group_gone = True
                return
            time.sleep(0.5)
        os.killpg(pgid, signal.SIGKILL)

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def measure(url: str, stream_s: float, timeline: Path) -> dict:
    out = subprocess.run(
        [sys.executable, str(CLIENT), "--base-url", url, "--model", "tiny", "--stream-s", str(stream_s), "--max-tokens", MAX_TOKENS,
         "--json", "--timeline", str(timeline)],
        capture_output=True, text=True, timeout=300, preexec_fn=lambda: os.sched_setaffinity(0, CLIENT_CPUS),
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def served(tiny_model, tmp_path_factory) -> dict[str, dict]:
    """For each configuration: the measurements per stream length, the server log, how it stopped."""
    results = {}
    configurations = {
        "priority": surgeon_env(VLLM_SURGEON_HUNKS="priority", VLLM_SURGEON_PRIORITY_AGING=AGING),
        "plain": surgeon_env(),
    }
    for key, env in configurations.items():
        server = Server(tiny_model, env, tmp_path_factory.mktemp(f"server-{key}") / "server.log")
        try:
            server.wait_ready()
            runs = {s: measure(server.url, s, server.log.with_name(f"timeline-{s:g}.json")) for s in STREAMS}
        finally:
            server.stop()
        results[key] = {"runs": runs, "log": server.log.read_text(errors="replace"),
                        "exit_code": server.exit_code, "group_gone": server.group_gone}
    for key, result in results.items():
        for stream_s, run in result["runs"].items():
            print(f"\n[{key}] stream {stream_s:.0f} s: low-priority wait {run['low_wait_s']:.2f} s, "
                  f"overtaken by {run['overtaken_by_later_highs']} of {run['highs_sent_after_low']} later arrivals, "
                  f"{run['later_highs_behind_low']} behind it, served while streaming: {run['low_finished_while_streaming']} "
                  f"({run['highs']} high-priority requests, {run['alone_s']:.2f} s each alone)")
    return results


def test_served_priority_set_is_applied_in_the_api_server_enginecore_and_worker(served):
    lines = [m for m in SURGEON_LINE.finditer(served["priority"]["log"]) if m["name"] == "priority"]
    processes = {m["process"] for m in lines}
    assert len({m["pid"] for m in lines}) == 3, [m.group(0) for m in lines]
    assert {"MainProcess", "EngineCore"} <= processes and any(p.startswith("VllmWorker") for p in processes)
    assert not list(SURGEON_LINE.finditer(served["plain"]["log"]))


def test_served_priority_set_serves_the_low_request_while_the_stream_goes_on(served):
    for stream_s, run in served["priority"]["runs"].items():
        assert run["low_finished_while_streaming"], (stream_s, run)
        # Later arrivals overtake it only in its first 10/AGING seconds; the rest wait behind it.
        assert run["later_highs_behind_low"] > 0, (stream_s, run)
        assert run["engine_idle_after"], (stream_s, run)


def test_without_the_set_the_low_request_waits_for_the_whole_stream(served):
    """Upstream vLLM has no aging: every later high-priority arrival goes first, so the low request
    is served only once the stream stops (the client then cancels what is left): its wait grows
    with the stream. tests/test_real_engine.py shows the same on the engine, without HTTP."""
    for stream_s, run in served["plain"]["runs"].items():
        assert not run["low_finished_while_streaming"], (stream_s, run)
        assert run["overtaken_by_later_highs"] > 0, (stream_s, run)
        assert run["engine_idle_after"], (stream_s, run)


def test_servers_stop_cleanly_with_their_whole_process_group(served):
    for key, result in served.items():
        assert result["group_gone"], key
        assert result["exit_code"] in (0, -signal.SIGTERM), (key, result["exit_code"])
