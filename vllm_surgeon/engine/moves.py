"""Where a target gone from its module went (issue 14 part 2): searched only when a hunk is refused.

vLLM moves definitions between modules every release (`vllm.compilation.collective_fusion` ->
`vllm.compilation.passes.fusion.collective_fusion` at 0.32). A hunk aimed at one is refused as
before; its refusal then says, from the release's definition index (trees/definitions.py):
- the modules that define the same qualified name ("moved"),
- a base class or mixin of its class that defines the method ("base-class"),
- a definition of its module with the same code under another name ("renamed"; needs the release
  the set was written against), else one whose body holds the hunk's anchor ("anchor-in");
and for each whether the hunk's anchor is found there by the usual rules (text, then structure) and,
when the written-against code is at hand, whether the code is identical, similar or different.
For a plain diff whose file is gone: the same for the function each hunk landed in at the release
it was written against (when at hand), else for the def names its lines and `@@` header show.
Nothing here runs unless a hunk was refused: the index is read on the first refusal only.
"""

from __future__ import annotations

import ast
import difflib
import re
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from vllm_surgeon.core.codedigest import code_of
from vllm_surgeon.core.model import AnchoredHunk, DiffFile, Hunk, HunkSet, Target
from vllm_surgeon.core.refusal import MovedTo, Reason, Refusal
from vllm_surgeon.core.scopes import ScopeIndex
from vllm_surgeon.core.source import SourceReader, TreeReader
from vllm_surgeon.engine.locate import locate
from vllm_surgeon.engine.paths import candidates as path_candidates
from vllm_surgeon.engine.state import Context, Placement, State
from vllm_surgeon.trees.definitions import Definition, DefinitionIndex

_DEF_LINE = re.compile(r"^\s*(?:async\s+)?(?:def|class)\s+([A-Za-z_]\w*)")
SIMILAR = 0.6  # a difflib ratio from here up is "similar", below it "different"
_MAX = 5  # candidates said per hunk
_BASE_DEPTH = 6


@dataclass(frozen=True)
class Lost:
    """What a refused hunk aimed at: the module it named and the qualified names it needs there."""

    module: str | None  # None: a diff's path that named no module of this tree
    qualnames: tuple[str, ...]
    names: tuple[str, ...] = ()  # bare def names (a diff's context without its release at hand)


