"""Real patch series against their base release: vllm-surgeon's result vs `patch -p1 -F0`, file by file.

    .venv/bin/python tools/check_series.py --manifest .cache/corpus/manifest.json [NAME...]
    .venv/bin/python tools/check_series.py --base 0.9.1 [--dist vllm] PATCH_OR_FOLDER...

For each series (one patch file, several applied in order, or a folder: quilt `series` file or numbered
`0001-*.patch`), at its base release (the `vllm` wheel, downloaded once into the project's cache and
read from the zip):

1. truth: the files the series touches are copied out of the wheel into a scratch tree and the patches
   applied there in order with `patch -pN -F0` (no fuzz; offsets allowed, as git apply does);
2. vllm-surgeon: the series is put on VLLM_SURGEON_PATH as a set, unchanged, with a `skip:` header
   naming the files that are no module of the release (C++, docs, tests, setup files), either as one
   file (the header prepended) or as a folder set (a `fields` file and a `series` file); then the real
   CLI runs `verify --json` and `diff` against the wheel, and the `diff` output is applied with
   `patch -p1 -F0` (and `git apply --check`) to a fresh copy of the base files;
3. every Python file the set changes is compared with the truth, byte for byte.

Each series is `exact`, `refused` (with the reasons; `patch -F0` itself accepts the series), `wrong`
(files differ, or the diff output is not accepted, or it applies where patch does not), `patch-fails`
(the truth itself rejects hunks: the base release is not the one the series was made against) or
`truth-invalid` (what patch makes of a module does not compile); in the last two a refusal is right.
Where patch -F0 rejects a hunk and vllm-surgeon applies the series, it is `git-exact` when `git am` (an mbox)
or `git apply` accepts the series and gives exactly vllm-surgeon's text (GNU patch ties a hunk with fewer
context lines after its change than before to the end of the file; git does not), else `wrong`.

The corpus is other people's code: it stays out of git. A manifest is JSON:
    {"series": [{"name": "...", "base": "0.9.1", "dist": "vllm", "strip": 1, "root": "",
                 "paths": ["relative/to/the/manifest.patch", "or/a/folder"], "source": "owner/repo@sha:path"}]}
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("VLLM_SURGEON_CACHE_DIR", str(REPO / ".cache" / "surgeon-cache"))

from vllm_surgeon.engine.paths import skipped_by  # noqa: E402
from vllm_surgeon.trees.releases import download  # noqa: E402

_DIFF_GIT = re.compile(r"^diff --git (\S+) (\S+)$")
_NUMBERED = re.compile(r"^(\d+)")


@dataclass
class Entry:
    name: str
    base: str
    paths: list[Path]
    dist: str = "vllm"
    strip: int = 1
    source: str = ""
    form: str | None = None  # "file" or "folder"; default: file for one patch file, else folder
    root: str = ""  # the folder of the release the patches are applied in (`vllm`: `cd site-packages/vllm && patch -p1`)


@dataclass
class Outcome:
    name: str
    base: str
    status: str = "?"
    detail: str = ""
    files: int = 0  # Python files compared
    skipped: int = 0
    commits: int = 0
    hunks: int = 0
    differing: list[str] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)
    refusals: list[str] = field(default_factory=list)
    patch_rejects: list[str] = field(default_factory=list)  # the truth itself fails: not this release's series
    truth_invalid: list[str] = field(default_factory=list)  # what patch makes does not compile: refusing is right
    seconds: float = 0.0
    index: str = ""  # `index <blob>..` lines that name the base release's own file: k/n
    convert: str = ""  # with --convert: what `convert` made of an exact series
    # What verify says the added lines read and is gone (issue 14): on a series patch accepts, each is a false alarm.
    findings: list[str] = field(default_factory=list)


# -- the series' files, read independently of vllm-surgeon's parser ---------------------------------------

def patch_files(entry: Entry) -> list[tuple[Path, int]]:
    """The patch files in the order they apply, each with its -pN."""
    out: list[tuple[Path, int]] = []
    for path in entry.paths:
        if not path.is_dir():
            out.append((path, entry.strip))
            continue
        series = path / "series"
        if series.is_file():
            for line in series.read_text().splitlines():
                line = line.split("#", 1)[0].strip()
                if not line:
                    continue
                name, *options = line.split()
                strip = next((int(o[2:]) for o in options if re.fullmatch(r"-p\d+", o)), entry.strip)
                out.append((path / name, strip))
            continue
        numbered = sorted((p for p in path.iterdir() if p.suffix in (".patch", ".diff")),
                          key=lambda p: (int(m.group(1)) if (m := _NUMBERED.match(p.name)) else 0, p.name))
        out += [(p, entry.strip) for p in numbered]
    return out


def _stripped(path: str, strip: int) -> str | None:
    path = path.split("\t", 1)[0].strip()
    if path == "/dev/null":
        return None
    parts = [p for p in path.split("/") if p]
    return "/".join(parts[strip:]) or None


_INDEX = re.compile(r"^diff --git a/(\S+) b/\S+\n(?:(?!diff --git ).*\n)*?index ([0-9a-f]{7,40})\.\.", re.M)


def index_agreement(texts: list[str], archive: zipfile.ZipFile, prefix: str) -> tuple[int, int]:
    """How many `index <blob>..` lines of the patches name the git blob of the release's file (and of how many):
    the evidence that the base release is the one the series was made against. A file is counted at its first section."""
    wanted: dict[str, str] = {}
    for text in texts:
        for m in _INDEX.finditer(text.replace("\r\n", "\n")):
            wanted.setdefault(m.group(1), m.group(2))
    names = set(archive.namelist())
    agree = total = 0
    for path, blob in wanted.items():
        if blob.strip("0") and prefix + path in names:
            data = archive.read(prefix + path)
            total += 1
            agree += hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest().startswith(blob)
    return agree, total


def touched(text: str, strip: int) -> tuple[dict[str, str], int, int]:
    """{path after -pN: "new" | "modify" | "delete"}, number of `From <sha>` messages, number of hunks."""
    files: dict[str, str] = {}
    guessed: set[str] = set()  # kinds taken from a `diff --git` line: its `---`/`+++` lines say better
    lines = text.replace("\r\n", "\n").split("\n")
    for i, line in enumerate(lines):
        if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            old, new = _stripped(line[4:], strip), _stripped(lines[i + 1][4:], strip)
            path = new or old
            if path is None:
                continue
            kind = "new" if old is None else "delete" if new is None else "modify"
            if path in guessed:  # a new file's `diff --git` line came first: it is "new", not "modify" (issue 14)
                files[path] = kind
                guessed.discard(path)
            files.setdefault(path, kind)
        elif (m := _DIFF_GIT.match(line)) and strip == 1:
            path = _stripped(m.group(2), 1) or ""
            if path not in files:
                files[path] = "modify"
                guessed.add(path)
        elif line.startswith(("rename from ", "rename to ", "copy from ", "copy to ")):  # never a/ b/ here
            files.setdefault(line.split(" ", 2)[2], "delete" if line.startswith("rename from ") else "modify")
    files.pop("", None)
    commits = sum(1 for line in lines if re.match(r"^From [0-9a-f]{40} ", line))
    hunks = sum(1 for line in lines if line.startswith("@@ -"))
    return files, commits, hunks


# -- truth: patch -F0 -------------------------------------------------------------------------------------

def run_patch(tree: Path, patch: Path, strip: int) -> subprocess.CompletedProcess:
    # --force: no questions (a file that is not there is skipped); --forward: never guess "reversed".
    return subprocess.run(["patch", f"-p{strip}", "-F0", "--force", "--forward", "--no-backup-if-mismatch",
                           "-d", str(tree), "-i", str(patch.absolute())], capture_output=True, text=True)


def compiles(path: Path) -> bool:
    if not path.exists():
        return True
    try:
        compile(path.read_bytes(), str(path), "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return False
    return True


def rejects(tree: Path) -> list[str]:
    return sorted(str(p.relative_to(tree))[: -len(".rej")] for p in tree.rglob("*.rej"))


# -- the set vllm-surgeon reads ---------------------------------------------------------------------------

def module_file(path: str, members: set[str], created: set[str]) -> bool:
    """Whether a path of the series is (or, new, becomes) a module of an installed package in this wheel."""
    if not path.endswith(".py") or "/" not in path:
        return path in members and path.endswith(".py")
    if path in members:
        return True
    folder = path.rsplit("/", 1)[0]
    if path.endswith("/__init__.py"):
        folder = folder.rsplit("/", 1)[0] if "/" in folder else ""
        return bool(folder) and (f"{folder}/__init__.py" in members or f"{folder}/__init__.py" in created)
    return f"{folder}/__init__.py" in members or f"{folder}/__init__.py" in created


def make_set(entry: Entry, files: list[tuple[Path, int]], skip: list[str], where: Path) -> str:
    """The series as a set named after the entry, unchanged but for the header; returns its name."""
    name = re.sub(r"[^A-Za-z0-9_-]", "_", entry.name)  # a folder set's name has no "." (NAME.surgeon/ are drafts)
    header = [f"written-against: {entry.dist}=={entry.base}"]
    if entry.root:
        header.append(f"root: {entry.root.strip('/').replace('/', '.')}")
    if skip:
        header.append("skip: " + ", ".join(skip))
    form = entry.form or ("file" if len(files) == 1 and files[0][1] == 1 else "folder")
    if form == "file":
        (src, _), = files
        (where / f"{name}{src.suffix if src.suffix in ('.patch', '.diff') else '.patch'}").write_bytes(
            ("\n".join(header) + "\n\n").encode() + src.read_bytes())
        return name
    folder = where / name
    folder.mkdir()
    (folder / "fields").write_text("\n".join(header) + "\n")
    lines = []
    for k, (src, strip) in enumerate(files, start=1):
        copy = f"{k:04d}-{src.name}"
        shutil.copyfile(src, folder / copy)
        lines.append(copy + ("" if strip == 1 else f" -p{strip}"))
    (folder / "series").write_text("\n".join(lines) + "\n")
    return name


def surgeon(args: list[str], sets: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, VLLM_SURGEON_PATH=str(sets))
    env.pop("VLLM_SURGEON_HUNKS", None)
    # cwd: the sets' folder, so that `-m vllm_surgeon` is the installed one (or PYTHONPATH's), never ./vllm_surgeon.
    return subprocess.run([sys.executable, "-m", "vllm_surgeon", *args], capture_output=True, text=True, env=env, cwd=sets)


# -- one series -------------------------------------------------------------------------------------------

def _diff_output_problems(mine: Path, diff: Path) -> list[str]:
    """What git apply --check and patch -p1 -F0 say of vllm-surgeon's diff output (applied to `mine`)."""
    problems = []
    check_run = git_apply(mine, diff, 1, check=True)
    if check_run.returncode != 0:
        problems.append("git apply --check refuses the diff output: " + check_run.stderr.strip()[:300])
    applied = run_patch(mine, diff, 1)
    if applied.returncode != 0:
        problems.append("patch -p1 -F0 refuses the diff output: " + applied.stdout.strip()[-300:])
    return problems


