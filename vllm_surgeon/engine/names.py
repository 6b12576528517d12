"""What a set's added lines read, checked against the patched modules of the tree (issue 14 part 3).

An anchor that still matches says nothing about what the `+` lines use: a helper renamed upstream, an
import moved, an attribute gone. Three checks, on text (nothing is imported):

- `name-gone`: a name an added line looks up as a global that no module-level binding, builtin or
  module attribute supplies, and that the unpatched module does not look up unbound itself. Scopes are
  the compiler's own: the patched module is compiled and its bytecode read (`LOAD_GLOBAL`, and
  `LOAD_NAME` at module and class level), so comprehensions, lambdas, `except ... as`, `with ... as`,
  walrus, `match`, `global`/`nonlocal` and annotations under `from __future__ import annotations` are
  exactly what Python does, with the line of each lookup.
- `import-gone`: `import x.y` / `from x import y` on an added line where the tree has no module x.y or
  x, or x binds no y and has no submodule y. Only for packages the tree holds; an import under
  `if TYPE_CHECKING:` or inside a `try` that catches ImportError is never checked.
- `attribute-gone` (attrs.py): `self.X` / `cls.X` where the class and its bases define X nowhere.

Where the text cannot know, nothing is said: a module with a star import, or that calls `globals()` or
`exec` (names may appear that no line shows); a module the import reads with a module `__getattr__`;
a module below an extension module (what a build compiles is not the tree's to judge).

The planner attaches every finding to its hunk as a warning. `judge` (called by `verify` with the set
planned against its `written-against:` release) makes the `name-gone` and `import-gone` findings that
are new since then refuse the set: what was there when the set was written and is gone now breaks at
the first call. One also found at written-against is code the set ran with (a dead module, a branch
only another platform takes): real third-party series carry such lines, so it never refuses.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import difflib
import dis
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from vllm_surgeon.core.model import Origin
from vllm_surgeon.core.refusal import Reason
from vllm_surgeon.core.scopes import blocks
from vllm_surgeon.core.source import ModuleSource, SourceReader, TreeReader
from vllm_surgeon.engine.attrs import AttributeCheck
from vllm_surgeon.engine.results import Finding, SetResult
from vllm_surgeon.engine.state import Context, State

NAME_GONE = "name-gone"
IMPORT_GONE = "import-gone"
ATTRIBUTE_GONE = "attribute-gone"

# What a global lookup finds without a binding in the module: builtins and the module's own attributes.
_BUILTINS = frozenset(dir(builtins))
_MODULE_ATTRIBUTES = frozenset(
    ("__name__", "__file__", "__doc__", "__spec__", "__loader__", "__package__", "__builtins__", "__path__",
     "__cached__", "__annotations__", "__dict__")
)
_GLOBAL_LOADS = frozenset(("LOAD_GLOBAL", "LOAD_NAME", "LOAD_FROM_DICT_OR_GLOBALS"))
_NAME_STORES = frozenset(("STORE_NAME", "DELETE_NAME"))
# Calls through which code binds globals no line shows.
_DYNAMIC = frozenset(("globals", "exec"))
_IMPORT_ERRORS = frozenset(("ImportError", "ModuleNotFoundError", "Exception", "BaseException"))


@dataclass
class Bindings:
    """A module's globals as its compiled code binds and looks them up."""

    bound: set[str]  # module-level assignments, defs, classes, imports, `global` stores anywhere
    loads: list[tuple[str, int]]  # (name, 1-based line): global lookups that no class body satisfies
    dynamic: bool  # a star import, `globals()` or `exec`: globals can appear that no line shows

    def unbound(self) -> list[tuple[str, int]]:
        return [(n, line) for n, line in self.loads if n not in self.bound and n not in _BUILTINS and n not in _MODULE_ATTRIBUTES]


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _instructions(code: types.CodeType) -> Iterator[tuple[dis.Instruction, int | None]]:
    """Each instruction with its source line (3.11+ positions; 3.10 carries starts_line forward)."""
    line = None
    for ins in dis.get_instructions(code):
        positions = getattr(ins, "positions", None)
        if positions is not None and positions.lineno is not None:
            line = positions.lineno
        elif sys.version_info < (3, 11) and ins.starts_line is not None:
            line = ins.starts_line
        yield ins, line


def _span(code: types.CodeType) -> tuple[int, int]:
    lines = [line for _, _, line in code.co_lines() if line is not None]
    return (min(lines), max(lines)) if lines else (code.co_firstlineno, code.co_firstlineno)


