"""How long does one low-priority request wait under a stream of high-priority ones? Ask a vLLM server.

    python examples/server/low_priority_wait.py --base-url http://127.0.0.1:8000/v1 --model MODEL --stream-s 3

Start the server with `--scheduling-policy priority` (and `--max-num-seqs 1` to make the queue
visible on a small machine). `depth` clients send priority-0 requests back to back, each asking for
`max_tokens` tokens; enough of them that requests wait in the engine's queue even when HTTP and
the client are slow (a loaded machine): the server always has high-priority work waiting. After a one-second warm-up one priority-10 request is sent. The stream stops when the low request is done or after `--stream-s` seconds, whichever is
first. Without vllm-surgeon's `priority` set the low request is served only once the stream stops
(its wait grows with the stream); with it, after at most about 10 / VLLM_SURGEON_PRIORITY_AGING
seconds behind newer arrivals. Uses the `openai` client that vLLM installs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import openai


async def measure(
    base_url: str, model: str, stream_s: float, depth: int = 32, max_tokens: int = 8, low_priority: int = 10,
    warmup_s: float = 1.0,
) -> dict:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="EMPTY", max_retries=0, timeout=120)
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

    started = time.time()
    stream_until = started + warmup_s + stream_s
    highs = [asyncio.create_task(high_client(k, stream_until)) for k in range(depth)]
    await asyncio.sleep(warmup_s)  # the queue fills with high-priority work first
    low_task = asyncio.create_task(low())
    await asyncio.gather(*highs)
    await low_task
    await client.close()

    names = [name for name, _, _ in done]
    at = names.index("low")
    _, low_sent, low_finished = done[at]
    later = {name for name, sent, _ in done if name != "low" and sent > low_sent}
    return {
        "stream_s": stream_s,
        "low_wait_s": round(low_finished - low_sent, 3),
        # Before the stream's deadline every client still sends high-priority requests back to back.
        "low_finished_while_streaming": low_finished < stream_until,
        "highs": len(done) - 1,
        "highs_sent_after_low": len(later),
        "overtaken_by_later_highs": sum(1 for name in names[:at] if name in later),
        "later_highs_served_after_low": sum(1 for name in names[at + 1 :] if name in later),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    parser.add_argument("--model", required=True, help="the served model name")
    parser.add_argument("--stream-s", type=float, default=3.0, help="how long high-priority requests keep coming")
    parser.add_argument("--depth", type=int, default=32, help="high-priority clients sending back to back")
    parser.add_argument("--max-tokens", type=int, default=8, help="tokens each request asks for")
    parser.add_argument("--json", action="store_true", help="print the measurement as JSON")
    args = parser.parse_args(argv)
    try:
        result = asyncio.run(measure(args.base_url, args.model, args.stream_s, args.depth, args.max_tokens))
    except openai.OpenAIError as exc:
        print(f"low_priority_wait: the server at {args.base_url} failed a request: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"low-priority request waited {result['low_wait_s']:.2f} s under a {args.stream_s:g} s stream of "
            f"{result['highs']} high-priority requests; overtaken by {result['overtaken_by_later_highs']} of the "
            f"{result['highs_sent_after_low']} sent after it; "
            + ("served while the stream went on" if result["low_finished_while_streaming"] else "served only once the stream stopped")
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
