"""The command line's part for guard records (issue 16): `guard`, and the records `verify` and `list` read.

Errors are the ones the command line already turns into exit 2 naming the file or name at fault:
HunkFileError (a record that cannot be read) and UnknownSetError (a name that is neither a set nor
a record, or a path given as a name).
"""

from __future__ import annotations

import json
from pathlib import Path

from vllm_surgeon.authoring.guards import read_targets, write_guard_record
from vllm_surgeon.authoring.udiff import relative_path
from vllm_surgeon.core.model import HunkFileError, Origin
from vllm_surgeon.sets.guardfile import SUFFIX, GuardRecord
from vllm_surgeon.sets.guardsearch import available_guards, locate_guard, read_guard_file
from vllm_surgeon.sets.loader import UnknownSetError
from vllm_surgeon.sets.reader import REPORT
from vllm_surgeon.sets.search import locate
from vllm_surgeon.trees.releases import Tree

SCHEMA = "vllm-surgeon/guard/1"


def split_files(paths: list[str]) -> tuple[list[str], list[GuardRecord]]:
    """`verify --files`: the set files among `paths`, and the guard records (NAME.guard) read."""
    records = []
    for path in paths:
        if path.endswith(SUFFIX):
            if not Path(path).exists():
                raise HunkFileError(Origin(path, 1), "no such guard record")
            records.append(read_guard_file(Path(path).absolute(), mode=REPORT))
    return [p for p in paths if not p.endswith(SUFFIX)], records


def split_names(names: list[str]) -> tuple[list[str], list[GuardRecord]]:
    """`verify NAME...`: the names that are sets, and the records of names that have one (NAME.guard);
    a name that is neither raises the set search's UnknownSetError (it lists the sets there are)."""
    sets, records = [], []
    for name in names:
        try:
            guard = locate_guard(name)
        except UnknownSetError:
            guard = None
        try:
            locate(name)
        except UnknownSetError:
            if guard is None:
                raise
        else:
            sets.append(name)
        if guard is not None:
            records.append(read_guard_file(guard.path, name, REPORT))
    return sets, records


def all_records(errors: list[str]) -> list[GuardRecord]:
    """Every guard record on the search path (directories that cannot be listed: appended to `errors`)."""
    return [read_guard_file(loc.path, loc.name, REPORT) for loc in available_guards(errors)]


def guard(args, tree: Tree, out) -> int:
    """`vllm-surgeon guard TARGET... [--against SPEC] [--out NAME.guard] [--json]`."""
    recorded = read_targets(list(dict.fromkeys(args.targets)), tree)
    if args.out:
        fields = {"description": args.description} if args.description else {}
        write_guard_record(Path(args.out), [r.target for r in recorded], tree, fields=fields, force=args.force)
    if args.json:
        targets = [{"target": r.target, "release": r.release, "digest": r.code.digest, "path": r.module_path,
                    "line": r.code.start, "decorator": r.decorator} for r in recorded]
        report = {"schema": SCHEMA, "against": {"spec": args.against, "label": tree.label, "vllm_version": tree.version},
                  "out": args.out, "targets": targets}
        out.write(json.dumps(report, indent=1) + "\n")
        return 0
    for r in recorded:
        where = f"{relative_path(r.target.partition(':')[0], r.module_path)}:{r.code.start}"
        out.write(f"{r.target}  ({r.release}, {where})\n  digest: {r.code.digest}\n  {r.decorator}\n")
    if args.out:
        count = f"{len(recorded)} guarded function{'s' if len(recorded) != 1 else ''}"
        out.write(f"wrote {args.out}: {count}; `vllm-surgeon verify --against NEW` checks them when it is on VLLM_SURGEON_PATH\n")
    return 0


def list_guards(out) -> None:
    """`list`: the guard records on the search path, what each records, and at which release."""
    for loc in available_guards():
        try:
            record = read_guard_file(loc.path, loc.name, REPORT)
        except HunkFileError as exc:
            out.write(f"\n{loc.name}  UNREADABLE  {exc}\n")
            continue
        out.write(f"\n{loc.name}  [guard record, {loc.source}]  {loc.path}\n")
        if record.fields.get("description"):
            out.write(f"  {record.fields['description']}\n")
        for f in record.functions:
            out.write(f"  -> {f.target}  (as at {f.release})\n")
