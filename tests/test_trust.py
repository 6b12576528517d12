"""Sets are code (issue 13): a set file, or a folder above it, that someone other than the user or root can
change is refused everywhere a set is read; the trusted controls (an image's root-owned files, a
Kubernetes ConfigMap volume: a read-only mount that reads 0777, reached through symlinks) still run.

As root, with a second user (`nobody`). Each case is started the way vLLM starts (a fresh interpreter,
`import vllm`, then the target module): a set's `+` line (or a `.py` set's own code) appends to a marker
file, so "it ran" is a file on disk, not a log line. `doctor` must exit non-zero naming the file and
the fix; `list`, `show` and `verify` must say vLLM refuses the set (and never run a `.py` set).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import run_python, surgeon_env

NOBODY = 65534  # `nobody`, and its group `nogroup`
as_root = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to act as another user")
pytestmark = as_root

CALC = "def answer():\n    value = 41\n    return value\n"


def hunk_set(marker: Path, tag: str = "hunk") -> str:
    return f"description: marks that it ran\n@@ fakepkg.calc\n+open({str(marker)!r}, 'a').write({tag!r} + '\\n')\n"


def py_set(marker: Path, tag: str = "py") -> str:
    return f'''\
open({str(marker)!r}, "a").write({tag!r} + "\\n")  # runs as the set is read: whoever can write this runs code
import libcst as cst
from vllm_surgeon import transform


class FortyTwo(cst.CSTTransformer):
    def leave_Integer(self, original, updated):
        return updated.with_changes(value="42") if updated.value == "41" else updated


@transform("fakepkg.calc:answer", anchor="value = 41")
def forty_two(node):
    return node.visit(FortyTwo())
'''


def patch_file(marker: Path, tag: str = "series") -> str:
    return (
        "--- a/fakepkg/calc.py\n+++ b/fakepkg/calc.py\n@@ -1,3 +1,4 @@\n"
        f"+open({str(marker)!r}, 'a').write({tag!r} + '\\n')\n def answer():\n     value = 41\n     return value\n"
    )


def write(path: Path, text: str, mode: int = 0o644, owner: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    if owner is not None:
        os.chown(path, owner, owner)
    return path


@dataclass
class Layout:
    """Where a case's sets are and what vLLM must say (or do) about them."""

    path: Path  # the VLLM_SURGEON_PATH entry
    faults: list[str] = field(default_factory=list)  # words the refusal must hold (the file or folder, its fix)
    env: dict[str, str] = field(default_factory=dict)
    pythonpath: list[Path] = field(default_factory=list)  # an entry-point package's site folder

    @property
    def runs(self) -> bool:
        return not self.faults


@pytest.fixture
def world(fakepkg, tmp_path: Path):
    """The fake package (its stub `vllm` starts vllm-surgeon), a marker file, and a root-owned 0755 folder
    to lay the sets out in."""
    fakepkg.module("fakepkg.calc", CALC)
    src = fakepkg.src
    base = tmp_path / "case"
    base.mkdir(mode=0o755)

    class World:
        root = base
        marker = tmp_path / "ran"

        def env(self, layout: Layout, **extra: str) -> dict[str, str]:
            path = os.pathsep.join(str(p) for p in [src, *layout.pythonpath])
            entry = {"VLLM_SURGEON_PATH": str(layout.path)} if layout.path else {}
            return surgeon_env(VLLM_SURGEON_HUNKS="x", PYTHONPATH=path, **entry, **layout.env, **extra)

        def start(self, layout: Layout, **extra: str) -> subprocess.CompletedProcess:
            """A vLLM process's start: `import vllm` (vllm-surgeon reads the sets), then the target module."""
            return run_python("import vllm\nimport fakepkg.calc\nprint('started')", self.env(layout, **extra))

        def surgeon(self, layout: Layout, *args: str) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-m", "vllm_surgeon", *args], env=self.env(layout),
                                  capture_output=True, text=True, timeout=300)

        def ran(self) -> list[str]:
            return self.marker.read_text().split() if self.marker.exists() else []

    return World()


# -- the cases: each lays sets out under `root` and says what vLLM must refuse them for ----------------