def _patch_fails_verdict(out: Outcome, base: Path, files, scratch: Path, prefix: str, mine: Path, modules: set[str]) -> None:
    """patch -F0 itself fails: vllm-surgeon should refuse. Where git applies the series (git am / git apply,
    which tie fewer hunks to the ends of files than GNU patch), say whether vllm-surgeon gives git's text."""
    git_truth = git_series(base, files, scratch / "git-truth", prefix) if out.patch_rejects else None
    same = git_truth is not None and all(_same(git_truth / p, mine / p) for p in modules)
    out.status = "wrong"
    out.detail = (f"applies, but patch -F0 rejects hunks in {', '.join(out.patch_rejects)}" if out.patch_rejects else
                  f"applies, but what patch -F0 makes of {', '.join(out.truth_invalid)} is not valid Python")
    if same:
        out.status, out.detail = "git-exact", out.detail + "; git am/apply applies the series and gives exactly vllm-surgeon's text"


def _modules_and_skip(entry: Entry, paths: dict[str, str], prefix: str, members: set[str]) -> tuple[set[str], list[str]]:
    """The Python modules the series changes, as the release's tree names them (`vllm/...`), and the
    other paths (as the patches name them) for the set's skip: patterns."""
    # New packages: a new __init__.py counts only inside a package the wheel has or the series creates
    # (grown to a fixpoint), never a new tests/ or examples/ tree.
    inits = [prefix + p for p, kind in paths.items() if kind == "new" and p.endswith("/__init__.py")]
    created: set[str] = set()
    while grown := {p for p in inits if p not in created and module_file(p, members, created)}:
        created |= grown
    modules = {prefix + p for p, kind in paths.items() if kind != "delete" and module_file(prefix + p, members, created)}
    skip = sorted(p for p in paths if prefix + p not in modules)
    for pattern in skip:  # a skip pattern must never leave out a module the comparison counts on
        caught = [m for m in modules if skipped_by(m[len(prefix):], (pattern,))]
        if caught:
            raise SystemExit(f"{entry.name}: skip pattern {pattern!r} would also skip {caught[0]}")
    return modules, skip


