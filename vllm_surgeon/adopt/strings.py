"""String-replacement patches of installed vLLM files, read as anchored hunks (issue 16).

NeMo-RL's `patches.py` shape: inside one function, a vLLM file named by a literal path
(`_get_vllm_file("v1/executor/ray_executor.py")`), then `content.replace(old, new)` with `old` and
`new` string literals (or local names bound once to literals). Each replacement becomes a site;
its change on the release's text is the hunk. A replacement whose `old` text is not in the file is
refused: at that release the patch silently does nothing (NeMo-RL logged a warning and ran in bf16).
"""

from __future__ import annotations

import ast
import difflib
import re
from dataclasses import dataclass

from vllm_surgeon.adopt.adoption import ADOPTED, IDENTICAL, REFUSED, Adoption, ModuleChange
from vllm_surgeon.adopt.patchfile import PatchFile
from vllm_surgeon.adopt.relayout import Edit, Text
from vllm_surgeon.adopt.resolve import Resolver
from vllm_surgeon.core.scopes import ScopeIndex

_PATH = re.compile(r"^(?:vllm/)?[\w./-]+\.py$")


@dataclass
class Replacement:
    """One `text.replace(old, new[, count])` on a vLLM file (old/new None: not literals)."""

    file: PatchFile
    line: int
    module: str
    old: str | None
    new: str | None
    count: int = -1


def replacements(file: PatchFile, resolver: Resolver) -> list[Replacement]:
    """Every literal string replacement of a vLLM file in `file`'s functions."""
    out: list[Replacement] = []
    for fn in ast.walk(file.tree):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        modules = {m for m in (_module_of(c, resolver) for c in ast.walk(fn) if isinstance(c, ast.Constant)) if m}
        if len(modules) != 1:
            continue
        (module,) = modules
        literals = _literals(fn)
        for stmt in ast.walk(fn):
            # `content = content.replace(old, new)`: a text rewritten in place, as file patches do
            if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)):
                continue
            call = stmt.value
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "replace"
                    and isinstance(call.func.value, ast.Name) and stmt.targets[0].id == call.func.value.id
                    and len(call.args) in (2, 3) and _in_own_function(fn, call)):
                continue
            old, new = (_text(arg, literals) for arg in call.args[:2])
            count = call.args[2].value if len(call.args) == 3 and isinstance(call.args[2], ast.Constant) else -1
            out.append(Replacement(file, call.lineno, module, old, new, count if isinstance(count, int) else -1))
    return out


def adopt_replacement(item: Replacement, resolver: Resolver, where: str) -> Adoption:
    """The verdict on one replacement: its change on the release's text as a module change."""
    label = f"{item.file.path}:{item.line}"
    result = Adoption(label, item.module, REFUSED)
    source = resolver.source(item.module)
    if item.old is None or item.new is None:
        result.reason = "the replaced or replacing text is not a literal (built at run time); it stays a patch of the file"
        return result
    if source is None:
        result.reason = f"no module {item.module} in {where}"
        return result
    if item.old not in source.text:
        result.reason = f"the text it replaces is not in {item.module} at {where}: there the patch does nothing"
        return result
    patched = source.text.replace(item.old, item.new, item.count)
    if patched == source.text:
        result.verdict, result.reason = IDENTICAL, "the replacement changes nothing"
        return result
    old_lines, new_lines = source.text.split("\n"), patched.split("\n")
    change = ModuleChange(source, Text.of(source.text))
    matcher = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            change.edits.append(Edit(i1, i2, new_lines[j1:j2], len(change.edits)))
    try:
        index = ScopeIndex(source.text, source.path)
    except SyntaxError:
        result.reason = f"{item.module} does not parse at {where}"
        return result
    first = change.edits[0].start
    scope = index.innermost(first, max(first + 1, change.edits[0].end))
    result.target = f"{item.module}:{scope.qualname}" if scope.qualname else item.module
    result.verdict, result.change = ADOPTED, change
    return result


def _module_of(node: ast.Constant, resolver: Resolver) -> str | None:
    """The vLLM module a literal path names (`v1/executor/ray_executor.py`, `vllm/...`), if the tree has it."""
    if not isinstance(node.value, str) or not _PATH.match(node.value):
        return None
    path = node.value[len("vllm/"):] if node.value.startswith("vllm/") else node.value
    module = "vllm." + path[:-3].replace("/", ".")
    module = module[: -len(".__init__")] if module.endswith(".__init__") else module
    return module if resolver.source(module) is not None else None


def _literals(fn: ast.AST) -> dict[str, str]:
    """Local names bound exactly once, to a string literal (implicit concatenation included)."""
    seen: dict[str, int] = {}
    values: dict[str, str] = {}
    for node in ast.walk(fn):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            seen[node.id] = seen.get(node.id, 0) + 1
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            values[node.targets[0].id] = node.value.value
    return {name: value for name, value in values.items() if seen.get(name) == 1}


def _text(arg: ast.expr, literals: dict[str, str]) -> str | None:
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.Name):
        return literals.get(arg.id)
    return None


def _in_own_function(fn: ast.AST, call: ast.Call) -> bool:
    """Whether `call` belongs to `fn` itself rather than to a def nested in it."""
    for node in ast.walk(fn):
        if node is not fn and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and any(c is call for c in ast.walk(node)):
            return False
    return True
