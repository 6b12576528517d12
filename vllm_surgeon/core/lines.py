"""Lines as Python's tokenizer sees them: split on \\n, \\r\\n and \\r only.

`str.splitlines()` also splits on \\x0b, \\x0c, \\x1c-\\x1e, \\x85, U+2028 and U+2029, which Python
keeps inside a line (in a comment or a string): a hunk's comment tail would become a statement
(issue 7 item 7). Every reader of set files and of module sources splits here instead.
"""

from __future__ import annotations

import re

_BREAK = re.compile(r"\r\n|\r|\n")


def normalize_newlines(text: str) -> str:
    """`text` with \\r\\n and lone \\r turned into \\n, as Python's tokenizer reads source."""
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def split_lines(text: str) -> list[str]:
    """The lines of `text` without their line breaks; a final break gives no extra empty line."""
    lines = _BREAK.split(text)
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()
    return lines if text else []


def lines_with_ends(text: str) -> list[str]:
    """The lines of `text` (already \\n-only) with their \\n, as `linecache` keeps them."""
    parts = text.split("\n")
    return [line + "\n" for line in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
