"""A one-line status on stderr for what is slow in the CLI (listing the index, downloading wheels,
checking each release of a range): shown only when stderr is a terminal, never in `--json` output
or when piped (issue 8: a range downloaded for half a minute in silence)."""

from __future__ import annotations

import shutil
import sys


class Progress:
    """Call it with a status text; it rewrites one line in place. `clear()` removes it."""

    def __init__(self, stream=None, enabled: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.on = enabled
        self.prefix = ""
        self._shown = False

    def __call__(self, text: str) -> None:
        if not self.on:
            return
        width = max(shutil.get_terminal_size((100, 24)).columns - 1, 20)
        line = (self.prefix + text)[:width]  # a wrapped line could not be rewritten in place
        self.stream.write("\r\033[K" + line)
        self.stream.flush()
        self._shown = True

    def clear(self) -> None:
        if self._shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._shown = False
