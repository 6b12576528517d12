"""Apply a LibCST transform to its target node and turn the result into a placement on the text.

The anchor is checked with `ast` (structure only, formatting ignored); the transform itself runs
on LibCST nodes so the code it does not touch keeps its exact formatting and comments.
"""

from __future__ import annotations

import ast
import difflib
import traceback

from vllm_surgeon.core.lines import normalize_newlines, split_lines
from vllm_surgeon.core.model import TransformHunk
from vllm_surgeon.core.refusal import Reason, Refusal
from vllm_surgeon.core.scopes import Scope
from vllm_surgeon.engine.state import Context, Placement, State


def _dump(node: ast.AST) -> str:
    return ast.dump(node, annotate_fields=False, include_attributes=False)


def _anchor_found(anchor: str, target: ast.AST) -> bool:
    """Whether `anchor` (statements or an expression) occurs structurally inside `target`."""
    try:
        statements = ast.parse(anchor.strip()).body
    except (SyntaxError, ValueError, RecursionError):  # ValueError: a null byte in the anchor
        statements = None
    if statements and not (len(statements) == 1 and isinstance(statements[0], ast.Expr)):
        wanted = [_dump(s) for s in statements]
        for node in ast.walk(target):
            for name in ("body", "orelse", "finalbody"):
                block = getattr(node, name, None)
                if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                    dumps = [_dump(s) for s in block]
                    if any(dumps[i : i + len(wanted)] == wanted for i in range(len(dumps) - len(wanted) + 1)):
                        return True
        return False
    try:
        expression = _dump(ast.parse(anchor.strip(), mode="eval").body)
    except (SyntaxError, ValueError, RecursionError):
        return False
    return any(isinstance(n, ast.expr) and _dump(n) == expression for n in ast.walk(target))


def _find_cst(module, qualname: str):
    """The LibCST node(s) for `qualname`, walking classes, functions (`<locals>`) and blocks."""
    import libcst as cst

    parts = qualname.split(".")
    found = []

    def walk(body, depth: int) -> None:
        for stmt in body:
            if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
                if stmt.name.value != parts[depth]:
                    continue
                if depth == len(parts) - 1:
                    found.append(stmt)
                elif isinstance(stmt, cst.ClassDef):
                    walk(_statements(stmt.body), depth + 1)
                elif parts[depth + 1] == "<locals>" and depth + 2 < len(parts):
                    walk(_statements(stmt.body), depth + 2)
            elif isinstance(stmt, (cst.If, cst.Try, cst.With, cst.For, cst.While)):
                for block in _blocks(stmt):
                    walk(block, depth)

    walk(module.body, 0)
    return found


def _statements(suite):
    import libcst as cst

    return list(suite.body) if isinstance(suite, cst.IndentedBlock) else []


def _blocks(stmt):
    blocks = [_statements(stmt.body)]
    for name in ("orelse", "finalbody"):
        other = getattr(stmt, name, None)
        if other is not None and hasattr(other, "body"):
            blocks.append(_statements(other.body) if hasattr(other.body, "body") else [])
    for handler in getattr(stmt, "handlers", ()):
        blocks.append(_statements(handler.body))
    return blocks


def locate_transform(ctx: Context, hunk: TransformHunk, state: State) -> Placement | Refusal:
    """Run the transform on its target in the current text; the changed lines become a placement."""
    scope = _target_scope(ctx, hunk, state)
    if isinstance(scope, Refusal):
        return scope
    new_lines = _transformed(ctx, hunk, state)
    if isinstance(new_lines, Refusal):
        return new_lines
    tail = len(state.lines) - scope.end
    region = new_lines[scope.start : len(new_lines) - tail]
    if new_lines[: scope.start] != state.lines[: scope.start] or new_lines[len(new_lines) - tail :] != state.lines[scope.end :]:
        return ctx.refuse(Reason.TRANSFORM_FAILED, hunk, f"{hunk.name} changed code outside {scope.qualname}", state.source)
    return Placement(hunk, scope.start, scope.end, _line_ops(state.lines[scope.start : scope.end], region), scope)


