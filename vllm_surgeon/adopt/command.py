"""The `adopt` command: one copy named (`FILE::QUALNAME --target MODULE:QUALNAME`), or discovery
over files and folders. Exit codes: 0 adopted or identical (or a discovery report), 1 cannot be
adopted (or `--out` has nothing that passes the check), 2 bad input (AdoptInputError)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from vllm_surgeon.adopt.adoption import REFUSED, WRAPPER
from vllm_surgeon.adopt.discover import Report, discover, render_table, to_json, write_set
from vllm_surgeon.adopt.one import adopt_one
from vllm_surgeon.adopt.patchfile import AdoptInputError
from vllm_surgeon.authoring.files import refuse_existing, write_text
from vllm_surgeon.authoring.guards import GuardWriteError, read_targets, write_guard_record
from vllm_surgeon.trees.releases import Tree


def run(args, out: TextIO, tree: Callable[[], Tree]) -> int:
    """Run `adopt` as parsed by the command line; `tree()` reads the --against SPEC."""
    named = [p for p in args.paths if "::" in p]
    helpers = frozenset(args.helper or [])
    tops = frozenset(args.package or [])
    if args.target is not None:
        if len(args.paths) != 1 or not named:
            raise AdoptInputError("--target adopts one copy: give exactly one FILE::QUALNAME "
                                  f"(got {' '.join(args.paths)!r})")
        if args.json or helpers or args.guard_out:
            raise AdoptInputError("--json, --helper and --guard-out are for discovery (PATH... without --target)")
        return _one(args, named[0], out, tree, tops)
    if named:
        raise AdoptInputError(f"{named[0]}: a FILE::QUALNAME needs --target MODULE:QUALNAME (the function it replaces)")
    return _discover(args, out, tree, helpers, tops)


def _one(args, node_id: str, out: TextIO, tree: Callable[[], Tree], tops: frozenset[str]) -> int:
    path = Path(args.out) if args.out else Path(f"{Path(node_id.rpartition('::')[0]).stem}.hunk")
    _check_out(path, args.force)
    outcome = adopt_one(node_id, args.target, tree(), path, tops)
    if outcome.text is not None:
        write_text(path, outcome.text)
        out.write(f"{outcome.message}\nwrote {path}\n")
    else:
        out.write(outcome.message + "\n")
    return outcome.code


def _discover(args, out: TextIO, tree: Callable[[], Tree], helpers: frozenset[str], tops: frozenset[str]) -> int:
    path = Path(args.out) if args.out else None
    if path is not None:
        _check_out(path, args.force)
    guard = Path(args.guard_out) if args.guard_out else None
    if guard is not None:
        _check_out(guard, args.force, ".guard")
    report = discover([Path(p) for p in args.paths], tree(), helpers, tops)
    code, message = 0, ""
    if path is not None:
        text, message = write_set(report, path)
        if text is None:
            code = 1
        else:
            write_text(path, text)
    if guard is not None:
        guard_code, guard_message = _guard(report, guard, args.force)
        code, message = max(code, guard_code), "\n".join(m for m in (message, guard_message) if m)
    if args.json:  # stdout stays JSON; what --out did goes to stderr
        out.write(json.dumps(to_json(report), indent=1) + "\n")
        if message:
            sys.stderr.write(message + "\n")
    else:
        out.write("\n".join(render_table(report)) + "\n")
        if message:
            out.write(message + "\n")
    return code


def _guard(report: Report, path: Path, force: bool) -> tuple[int, str]:
    """`--guard-out`: a guard record of the upstream functions the sites that stay monkey patches
    depend on (wrappers, and copies refused where upstream has the function), with their sites; exit
    code and message. Written even when nothing is adopted: it is what stays that needs watching."""
    sites: dict[str, list[str]] = {}
    for row in report.rows:
        if row.verdict in (WRAPPER, REFUSED) and row.digest is not None:
            sites.setdefault(row.target, []).append(f"{row.file}:{row.line} {row.verdict}")
    for target in list(sites):  # a site named by what it keeps (ArcticPatch's `_orig_f = Target.f`) has no def of its own
        try:
            read_targets([target], report.tree)
        except GuardWriteError:
            del sites[target]
    if not sites:
        return 0, f"{path} not written: no site stays a monkey patch over an upstream function"
    try:
        write_guard_record(path, sites, report.tree, fields={"description": "monkey patches that stay, as `adopt` found them"},
                           force=force)
    except GuardWriteError as exc:
        return 1, f"{path} not written: {exc}"
    count = len(sites)
    return 0, f"wrote {path}: {count} upstream function{'s' if count != 1 else ''} the remaining monkey patches depend on"


def _check_out(path: Path, force: bool, suffix: str = ".hunk") -> None:
    if path.suffix != suffix:
        what = "an adopted set is a .hunk file (name it NAME.hunk)" if suffix == ".hunk" else "a guard record is a NAME.guard file"
        raise AdoptInputError(f"--{'out' if suffix == '.hunk' else 'guard-out'} {path}: {what}")
    try:
        refuse_existing(path, force)
    except FileExistsError as exc:
        raise AdoptInputError(str(exc)) from None
