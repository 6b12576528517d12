"""A module's source text as read from disk, a wheel or a source tree: what every layer passes around."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class ModuleSource:
    """A module's source text as read from disk, a wheel or a source tree."""

    module: str
    path: str
    text: str

    def lines(self) -> list[str]:
        return self.text.split("\n")


SourceReader = Callable[[str], "ModuleSource | None"]

ModuleExists = Callable[[str], bool]
"""Whether a tree holds a module in any form (source, extension, sourceless, namespace package): what
`import` would find. A reader returns only Python source, so a missing source is not a missing module."""
