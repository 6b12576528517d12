"""The hunk engine: decides, on source text alone, which hunk sets apply and what each module becomes.

It never imports vLLM. Every hunk of every set is checked against the original sources before
anything is applied; a set applies whole or not at all. Sets stack in the order given: a later
set whose anchor touches lines an earlier set changed (or no longer finds its anchor on top of
that set, though it does alone) is refused as a conflict naming both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from packaging.version import InvalidVersion, Version

from vllm_surgeon.core.model import AnchoredHunk, HunkSet
from vllm_surgeon.core.refusal import Reason
from vllm_surgeon.core.source import SourceReader
from vllm_surgeon.engine.apply import try_set
from vllm_surgeon.engine.conflicts import conflicts_on_top
from vllm_surgeon.engine.linemap import Compiled, compile_patched
from vllm_surgeon.engine.moves import explain
from vllm_surgeon.engine.names import NeedsCheck
from vllm_surgeon.engine.paths import resolve as resolve_paths
from vllm_surgeon.engine.results import PatchedModule, Plan, SetResult
from vllm_surgeon.engine.state import Context, State


def check_version(hunk_set: HunkSet, version: str | None, require_version: bool = True) -> str | None:
    """Why `version` is outside the set's `vllm:` range, or None when it is inside (or no range).

    require_version=False lets an unknown version pass (a source tree with no version recorded).
    """
    spec = hunk_set.vllm_range
    if spec is None or (version is None and not require_version):
        return None
    if version is None:
        return f"the set needs vllm {spec}, and the vLLM version could not be read"
    try:
        parsed = Version(version)
    except InvalidVersion:
        return f"the set needs vllm {spec}, and vLLM reports the unreadable version {version!r}"
    if spec.contains(parsed, prereleases=True) or spec.contains(Version(parsed.public), prereleases=True):
        return None
    return f"the set needs vllm {spec}; this is {version}"


def plan(
    sets: Sequence[HunkSet],
    read_source: SourceReader,
    vllm_version: str | None,
    *,
    compile_modules: bool = True,
    require_version: bool = True,
    before: Callable[[HunkSet], SourceReader | None] | None = None,
    search_moves: Callable[[HunkSet], bool] | None = None,
) -> Plan:
    """Check every set against the original sources, stack the ones that apply, compile the results.

    A set that applies is then checked for what its added lines read (engine/names.py, issue 14); a
    TreeReader's `form` says whether the tree has a module in any form (another reader: imports are not judged).
    A refusal whose target is gone from its module says where it went (engine/moves.py, issue 14);
    `before` gives a set's written-against release, when at hand, to compare the code with;
    `search_moves` says which sets are searched (None: all; the runtime leaves its own set out).
    """
    originals: dict[str, State | None] = {}

    def read(module: str) -> State | None:
        if module not in originals:
            source = read_source(module)
            originals[module] = None if source is None else State.initial(source)
        return originals[module]

    results: list[SetResult] = []
    accepted: dict[str, State] = {}
    for given in sets:
        results.append(_plan_set(given, read_source, read, vllm_version, require_version, accepted))
    # Only refused sets are searched: a plan that applies never reads the release's index.
    explain([(s, r.refusals, r.hunks) for s, r in zip(sets, results, strict=True) if search_moves is None or search_moves(s)],
            read_source, vllm_version, before)
    if not compile_modules:
        return Plan(results, {}, vllm_version)
    modules: dict[str, PatchedModule] = {}
    for module, state in accepted.items():
        patched = _compile(state, originals[module])
        if isinstance(patched, SyntaxError):
            owner = _breaker(module, state, sets, read_source, vllm_version, require_version)
            _refuse_uncompilable(module, owner, state, patched, results, vllm_version)
            # Never apply half a set: plan again without the set that broke it.
            return _replan(sets, owner, results, read_source, vllm_version, require_version)
        modules[module] = patched
    return Plan(results, modules, vllm_version)


def _plan_set(
    given: HunkSet, read_source: SourceReader, read: Callable[[str], State | None], vllm_version: str | None,
    require_version: bool, accepted: dict[str, State],
) -> SetResult:
    """One set: located alone, version checked, stacked on the sets before it, its added lines' needs
    checked; `accepted` takes its modules when all of that passes."""
    # A diff names files by path: which module each is depends on the tree (issue 6).
    resolution = resolve_paths(given, read_source, vllm_version)
    ctx = Context(resolution.hunk_set, vllm_version)
    alone, alone_states = try_set(ctx, resolution.hunk_set, {}, read, resolution.created)
    alone.skipped = resolution.skipped
    alone.refusals[:0] = resolution.refusals
    why = check_version(resolution.hunk_set, vllm_version, require_version)
    if why is not None:
        alone.refusals.insert(0, ctx.refuse(Reason.VERSION, None, why))
    if not alone.ok:
        return alone
    stacked = _stack(ctx, alone, alone_states, accepted, read, resolution.created)
    if stacked is None:
        return alone
    _check_needs(ctx, alone, stacked, read, read_source)
    if alone.ok:
        accepted.update(stacked)
    return alone


def _stack(
    ctx: Context, alone: SetResult, alone_states: dict[str, State], accepted: dict[str, State],
    read: Callable[[str], State | None], created: dict[str, str],
) -> dict[str, State] | None:
    """A set that applies alone, put on top of the sets accepted before it: the states it leaves, or
    None when it conflicts with them (its hunks then carry the conflict)."""
    if not any(m in accepted for m in alone_states):
        return alone_states
    hunk_set = alone.hunk_set
    stacked_on = {m: s for m in hunk_set.modules if (s := accepted.get(m) or read(m)) is not None}
    conflicts = conflicts_on_top(ctx, hunk_set, stacked_on, read, created)
    if conflicts:
        alone.refusals.extend(conflicts)
        for refusal in conflicts:
            hunk = next(h for h in hunk_set.hunks if h.origin == refusal.origin)
            for hr in alone.hunks:
                if hr.hunk is hunk:
                    hr.refusal = refusal
        return None
    stacked, stacked_states = try_set(ctx, hunk_set, stacked_on, read, created)
    if not stacked.ok:  # cannot happen after conflicts_on_top passed, but never apply half a set
        alone.refusals.extend(stacked.refusals)
        return None
    return stacked_states


def _check_needs(
    ctx: Context, result: SetResult, states: dict[str, State], read: Callable[[str], State | None],
    read_source: SourceReader,
) -> None:
    """What the set's added lines read, on the modules as it leaves them: each finding goes on the hunk
    that wrote the line, as a warning (names.judge makes the ones gone since written-against refuse)."""
    findings = NeedsCheck(result.hunk_set.name, states, read, read_source).run()
    if not findings:
        return
    by_line = {line.origin: hr for hr in result.hunks if isinstance(hr.hunk, AnchoredHunk) for line in hr.hunk.lines}
    by_hunk = {hr.hunk.origin: hr for hr in result.hunks}
    for finding in findings:
        hr = by_line.get(finding.origin) or by_hunk.get(finding.origin)
        if hr is not None:  # every added line comes from one of the set's hunks
            hr.findings.append(finding)


def _breaker(module: str, state: State, sets: Sequence[HunkSet], read_source: SourceReader, version: str | None,
             require_version: bool) -> str:
    """The set to blame when the stacked `module` does not compile: the first that breaks it on its own,
    else (only the stack breaks it) the last to change it. Before, the last was always blamed: a good set
    stacked on a broken one was refused with it (found by mutation testing, issue 13)."""
    if len(state.sets) > 1:
        by_name = {s.name: s for s in sets}
        for name in state.sets:
            alone = plan([by_name[name]], read_source, version, require_version=require_version, search_moves=lambda _: False)
            if any(r.reason is Reason.INVALID_PYTHON for r in alone.refusals):
                return name
    return state.sets[-1]


def _refuse_uncompilable(module: str, owner: str, state: State, error: SyntaxError, results: list[SetResult],
                         version: str | None) -> None:
    """Refuse `owner`, a set that changed `module`, whose patched text does not compile."""
    result = next(r for r in results if r.hunk_set.name == owner)
    ctx = Context(result.hunk_set, version)
    hunk = next(h for h in result.hunk_set.hunks if h.target.module == module)
    result.refusals.append(ctx.refuse(Reason.INVALID_PYTHON, hunk, f"the patched {module} does not compile: {error}", state.source))


def _replan(
    sets: Sequence[HunkSet], dropped: str, results: list[SetResult], read_source: SourceReader, version: str | None,
    require_version: bool,
) -> Plan:
    """Plan again without `dropped`, keeping its refusal in the results."""
    again = plan([s for s in sets if s.name != dropped], read_source, version, require_version=require_version)
    keep = next(r for r in results if r.hunk_set.name == dropped)
    merged = [keep if r.hunk_set.name == dropped else next(a for a in again.results if a.hunk_set.name == r.hunk_set.name) for r in results]
    return Plan(merged, again.modules, version)


def _compile(state: State, original: State | None) -> PatchedModule | SyntaxError:
    text = "\n".join(state.lines)
    note = "vllm-surgeon: " + ", ".join(state.sets)
    tree = state.take_tree()
    if state.created:  # no file on disk: its own text is what tracebacks and inspect show
        display = text if text.endswith("\n") else text + "\n"
        try:
            code = compile(tree, state.source.path, "exec", dont_inherit=True)
        except SyntaxError as exc:
            return exc
        return PatchedModule(state.source, text, state.sets, Compiled(display, code, tree, []), None, created=True)
    assert original is not None  # a module on disk was read before any set changed it
    try:
        compiled = compile_patched(
            original.lines, state.lines, tree, state.origin_of, state.source.path, note,
            original_tree=original.index().tree, blame=state.blame,
        )
    except SyntaxError as exc:
        return exc
    return PatchedModule(state.source, text, state.sets, compiled, original.index())