def _base_tree(base: Path, paths: dict[str, str], prefix: str, archive: zipfile.ZipFile, members: set[str]) -> Path:
    """The files the series touches, as the release's wheel has them, under `base`."""
    for path in paths:
        if prefix + path in members:
            target = base / prefix / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(prefix + path))
    (base / prefix).mkdir(parents=True, exist_ok=True)
    return base


def _refused_verdict(out: Outcome, refusals: list[dict]) -> None:
    """vllm-surgeon refuses the series: right where patch -F0 fails or makes invalid Python, else "refused"."""
    out.reasons = dict(collections.Counter(r["reason"] for r in refusals))
    out.refusals = [f"{r['origin']}: {r['reason']}: {r['detail']}" + (f" [{r['commit']}]" if r.get("commit") else "")
                    for r in refusals]
    out.status = "patch-fails" if out.patch_rejects else "truth-invalid" if out.truth_invalid else "refused"


def check(entry: Entry, scratch: Path, convert: bool = False) -> Outcome:
    started = time.perf_counter()
    scratch = scratch.absolute()
    out = Outcome(entry.name, entry.base)
    files = patch_files(entry)
    wheel = download(entry.dist, entry.base)
    archive = zipfile.ZipFile(wheel)
    members = set(archive.namelist())
    paths: dict[str, str] = {}
    prefix = f"{entry.root.strip('/')}/" if entry.root else ""
    agree, total = index_agreement([patch.read_text(errors="replace") for patch, _ in files], archive, prefix)
    out.index = f"{agree}/{total}"
    for patch, strip in files:
        found, commits, hunks = touched(patch.read_text(errors="replace"), strip)
        out.commits += commits or 1
        out.hunks += hunks
        for path, kind in found.items():
            paths.setdefault(path, kind)
    modules, skip = _modules_and_skip(entry, paths, prefix, members)
    out.files, out.skipped = len(modules), len(skip)
    base = _base_tree(scratch / "base", paths, prefix, archive, members)
    truth = scratch / "truth"
    shutil.copytree(base, truth)
    for patch, strip in files:
        run_patch(truth / prefix, patch, strip)
    out.patch_rejects = [p for p in rejects(truth) if p in modules]
    out.truth_invalid = [p for p in sorted(modules) if p not in out.patch_rejects and not compiles(truth / p)]

    sets = scratch / "sets"
    sets.mkdir()
    name = make_set(entry, files, skip, sets)
    verify = surgeon(["verify", name, "--against", str(wheel), "--json"], sets)
    try:
        verdict = json.loads(verify.stdout)
    except json.JSONDecodeError:
        out.status, out.detail = "error", (verify.stdout + verify.stderr).strip()[-600:]
        return _done(out, started)
    result = verdict["sets"][0]
    out.findings = [f"{f['severity']} {f['kind']} {f['origin']}: {f['name']}: {f['detail']}"
                    for h in result["hunks"] for f in h.get("findings", [])]
    if result["status"] != "applies":
        _refused_verdict(out, result["refusals"])
        return _done(out, started)
    diff = surgeon(["diff", name, "--against", str(wheel)], sets)
    if diff.returncode != 0:
        out.status, out.detail = "error", (diff.stdout + diff.stderr).strip()[-600:]
        return _done(out, started)
    (scratch / "surgeon.diff").write_text(diff.stdout)
    mine = scratch / "surgeon"
    shutil.copytree(base, mine)
    problems = _diff_output_problems(mine, scratch / "surgeon.diff") if diff.stdout.strip() else []
    if out.patch_rejects or out.truth_invalid:
        _patch_fails_verdict(out, base, files, scratch, prefix, mine, modules)
        return _done(out, started)
    out.differing = [path for path in sorted(modules) if not _same(truth / path, mine / path)]
    if out.differing or problems:
        out.status = "wrong"
        out.detail = "; ".join(problems + ([f"{len(out.differing)} file(s) differ: {', '.join(out.differing[:5])}"]
                                           if out.differing else []))
    else:
        out.status = "exact"
        if convert:
            out.convert = try_convert(name, wheel, sets, scratch, mine)
    return _done(out, started)


