"""The `vllm-surgeon` command line (placeholder until the CLI issue: `list` only)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from ._search import available

    for loc in available():
        print(f"{loc.name}\t{loc.path}\t{loc.source}")
    return 0
