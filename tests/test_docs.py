"""README.md and docs/*.md hold to the code (issue 15): their shell blocks run and show what really
prints; the modules, commands, options and variables they name exist; their links resolve; the
architecture's map names every module and its floors hold. The conventions are in tests/docs_pages.py
and docs/development.md "How these docs are tested".
"""

from __future__ import annotations

import argparse
import ast
import importlib
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import surgeon_env
from docs_pages import LANGUAGES, PAGES, REPO, SHELL, Block, blocks, indented_fences, links, page_name, shown_matches, spans

PACKAGE = REPO / "vllm_surgeon"
ALL_BLOCKS = [b for page in PAGES for b in blocks(page)]
SHELL_BLOCKS = [b for b in ALL_BLOCKS if b.lang in SHELL]
SHOWN_AS = "/path/to/vllm-surgeon"  # where a page shows the checkout (and the scratch copy of it)
CACHE_SHOWN_AS = "~/.cache/vllm-surgeon"  # where a page shows the wheel cache (the default one)


# -- the blocks' form --------------------------------------------------------------------------------

def test_every_fenced_block_starts_at_column_0_and_names_its_language():
    for page in PAGES:
        assert not indented_fences(page), f"{page_name(page)}: indented fences at lines {indented_fences(page)}"
    untagged = [b.id for b in ALL_BLOCKS if b.lang not in LANGUAGES]
    assert not untagged, f"blocks without one of the languages {sorted(LANGUAGES)}: {untagged}"


def test_every_marker_is_one_the_test_understands_and_sits_on_a_shell_block():
    for b in ALL_BLOCKS:
        if b.marker is None:
            continue
        assert b.lang in SHELL, f"{b.id}: a docs-test marker on a {b.lang} block"
        assert b.not_run or re.fullmatch(r"exit \d+(\|\d+)*(:.*)?", b.marker), f"{b.id}: unknown marker {b.marker!r}"
        for named in re.findall(r"tests/[\w./]+\.py", b.marker):
            assert (REPO / named).is_file(), f"{b.id}: the reason names {named}, which does not exist"


def test_the_readme_starts_with_the_two_commands():
    first = blocks(REPO / "README.md")[0]
    commands = [line.split("#")[0].strip() for line in first.body.splitlines()]
    assert commands == ["python3.11 tools/dev.py demo", "python3.11 tools/dev.py test"]


def test_console_blocks_are_commands_with_their_output():
    for b in SHELL_BLOCKS:
        if b.lang == "console":
            assert b.commands(), b.id


# -- the shell blocks run -----------------------------------------------------------------------------

@dataclass
class PageRun:
    """One page's blocks, run in order in a scratch folder that looks like a checkout."""

    page: Path
    root: Path
    ran: int = 0  # how many of the page's shell blocks have run (or been passed over as not run)
    broken: str | None = None  # the block that failed, if one did

    @property
    def state(self) -> Path:
        return self.root.parent / f"{self.root.name}.exports"

    @property
    def cwd_file(self) -> Path:
        return self.root.parent / f"{self.root.name}.cwd"


def _scratch_checkout(root: Path) -> None:
    """The repository's tracked top-level entries linked (hunks/ copied, so what commands write beside
    a set stays here), .cache linked (the tiny model, the wheels) and .venv the running venv."""
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    for name in sorted({line.split("/")[0] for line in tracked.splitlines()} | {".cache"}):
        if name == "hunks":
            shutil.copytree(REPO / name, root / name)
        elif (REPO / name).exists():
            (root / name).symlink_to(REPO / name)
    (root / ".venv").symlink_to(Path(sys.prefix))


def _env(page: Path) -> dict[str, str]:
    """The reader's environment: no VLLM_SURGEON_* setting (but the tests' wheel cache); the README
    starts without the venv on PATH (it says to activate it), the docs/ pages with it."""
    venv_bin = str(Path(sys.prefix) / "bin")
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != venv_bin]
    if page.name != "README.md":
        path.insert(0, venv_bin)
    env = surgeon_env(PATH=os.pathsep.join(path), PYTHONUNBUFFERED="1")
    env.pop("VIRTUAL_ENV", None)
    return env


def _bash(run: PageRun, script: str, strict: bool) -> subprocess.CompletedProcess:
    """`script` in bash, in the folder and with the exports the page's earlier blocks left."""
    state, cwd = shlex.quote(str(run.state)), shlex.quote(str(run.cwd_file))
    wrapper = (f"[ -f {state} ] && . {state}\ncd \"$(cat {cwd})\"\n"
               f"trap 'export -p > {state}; pwd > {cwd}' EXIT\n" + ("set -e -o pipefail\n" if strict else "") + script)
    return subprocess.run(["bash", "-c", wrapper], env=_env(run.page), cwd=run.root, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=900)


