"""Warnings said in full once per run of vLLM, and in one line after: in this process and in the
processes it starts (issue 8: with VLLM_SURGEON_ON_FAILURE=warn every vLLM process printed the whole
refusal again, with no word of which process it was).

The first process to say a warning marks it in an environment variable that spawned and forked
children inherit; a child finding the mark says the brief form and names the process that said it
in full. The variable's name does not start with `VLLM_`, so vLLM does not warn about it.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import sys

from vllm_surgeon.core import settings as _settings

MARK = _settings.WARNED  # entries "digest:pid:process", separated by ";"
_SAID: set[str] = set()


def this_process() -> str:
    """`pid 4242 (EngineCore)`: how every warning names where it comes from."""
    return f"pid {os.getpid()} ({multiprocessing.current_process().name})"


def setup_logging(log: logging.Logger) -> None:
    """Give vllm-surgeon's logger its stderr line format, once (the runtime and `copied_from` log there)."""
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(asctime)s [vllm-surgeon] %(message)s", "%m-%d %H:%M:%S"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


def _marks() -> dict[str, str]:
    found = {}
    for entry in os.environ.get(MARK, "").split(";"):
        digest, sep, where = entry.partition(":")
        if sep and digest:
            found[digest] = where
    return found


def warn_once(log: logging.Logger, key: str, full: str, brief: str) -> bool:
    """Log `full` if no process of this run said `key` yet, else `brief` naming the process that did.

    Returns whether the full form was logged. `{process}` in either is replaced by this process, and
    `{where}` in `brief` by the process that said it in full (both as "pid 4242 (MainProcess)")."""
    full, brief = full.replace("{process}", this_process()), brief.replace("{process}", this_process())
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    marks = _marks()
    if digest in _SAID:
        return False  # said already in this process: not again
    _SAID.add(digest)
    if digest in marks:
        pid, _, name = marks[digest].partition(":")
        log.warning("%s", brief.replace("{where}", f"pid {pid} ({name})"))
        return False
    log.warning("%s", full)
    marks[digest] = f"{os.getpid()}:{multiprocessing.current_process().name.replace(';', ',')}"
    os.environ[MARK] = ";".join(f"{d}:{w}" for d, w in marks.items())
    return True


def _forgotten_in_child() -> None:
    _SAID.clear()  # a forked child says its own (brief) line: the mark it inherited names the parent


os.register_at_fork(after_in_child=_forgotten_in_child)