_STORE_GLOBAL = dis.opmap["STORE_GLOBAL"]


def bindings(code: types.CodeType, lines: set[int] | None = None, names: set[str] | None = None) -> Bindings:
    """The globals `code` (a compiled module) binds and looks up, from its bytecode.

    A code object that stores with STORE_NAME is the module's or a class body's: the module's bind
    globals, a class body's bind names its own LOAD_NAMEs find first. Functions store locals with
    STORE_FAST/STORE_DEREF and bind a global only by STORE_GLOBAL (a `global` declaration).
    Lookups are read only in code objects that span one of `lines` and name one of `names` (None:
    all): disassembling a whole 3,000-line module costs ~100 ms, its few changed functions almost nothing.
    """
    out = Bindings(set(), [], False)
    for co in _code_objects(code):
        is_module = co is code
        out.dynamic = out.dynamic or bool(_DYNAMIC.intersection(co.co_names))
        wanted = (lines is None or any(first <= line <= last for first, last in [_span(co)] for line in lines)) and (
            names is None or bool(names.intersection(co.co_names)))
        if not (is_module or wanted or _STORE_GLOBAL in co.co_code[::2]):
            continue
        own: set[str] = set()
        loads: list[tuple[str, int]] = []
        for ins, line in _instructions(co):
            op = ins.opname
            if op == "IMPORT_STAR" or (op == "CALL_INTRINSIC_1" and ins.argrepr == "INTRINSIC_IMPORT_STAR"):  # 3.12+
                out.dynamic = True
            elif op == "STORE_GLOBAL" or (is_module and op in _NAME_STORES):
                out.bound.add(ins.argval)
            elif op in _NAME_STORES:
                own.add(ins.argval)
            elif wanted and op in _GLOBAL_LOADS and line is not None:
                loads.append((ins.argval, line))
        out.loads += [(n, line) for n, line in loads if n not in own]
    return out