def _as_shown(output: str, run: PageRun) -> list[str]:
    """Output with this machine's paths written as a page shows them."""
    places = {os.environ["VLLM_SURGEON_CACHE_DIR"]: CACHE_SHOWN_AS, str(run.root): SHOWN_AS,
              str(run.root.resolve()): SHOWN_AS, str(REPO): SHOWN_AS, sys.prefix: f"{SHOWN_AS}/.venv"}
    for real in sorted(places, key=len, reverse=True):
        output = output.replace(real, places[real])
    return output.splitlines()


def _repo_entries() -> set[Path]:
    return set(REPO.iterdir()) | set((REPO / "hunks").iterdir())


def _run_block(run: PageRun, block: Block) -> None:
    """Run one block; fail naming it when its exit status or its output is not what the page shows."""
    before = _repo_entries()
    if block.lang == "sh":
        out = _bash(run, block.body, strict=True)
        assert out.returncode in block.exits, f"{block.id}: exit {out.returncode}, expected {block.exits}:\n{out.stdout}"
    else:
        commands = block.commands()
        for n, command in enumerate(commands, 1):
            out = _bash(run, command.text, strict=False)
            expected = block.exits if n == len(commands) else {0}
            assert out.returncode in expected, f"{block.id} `{command.text}`: exit {out.returncode}, expected {expected}:\n{out.stdout}"
            actual = _as_shown(out.stdout, run)
            assert shown_matches(command.shown, actual), (
                f"{block.id} `{command.text}` printed (paths as shown):\n" + "\n".join(actual)
                + "\n\nthe page shows:\n" + "\n".join(command.shown))
    assert _repo_entries() == before, f"{block.id} wrote into the repository: {sorted(map(str, _repo_entries() ^ before))}"


@pytest.fixture(scope="session")
def page_runs(tmp_path_factory):
    runs: dict[Path, PageRun] = {}

    def get(page: Path) -> PageRun:
        if page not in runs:
            root = tmp_path_factory.mktemp(f"docs-{page.stem}")
            _scratch_checkout(root)
            runs[page] = PageRun(page, root)
            runs[page].cwd_file.write_text(str(root))
        return runs[page]

    return get


@pytest.mark.needs_vllm  # the blocks run the CLI against the installed vLLM, import it, and test sets on it
@pytest.mark.parametrize("block", SHELL_BLOCKS, ids=[b.id for b in SHELL_BLOCKS])
def test_shell_block_runs_and_shows_what_prints(block: Block, page_runs):
    if block.not_run:
        pytest.skip(f"{block.id} is not run here: {block.not_run}")
    run = page_runs(block.page)
    page_blocks = [b for b in SHELL_BLOCKS if b.page == block.page]
    for earlier in page_blocks[run.ran:page_blocks.index(block) + 1]:
        if run.broken:
            pytest.fail(f"an earlier block of the page failed ({run.broken}): the page's state is unknown")
        run.ran += 1
        if earlier.not_run:
            continue
        try:
            _run_block(run, earlier)
        except AssertionError:
            run.broken = earlier.id
            raise


# -- names a page may use -----------------------------------------------------------------------------

