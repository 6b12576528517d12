"""Rebuild the case list and catalogue of tools/bench_adopt.py's corpus (issue 16) from the patch
packages of real vLLM extension projects, so a lost corpus can be made again the same way.

The projects' sources go first into CORPUS/<project>/<ref>/ (third-party code: kept out of git),
one per row of bench_adopt.PROJECTS, e.g.

    git clone https://github.com/vllm-project/vllm-ascend && \\
        mkdir -p .cache/corpus/adopt/vllm-ascend/v0.11.0 && \\
        git -C vllm-ascend archive v0.11.0 | tar -x -C .cache/corpus/adopt/vllm-ascend/v0.11.0

and the vLLM wheels they pin into WHEELS (`--download` fetches the missing ones with pip). Then:

    .venv/bin/python tools/build_adopt_corpus.py [--corpus DIR] [--wheels DIR] [--download]

runs discovery on every project present and writes catalogue.json (every site found, wrappers
marked) and copy_and_edit_cases.tsv: each site whose replacement is a def of the package and whose
target is one upstream def in the pinned release, that is not a wrapper, and whose statements
(compared as code, each compound statement by its header) are a near-copy of upstream's: difflib's
ratio over the two statement lists >= --ratio, both with >= 2 statements. Which verdict `adopt`
gives a case plays no part in choosing it.
"""

from __future__ import annotations

import argparse
import ast
import csv
import difflib
import json
import os
import subprocess
import sys
from pathlib import Path

import bench_adopt as bench

from vllm_surgeon.adopt import code
from vllm_surgeon.adopt.discover import Row, discover
from vllm_surgeon.adopt.patchfile import AdoptInputError, PatchFile, split_node_id
from vllm_surgeon.trees.releases import Tree

FIELDS = ["id", "project", "ref", "replacement", "target", "vllm_version", "identical", "ratio"]


def case(row: Row, tree: Tree, ratio: float) -> dict[str, str] | None:
    """The case a site is, or None when it is no copy-and-edit function (see the module's docstring)."""
    if row.verdict == "wrapper" or "::" not in row.label or ":" not in row.target:
        return None
    path, qualname = split_node_id(row.label)
    try:
        replacement = PatchFile.read(Path(path)).function(qualname)[0]
    except AdoptInputError:
        return None
    module, _, name = row.target.partition(":")
    source = tree.read(module)
    try:
        found = bench.lookup(ast.parse(source.text), name) if source is not None else []
    except SyntaxError:
        return None
    if len(found) != 1 or not isinstance(found[0], ast.FunctionDef | ast.AsyncFunctionDef):
        return None
    upstream, theirs = code.statement_keys(found[0]), code.statement_keys(replacement)
    if len(upstream) < 2 or len(theirs) < 2:
        return None
    near = difflib.SequenceMatcher(None, upstream, theirs, autojunk=False).ratio()
    if near < ratio:
        return None
    return {"replacement": row.label, "target": row.target, "ratio": f"{near:.2f}",
            "identical": str(bench.normalised(found[0]) == bench.normalised(replacement))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=bench.CORPUS, help=f"where the projects are (default {bench.CORPUS})")
    parser.add_argument("--wheels", type=Path, default=bench.WHEELS, help=f"the pinned vLLM wheels (default {bench.WHEELS})")
    parser.add_argument("--download", action="store_true", help="download the missing wheels (pip, no dependencies)")
    parser.add_argument("--ratio", type=float, default=0.5, help="how near a copy must be to upstream (default 0.5)")
    args = parser.parse_args()
    bench.CORPUS, bench.WHEELS = args.corpus.absolute(), args.wheels.absolute()
    catalogue: list[dict] = []
    cases: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()
    os.chdir(bench.CORPUS)  # sites and cases name files relative to the corpus, as the benchmark reads them
    for project, ref, version, paths, helpers, packages in bench.PROJECTS:
        if not Path(paths[0]).is_dir():
            print(f"{project} {ref}: not in {bench.CORPUS} (see --help), left out")
            continue
        if not list(bench.WHEELS.glob(f"vllm-{version}-*.whl")) and args.download:
            subprocess.run([sys.executable, "-m", "pip", "download", f"vllm=={version}", "--no-deps", "--only-binary=:all:",
                            "-q", "-d", str(bench.WHEELS)], check=False)
        if not list(bench.WHEELS.glob(f"vllm-{version}-*.whl")):
            print(f"{project} {ref}: no vllm {version} wheel in {bench.WHEELS} (--download fetches it), left out")
            continue
        tree = bench.tree_for(version, with_ascend=bool(packages))
        report = discover([Path(p) for p in paths], tree, frozenset(helpers), frozenset(packages))
        before = len(cases)
        for row in report.rows:
            catalogue.append({"project": project, "ref": ref, "file": row.file, "line": row.line, "kind": row.kind,
                              "target": row.target, **({"class": "wrapper"} if row.verdict == "wrapper" else {})})
            found = case(row, tree, args.ratio)
            if found is not None and (row.label, row.target) not in seen:
                seen.add((row.label, row.target))
                cases.append({"id": str(len(cases) + 1), "project": project, "ref": ref, "vllm_version": version, **found})
        print(f"{project} {ref}: {len(report.rows)} sites, {len(cases) - before} copy-and-edit cases")
    (bench.CORPUS / "catalogue.json").write_text(json.dumps(catalogue, indent=0) + "\n")
    with (bench.CORPUS / "copy_and_edit_cases.tsv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS, delimiter="\t")
        writer.writeheader()
        writer.writerows(cases)
    print(f"{len(cases)} cases, {len(catalogue)} sites: written to {bench.CORPUS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