def case_foreign_owner(root: Path, marker: Path) -> Layout:
    """The issue's table, row 1: another user's file, 0644, in a root-owned 0755 folder."""
    f = write(root / "sets" / "x.hunk", hunk_set(marker), owner=NOBODY)
    return Layout(root / "sets", [f"{f} is owned by nobody (uid 65534)", f"chown root {f}"])


def case_world_writable_file(root: Path, marker: Path) -> Layout:
    """Row 2: root's file, 0666."""
    f = write(root / "sets" / "x.hunk", hunk_set(marker), mode=0o666)
    return Layout(root / "sets", [f"{f} is writable by group root and by others", f"chmod go-w {f}"])


def case_open_folder(root: Path, marker: Path) -> Layout:
    """Row 3: root's 0644 file in a 0777 folder (anyone may replace it)."""
    write(root / "sets" / "x.hunk", hunk_set(marker))
    (root / "sets").chmod(0o777)
    return Layout(root / "sets", [f"{root / 'sets'} is writable by group root and by others", f"chmod go-w {root / 'sets'}"])


def case_open_parent(root: Path, marker: Path) -> Layout:
    """Row 4: a 0755 folder whose parent is 0777."""
    write(root / "team" / "sets" / "x.hunk", hunk_set(marker))
    (root / "team").chmod(0o777)
    return Layout(root / "team" / "sets", [f"{root / 'team'} is writable", f"chmod go-w {root / 'team'}"])


def case_sticky_shared_folder(root: Path, marker: Path) -> Layout:
    """Row 5: root's x.hunk and another user's x.py side by side in a 1777 folder (like /tmp)."""
    shared = root / "shared"
    write(shared / "x.hunk", hunk_set(marker))
    write(shared / "x.py", py_set(marker, "foreign-py"), owner=NOBODY)
    shared.chmod(0o1777)
    return Layout(shared, [f"{shared} is a folder anyone can add files to"])


def case_alone_in_a_sticky_folder(root: Path, marker: Path) -> Layout:
    """Root's own file, alone in a 1777 folder: anyone could add a set beside it, or one it names later."""
    write(root / "shared" / "x.hunk", hunk_set(marker))
    (root / "shared").chmod(0o1777)
    return Layout(root / "shared", [f"{root / 'shared'} is a folder anyone can add files to"])


def case_control(root: Path, marker: Path) -> Layout:
    """Row 6: root's 0644 file, root's 0755 folders all the way up: it runs."""
    write(root / "sets" / "x.hunk", hunk_set(marker))
    return Layout(root / "sets")


def case_image_layout(root: Path, marker: Path) -> Layout:
    """Sets baked into an image: root's files in root's folders several levels deep (/etc/vllm-surgeon/hunks)."""
    write(root / "etc" / "vllm-surgeon" / "hunks" / "x.hunk", hunk_set(marker))
    return Layout(root / "etc" / "vllm-surgeon" / "hunks")


def case_nested_folder_open(root: Path, marker: Path) -> Layout:
    """Several folders deep, one in the middle writable by others."""
    write(root / "a" / "b" / "c" / "d" / "x.hunk", hunk_set(marker))
    (root / "a" / "b").chmod(0o777)
    return Layout(root / "a" / "b" / "c" / "d", [f"{root / 'a' / 'b'} is writable", f"chmod go-w {root / 'a' / 'b'}"])


def case_nested_folder_foreign(root: Path, marker: Path) -> Layout:
    """Several folders deep, one in the middle another user's (0755: its owner can still swap what is under it)."""
    write(root / "a" / "b" / "c" / "x.hunk", hunk_set(marker))
    os.chown(root / "a" / "b", NOBODY, NOBODY)
    return Layout(root / "a" / "b" / "c", [f"{root / 'a' / 'b'} is owned by nobody (uid 65534)", f"chown root {root / 'a' / 'b'}"])


def case_group_writable_file(root: Path, marker: Path) -> Layout:
    """0664: writable by the file's group; nothing trusts a group by default."""
    f = write(root / "sets" / "x.hunk", hunk_set(marker), mode=0o664)
    return Layout(root / "sets", [f"{f} is writable by group root", f"chmod go-w {f}"])