def _module_files() -> dict[str, Path]:
    """Every module and package of vllm_surgeon, by dotted name."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _shipped_paths() -> set[str]:
    """Paths the wheel holds that the tree does not (pyproject's force-include destinations)."""
    # (tomllib is 3.11+; these tests run on every Python the package claims)
    section = (REPO / "pyproject.toml").read_text().split("[tool.hatch.build.targets.wheel.force-include]", 1)[1]
    return set(re.findall(r'^"[^"]+" = "([^"]+)"$', section.split("\n[", 1)[0], flags=re.M))


def _strings_in_package(prefix: str) -> set[str]:
    """String constants of the package's code that start with `prefix` (entry-point groups, names)."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith(prefix):
                found.add(node.value)
    return found


def _dotted_exists(name: str) -> bool:
    """`vllm_surgeon.x.y` (optionally `:attr`): a module, an attribute of one, or a name the package uses."""
    if name.replace(":", ".").replace(".", "/") in _shipped_paths() or (REPO / name).is_file():
        return True  # vllm_surgeon._bundled_hunks; the vllm_surgeon.pth file
    if name in _strings_in_package("vllm_surgeon."):
        return True  # the vllm_surgeon.hunks entry-point group
    parts = name.replace(":", ".").split(".")
    modules = _module_files()
    cut = max(i for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in modules)
    obj = importlib.import_module(".".join(parts[:cut]))
    for attr in parts[cut:]:
        if not hasattr(obj, attr):
            return False
        obj = getattr(obj, attr)
    return True


def test_every_module_path_a_page_names_exists():
    shipped = _shipped_paths()
    for page in PAGES:
        text = page.read_text()
        for name in set(re.findall(r"\bvllm_surgeon(?:\.[A-Za-z_]\w*)+(?::[A-Za-z_][\w.]*)?", text)):
            assert _dotted_exists(name.rstrip(".")), f"{page_name(page)} names {name}, which does not exist"
        for path in set(re.findall(r"\bvllm_surgeon/[\w./-]*", text)):
            path = path.rstrip(".")
            assert (REPO / path).exists() or path in shipped, f"{page_name(page)} names {path}, which does not exist"


def test_names_imported_from_the_package_are_its_public_api():
    import vllm_surgeon

    for page in PAGES:
        for names in re.findall(r"from vllm_surgeon import ([\w, ]+)", page.read_text()):
            for name in names.split(","):
                assert name.strip() in vllm_surgeon.__all__, f"{page_name(page)}: `from vllm_surgeon import {name.strip()}`"


def _subcommands() -> dict[str, set[str]]:
    """Each `vllm-surgeon` subcommand and its options."""
    from vllm_surgeon.commands.cli import _parser

    parser = _parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {name: set(p._option_string_actions) for name, p in sub.choices.items()}


def _command_lines() -> list[tuple[str, str]]:
    """(page:line, command) for every command line of the pages' sh, console and yaml blocks."""
    found = []
    for b in ALL_BLOCKS:
        if b.lang == "sh":
            lines = b.body.replace("\\\n", " ").splitlines()
        elif b.lang == "console":
            lines = [c.text.replace("\\\n", " ") for c in b.commands()]
        elif b.lang == "yaml":
            lines = [line.split(":", 1)[1] for line in b.body.splitlines() if line.strip().startswith("entry:")]
        else:
            continue
        found += [(b.id, line) for line in lines]
    return found


def _surgeon_argv(text: str) -> list[str] | None:
    """The arguments after `vllm-surgeon` in a command (up to a redirection, pipe or comment), or None
    when `vllm-surgeon` is not followed by a subcommand or an option there."""
    match = re.search(r"(?:^|\s)vllm-surgeon\s+([a-z-].*)", text)
    if not match:
        return None
    words = shlex.split(re.split(r"\s[#>|;&<]|\s2>", " " + match[1])[0], posix=True)
    return words or None


def test_every_vllm_surgeon_command_a_page_shows_parses():
    from vllm_surgeon.commands.cli import _parser

    contexts = _command_lines() + [(page_name(p), s) for p in PAGES for s in spans(p)]
    for where, text in contexts:
        argv = _surgeon_argv(text)
        if argv is None or (len(argv) == 1 and argv[0] in _subcommands()):
            continue  # no command here, or one named in prose: `vllm-surgeon diff`
        try:
            _parser().parse_args(argv)
        except SystemExit as exc:
            assert exc.code == 0, f"{where}: `vllm-surgeon {' '.join(argv)}` is not a valid command"


def _other_options() -> set[str]:
    """Options that exist outside the CLI: the pytest plugin's, the repository's scripts', and those of
    the other programs the pages run (vllm serve, pip, pytest, git ...)."""
    sources = [PACKAGE / "pytest_plugin.py", *REPO.glob("tools/*.py"), *REPO.glob("examples/**/*.py")]
    found = {o for path in sources for o in re.findall(r"[\"'](--[a-z][\w-]*)[\"']", path.read_text())}
    for _, line in _command_lines():
        if _surgeon_argv(line) is None:
            found |= set(re.findall(r"(?<![\w-])--[a-z][\w-]*", line))
    return found


def test_every_option_a_page_names_exists():
    commands = _subcommands()
    every = set().union(*commands.values()) | {"--version"}
    others = _other_options()
    for page in PAGES:
        for span in spans(page):
            words = span.split() or [""]  # ` ` (a context line's mark) is a span too
            options = {w.split("=")[0] for w in words if re.match(r"--[a-z]", w)}
            if words[0] in commands:  # `verify --json`, `rebase NAME --onto SPEC`
                unknown = options - commands[words[0]]
            elif re.match(r"--[a-z]", words[0]):  # `--against SPEC`, `--surgeon-strict`, `--gpu-memory-utilization`
                unknown = options - every - others
            else:
                continue
            assert not unknown, f"{page_name(page)}: `{span}` names options that do not exist: {sorted(unknown)}"


def _settings_names() -> set[str]:
    source = (PACKAGE / "core" / "settings.py").read_text()
    return {n.value for n in ast.walk(ast.parse(source))
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and re.fullmatch(r"_?VLLM_SURGEON_[A-Z_]+", n.value)}


_VARIABLE = re.compile(r"(?<![A-Za-z0-9])_?VLLM_SURGEON_[A-Z0-9_]*[A-Z0-9]")


def test_every_variable_a_page_names_exists_and_every_setting_is_in_the_table():
    known = _settings_names()
    # A shipped example may define one of its own (a workflow's env, a Dockerfile's ARG): it exists there.
    defined = {v for path in REPO.glob("examples/**/*") if path.is_file() for v in _VARIABLE.findall(path.read_text())}
    for page in PAGES:
        named = set(_VARIABLE.findall(page.read_text()))
        assert named <= known | defined, f"{page_name(page)} names variables that do not exist: {sorted(named - known - defined)}"
    table = set(re.findall(r"^\| `(_?VLLM_SURGEON_\w+)` \|", (REPO / "docs" / "running.md").read_text(), flags=re.M))
    assert table == known, f"docs/running.md's table lacks {sorted(known - table)}, has {sorted(table - known)}"


def test_the_refusals_table_lists_every_reason():
    from vllm_surgeon.core.refusal import Reason

    rows = re.findall(r"^\| (`[a-z-]+`(?: / `[a-z-]+`)*) \|", (REPO / "docs" / "troubleshooting.md").read_text(), flags=re.M)
    listed = {name for row in rows for name in re.findall(r"`([a-z-]+)`", row)}
    assert listed == {r.value for r in Reason}


# -- links ----------------------------------------------------------------------------------------------

def test_every_relative_link_and_anchor_resolves():
    from docs_pages import anchors

    for page in PAGES:
        for target in links(page):
            if re.match(r"[a-z]+:", target):
                continue  # https://..., mailto:
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            assert resolved.exists(), f"{page_name(page)}: link to {target}: no such file"
            if anchor:
                assert anchor in anchors(resolved), f"{page_name(page)}: link to {target}: no such heading"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(REPO / t.partition("#")[0]).resolve() for t in links(REPO / "README.md")}
    assert set(PAGES[1:]) <= linked, sorted(page_name(p) for p in set(PAGES[1:]) - linked)