def _target_scope(ctx: Context, hunk: TransformHunk, state: State) -> Scope | Refusal:
    """The one definition a transform targets, holding every anchor it expects (checked by `ast`)."""
    index = state.index()
    scopes = index.find(hunk.target.qualname)
    if not scopes:
        return ctx.refuse(
            Reason.TARGET_NOT_FOUND, hunk,
            f"{hunk.target.qualname} is not defined in {hunk.target.module}{index.similar(hunk.target.qualname)}", state.source,
        )
    if len(scopes) > 1:
        return ctx.refuse(
            Reason.ANCHOR_AMBIGUOUS, hunk, f"{hunk.target.qualname} is defined {len(scopes)} times (lines "
            + ", ".join(str(s.start + 1) for s in scopes) + "); a transform needs exactly one", state.source,
        )
    scope = scopes[0]
    missing = [a for a in hunk.anchors if not _anchor_found(a, scope.node)]
    if missing:
        return ctx.refuse(
            Reason.ANCHOR_NOT_FOUND,
            hunk,
            f"the transform expects {missing[0].strip()!r} in {scope.describe()} (lines {scope.start + 1}-{scope.end}), "
            "and it is not there",
            state.source,
            expected=tuple(split_lines(missing[0].strip())),
        )
    return scope


def _transformed(ctx: Context, hunk: TransformHunk, state: State) -> list[str] | Refusal:
    """The module's lines after the set's function rewrote its target's LibCST node; a refusal when
    it raised, returned another kind of node, changed nothing, or returned what cannot be written."""
    import libcst as cst

    module = cst.parse_module("\n".join(state.lines))
    assert hunk.target.qualname is not None  # _pyfile refuses a transform of module scope
    nodes = _find_cst(module, hunk.target.qualname)
    if len(nodes) != 1:
        return ctx.refuse(Reason.TARGET_NOT_FOUND, hunk, f"LibCST finds {len(nodes)} definitions of {hunk.target.qualname}", state.source)
    old = nodes[0]
    try:
        fn = hunk.function
        if isinstance(fn, type) and issubclass(fn, cst.CSTTransformer):
            new = old.visit(fn())
        else:
            new = hunk.function(old)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # a set's code: even sys.exit() is a refusal, never an exit (issue 7 item 9)
        frames = traceback.extract_tb(exc.__traceback__)
        at = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
        return ctx.refuse(Reason.TRANSFORM_FAILED, hunk, f"{hunk.name} raised {type(exc).__name__}: {exc}{at}", state.source)
    if type(new) is not type(old):
        return ctx.refuse(
            Reason.TRANSFORM_FAILED, hunk,
            f"{hunk.name} returned {type(new).__name__}; it must return a {type(old).__name__}", state.source,
        )
    try:
        if new.deep_equals(old):
            return ctx.refuse(Reason.UNCHANGED, hunk, f"{hunk.name} returned the target unchanged", state.source)
        return normalize_newlines(module.deep_replace(old, new).code).split("\n")
    except Exception as exc:  # a node LibCST cannot render back to source
        return ctx.refuse(
            Reason.TRANSFORM_FAILED, hunk, f"{hunk.name} returned a node that cannot be written as code: {type(exc).__name__}: {exc}",
            state.source,
        )


def _line_ops(old: list[str], new: list[str]) -> list[tuple[str, str]]:
    """The (op, text) pairs that turn `old` lines into `new` ones, as a placement holds them."""
    ops: list[tuple[str, str]] = []
    for tag, a0, a1, b0, b1 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if tag == "equal":
            ops += [(" ", line) for line in new[b0:b1]]
        else:
            ops += [("-", line) for line in old[a0:a1]]
            ops += [("+", line) for line in new[b0:b1]]
    return ops