def case_trusted_group(root: Path, marker: Path) -> Layout:
    """VLLM_SURGEON_TRUSTED_GROUP names the group that may write the shared set folder: it runs."""
    sets = root / "sets"
    write(sets / "x.hunk", hunk_set(marker), mode=0o664)
    os.chown(sets, 0, NOBODY)
    os.chown(sets / "x.hunk", 0, NOBODY)
    sets.chmod(0o2775)
    return Layout(sets, env={"VLLM_SURGEON_TRUSTED_GROUP": "nogroup"})


def case_trusted_group_other_group(root: Path, marker: Path) -> Layout:
    """A trusted group does not make another group's write bit safe."""
    f = write(root / "sets" / "x.hunk", hunk_set(marker), mode=0o664)
    return Layout(root / "sets", [f"{f} is writable by group root", f"chgrp nogroup {f}"],
                  env={"VLLM_SURGEON_TRUSTED_GROUP": "nogroup"})


def _series(folder: Path, marker: Path) -> None:
    write(folder / "series", "# a quilt series\n0001-mark.patch\n")
    write(folder / "fields", "description: a series that marks\n")
    write(folder / "0001-mark.patch", patch_file(marker))


def case_series_control(root: Path, marker: Path) -> Layout:
    _series(root / "sets" / "x", marker)
    return Layout(root / "sets")


def case_series_file_foreign(root: Path, marker: Path) -> Layout:
    _series(root / "sets" / "x", marker)
    os.chown(root / "sets" / "x" / "series", NOBODY, NOBODY)
    f = root / "sets" / "x" / "series"
    return Layout(root / "sets", [f"{f} is owned by nobody (uid 65534)", f"chown root {f}"])


def case_series_fields_writable(root: Path, marker: Path) -> Layout:
    _series(root / "sets" / "x", marker)
    f = root / "sets" / "x" / "fields"
    f.chmod(0o666)
    return Layout(root / "sets", [f"{f} is writable", f"chmod go-w {f}"])


def case_series_patch_foreign(root: Path, marker: Path) -> Layout:
    _series(root / "sets" / "x", marker)
    f = root / "sets" / "x" / "0001-mark.patch"
    os.chown(f, NOBODY, NOBODY)
    return Layout(root / "sets", [f"{f} is owned by nobody (uid 65534)", f"chown root {f}"])


def case_numbered_patch_writable(root: Path, marker: Path) -> Layout:
    """A folder of numbered patches (no series file), one of them writable by others."""
    folder = root / "sets" / "x"
    write(folder / "0001-mark.patch", patch_file(marker), mode=0o666)
    return Layout(root / "sets", [f"{folder / '0001-mark.patch'} is writable", f"chmod go-w {folder / '0001-mark.patch'}"])


def case_series_folder_open(root: Path, marker: Path) -> Layout:
    """The series folder itself writable by others: anyone could add or swap a patch."""
    _series(root / "sets" / "x", marker)
    (root / "sets" / "x").chmod(0o777)
    return Layout(root / "sets", [f"{root / 'sets' / 'x'} is writable", f"chmod go-w {root / 'sets' / 'x'}"])


def case_py_control(root: Path, marker: Path) -> Layout:
    write(root / "sets" / "x.py", py_set(marker))
    return Layout(root / "sets")


def case_py_foreign(root: Path, marker: Path) -> Layout:
    """A `.py` set runs as it is read: another user's must not run, not even under `list` or `verify`."""
    f = write(root / "sets" / "x.py", py_set(marker), owner=NOBODY)
    return Layout(root / "sets", [f"{f} is owned by nobody (uid 65534)", f"chown root {f}"])


def case_py_writable(root: Path, marker: Path) -> Layout:
    f = write(root / "sets" / "x.py", py_set(marker), mode=0o646)
    return Layout(root / "sets", [f"{f} is writable by others", f"chmod go-w {f}"])


