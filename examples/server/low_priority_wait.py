"""How long does one low-priority request wait under a stream of high-priority ones? Ask a vLLM server.

    python examples/server/low_priority_wait.py --base-url http://127.0.0.1:8000/v1 --model MODEL --stream-s 8

Start the server with `--scheduling-policy priority` (and `--max-num-seqs 1` to make the queue
visible on a small machine; there, give the server and this client CPUs of their own, as the
`taskset` lines of docs/running.md do: on 2 shared cores the busy server starved the client for seconds, the
queue ran dry and the measurement said nothing). The client first times two requests alone, then
sends priority-0 requests in bursts that do not wait for answers: `--queue-s` seconds of work at
once, then, after a one-second warm-up, one priority-10 request, followed at once and every second
by `--overload` seconds of work, so the engine's queue grows whatever the machine's speed. The
stream stops when the low request is done or after `--stream-s` seconds; high-priority requests
still unanswered then are cancelled (vLLM aborts a request whose client went away) and the client
waits until the engine is idle.
Without vllm-surgeon's `priority` set the low request is served only once the stream stops: its
wait grows with the stream. With it, it waits for the work queued ahead of it plus about
10 / VLLM_SURGEON_PRIORITY_AGING seconds of newer arrivals, however long the stream. Uses the
`openai` client that vLLM installs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import sys
import time

import httpx
import openai


async def engine_idle(base_url: str, timeout: float = 60.0) -> bool:
    """Wait until the server's /metrics show no request running or waiting; False after `timeout` s."""
    metrics_url = base_url.rstrip("/").removesuffix("/v1") + "/metrics"
    deadline = time.time() + timeout
    async with httpx.AsyncClient(timeout=30, verify=False) as http:  # plain HTTP: no certificates to load
        while time.time() < deadline:
            with contextlib.suppress(httpx.HTTPError, ValueError, IndexError):
                text = (await http.get(metrics_url)).text
                counts = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                          if line.startswith(("vllm:num_requests_waiting{", "vllm:num_requests_running{"))]
                if counts and not any(counts):
                    return True
            await asyncio.sleep(0.5)
    return False


async def measure(
    base_url: str, model: str, stream_s: float, max_tokens: int = 64, low_priority: int = 10,
    queue_s: float = 4.0, warmup_s: float = 1.0, overload: float = 2.0, burst_s: float = 1.0,
    timeline: str | None = None, max_outstanding: int = 512,
) -> dict:
    # Retries: on a loaded machine a kept-alive connection can be closed by the server as it is reused.
    client = openai.AsyncOpenAI(base_url=base_url, api_key="EMPTY", max_retries=2, timeout=300)
    done: list[tuple[str, float, float]] = []  # (name, sent, finished) in the order answers came back
    sent_at: dict[str, float] = {}

    async def one(name: str, priority: int) -> None:
        sent_at[name] = sent = time.time()
        await client.completions.create(
            model=model, prompt="hello world", max_tokens=max_tokens, temperature=0.0,
            extra_body={"priority": priority, "ignore_eos": True},
        )
        done.append((name, sent, time.time()))

    # Two requests alone before the clock starts: the first builds the client's models and connection,
    # the faster one gives the server's time per request with nothing queued.
    alone = []
    for k in range(2):
        began = time.time()
        await one(f"calibrate-{k}", 0)
        alone.append(time.time() - began)
    done.clear()

    # Bursts sent without waiting for answers: each adds `overload` times the work the server answers
    # meanwhile, so the engine's queue grows (as long as the client itself gets CPU: see above).
    highs: dict[str, asyncio.Task[None]] = {}
    n = 0

    def burst(seconds_of_work: float) -> None:
        nonlocal n
        room = max_outstanding - sum(1 for task in highs.values() if not task.done())
        for _ in range(min(room, max(1, math.ceil(seconds_of_work / min(alone))))):
            highs[f"high-{n}"] = asyncio.create_task(one(f"high-{n}", 0))
            n += 1

    started = time.time()
    stream_until = started + warmup_s + stream_s
    burst(queue_s)  # the work queued ahead of the low request
    await asyncio.sleep(warmup_s)
    low_task = asyncio.create_task(one("low", low_priority))
    await asyncio.sleep(0)  # the low request is timestamped before the next burst
    next_burst = time.time()
    while time.time() < stream_until and not low_task.done():
        burst(overload * burst_s)
        next_burst += burst_s
        await asyncio.wait([low_task], timeout=max(0.0, min(next_burst, stream_until) - time.time()))
    stream_stopped = time.time()
    cancelled = {name for name, task in highs.items() if not task.done()}
    for name in cancelled:
        highs[name].cancel()  # vLLM aborts the request when its connection closes
    await asyncio.gather(*highs.values(), return_exceptions=True)
    await low_task
    idle = await engine_idle(base_url)
    await client.close()

    if timeline:
        with open(timeline, "w") as f:
            json.dump([{"name": n, "sent": s, "finished": e} for n, s, e in done], f)
    names = [name for name, _, _ in done]
    at = names.index("low")
    _, low_sent, low_finished = done[at]
    later = {name for name, sent in sent_at.items() if name.startswith("high-") and sent > low_sent}
    ahead = set(names[:at])
    # Cancelled at the stream's end, before the low request was served: they were not behind it.
    live_at_low = later - ahead if low_finished < stream_stopped else later - ahead - cancelled
    return {
        "stream_s": stream_s,
        "alone_s": round(min(alone), 3),
        "low_wait_s": round(low_finished - low_sent, 3),
        # Until the stream stopped high-priority requests kept arriving faster than they were served.
        "low_finished_while_streaming": low_finished < stream_stopped,
        "highs": n,
        "highs_answered": len(done) - 1,
        "highs_cancelled_at_stream_end": len(cancelled),
        "highs_sent_after_low": len(later),
        "overtaken_by_later_highs": len(later & ahead),
        # Sent after the low request and still unanswered when it was served: they waited behind it.
        "later_highs_behind_low": len(live_at_low),
        "engine_idle_after": idle,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    parser.add_argument("--model", required=True, help="the served model name")
    parser.add_argument("--stream-s", type=float, default=3.0, help="how long high-priority requests keep coming")
    parser.add_argument("--queue-s", type=float, default=4.0, help="seconds of work queued ahead of the low request")
    parser.add_argument("--overload", type=float, default=2.0,
                        help="seconds of work sent per second of stream (above 1: a growing queue)")
    parser.add_argument("--max-tokens", type=int, default=64, help="tokens each request asks for")
    parser.add_argument("--json", action="store_true", help="print the measurement as JSON")
    parser.add_argument("--timeline", metavar="FILE", help="write every request's send and finish times (JSON) to FILE")
    args = parser.parse_args(argv)
    try:
        result = asyncio.run(measure(args.base_url, args.model, args.stream_s, args.max_tokens, queue_s=args.queue_s,
                                     overload=args.overload, timeline=args.timeline))
    except openai.OpenAIError as exc:
        print(f"low_priority_wait: the server at {args.base_url} failed a request: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"low-priority request waited {result['low_wait_s']:.2f} s under a {args.stream_s:g} s stream of "
            f"{result['highs']} high-priority requests ({result['alone_s']:.2f} s each alone); "
            f"overtaken by {result['overtaken_by_later_highs']} of the "
            f"{result['highs_sent_after_low']} sent after it; "
            + ("served while the stream went on" if result["low_finished_while_streaming"] else "served only once the stream stopped")
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