# -- the architecture's map -------------------------------------------------------------------------------

def _the_map() -> dict[Path, int]:
    """Each module docs/architecture.md's map names, and the floor it puts it on."""
    text = (REPO / "docs" / "architecture.md").read_text().split("\n## The map\n", 1)[1]
    floors: dict[Path, int] = {}
    floor = None
    for line in text.splitlines():
        heading = re.match(r"### Floor (\d+):", line)
        if heading:
            floor = int(heading[1])
        entry = re.match(r"- `(vllm_surgeon/[^`]+)` — ", line)
        if entry:
            assert floor is not None and REPO / entry[1] not in floors, line
            floors[REPO / entry[1]] = floor
    return floors


def test_the_map_names_every_module_of_the_package_and_nothing_else():
    files = {p for p in PACKAGE.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    subpackage_inits = {p for p in files if p.name == "__init__.py" and p.parent != PACKAGE}
    named = set(_the_map())
    missing, gone = files - subpackage_inits - named, named - files
    assert not missing and not gone, f"not in the map: {sorted(map(str, missing))}; in the map, not in the tree: {sorted(map(str, gone))}"
    assert all(not p.read_text().strip() for p in subpackage_inits), "a subpackage's __init__.py is not empty"


def _imports(path: Path, modules: dict[str, Path]) -> set[Path]:
    """The package's files that `path` imports, at any depth of its code (lazy imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module for a in node.names]
        found |= {modules[n] for n in names if n in modules}
    return found


def test_no_module_imports_from_a_floor_above_its_own():
    floors = _the_map()
    modules = _module_files()
    upward = [f"{p.relative_to(REPO)} (floor {floors[p]}) imports {t.relative_to(REPO)} (floor {floors[t]})"
              for p in floors if p.suffix == ".py" and p.exists() for t in _imports(p, modules) if t in floors and floors[t] > floors[p]]
    assert not upward, "\n".join(upward)