def case_symlink_to_trusted(root: Path, marker: Path) -> Layout:
    """x.hunk is a symlink to root's file in another root-owned folder: followed, checked, runs."""
    target = write(root / "store" / "x.hunk", hunk_set(marker))
    (root / "sets").mkdir()
    (root / "sets" / "x.hunk").symlink_to(target)
    return Layout(root / "sets")


def case_symlink_to_untrusted(root: Path, marker: Path) -> Layout:
    """x.hunk is a symlink into a folder anyone can write: the place it leads to is checked, and refused."""
    write(root / "drop" / "x.hunk", hunk_set(marker))
    (root / "drop").chmod(0o777)
    (root / "sets").mkdir()
    (root / "sets" / "x.hunk").symlink_to("../drop/x.hunk")
    return Layout(root / "sets", [f"{root / 'drop'} is writable", f"chmod go-w {root / 'drop'}"])


def case_symlink_to_foreign_file(root: Path, marker: Path) -> Layout:
    """A symlink in a safe folder to another user's file: who owns what is read counts, not the link."""
    target = write(root / "home" / "x.hunk", hunk_set(marker), owner=NOBODY)
    (root / "sets").mkdir()
    (root / "sets" / "x.hunk").symlink_to(target)
    return Layout(root / "sets", [f"{target} is owned by nobody (uid 65534)"])


def case_symlinked_dir_trusted(root: Path, marker: Path) -> Layout:
    """The VLLM_SURGEON_PATH entry is a symlink to a root-owned folder (`current -> releases/v2`): runs."""
    write(root / "releases" / "v2" / "x.hunk", hunk_set(marker))
    (root / "current").symlink_to("releases/v2", target_is_directory=True)
    return Layout(root / "current")


def case_symlinked_dir_untrusted(root: Path, marker: Path) -> Layout:
    """A symlinked folder in the path that leads under a folder anyone can write."""
    write(root / "open" / "v2" / "x.hunk", hunk_set(marker))
    (root / "open").chmod(0o777)
    (root / "conf").mkdir()
    (root / "conf" / "sets").symlink_to(root / "open" / "v2", target_is_directory=True)
    return Layout(root / "conf" / "sets", [f"{root / 'open'} is writable", f"chmod go-w {root / 'open'}"])


def _entry_point_package(root: Path, marker: Path) -> Path:
    """A site folder holding an installed package that registers its folder under `vllm_surgeon.hunks`."""
    site = root / "site"
    write(site / "teamsets" / "__init__.py", "")
    write(site / "teamsets" / "x.hunk", hunk_set(marker))
    dist = site / "teamsets-1.0.dist-info"
    write(dist / "METADATA", "Metadata-Version: 2.1\nName: teamsets\nVersion: 1.0\n")
    write(dist / "entry_points.txt", "[vllm_surgeon.hunks]\nteam = teamsets\n")
    return site


def case_entry_point_control(root: Path, marker: Path) -> Layout:
    return Layout(Path(""), pythonpath=[_entry_point_package(root, marker)])


def case_entry_point_dir_open(root: Path, marker: Path) -> Layout:
    """A package's registered set folder writable by others (a pip install into a shared, writable place)."""
    site = _entry_point_package(root, marker)
    (site / "teamsets").chmod(0o777)
    return Layout(Path(""), [f"{site / 'teamsets'} is writable", f"chmod go-w {site / 'teamsets'}"], pythonpath=[site])


CASES = {name[len("case_"):]: f for name, f in sorted(globals().items()) if name.startswith("case_")}


@pytest.mark.parametrize("case", sorted(CASES))
def test_vllm_refuses_a_set_someone_else_can_change_and_runs_the_controls(world, case):
    layout = CASES[case](world.root, world.marker)
    started = world.start(layout)
    if layout.runs:
        assert started.returncode == 0 and "started" in started.stdout, started.stderr
        assert world.ran(), f"the control did not run:\n{started.stderr}"
        return
    assert started.returncode != 0 and "started" not in started.stdout
    assert world.ran() == [], "code someone else can change ran"
    assert "hunk set 'x'" in started.stderr and "VLLM_SURGEON_ON_FAILURE=warn" in started.stderr
    for words in layout.faults:
        assert words in started.stderr, started.stderr