class Search:
    """One tree searched for refused hunks' targets; `before` reads the release a set was written against."""

    def __init__(self, read: SourceReader, before: SourceReader | None = None) -> None:
        self.read = read
        self.before = before
        self._index: DefinitionIndex | None | bool = False
        self._states: dict[str, State | None] = {}

    def index(self) -> DefinitionIndex | None:
        if self._index is False:
            make = self.read.definitions if isinstance(self.read, TreeReader) else None
            try:
                self._index = make() if make is not None else None
            except (OSError, ValueError):  # a wheel that cannot be read: no hint, the refusal stands
                self._index = None
        return self._index if isinstance(self._index, DefinitionIndex) else None

    def state(self, module: str) -> State | None:
        if module not in self._states:
            try:
                source = self.read(module)
            except (OSError, ValueError):
                source = None
            self._states[module] = State.initial(source) if source is not None else None
        return self._states[module]

    def scopes(self, module: str) -> ScopeIndex | None:
        state = self.state(module)
        try:
            return state.index() if state is not None else None
        except SyntaxError:
            return None

    # -- what the hunk aimed at ---------------------------------------------------------------
    def lost(self, ctx: Context, hunk: Hunk) -> Lost:
        if not hunk.from_diff:
            qual = hunk.target.qualname
            return Lost(hunk.target.module, (addressable(qual),) if qual else ())
        module = hunk.target.module or None  # a diff's: as resolved in this tree, or as its path reads
        assert isinstance(hunk, AnchoredHunk)
        if self.before is not None and hunk.file is not None:
            module = _module_in(hunk.file, self.before) or module
            scope = self._scope_before(ctx, hunk, module)
            if scope:
                return Lost(module, (addressable(scope),))
        return Lost(module, (), _def_names(hunk))

    def _scope_before(self, ctx: Context, hunk: AnchoredHunk, module: str | None) -> str | None:
        """The function the diff hunk lands in at the release it was written against."""
        if module is None or self.before is None:
            return None
        source = self.before(module)
        if source is None:
            return None
        state = State.initial(source)
        placed = locate(ctx, replace(hunk, target=Target(module)), state)
        if not isinstance(placed, Placement):
            return None
        return deeper(placed.scope.qualname or None, anchor_scope(state.index(), placed.start, placed.end))


    def function_gone(self, ctx: Context, hunk: AnchoredHunk) -> bool:
        """A diff hunk refused in a module that is there: whether the function it was written in is gone
        from it (then it is searched as if its file were gone); False when that cannot be told."""
        lost = self.lost(ctx, hunk)
        scopes = self.scopes(lost.module) if lost.module else None
        if scopes is None or not (lost.qualnames or lost.names):
            return False
        here = {s.qualname for s in scopes.scopes}
        return not (set(lost.qualnames) & here or {q.rpartition(".")[2] for q in here} & set(lost.names))

    # -- where it is now ------------------------------------------------------------------------
    def whereabouts(self, ctx: Context, hunk: Hunk, lost: Lost | None = None) -> list[MovedTo]:
        """Where the hunk's target is in this tree (`lost`: what it aimed at, when the caller knows)."""
        if not isinstance(hunk, AnchoredHunk) or hunk.creates:
            return []
        lost = lost or self.lost(ctx, hunk)
        found: list[MovedTo] = []
        for qual in lost.qualnames:
            found += self._moved(ctx, hunk, lost.module, qual)
            if lost.module is not None and self.state(lost.module) is not None:
                found += self._inherited(ctx, hunk, lost.module, qual)
                found += self._renamed(ctx, hunk, lost.module, qual)
        for name in lost.names:
            found += self._by_name(ctx, hunk, lost.module, name)
        unique = list({(m.module, m.qualname): m for m in found}.values())
        # Where the anchor is first, then by how close: never more than a few.
        return sorted(unique, key=lambda m: (not m.carries, m.how != "moved"))[:_MAX]

    def _moved(self, ctx: Context, hunk: AnchoredHunk, module: str | None, qual: str) -> list[MovedTo]:
        index = self.index()
        if index is None:
            return []
        return [self._at(ctx, hunk, d, "moved", module, qual) for d in index.where(qual) if d.module != module]

    def _inherited(self, ctx: Context, hunk: AnchoredHunk, module: str, qual: str) -> list[MovedTo]:
        """`Cls.meth` gone from Cls, defined in a class Cls inherits from (read through its imports)."""
        owner, _, name = qual.rpartition(".")
        if not owner or "<locals>" in owner:
            return []
        out = []
        seen: set[tuple[str, str]] = set()
        todo = [(module, owner, 0)]
        while todo:
            mod, cls, depth = todo.pop(0)
            if (mod, cls) in seen or depth > _BASE_DEPTH:
                continue
            seen.add((mod, cls))
            scopes = self.scopes(mod)
            node = next((s.node for s in scopes.find(cls) if isinstance(s.node, ast.ClassDef)), None) if scopes else None
            if node is None:
                continue
            if depth > 0 and scopes is not None and scopes.find(f"{cls}.{name}"):
                defined = min(s.start for s in scopes.find(f"{cls}.{name}")) + 1
                out.append(self._at(ctx, hunk, Definition(mod, f"{cls}.{name}", "function", defined, defined, ""),
                                    "base-class", module, qual))
                continue
            for base in node.bases:
                where = self._resolve_base(mod, base)
                if where is not None:
                    todo.append((*where, depth + 1))
        return out

    def _resolve_base(self, module: str, base: ast.expr) -> tuple[str, str] | None:
        """(module, class) a base expression names: a class of the module, or an imported one."""
        while isinstance(base, ast.Subscript):
            base = base.value
        if isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name):
            imported = self._imports(module).get(base.value.id)
            return (imported[0] if imported[1] is None else f"{imported[0]}.{imported[1]}", base.attr) if imported else None
        if not isinstance(base, ast.Name):
            return None
        scopes = self.scopes(module)
        if scopes is not None and any(s.kind == "class" for s in scopes.find(base.id)):
            return module, base.id
        origin, name = self._imports(module).get(base.id, (module, None))
        return None if name is None else self._reexported(origin, name)

    def _reexported(self, module: str, name: str, depth: int = 0) -> tuple[str, str] | None:
        """Follow `from x import Name` re-exports (a package's `__init__`) to the class's own module."""
        scopes = self.scopes(module)
        if scopes is None or depth > _BASE_DEPTH:
            return None
        if any(s.kind == "class" for s in scopes.find(name)):
            return module, name
        origin, imported = self._imports(module).get(name, (module, None))
        return None if imported is None else self._reexported(origin, imported, depth + 1)

    def _imports(self, module: str) -> dict[str, tuple[str, str | None]]:
        """Names the module's top level imports: local name -> (module, name) or (module, None)."""
        scopes = self.scopes(module)
        out: dict[str, tuple[str, str | None]] = {}
        if scopes is None:
            return out
        state = self.state(module)
        package = module if state is not None and state.source.path.endswith("__init__.py") else module.rpartition(".")[0]
        for stmt in scopes.tree.body:
            if isinstance(stmt, ast.ImportFrom):
                base = stmt.module or ""
                if stmt.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - stmt.level + 1] + ([base] if base else []))
                for alias in stmt.names:
                    out[alias.asname or alias.name] = (base, alias.name)
            elif isinstance(stmt, ast.Import):
                for alias in stmt.names:
                    out[alias.asname or alias.name.partition(".")[0]] = (alias.name if alias.asname else alias.name.partition(".")[0], None)
        return out

    def _renamed(self, ctx: Context, hunk: AnchoredHunk, module: str, qual: str) -> list[MovedTo]:
        """Another name in the same class or module: the same code (written-against release at hand),
        else the one function there that holds the hunk's anchor."""
        scopes = self.scopes(module)
        if scopes is None:
            return []
        parent = qual.rpartition(".")[0]
        siblings = [s.qualname for s in scopes.scopes
                    if s.kind == "function" and s.addressable and s.qualname.rpartition(".")[0] == parent and s.qualname != qual]
        old = self._old_code(module, qual)
        out = []
        state = self.state(module)
        assert state is not None
        for sibling in siblings:
            if old is not None:
                new = code_of(scopes, state.lines, sibling)
                if new is not None and new.digest == old.digest:
                    line = min(s.start for s in scopes.find(sibling)) + 1
                    renamed = Definition(module, sibling, "function", line, line, new.digest)
                    out.append(self._at(ctx, hunk, renamed, "renamed", module, qual))
        if out or not hunk.anchor:
            return out
        edges = {line.strip() for line in (hunk.anchor[0], hunk.anchor[-1]) if line.strip()}
        for sibling in siblings:
            spans = scopes.find(sibling)
            text = {line.strip() for s in spans for line in state.lines[s.start : s.end]}
            if not edges <= text:  # its anchor's text is not there: no need to search it by structure
                continue
            moved = self._at(ctx, hunk, Definition(module, sibling, "function", min(s.start for s in spans) + 1, 1, ""),
                             "anchor-in", module, qual)
            if moved.anchor == "found":
                out.append(moved)
        return out if len(out) == 1 else []

    def _by_name(self, ctx: Context, hunk: AnchoredHunk, module: str | None, name: str) -> list[MovedTo]:
        """A diff hunk whose release is not at hand: definitions of the def name its lines show,
        in other modules, where its anchor is found."""
        index = self.index()
        if index is None:
            return []
        named = [d for d in index.definitions if d.name == name and d.module != module]
        if len(named) > 50:  # `forward`, `__init__`: no hint from a name this common
            return []
        placed = [self._at(ctx, hunk, d, "moved", module, d.qualname) for d in named]
        return [m for m in placed if m.carries]

    # -- one candidate ----------------------------------------------------------------------------
    def _at(self, ctx: Context, hunk: AnchoredHunk, d: Definition, how: str, module: str | None, qual: str) -> MovedTo:
        anchor = self.anchor_at(ctx, hunk, d.module, d.qualname)
        code, ratio = self._compare(module, qual, d)
        return MovedTo(d.module, d.qualname, d.line, how, anchor, code, ratio)

    def anchor_at(self, ctx: Context, hunk: AnchoredHunk, module: str, qual: str) -> str:
        """Whether the hunk's anchor is in `module:qual` here, by the usual rules (text, then structure)."""
        state = self.state(module)
        if state is None:
            return "not-found"
        placed = locate(ctx, retarget(hunk, module, qual), state)
        if isinstance(placed, Placement):
            landed = deeper(placed.scope.qualname or None, anchor_scope(state.index(), placed.start, placed.end))
            if hunk.from_diff and not _inside(landed or "", qual):
                return "not-found"
            return "reformatted" if placed.reformatted else "found"
        return "ambiguous" if placed.reason is Reason.ANCHOR_AMBIGUOUS else "not-found"

    def _old_code(self, module: str | None, qual: str):
        if self.before is None or module is None:
            return None
        source = self.before(module)
        if source is None:
            return None
        try:
            return code_of(ScopeIndex(source.text, source.path), source.lines(), qual)
        except SyntaxError:
            return None

    def _compare(self, module: str | None, qual: str, d: Definition) -> tuple[str | None, float | None]:
        old = self._old_code(module, qual)
        scopes, state = self.scopes(d.module), self.state(d.module)
        if old is None or scopes is None or state is None:
            return None, None
        new = code_of(scopes, state.lines, d.qualname)
        if new is None:
            return None, None
        if new.digest == old.digest:
            return "identical", 1.0
        ratio = similarity(old.text, new.text)
        return ("similar" if ratio >= SIMILAR else "different"), ratio


