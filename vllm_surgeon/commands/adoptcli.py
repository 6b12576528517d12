"""The command line's part for `adopt` (issue 16): its help, examples and options. The work is in
vllm_surgeon/adopt (command.run), imported only when the command runs."""

from __future__ import annotations

import argparse

HELP = "turn monkey patches (copied-and-edited vLLM functions) into anchored hunks"
EXAMPLE = (
    "examples:\n"
    "  vllm-surgeon adopt my_patches/sched.py::schedule --target vllm.v1.core.sched.scheduler:Scheduler.schedule\n"
    "  vllm-surgeon adopt my_patches/ --against 0.11.0                  # every patch site, with its verdict\n"
    "  vllm-surgeon adopt my_patches/ --against 0.11.0 --out mine.hunk  # and the adopted hunks as one set\n"
    "  vllm-surgeon adopt ucm/integration --helper patch_or_inject --json\n"
    "  vllm-surgeon adopt my_patches/ --out mine.hunk --guard-out mine.guard  # and a record of what stays\n"
    "Files are read, never imported. Verdicts: adopted, identical, wrapper (calls the original: stays a\n"
    "monkey patch), new (no upstream definition), refused (with the reason). One copy: exit 0 when adopted\n"
    "or identical, 1 when it cannot be adopted, 2 on bad input."
)


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="FILE::QUALNAME | PATH",
                   help="one copy (with --target), or Python files and folders to search for patch sites")
    p.add_argument("--target", metavar="MODULE:QUALNAME", help="the vLLM function the copy replaces (one copy)")
    p.add_argument("--against", metavar="SPEC", help="vLLM to adopt against (default: the installed one)")
    p.add_argument("--out", metavar="NAME.hunk", help="set to write (one copy: default FILE's name .hunk; discovery: none)")
    p.add_argument("--json", action="store_true", help="write the sites as JSON (schema vllm-surgeon/adopt/1)")
    p.add_argument("--helper", action="append", metavar="NAME", help="a call NAME(obj, 'attr', f) patches (repeatable)")
    p.add_argument("--package", action="append", metavar="NAME",
                   help="another package whose patches count as sites, e.g. vllm_ascend (repeatable)")
    p.add_argument("--guard-out", metavar="NAME.guard",
                   help="discovery: also write a guard record of the upstream functions the sites that stay monkey patches "
                        "(wrappers, refused copies) depend on, for `verify --against NEW`")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out or --guard-out file")
