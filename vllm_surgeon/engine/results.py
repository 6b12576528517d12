"""What the engine answers: each hunk's and set's verdict, the patched modules, the plan."""

from __future__ import annotations

from dataclasses import dataclass, field

from vllm_surgeon.core.model import Hunk, HunkSet, Origin
from vllm_surgeon.core.refusal import Refusal
from vllm_surgeon.core.scopes import ScopeIndex
from vllm_surgeon.core.source import ModuleSource
from vllm_surgeon.engine.linemap import Compiled, FromCacheError


@dataclass(frozen=True)
class Finding:
    """Something a hunk's added line reads that the patched module does not have (issue 14 part 3).

    Every finding warns; `name-gone` and `import-gone` refuse the set when they are new since the
    release the set was written against (engine/names.py `judge`, called by verify): the code the line
    needs was there when the set was written and is gone now. Found at the written-against release too,
    the line is dead or reached only where the tree read is not what runs (seen on real series), so it
    only warns; `attribute-gone` is said only when new since then, and only warns (a subclass or another
    module can assign an attribute).
    """

    kind: str  # "name-gone", "import-gone" or "attribute-gone"
    origin: Origin  # the `+` line in the set's file
    name: str  # as the line writes it: `helper`, `vllm.x.y`, `from vllm.x import y`, `self._free_request`
    detail: str  # why, in words: what is missing where
    refuses: bool
    # What is missing, fully qualified: `vllm.x.y` (a module), `vllm.x:y` (a global of a module: the
    # patched one for name-gone, the imported one for import-gone), `vllm.x:Class.attr` (an attribute).
    missing: str = ""
    new_since: str | None = None  # the written-against release it was not missing in (judge)

    def summary(self) -> str:
        return f"{self.origin}: {self.kind}: {self.name}: {self.detail}"


@dataclass
class HunkResult:
    """What happened to one hunk: `applies` (with `line`/`scope`) or refused."""

    hunk: Hunk
    line: int | None = None  # 1-based line in the file where the anchor starts
    scope: str | None = None  # qualified name of the function or class it lands in
    moved: int | None = None
    refusal: Refusal | None = None
    reformatted: bool = False  # applies only by structure: upstream re-laid the anchor's code out
    findings: list[Finding] = field(default_factory=list)  # what its added lines read and is gone (issue 14)

    @property
    def status(self) -> str:
        if self.refusal is not None:
            return "refused"
        if self.reformatted:
            return "reformatted"
        return "moved" if self.moved else "applies"

    @property
    def located_target(self) -> str:
        """The target as located: a diff hunk names only its file, so add the function it landed in."""
        hunk = self.hunk
        if hunk.from_diff and hunk.target.qualname is None and self.scope:
            return f"{hunk.target.module}:{self.scope}"
        return str(hunk.target)


@dataclass
class SetResult:
    """One set's verdict: each hunk's result and the refusals that keep the set out."""

    hunk_set: HunkSet
    hunks: list[HunkResult] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    # Files of a diff set left out on purpose by its `skip:` patterns (_paths.Skipped).
    skipped: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.refusals

    @property
    def warnings(self) -> list[Finding]:
        """Findings that do not refuse the set: said by verify and at start-up."""
        return [f for h in self.hunks for f in h.findings if not f.refuses]

    @property
    def located_targets(self) -> tuple[str, ...]:
        """Each distinct target once, in file order, diff hunks named by the function they landed in."""
        if not self.hunks:
            return self.hunk_set.targets
        return tuple(dict.fromkeys(h.located_target for h in self.hunks))


@dataclass
class PatchedModule:
    """A module as the accepted sets leave it, compiled with disk line numbers kept.

    From the on-disk cache (_cache.py, `from_cache`) only what the import hook runs is there: no
    patched text, original index, tree or units; reading `text` or `compiled.tree` then raises
    FromCacheError instead of handing out None (Runtime._full plans such a module again).
    """

    source: ModuleSource
    patched_text: str | None  # None: from the code cache
    sets: tuple[str, ...]
    compiled: Compiled
    original_index: ScopeIndex | None  # None: from the code cache, or a module a set creates
    created: bool = False  # a new module: no file on disk; the import hook serves it (issue 6)

    @classmethod
    def cached(cls, source: ModuleSource, sets: tuple[str, ...], compiled: Compiled) -> PatchedModule:
        """A module read from the code cache: compiled code (no tree, no units) and nothing else."""
        return cls(source, None, sets, compiled, None)

    @property
    def from_cache(self) -> bool:
        return self.patched_text is None

    @property
    def text(self) -> str:
        if self.patched_text is None:
            raise FromCacheError(f"{self.source.module} comes from the code cache, which keeps no text: plan it again")
        return self.patched_text


@dataclass
class Plan:
    """The verdict on all enabled sets, and the patched text of every module they change."""

    results: list[SetResult]
    modules: dict[str, PatchedModule]
    vllm_version: str | None

    @property
    def accepted(self) -> list[HunkSet]:
        return [r.hunk_set for r in self.results if r.ok]

    @property
    def refusals(self) -> list[Refusal]:
        return [f for r in self.results for f in r.refusals]

    @property
    def warnings(self) -> list[tuple[str, Finding]]:
        """(set name, finding) for each finding that warns without refusing."""
        return [(r.hunk_set.name, f) for r in self.results for f in r.warnings]
