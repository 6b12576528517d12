"""What the hunk engine and the transform locator share: a module's source, its text while sets are
applied (`State`), where a hunk lands (`Placement`) and what a refusal must say (`Context`).

Its own module so data flows one way (issue 7 item 13): `_engine` plans with these and calls
`_transform` for transform hunks; `_transform` needs only these, never the engine.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from vllm_surgeon.core.model import Hunk, HunkSet, Origin
from vllm_surgeon.core.refusal import Reason, Refusal
from vllm_surgeon.core.scopes import Scope, ScopeIndex
from vllm_surgeon.core.source import ModuleSource


@dataclass
class State:
    """A module's text while sets are applied, with who added each line and where it came from."""

    source: ModuleSource
    lines: list[str]
    owners: list[str | None]  # the set that added each line (None: the original)
    origin_of: list[int | None]  # 0-based original line, None for an added line
    relied: list[frozenset[str]]  # the sets whose anchors hold each line
    sets: tuple[str, ...] = ()
    _index: ScopeIndex | None = None
    created: bool = False  # the module does not exist in the tree: a set creates it (issue 6)
    # Per line: (set, hunk-file line) that wrote it, or whose removal sits just above it; None for
    # untouched lines. What a failure of the patched code is blamed on (issue 7 items 4 and 6).
    blame: list[tuple[str, Origin] | None] | None = None

    @classmethod
    def initial(cls, source: ModuleSource) -> State:
        lines = source.lines()
        return cls(source, lines, [None] * len(lines), list(range(len(lines))), [frozenset()] * len(lines))

    @classmethod
    def new_module(cls, module: str, path: str) -> State:
        """The empty text a `--- /dev/null` hunk creates a module from."""
        state = cls.initial(ModuleSource(module, path, ""))
        state.created = True
        return state

    def index(self) -> ScopeIndex:
        if self._index is None:
            self._index = ScopeIndex("\n".join(self.lines), self.source.path)
        return self._index

    def take_tree(self) -> ast.Module:
        """The parsed text for compiling, handed over: compiling renumbers the tree's lines, so the
        index that held it is dropped and never reused."""
        tree = self.index().tree
        self._index = None
        return tree


@dataclass
class Placement:
    """Where one hunk lands in a module's current text, and what replaces the lines there."""

    hunk: Hunk
    start: int
    end: int
    new: list[tuple[str, str]]  # (op, text): ' ' keeps the next old line, '-' drops it, '+' adds one
    scope: Scope
    moved: int | None = None  # lines away from where the hunk says it was written (None: no hint)
    reformatted: bool = False  # found by structure: same code, new layout (issue 10; _layout.py)


class Context:
    """What refusals of one set need to say: the set, the vLLM version."""

    def __init__(self, hunk_set: HunkSet, version: str | None) -> None:
        self.hunk_set = hunk_set
        self.version = version

    def refuse(self, reason: Reason, hunk: Hunk | None, detail: str, source: ModuleSource | None = None, **extra) -> Refusal:
        origin = hunk.origin if hunk is not None else self.hunk_set.field_origins.get("vllm")
        if origin is None:
            origin = Origin(self.hunk_set.path, 1)
        target = str(hunk.target) if hunk is not None else self.hunk_set.name
        return Refusal(
            reason=reason,
            set_name=self.hunk_set.name,
            origin=origin,
            target=target,
            detail=detail,
            vllm_version=self.version,
            module_path=source.path if source else None,
            commit=hunk.commit.label() if hunk is not None and hunk.commit is not None else None,
            **extra,
        )
