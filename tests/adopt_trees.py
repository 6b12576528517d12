"""Small fake vLLM trees and patch packages for the `adopt` tests (read statically, never imported)."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

from vllm_surgeon.commands.cli import main

SCHEDULER = '''\
"""A scheduler, as vLLM writes one."""

from collections import deque

from vllm.logger import init_logger

logger = init_logger(__name__)
MAX_WAITING = 100


class Scheduler:
    """Schedules requests."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.waiting = deque()
        self.running = []

    def schedule(self) -> list:
        """Pick what runs next."""
        # Admit waiting requests while the budget lasts.
        scheduled = []
        while self.waiting and self.budget > 0:
            request = self.waiting.popleft()
            if request.tokens > self.budget:
                self.waiting.appendleft(request)
                break
            self.budget -= request.tokens
            scheduled.append(request)
        logger.debug("scheduled %d requests, %d tokens left in the budget", len(scheduled), self.budget)
        return scheduled

    @staticmethod
    def describe(request) -> str:
        return f"request {request.id} ({request.tokens} tokens)"

    def finish(self, request) -> None:
        self.running.remove(request)


class PriorityScheduler(Scheduler):
    def pick(self):
        return min(self.waiting, key=lambda r: r.priority)


def admit(queue, budget: int) -> int:
    total = 0
    for request in queue:
        total += request.tokens
    return min(total, budget)
'''

LOGGER = '''\
import logging


def init_logger(name):
    return logging.getLogger(name)
'''

CONFIG_INIT = '''\
from vllm.config.model import ModelConfig

__all__ = ["ModelConfig"]
'''

CONFIG_MODEL = '''\
class ModelConfig:
    def verify(self) -> None:
        if self.max_len <= 0:
            raise ValueError("max_len must be positive")
        self.ready = True
'''


def write(root: Path, relative: str, text: str) -> Path:
    """Write `text` (dedented) at root/relative, with `__init__.py` in every folder on the way."""
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = path.parent
    while folder != root:
        init = folder / "__init__.py"
        if not init.exists():
            init.write_text("")
        folder = folder.parent
    path.write_text(textwrap.dedent(text))
    return path


def vllm_tree(root: Path) -> Path:
    """A partial vLLM 0.99.0 source tree: a scheduler, a logger, a config package with a re-export."""
    write(root, "vllm/_version.py", '__version__ = version = "0.99.0"\n')
    write(root, "vllm/v1/core/sched/scheduler.py", SCHEDULER)
    write(root, "vllm/logger.py", LOGGER)
    write(root, "vllm/config/model.py", CONFIG_MODEL)
    (root / "vllm/config/__init__.py").write_text(CONFIG_INIT)
    return root


def cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(args), out=out)
    return code, out.getvalue()
