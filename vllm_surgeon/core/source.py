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