@pytest.mark.parametrize("case", sorted(c for c in CASES if c not in ("control",)))
def test_doctor_fails_the_search_path_check_in_the_same_words(world, case):
    layout = CASES[case](world.root, world.marker)
    doctor = world.surgeon(layout, "doctor", "--json")
    report = json.loads(doctor.stdout)
    search = [c for c in report["checks"] if c["check"] in ("search-path", "sets")]
    if layout.runs:
        assert all(c["status"] == "ok" for c in search), search
    else:
        assert doctor.returncode != 0 and not report["ok"]
        failed = [f"{c['detail']} — fix: {c['fix']}" for c in search if c["status"] == "fail" and c["check"] == "search-path"]
        assert failed, search
        for words in layout.faults:
            assert any(words in line for line in failed), (words, failed)
    assert "foreign-py" not in world.ran()  # doctor reads every set: never another user's .py


SAY = """
import io, sys
from vllm_surgeon.commands.cli import main
for args in (["list"], ["show", "x"], ["verify", "x"], ["verify", "x", "--json"]):
    out = io.StringIO()
    sys.stderr = out
    code = main(args, out=out)
    print(f"=== {args} exit {code}\\n{out.getvalue()}")
"""


@pytest.mark.parametrize("case", ["foreign_owner", "open_parent", "series_patch_foreign", "symlink_to_untrusted",
                                  "entry_point_dir_open", "py_foreign", "py_control", "control"])
def test_list_show_and_verify_say_vllm_refuses_it_and_never_run_a_py_set(world, case):
    layout = CASES[case](world.root, world.marker)
    said = run_python(SAY, world.env(layout)).stdout
    sections = said.split("=== ")[1:]
    assert len(sections) == 4, said
    *text, as_json = sections
    for section in text:
        if layout.runs:
            assert "vLLM refuses" not in section and "REFUSED" not in section, section
        else:
            assert "vLLM refuses" in section or "REFUSED" in section or "refused: a set is code" in section, section
            assert layout.faults[0] in section, section
    if case.startswith("py"):  # reading a .py set runs it: vLLM would refuse it, so the CLI does not run it either
        assert world.ran() == ([] if not layout.runs else ["py"] * 4)
        assert layout.runs or (" exit 2" in as_json.splitlines()[0] and layout.faults[0] in as_json)
        return
    report = json.loads(as_json.split("\n", 1)[1])
    (entry,) = report["sets"]
    assert entry["status"] == "applies"  # a .hunk is only text: read, checked, reported
    problems = [f"{p['path']} {p['problem']} — fix: {p['fix']}" for p in entry["untrusted"]]
    assert all(any(words in p for p in problems) for words in layout.faults), problems
    assert bool(problems) != layout.runs


def test_warn_runs_vllm_without_the_refused_set(world):
    layout = case_foreign_owner(world.root, world.marker)
    started = world.start(layout, VLLM_SURGEON_ON_FAILURE="warn")
    assert started.returncode == 0 and "started" in started.stdout, started.stderr
    assert world.ran() == []
    assert "running without these sets ('x')" in started.stderr and "is owned by nobody (uid 65534)" in started.stderr


def test_a_trusted_group_that_does_not_exist_stops_the_start(world):
    layout = case_control(world.root, world.marker)
    started = world.start(layout, VLLM_SURGEON_TRUSTED_GROUP="no-such-group-here")
    assert started.returncode != 0 and world.ran() == []
    assert "VLLM_SURGEON_TRUSTED_GROUP='no-such-group-here' is not understood" in started.stderr


# -- Kubernetes: a ConfigMap volume is a read-only mount whose folder reads 0777 -------------------

@contextlib.contextmanager
def tmpfs(path: Path):
    """A tmpfs mounted at `path`; made read-only by `remount_ro`; unmounted at the end."""
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0777", "tmpfs", str(path)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}): the ConfigMap case needs a real read-only mount")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount_ro(path: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)