def try_convert(name: str, wheel: Path, sets: Path, scratch: Path, expected: Path) -> str:
    """`convert` the set at its base; the .hunk set's `diff` must give the same files as the series."""
    target = scratch / "converted.hunk"
    done = surgeon(["convert", name, "--against", str(wheel), "--out", str(target)], sets)
    if done.returncode != 0:
        return "not converted: " + (done.stdout + done.stderr).strip().splitlines()[-1][:200]
    alone = scratch / "converted-set"
    alone.mkdir()
    shutil.copyfile(target, alone / "converted.hunk")
    diff = surgeon(["diff", "converted", "--against", str(wheel)], alone)
    if diff.returncode != 0:
        return "converted, but refused: " + (diff.stdout + diff.stderr).strip()[-200:]
    (scratch / "converted.diff").write_text(diff.stdout)
    tree = scratch / "from-converted"
    shutil.copytree(scratch / "base", tree)
    if diff.stdout.strip() and run_patch(tree, scratch / "converted.diff", 1).returncode != 0:
        return "converted, but its diff does not apply"
    differing = [str(p.relative_to(expected)) for p in expected.rglob("*.py") if not _same(p, tree / p.relative_to(expected))]
    return f"converted: {len(differing)} file(s) differ" if differing else "converted: same text"