def anchor_scope(index: ScopeIndex, start: int, end: int) -> str | None:
    """The function or class around a diff hunk's anchor (0-based [start, end)): where a line added
    after a function's last line was written, though by its place alone it is at module scope."""
    if end <= start:
        return None
    scope = index.innermost(start, end)
    return scope.qualname if scope.kind != "module" and scope.addressable else None


def addressable(qualname: str) -> str:
    """The definition a release's index can name: a function nested in a def is searched as that def."""
    return qualname.split(".<locals>.", 1)[0]


def deeper(changed: str | None, anchored: str | None) -> str | None:
    """Of the scope a diff hunk's changed lines are in and the one around its anchor, the one inside the
    other (a line added after a method's last line is in its class by place; its anchor, in the method)."""
    if changed is None or (anchored is not None and anchored.startswith(changed + ".")):
        return anchored
    return changed


def similarity(a: str, b: str) -> float:
    """How alike two definitions' texts are (difflib's ratio over lines, indentation aside)."""
    left = [line.strip() for line in textwrap.dedent(a).splitlines() if line.strip()]
    right = [line.strip() for line in textwrap.dedent(b).splitlines() if line.strip()]
    return difflib.SequenceMatcher(None, left, right, autojunk=False).ratio()


def retarget(hunk: AnchoredHunk, module: str, qual: str) -> AnchoredHunk:
    """The hunk aimed at `module:qual`: a `.hunk` section's target; a diff hunk's module (its anchor
    may reach past the function, so it is found in the module and must land inside `qual`)."""
    if hunk.from_diff:
        return replace(hunk, target=Target(module), file=None, step=0)
    return replace(hunk, target=Target(module, qual), hint_offset=None)