def compiled_bindings(tree: ast.Module, path: str, lines: set[int] | None = None, names: set[str] | None = None) -> Bindings | None:
    """bindings() of a parsed module; None when it does not compile (the planner refuses that itself)."""
    try:
        code = compile(tree, path, "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return None
    return bindings(code, lines, names)


class NeedsCheck:
    """The checks of one set's added lines, over the modules the set leaves patched.

    `states`: the patched modules (the set applied, on top of the sets before it); `original`: a
    module's unpatched state; `read`: the tree's reader (a TreeReader also says whether the tree has a
    module in any form, `form`; another reader cannot, and nothing is said about imports).
    """

    def __init__(self, set_name: str, states: dict[str, State], original: Callable[[str], State | None],
                 read: SourceReader) -> None:
        self.set_name = set_name
        self.states = states
        self.original = original
        self.read = read
        self._bindings: dict[str, Bindings | None] = {}
        self.attributes = AttributeCheck(self.parsed)

    def run(self) -> list[Finding]:
        findings: list[Finding] = []
        for module in sorted(self.states):
            state = self.states[module]
            added = added_lines(state, self.set_name)
            if not added:
                continue
            findings += self.names(module, state, added)
            findings += self.imports(module, state, added)
            findings += self.attributes.check(module, state, added)
        return findings

    # -- what a module is, as patched ------------------------------------------------------------
    def has_module(self, module: str) -> bool | None:
        """True/False when the tree (or this set, creating it) has the module; None: unknown."""
        if module in self.states or any(m.startswith(module + ".") for m in self.states):
            return True  # the set creates it, or a module in it (a namespace package at least)
        if not isinstance(self.read, TreeReader):
            return None
        return self.read.form(module) is not None

    def parsed(self, module: str) -> tuple[ModuleSource, ast.Module] | None:
        """The module and its tree as this set leaves it (a patched module's parse is the planner's own)."""
        state = self.states.get(module)
        if state is not None:
            return ModuleSource(module, state.source.path, "\n".join(state.lines)), state.index().tree
        source = self.read(module)
        if source is None:
            return None
        try:
            return source, ast.parse(source.text)
        except SyntaxError:
            return None

    def module_bindings(self, module: str) -> Bindings | None:
        """What module `module` binds at module level (its lookups are not read)."""
        if module not in self._bindings:
            parsed = self.parsed(module)
            self._bindings[module] = None if parsed is None else compiled_bindings(parsed[1], parsed[0].path, lines=set())
        return self._bindings[module]

    # -- name-gone ---------------------------------------------------------------------------------
    def names(self, module: str, state: State, added: dict[int, Origin]) -> list[Finding]:
        patched = compiled_bindings(state.index().tree, state.source.path, {line + 1 for line in added})
        if patched is None or patched.dynamic:
            return []
        candidates = [(n, line) for n, line in patched.unbound() if line - 1 in added]
        if not candidates:
            return []
        original = self.original(module)
        if original is not None and not original.created:
            before = compiled_bindings(original.index().tree, original.source.path, names={n for n, _ in candidates})
            if before is None or before.dynamic:
                return []
            # vLLM's own code looks these up unbound too (set elsewhere at run time): so may a hunk.
            excused = {n for n, _ in before.unbound()}
            candidates = [(n, line) for n, line in candidates if n not in excused]
        out: list[Finding] = []
        seen: set[tuple[str, int]] = set()
        for name, line in candidates:
            if (name, line) in seen:
                continue
            seen.add((name, line))
            close = difflib.get_close_matches(name, sorted(patched.bound), n=3)
            hint = f"; similar names there: {', '.join(close)}" if close else ""
            out.append(Finding(NAME_GONE, added[line - 1], name,
                               f"no global, import or builtin named {name!r} in {module} as patched (a NameError when "
                               f"the line runs){hint}", refuses=False, missing=f"{module}:{name}"))
        return out

    # -- import-gone -------------------------------------------------------------------------------
    def imports(self, module: str, state: State, added: dict[int, Origin]) -> list[Finding]:
        if not isinstance(self.read, TreeReader):
            return []
        is_package = state.source.path.replace("\\", "/").endswith("/__init__.py")
        out: list[Finding] = []
        for node in unguarded_imports(state.index().tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    line = alias.lineno - 1
                    if line in added:
                        out += self._gone_module(alias.name, f"import {alias.name}", added[line])
                continue
            source = absolute(module, is_package, node)
            from_added = node.lineno - 1 in added
            names = [(a, a.lineno - 1) for a in node.names]
            names = [(a, line) for a, line in names if from_added or line in added]
            if source is None or not names:
                continue
            written = f"from {'.' * node.level}{node.module or ''} import"
            first = added.get(node.lineno - 1) or added[names[0][1]]
            gone = self._gone_module(source, f"{written} ...", first)
            if gone or not self._in_tree(source) or self.has_module(source) is not True:
                out += gone
                continue
            for alias, line in names:
                out += self._gone_name(source, alias.name, f"{written} {alias.name}", added.get(line, first))
        return out

    def _in_tree(self, module: str) -> bool:
        """Whether the import is of a package the set changes (vllm, or a plugin it targets) and the tree
        holds it. Other packages (transformers, torch) come from wherever the tree reader finds them,
        for `verify --against` often this environment rather than what runs with that release: not the
        tree's to judge (seen on a real series: a transformers name this environment's release lacks)."""
        top = module.split(".", 1)[0]
        return any(m.split(".", 1)[0] == top for m in self.states) and self.has_module(top) is True

    def _gone_module(self, module: str, written: str, origin: Origin) -> list[Finding]:
        if not self._in_tree(module) or self.has_module(module) is not False:
            return []
        parts = module.split(".")
        there = next((".".join(parts[:k]) for k in range(len(parts) - 1, 0, -1) if self.has_module(".".join(parts[:k]))), None)
        if there is not None and self.parsed(there) is None:
            return []  # below an extension module (vllm._C.ops): what a build compiles is not the tree's to judge
        return [Finding(IMPORT_GONE, origin, written, f"no module {module} in this tree ({there} is there)", refuses=False,
                        missing=module)]

    def _gone_name(self, module: str, name: str, written: str, origin: Origin) -> list[Finding]:
        if name == "*" or self.has_module(f"{module}.{name}") is not False:
            return []
        found = self.module_bindings(module)
        if found is None or found.dynamic or "__getattr__" in found.bound or name in found.bound:
            return []  # no source (an extension), unreadable, or lazy: say nothing
        close = difflib.get_close_matches(name, sorted(found.bound), n=3)
        hint = f"; similar names there: {', '.join(close)}" if close else ""
        return [Finding(IMPORT_GONE, origin, written, f"{module} defines no {name!r} and has no submodule {name}{hint}",
                        refuses=False, missing=f"{module}:{name}")]


def added_lines(state: State, set_name: str) -> dict[int, Origin]:
    """0-based patched line -> the set-file line that wrote it, for every line `set_name` added."""
    blame = state.blame or []
    out: dict[int, Origin] = {}
    for i, owner in enumerate(state.owners):
        entry = blame[i] if owner == set_name and i < len(blame) else None
        if entry is not None:
            out[i] = entry[1]
    return out


def absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str | None:
    """The module a `from` import names, relative imports resolved against `module` (None: past the top)."""
    if node.level == 0:
        return node.module
    package = module if is_package else module.rpartition(".")[0]
    parts = package.split(".") if package else []
    keep = len(parts) - (node.level - 1)
    if keep <= 0:
        return None
    base = ".".join(parts[:keep])
    return f"{base}.{node.module}" if node.module else base


def _type_checking(test: ast.expr) -> bool:
    name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else None
    return name == "TYPE_CHECKING"


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    types_ = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    names = {t.id if isinstance(t, ast.Name) else t.attr if isinstance(t, ast.Attribute) else "" for t in types_}
    return bool(names & _IMPORT_ERRORS)


def _suppresses_import_error(stmt: ast.With | ast.AsyncWith) -> bool:
    """`with contextlib.suppress(ImportError):` (or Exception)."""
    for item in stmt.items:
        call = item.context_expr
        if isinstance(call, ast.Call) and isinstance(call.func, (ast.Name, ast.Attribute)):
            func = call.func.id if isinstance(call.func, ast.Name) else call.func.attr
            args = {a.id if isinstance(a, ast.Name) else a.attr if isinstance(a, ast.Attribute) else "" for a in call.args}
            if func == "suppress" and args & _IMPORT_ERRORS:
                return True
    return False


def unguarded_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement that runs for real: not under `if TYPE_CHECKING:`, not in a `try` whose
    handlers catch ImportError (or broader), not in `with suppress(ImportError)`."""
    out: list[ast.Import | ast.ImportFrom] = []

    def walk(body: list[ast.stmt]) -> None:
        for stmt in body:
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                out.append(stmt)
            elif isinstance(stmt, ast.If) and _type_checking(stmt.test):
                walk(stmt.orelse)
            elif isinstance(stmt, ast.Try) or type(stmt).__name__ == "TryStar":
                handlers = getattr(stmt, "handlers", [])
                if not any(_catches_import_error(h) for h in handlers):
                    walk(getattr(stmt, "body", []))
                for handler in handlers:
                    walk(handler.body)
                walk(getattr(stmt, "orelse", []))
                walk(getattr(stmt, "finalbody", []))
            elif isinstance(stmt, (ast.With, ast.AsyncWith)) and _suppresses_import_error(stmt):
                continue
            else:
                for block in blocks(stmt):
                    walk(block)

    walk(tree.body)
    return out


REFUSING = (NAME_GONE, IMPORT_GONE)


def judge(result: SetResult, base: SetResult | None, base_label: str, version: str | None) -> None:
    """Settle a set's findings against the release it was written against. `base`: the same set planned
    there (None: no such release named, this is it, or it cannot be read).

    New since then (not a finding there): `name-gone` and `import-gone` refuse, `attribute-gone` warns,
    each saying since when. Also found there: the set ran with it (dead code, a guarded path, a module
    installed beside vLLM; real third-party series carry such lines at their base), so never a refusal.
    `attribute-gone` is said only when new: a base class reading what its subclasses in other modules
    assign (seen on a real series: ExecutorBase's `driver_worker`) looks the same to the text of the
    class and its bases, and only a release where the attribute was there tells the two apart.
    Without a base that applies, `name-gone`/`import-gone` stay warnings and `attribute-gone` is dropped.
    """
    comparable = base is not None and base.ok
    before = {(f.kind, f.missing, f.origin) for h in base.hunks for f in h.findings} if comparable and base else set()
    ctx = Context(result.hunk_set, version)
    for hr in result.hunks:
        settled: list[Finding] = []
        for finding in hr.findings:
            new = comparable and (finding.kind, finding.missing, finding.origin) not in before
            if not new:
                if finding.kind != ATTRIBUTE_GONE:
                    settled.append(finding)
                continue
            finding = dataclasses.replace(finding, new_since=base_label, refuses=finding.kind in REFUSING)
            settled.append(finding)
            if finding.refuses:
                detail = f"{finding.name}: {finding.detail}; it was there in {base_label}, which the set was written against"
                refusal = dataclasses.replace(ctx.refuse(Reason(finding.kind), hr.hunk, detail), origin=finding.origin)
                hr.refusal = hr.refusal or refusal
                result.refusals.append(refusal)
        hr.findings = settled