def configmap(volume: Path, files: dict[str, str]) -> None:
    """Lay `files` out as kubelet's atomic writer does: a timestamped folder, `..data` pointing at it,
    and each file a symlink through `..data` (swapped atomically on update)."""
    stamp = volume / "..2026_12_06_10_17_42.1234567890"
    stamp.mkdir()
    for name, text in files.items():
        write(stamp / name, text)
    (volume / "..data").symlink_to(stamp.name)
    for name in files:
        (volume / name).symlink_to(f"..data/{name}")
    volume.chmod(0o777)


def test_a_configmap_volume_runs_its_sets_because_nobody_can_write_it(world):
    with tmpfs(world.root / "config") as volume:
        configmap(volume, {"x.hunk": hunk_set(world.marker, "configmap")})
        layout = Layout(volume)
        writable = world.start(layout)  # the same layout while still writable: 0777, anyone may swap it
        assert writable.returncode != 0 and f"{volume} is writable by group root and by others" in writable.stderr
        remount_ro(volume)
        started = world.start(layout)
        assert started.returncode == 0 and world.ran() == ["configmap"], started.stderr
        doctor = json.loads(world.surgeon(layout, "doctor", "--json").stdout)
        assert all(c["status"] == "ok" for c in doctor["checks"] if c["check"] in ("search-path", "sets")), doctor


def test_a_read_only_mount_does_not_make_another_users_file_safe(world):
    """Read-only here may be writable elsewhere (a read-only bind mount of someone's folder): the owner counts."""
    with tmpfs(world.root / "config") as volume:
        configmap(volume, {"x.hunk": hunk_set(world.marker)})
        os.chown(volume / "..2026_12_06_10_17_42.1234567890" / "x.hunk", NOBODY, NOBODY)
        remount_ro(volume)
        started = world.start(Layout(volume))
        assert started.returncode != 0 and world.ran() == [] and "is owned by nobody (uid 65534)" in started.stderr


# -- in this process: the same rules where the search path leads, and no check-then-open race ---------

def test_bundled_sets_follow_the_same_rules(tmp_path, monkeypatch):
    from vllm_surgeon.sets import search
    from vllm_surgeon.sets.reader import UntrustedSetError

    bundled = tmp_path / "bundled"
    write(bundled / "only_bundled.hunk", hunk_set(tmp_path / "ran"))
    monkeypatch.setattr(search, "bundled_dir", lambda: bundled)
    monkeypatch.delenv("VLLM_SURGEON_PATH", raising=False)
    assert search.load("only_bundled").name == "only_bundled"
    bundled.chmod(0o777)
    with pytest.raises(UntrustedSetError, match="is writable by group root and by others"):
        search.load("only_bundled")
    assert search.untrusted(bundled)[0].fix == f"chmod go-w {bundled}"


SWAP = """
import os, sys
sets, good, evil = sys.argv[1:]
entry, side = os.path.join(sets, "x.hunk"), os.path.join(sets, "side")
while True:
    if os.path.lexists(side):
        os.unlink(side)
    os.symlink(evil, side)
    os.replace(side, entry)  # x.hunk is now a symlink to a file anyone can write
    os.link(good, side)
    os.replace(side, entry)  # and root's file again
"""


def test_a_symlink_swapped_in_while_sets_are_read_never_serves_the_foreign_file(tmp_path):
    """The race a check-then-open reader loses: `x.hunk` flips between root's file and a symlink to a
    file anyone can write. Every read either refuses or gets root's bytes, never the other."""
    from vllm_surgeon.core.model import HunkFileError
    from vllm_surgeon.sets.reader import SetReader

    sets = tmp_path / "sets"
    good = write(sets / "good", "root's set\n")
    evil = write(tmp_path / "drop" / "evil", "anyone's set\n", mode=0o666)
    (tmp_path / "drop").chmod(0o777)
    entry = sets / "x.hunk"
    os.link(good, entry)
    swapper = subprocess.Popen([sys.executable, "-c", SWAP, str(sets), str(good), str(evil)])  # another process: no GIL shared
    served, refused = set(), 0
    try:
        for _ in range(5000):
            try:
                with SetReader() as reader:
                    served.add(reader.read(entry))
            except HunkFileError:
                refused += 1
    finally:
        swapper.kill()
        swapper.wait()
    assert served == {b"root's set\n"} and refused > 0