def _same(a: Path, b: Path) -> bool:
    return (a.read_bytes() if a.exists() else None) == (b.read_bytes() if b.exists() else None)


def _git_env(tree: Path) -> dict[str, str]:
    # A scratch tree under this checkout (--keep .cache/...) must not be read as a folder of the checkout:
    # git apply would skip every file silently. Git looks no further up than the tree itself.
    return dict(os.environ, GIT_CEILING_DIRECTORIES=str(tree.absolute().parent), GIT_CONFIG_NOSYSTEM="1")


def git_apply(tree: Path, patch: Path, strip: int, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "apply", *(["--check"] if check else []), f"-p{strip}", str(patch.absolute())],
                          cwd=tree, capture_output=True, text=True, env=_git_env(tree))


def git_series(base: Path, files: list[tuple[Path, int]], where: Path, prefix: str) -> Path | None:
    """The series applied as git would: `git am` for a format-patch mbox, `git apply` for a plain diff; None if git fails."""
    shutil.copytree(base, where)
    top = where / prefix if prefix else where
    run = lambda *args: subprocess.run(["git", *args], cwd=top, capture_output=True, text=True, env=_git_env(top))  # noqa: E731
    if run("init", "-q").returncode:
        return None
    run("-c", "user.email=c@s", "-c", "user.name=cs", "commit", "-q", "--allow-empty", "-m", "base")
    for patch, strip in files:
        text = patch.read_text(errors="replace")
        done = None
        if re.search(r"^From [0-9a-f]{40} ", text, re.M):
            done = run("-c", "user.email=c@s", "-c", "user.name=cs", "am", "-q", "--keep-cr", f"-p{strip}", str(patch.absolute()))
            if done.returncode:  # e.g. SPDX lines before the first `From` (dynamo v0.20.1): git am cannot read it
                run("am", "--abort")
                done = None
        if done is None:
            done = git_apply(top, patch, strip)
        if done.returncode:
            return None
    shutil.rmtree(top / ".git", ignore_errors=True)
    return where


def _done(out: Outcome, started: float) -> Outcome:
    out.seconds = round(time.perf_counter() - started, 1)
    return out


# -- command line -----------------------------------------------------------------------------------------

