"""How long does one low-priority request wait under a stream of high-priority ones? Ask a vLLM server.

    python examples/server/low_priority_wait.py --base-url http://127.0.0.1:8000/v1 --model MODEL --stream-s 8

Start the server with `--scheduling-policy priority` (and `--max-num-seqs 1` to make the queue
visible on a small machine). Clients send priority-0 requests back to back; their number follows
the server's throughput so that about `--queue-s` seconds of high-priority work always wait in
the engine, on a fast machine or a loaded one (a stall of the API server then never lets the
queue run dry). After a one-second warm-up one priority-10 request is sent. The stream stops when
the low request is done or after `--stream-s` seconds, whichever is first. Without vllm-surgeon's
`priority` set the low request is served only once the stream stops: its wait grows with the
stream. With it, it waits for the work queued ahead of it plus about 10 / VLLM_SURGEON_PRIORITY_AGING
seconds of newer arrivals, however long the stream. Uses the `openai` client that vLLM installs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import httpx
import openai


async def measure(
    base_url: str, model: str, stream_s: float, queue_s: float = 3.0, max_tokens: int = 64, low_priority: int = 10,
    warmup_s: float = 1.0, timeline: str | None = None, min_clients: int = 4, max_clients: int = 256,
) -> dict:
    # Retries: on a loaded machine a kept-alive connection can be closed by the server as it is reused.
    client = openai.AsyncOpenAI(base_url=base_url, api_key="EMPTY", max_retries=2, timeout=300)
    done: list[tuple[str, float, float]] = []  # (name, sent, finished) in the order answers came back
    low_done = asyncio.Event()

    async def one(name: str, priority: int) -> None:
        sent = time.time()
        await client.completions.create(
            model=model, prompt="hello world", max_tokens=max_tokens, temperature=0.0,
            extra_body={"priority": priority, "ignore_eos": True},
        )
        done.append((name, sent, time.time()))

    async def high_client(k: int, until: float) -> None:
        n = 0
        while time.time() < until and not low_done.is_set():
            await one(f"high-{k}-{n}", 0)
            n += 1

    async def low() -> None:
        await one("low", low_priority)
        low_done.set()

    # One request before the clock starts: the client's first call builds its models and connection
    # (seconds on a loaded machine, during which no finish time could be recorded).
    await client.completions.create(model=model, prompt="hello", max_tokens=1, extra_body={"priority": 0})
    started = time.time()
    stream_until = started + warmup_s + stream_s
    highs = [asyncio.create_task(high_client(k, stream_until)) for k in range(min_clients)]

    async def keep_queue_full() -> None:
        """As many clients as the server answers in `queue_s` seconds (throughput over the last 2 s)."""
        while time.time() < stream_until and not low_done.is_set():
            await asyncio.sleep(0.25)
            now = time.time()
            rate = sum(1 for _, _, finished in done[-max_clients * 4:] if finished > now - 2.0) / 2.0
            want = min(max_clients, max(min_clients, int(rate * queue_s) + 1))
            while len(highs) < want:
                highs.append(asyncio.create_task(high_client(len(highs), stream_until)))

    waiting: list[tuple[float, float]] = []  # (time, requests waiting in the engine) from the server's /metrics

    async def sample_queue() -> None:
        metrics_url = base_url.rstrip("/").removesuffix("/v1") + "/metrics"
        async with httpx.AsyncClient(timeout=30) as http:
            while not low_done.is_set():
                try:
                    text = (await http.get(metrics_url)).text
                    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                              if line.startswith("vllm:num_requests_waiting{")]
                    if values:
                        waiting.append((time.time(), sum(values)))
                except (httpx.HTTPError, ValueError, IndexError):
                    pass
                await asyncio.sleep(0.1)

    controller = asyncio.create_task(keep_queue_full())
    sampler = asyncio.create_task(sample_queue())
    await asyncio.sleep(warmup_s)  # the queue fills with high-priority work first
    low_task = asyncio.create_task(low())
    await controller
    while not all(task.done() for task in highs):
        await asyncio.gather(*highs)
    await low_task
    await sampler
    await client.close()

    if timeline:
        with open(timeline, "w") as f:
            json.dump([{"name": n, "sent": s, "finished": e} for n, s, e in done], f)
    names = [name for name, _, _ in done]
    at = names.index("low")
    _, low_sent, low_finished = done[at]
    later = {name for name, sent, _ in done if name != "low" and sent > low_sent}
    # Requests waiting in the engine while the low one waited (it counts itself): 1 means the queue ran
    # dry, and then vLLM rightly serves the low request, set or no set.
    during = [n for t, n in waiting if low_sent + 0.2 < t < low_finished - 0.2]
    return {
        "stream_s": stream_s,
        "low_wait_s": round(low_finished - low_sent, 3),
        # Before the stream's deadline every client still sends high-priority requests back to back.
        "low_finished_while_streaming": low_finished < stream_until,
        "highs": len(done) - 1,
        "clients": len(highs),
        "fewest_waiting_in_engine": min(during) if during else None,
        "highs_sent_after_low": len(later),
        "overtaken_by_later_highs": sum(1 for name in names[:at] if name in later),
        "later_highs_served_after_low": sum(1 for name in names[at + 1 :] if name in later),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    parser.add_argument("--model", required=True, help="the served model name")
    parser.add_argument("--stream-s", type=float, default=3.0, help="how long high-priority requests keep coming")
    parser.add_argument("--queue-s", type=float, default=3.0, help="seconds of high-priority work to keep waiting")
    parser.add_argument("--max-tokens", type=int, default=64, help="tokens each request asks for")
    parser.add_argument("--json", action="store_true", help="print the measurement as JSON")
    parser.add_argument("--timeline", metavar="FILE", help="write every request's send and finish times (JSON) to FILE")
    args = parser.parse_args(argv)
    try:
        result = asyncio.run(measure(args.base_url, args.model, args.stream_s, args.queue_s, args.max_tokens, timeline=args.timeline))
    except openai.OpenAIError as exc:
        print(f"low_priority_wait: the server at {args.base_url} failed a request: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"low-priority request waited {result['low_wait_s']:.2f} s under a {args.stream_s:g} s stream of "
            f"{result['highs']} high-priority requests ({result['clients']} clients); overtaken by {result['overtaken_by_later_highs']} of the "
            f"{result['highs_sent_after_low']} sent after it; "
            + ("served while the stream went on" if result["low_finished_while_streaming"] else "served only once the stream stopped")
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
