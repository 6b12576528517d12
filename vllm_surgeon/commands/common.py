"""What the subcommands of the command line share: bad usage (exit 2), a set read by name or path,
the tree a SPEC names, a plan's refusals printed, and the files written beside a set, checked first."""

from __future__ import annotations

import sys
from pathlib import Path


class UsageError(Exception):
    """Exit 2 with this message."""


def load_named(name: str, say=None):
    """Set `name`, read even where vLLM would refuse it (someone else can change it: issue 13), which
    `say` (default: stderr) is told; a `.py` set of that kind is not run (UsageError)."""
    from vllm_surgeon.core.model import HunkFileError
    from vllm_surgeon.sets.loader import UnknownSetError
    from vllm_surgeon.sets.reader import REPORT
    from vllm_surgeon.sets.search import load

    try:
        hunk_set = load(name, REPORT)
    except (UnknownSetError, HunkFileError) as exc:
        raise UsageError(str(exc)) from None
    say_untrusted(hunk_set, say or sys.stderr.write)
    return hunk_set


def quiet(line: str) -> None:
    """verify's `say`: its report (text and JSON) says why vLLM would refuse a set (issue 13), not stderr."""


def say_untrusted(hunk_set, say) -> None:
    """Why vLLM refuses this set here, one line per file or folder at fault, in the words vLLM uses."""
    from vllm_surgeon.commands.verify import untrusted_lines

    for line in untrusted_lines(hunk_set):
        say(line + "\n")


def load_path(path: str):
    from vllm_surgeon.core.model import HunkFileError
    from vllm_surgeon.sets.loader import UnknownSetError, load_file
    from vllm_surgeon.sets.reader import REPORT

    file = Path(path)
    if not file.exists():
        raise UsageError(f"{path}: no such set file")
    try:
        return load_file(file.absolute(), mode=REPORT)
    except (UnknownSetError, HunkFileError) as exc:
        raise UsageError(str(exc)) from None


def tree_of(spec: str | None, withs: list[str] | None = None, progress=None):
    from vllm_surgeon.commands.progress import Progress
    from vllm_surgeon.trees.packages import compose
    from vllm_surgeon.trees.releases import SpecError, resolve

    if progress is None:  # a download shows on a terminal (stderr) only
        progress = Progress(sys.stderr)
    try:
        return compose(resolve(spec, progress), withs)  # other packages: --with DIST==VERSION, else the environment
    except SpecError as exc:
        raise UsageError(str(exc)) from None
    finally:
        if progress is not None:
            progress.clear()


def planned(name: str, spec: str | None, withs: list[str] | None = None, say=None):
    from vllm_surgeon.engine import planner

    hunk_set = load_named(name, say)
    tree = tree_of(spec, withs)
    plan = planner.plan([hunk_set], tree.read, tree.version)
    return hunk_set, tree, plan


def refused(plan, out) -> int:
    from vllm_surgeon.core.refusal import SurgeonError

    out.write(str(SurgeonError(plan.refusals)) + "\n")
    return 1


def beside(source: Path, tag: str, suffix: str) -> Path:
    """Where a command writes what it made of set `source` by default: NAME.TAG.SUFFIX beside it, NAME
    the set's whole name (issue 13: `s.v2` was cut to `s`, and its proposal replaced set `s`'s)."""
    return source.with_name(f"{source.name if source.is_dir() else source.stem}{tag}{suffix}")


def writable(target: Path, force: bool) -> None:
    """A file a command writes may replace an existing one only with --force (capture, convert, rebase)."""
    from vllm_surgeon.authoring.files import refuse_existing

    try:
        refuse_existing(target, force)
    except FileExistsError as exc:
        raise UsageError(str(exc)) from None


def write_if_it_applies(text: str, target: Path, name: str, kind: str, tree, out, refused_as: str):
    """The step `capture` and `rebase` end with: the set text made for `target` parsed, planned on
    `tree`, and written only if every hunk applies (the set, parsed); else None, nothing written and
    why said. (`convert` checks more than this, in authoring/convert.py: the same modules as the diff's.)"""
    from vllm_surgeon.authoring.files import write_text
    from vllm_surgeon.core.model import HunkFileError
    from vllm_surgeon.engine import planner
    from vllm_surgeon.sets.difffile import parse_diff_file
    from vllm_surgeon.sets.hunkfile import parse_hunk_file

    parse = parse_diff_file if kind == "diff" else parse_hunk_file
    try:
        proposed = parse(text, str(target), name)
    except HunkFileError as exc:  # the text itself is malformed (an edited copy's capture)
        raise UsageError(str(exc)) from None
    plan = planner.plan([proposed], tree.read, tree.version)
    if plan.refusals:
        out.write(f"{refused_as}; nothing written:\n")
        refused(plan, out)
        return None
    write_text(target, text)
    return proposed
