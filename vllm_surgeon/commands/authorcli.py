"""The commands that write sets: `new` and `capture`, `rebase`, `convert` (the work is in authoring/)."""

from __future__ import annotations

from pathlib import Path

from vllm_surgeon.commands.common import UsageError, beside, load_named, tree_of, writable, write_if_it_applies


def cmd_new(args, out) -> int:
    from vllm_surgeon.authoring.capture import WorkdirError, new, workdir_for

    tree = tree_of(args.against)
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
    from vllm_surgeon.core.model import HunkFileError

    directory = workdir_for(args.name, args.dir)
    target = Path(args.out) if args.out else Path(f"{args.name}.hunk")
    writable(target, args.force)

    try:
        captured = capture(args.name, directory)
    except (WorkdirError, HunkFileError) as exc:
        raise UsageError(str(exc)) from None

    tree = tree_of(captured.against)
    hunk_set = write_if_it_applies(captured.text, target, args.name, "hunk", tree, out, "the captured hunks would be refused")
    if hunk_set is None:
        return 1
    hunks = len(hunk_set.hunks)
    out.write(f"wrote {target}: {hunks} hunk{'s' if hunks != 1 else ''} on {captured.targets} target(s), checked against {tree.label}\n")
    return 0


def cmd_rebase(args, out) -> int:
    from vllm_surgeon.authoring.rebase import RebaseError, rebase

    hunk_set = load_named(args.name)
    source = Path(hunk_set.path)
    if source.is_dir() and args.write:  # a folder set becomes one diff of its net change: never replace a folder
        raise UsageError(f"{source} is a folder set; rebase writes its net change as one .patch (use --out, or the default)")
    if args.write and args.out:
        raise UsageError("--write replaces the set file itself; --out writes elsewhere: pass one of them")
    suffix = ".patch" if source.is_dir() else source.suffix
    target = source if args.write else Path(args.out) if args.out else beside(source, ".rebased", suffix)
    if not args.write:  # --write is the request to replace the set
        writable(target, args.force)
    base_spec = args.base or hunk_set.written_against
    if not base_spec:
        raise UsageError(f"{hunk_set.path} records no written-against version; name its base release with --from")
    base, onto = tree_of(base_spec, args.withs), tree_of(args.onto, args.withs)
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
    if write_if_it_applies(result.text, target, hunk_set.name, hunk_set.kind, onto, out, "the merged set would still be refused") is None:
        return 1
    out.write(f"rebased {hunk_set.name} from {base.label} onto {onto.label}: wrote {target}\n")
    out.write("".join(f"  {note}\n" for note in result.notes))  # code upstream moved, followed (issue 14)
    if not args.write:
        out.write(f"review it, then replace {source} (or run again with --write)\n")
    return 0


def cmd_convert(args, out) -> int:
    from vllm_surgeon.authoring.convert import ConvertError, convert
    from vllm_surgeon.authoring.files import write_text

    hunk_set = load_named(args.name)
    tree = tree_of(args.against or hunk_set.written_against, args.withs)
    source = Path(hunk_set.path)
    target = Path(args.out) if args.out else beside(source, ".converted", ".hunk")
    writable(target, args.force)
    try:
        converted = convert(hunk_set, tree, str(target))
    except ConvertError as exc:
        out.write(f"{hunk_set.name}: cannot convert: {exc}\n")
        return 1
    write_text(target, converted.text)
    out.write(f"wrote {target}: {converted.hunks} hunk{'s' if converted.hunks != 1 else ''} on {converted.modules} module(s), "
              f"identical to {hunk_set.name} on {tree.label}\n")
    return 0


def _conflict_next_step(hunk_set, result, args, onto, out) -> None:
    """After a conflict, say what to do (issue 8): resolve the markers in editable copies of the new
    release's functions, merged as far as the merge could, then `capture`; or start over with `new`."""
    from vllm_surgeon.authoring.capture import WorkdirError, write_copies

    name = f"{hunk_set.name}.rebased"
    directory = Path(f"{name}.surgeon")
    against = args.onto
    targets = " ".join(result.outside) if result.outside else "TARGET..."  # a module target copies the module
    redo = (f"  vllm-surgeon new {name} {targets} --against {against}   # copies as in {onto.label}\n"
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