def _inside(scope: str, qual: str) -> bool:
    return scope == qual or scope.startswith(qual + ".")


def _module_in(f: DiffFile, read: SourceReader) -> str | None:
    """The module a diff file's path names in `read`'s tree (the release it was written against)."""
    for path in f.paths:
        for c in path_candidates(path, f.strip):
            source = read(c.module)
            if source is not None and source.path.replace("\\", "/").endswith(c.relative):
                return c.module
    return None


def _def_names(hunk: AnchoredHunk) -> tuple[str, ...]:
    """Def and class names a diff hunk shows: its `@@ ... @@ def f(` header, then its own lines'."""
    names = []
    for text in ([hunk.hint_scope] if hunk.hint_scope else []) + [l.text for l in hunk.lines if l.op != "+"]:
        match = _DEF_LINE.match(text)
        if match:
            names.append(match.group(1))
    return tuple(dict.fromkeys(names))


# -- the refusals this explains -----------------------------------------------------------------

def _gone(refusal: Refusal) -> bool:
    """A refusal that says the target is not there: its module, its name, or a diff's file."""
    if refusal.reason is Reason.TARGET_NOT_FOUND or refusal.reason is Reason.PATH_NOT_FOUND:
        return True
    return refusal.reason is Reason.MODULE_NOT_FOUND and refusal.detail.startswith("no Python source")