def load_manifest(path: Path) -> list[Entry]:
    data = json.loads(path.read_text())
    entries = []
    for item in data["series"]:
        entries.append(Entry(item["name"], item["base"], [path.parent / p for p in item["paths"]], item.get("dist", "vllm"),
                             item.get("strip", 1), item.get("source", ""), item.get("form"), item.get("root", "")))
    return entries


def _entries(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[Entry]:
    """The series to check: the manifest's (filtered by name, given a form, moved to --at releases), or the given patches."""
    if args.manifest:
        entries = load_manifest(args.manifest)
        if args.items:
            entries = [e for e in entries if e.name in args.items or any(re.search(i, e.name) for i in args.items)]
        if args.form:
            for e in entries:
                e.form = args.form
        if args.at:
            entries = [Entry(f"{e.name}@{v}", v, e.paths, e.dist, e.strip, e.source, e.form, e.root)
                       for v in args.at.split(",") for e in entries if v != e.base]
        return entries
    if args.base:
        paths = [Path(p) for p in args.items]
        return [Entry(paths[0].stem if len(paths) == 1 else paths[0].parent.name, args.base, paths, args.dist,
                      args.strip, form=args.form)]
    parser.error("give --manifest, or --base with patch files")


def _print_outcome(entry: Entry, outcome: Outcome, verbose: bool) -> None:
    extra = outcome.detail or ", ".join(f"{k} {v}" for k, v in outcome.reasons.items())
    print(f"{outcome.status:12} {entry.name:48} {entry.dist}=={entry.base:8} {outcome.commits:3} commits "
          f"{outcome.hunks:4} hunks {outcome.files:3} py files, {outcome.skipped:3} skipped, index {outcome.index:>5}  "
          f"{outcome.seconds:5.1f}s  {extra}",
          flush=True)
    if outcome.convert:
        print(f"{'':14}{outcome.convert}")
    for line in outcome.refusals if verbose else outcome.refusals[:3]:
        print(f"{'':14}{line[:400]}")
    if outcome.patch_rejects:
        print(f"{'':14}patch -F0 rejects hunks in: {', '.join(outcome.patch_rejects)}")
    if outcome.truth_invalid:
        print(f"{'':14}what patch -F0 makes is not valid Python: {', '.join(outcome.truth_invalid)}")
    for line in outcome.findings:
        print(f"{'':14}verify finding: {line[:400]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("items", nargs="*", help="entry names (with --manifest), or patch files/folders (with --base)")
    parser.add_argument("--manifest", type=Path, help="JSON list of series (see the module docstring)")
    parser.add_argument("--base", help="the release the given patches were made against")
    parser.add_argument("--dist", default="vllm")
    parser.add_argument("-p", dest="strip", type=int, default=1)
    parser.add_argument("--form", choices=("file", "folder"), help="how the set is given to vllm-surgeon")
    parser.add_argument("--at", help="check the manifest's series at this release instead of their base (comma-separated: "
                        "each in turn); patch -F0 then applies with offsets, or fails")
    parser.add_argument("--json", type=Path, help="write every outcome here")
    parser.add_argument("--keep", type=Path, help="keep each series' scratch trees under this folder")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every refusal")
    parser.add_argument("--convert", action="store_true", help="also `convert` each exact series and check the .hunk set")
    args = parser.parse_args()
    entries = _entries(args, parser)
    outcomes = []
    for entry in entries:
        if args.keep:
            scratch = args.keep / re.sub(r"[^A-Za-z0-9_.-]", "-", entry.name)
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir(parents=True)
            outcome = check(entry, scratch, args.convert)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                outcome = check(entry, Path(tmp), args.convert)
        outcomes.append(outcome)
        _print_outcome(entry, outcome, args.verbose)
    count = collections.Counter(o.status for o in outcomes)
    statuses = ("exact", "git-exact", "refused", "wrong", "patch-fails", "truth-invalid", "error")
    print(f"\n{len(outcomes)} series: " + ", ".join(f"{count[s]} {s}" for s in statuses if count[s]))
    if args.json:
        args.json.write_text(json.dumps([o.__dict__ for o in outcomes], indent=1, default=str))
    return 1 if count["wrong"] or count["error"] else 0


if __name__ == "__main__":
    sys.exit(main())
