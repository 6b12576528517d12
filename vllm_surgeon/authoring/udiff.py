"""Unified diffs that `git apply --check` and `patch -p1 -F0` accept on the tree they were made against.

difflib.unified_diff on `text.split("\\n")` prints a context line for the empty string after a
file's last newline, and nothing for a file without one (issue 6). Here lines keep their ends, so
a missing final newline is a line without "\\n", written with `\\ No newline at end of file`; a new
module is `--- /dev/null` with `new file mode`.
"""

from __future__ import annotations

from vllm_surgeon.core.unified import hunks

NO_EOL = "\\ No newline at end of file"


def _lines(text: str) -> list[str]:
    """Lines with their "\\n" (the last one without, when the text has no final newline)."""
    parts = text.split("\n")
    out = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        out.append(parts[-1])
    return out


def _emit(out: list[str], op: str, line: str) -> None:
    out.append(op + line.rstrip("\n") if line.endswith("\n") else op + line)
    if not line.endswith("\n"):
        out.append(NO_EOL)


def unified(relative: str, old: str | None, new: str, context: int = 3) -> list[str]:
    """The diff of one file, `relative` being its path from the tree's root (old None: a new file)."""
    a, b = _lines(old or ""), _lines(new)
    if old is not None and a == b:
        return []
    out = [f"diff --git a/{relative} b/{relative}"]
    if old is None and not b:  # a new empty file: git writes no ---/+++ and no hunk
        return out + ["new file mode 100644"]
    if old is None:
        out += ["new file mode 100644", "--- /dev/null"]
    else:
        out.append(f"--- a/{relative}")
    out.append(f"+++ b/{relative}")
    for header, lines in hunks(a, b, context):
        out.append(header)
        for op, line in lines:
            _emit(out, op, line)
    return out


def relative_path(module: str, source_path: str) -> str:
    """A module's file path from the root of the tree that holds it: `vllm/v1/__init__.py`."""
    base = module.replace(".", "/")
    return f"{base}/__init__.py" if source_path.replace("\\", "/").endswith("/__init__.py") else f"{base}.py"