def explain(
    pairs: Sequence[tuple[HunkSet, list[Refusal], list]], read: SourceReader, version: str | None,
    before: Callable[[HunkSet], SourceReader | None] | None = None,
) -> None:
    """Add where each gone target went to its refusal (in place): `pairs` holds each set as given,
    its refusals, and its hunk results. Costs nothing when no refusal says a target is gone."""
    search: Search | None = None
    for hunk_set, refusals, results in pairs:
        gone = [r for r in refusals if not r.moved and (_gone(r) or _diff_anchor(r, results))]
        if not gone:
            continue
        if search is None or before is not None:
            search = Search(read, before(hunk_set) if before is not None else None)
        ctx = Context(hunk_set, version)
        for refusal in gone:
            hunks = _hunks_of(hunk_set, refusal, results)
            if refusal.reason is Reason.ANCHOR_NOT_FOUND:  # a diff's function gone from a module still there
                hunks = [h for h in hunks if isinstance(h, AnchoredHunk) and search.function_gone(ctx, h)]
            found: list[MovedTo] = []
            for hunk in hunks:
                found += search.whereabouts(ctx, hunk)
            found = list({(m.module, m.qualname): m for m in found}.values())
            if found:
                refusal.moved = tuple(found)
                refusal.detail += "; " + hint(found)


def hint(found: Sequence[MovedTo]) -> str:
    """The sentence a refusal adds: where the target is now, and whether rebase can carry the hunk."""
    said = "; ".join(m.describe() for m in found)
    carry = [m for m in found if m.carries]
    if len(carry) == 1 and len(found) == 1:
        return f"in this release it is {said}: `vllm-surgeon rebase` carries the hunk there"
    if len({m.module for m in found}) > 1:
        return f"in this release it is in {len(found)} places: {said}"
    return f"in this release it is {said}"


def _diff_anchor(refusal: Refusal, results: list) -> bool:
    """A plain diff's hunk whose anchor is not found (its function may have left the module)."""
    return refusal.reason is Reason.ANCHOR_NOT_FOUND and any(r.refusal is refusal and r.hunk.from_diff for r in results)


def _hunks_of(hunk_set: HunkSet, refusal: Refusal, results: list) -> list[Hunk]:
    """The hunks a refusal is about: its hunk (as resolved in this tree), or, for a diff file's refusal,
    every hunk of that file."""
    if refusal.reason is Reason.PATH_NOT_FOUND:
        return [h for h in hunk_set.hunks if h.file is not None and h.file.origin == refusal.origin]
    return [r.hunk for r in results if r.refusal is refusal] or [h for h in hunk_set.hunks if h.origin == refusal.origin]
