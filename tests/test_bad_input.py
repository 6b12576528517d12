"""Every bad set file or directory is a located HunkFileError or a clean refusal (issue 7 item 8):
in set loading, in vLLM's processes (the runtime), and on the command line (exit 2, no traceback,
`list` goes on). Then the .hunk parser and set loading fuzzed with hypothesis.
"""

import io
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from conftest import surgeon_env
from hypothesis import HealthCheck, given, settings, strategies as st

from vllm_surgeon.commands.cli import main
from vllm_surgeon.core.model import HunkFileError
from vllm_surgeon.core.source import ModuleSource
from vllm_surgeon.engine import planner
from vllm_surgeon.sets.hunkfile import parse_hunk_file
from vllm_surgeon.sets.loader import load_file

NOBODY = 65534
as_root = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to act as another user")

BAD = {
    "huge_hint.hunk": ("@@ pkg.mod:f @@ +" + "9" * 5000 + "\n-    x = 1\n+    x = 2\n", 1, "is not a line offset"),
    "huge_range.hunk": ("vllm: ==" + "9" * 5000 + "\n@@ pkg.mod:f\n+    x = 2\n", 1, "is not a version range"),
    "not_utf8.hunk": (b"description: ok\n@@ pkg.mod:f\n+    x = '\xff'\n", 3, "not UTF-8 text"),
    "int_target.py": ("from vllm_surgeon import transform\n\n@transform(123, anchor='x = 1')\ndef t(node):\n    return node\n",
                      3, "TypeError while loading: @transform target must be a string"),
    "bad_anchor.py": ("from vllm_surgeon import transform\n\n@transform('pkg.mod:f', anchor=5)\ndef t(node):\n    return node\n",
                      3, "anchor must be source text"),
    "bad_mark.py": (
        "def t(node):\n    return node\n\n\nt.__vllm_surgeon_transform__ = ('pkg.mod:f',)\n", 1, "malformed __vllm_surgeon_transform__"
    ),
    "mark_target.py": ("def t(node):\n    return node\n\n\nt.__vllm_surgeon_transform__ = (42, ('x',))\n", 1, "malformed"),
    "null_byte.py": (b"x = 1\x00\n", 1, "null bytes"),
    "exits.py": ("import sys\nsys.exit(2)\n", 2, "calls sys.exit(2) while loading"),
    "interrupts.py": ("raise SystemExit\n", 1, "calls sys.exit(None)"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_each_malformed_set_is_a_located_hunk_file_error(tmp_path, name):
    text, line, message = BAD[name]
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(HunkFileError) as info:
        load_file(path)
    assert str(info.value).startswith(f"{path}:{line}: ") and message in str(info.value), str(info.value)


def test_a_fifo_or_a_directory_named_like_a_set_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.hunk"
    os.mkfifo(fifo)
    with pytest.raises(HunkFileError, match="not a regular file"):
        load_file(fifo)
    (tmp_path / "folder.hunk").mkdir()
    with pytest.raises(HunkFileError, match="not a regular file"):
        load_file(tmp_path / "folder.hunk")


def test_lines_split_only_where_python_splits_them(tmp_path):
    """Issue 7 item 7: U+2028, \\x0c, \\x85 ... inside a '+' line stay inside it (a comment stays a comment)."""
    path = tmp_path / "seps.hunk"
    path.write_text("@@ pkg.mod:f\n-    x = 1\n+    x = 2  # keep\u2028value = 7\x0cand\x85more\u2029\x1c\x1d\x1e\x0b\n")
    (hunk,) = load_file(path).hunks
    assert [line.op for line in hunk.lines] == ["-", "+"]
    source = "def f():\n    x = 1\n    return x\n"
    plan = planner.plan([load_file(path)], lambda m: ModuleSource(m, "/src/pkg/mod.py", source) if m == "pkg.mod" else None, None)
    namespace: dict = {}
    exec(plan.modules["pkg.mod"].compiled.code, namespace)
    assert namespace["f"]() == 2 and "value" not in namespace


def test_crlf_and_lone_cr_files_read_like_python_reads_them(tmp_path):
    path = tmp_path / "crlf.hunk"
    path.write_bytes(b"description: x\r\n@@ pkg.mod:f\r-    x = 1\r\n+    x = 2\r\n")
    (hunk,) = load_file(path).hunks
    assert [(l.op, l.text) for l in hunk.lines] == [("-", "    x = 1"), ("+", "    x = 2")]


def cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(args), out=out), out.getvalue()


def test_cli_list_reports_a_bad_set_and_goes_on_and_verify_exits_2_without_traceback(tmp_path, monkeypatch, capsys):
    for name, (text, _, _) in BAD.items():
        (tmp_path / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    (tmp_path / "fine.hunk").write_text("@@ vllm.v1.request:Request.__lt__\n         \"\"\"\n+        pass\n")
    monkeypatch.setenv("VLLM_SURGEON_PATH", str(tmp_path))
    code, out = cli("list")
    assert code == 0 and "fine  [hunk" in out and "priority  [hunk, bundled]" in out
    for name in BAD:
        assert f"{Path(name).stem}  UNREADABLE  {tmp_path / name}:" in out
    for name in BAD:
        assert cli("verify", Path(name).stem)[0] == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("vllm-surgeon verify: ") == len(BAD)


def test_the_command_line_never_prints_a_traceback_for_a_bad_set(tmp_path):
    (tmp_path / "huge.hunk").write_text("@@ pkg.mod:f @@ +" + "9" * 5000 + "\n+x\n")
    out = subprocess.run([sys.executable, "-m", "vllm_surgeon", "verify", "huge"], capture_output=True, text=True,
                         env=surgeon_env(VLLM_SURGEON_PATH=str(tmp_path)))
    assert out.returncode == 2 and "Traceback" not in out.stderr and f"{tmp_path / 'huge.hunk'}:1:" in out.stderr


def test_vllm_stops_with_the_located_error_and_other_interpreters_are_untouched(fakepkg):
    fakepkg.hunk("huge", "@@ fakepkg.core:f @@ +" + "9" * 5000 + "\n+x\n")
    out = fakepkg.run("print('unrelated')", hunks="huge", trigger=False)
    assert out.returncode == 0 and out.stdout.strip() == "unrelated" and not out.stderr
    out = fakepkg.run("pass", hunks="huge")
    assert out.returncode == 1 and "SurgeonError" in out.stderr
    assert f"vllm-surgeon cannot load hunk set 'huge': {fakepkg.hunks / 'huge.hunk'}:1: position hint" in out.stderr


def _nobody_can_start_this_python() -> bool:
    """Whether `nobody` can run this interpreter: pyenv's Python 3.10 (the test command's .venv-3.10) loads
    libpython from under /root, which only root may read."""
    try:
        probe = subprocess.run([sys.executable, "-c", "pass"], capture_output=True, cwd="/", user=NOBODY, group=NOBODY,
                               extra_groups=[])
    except PermissionError:  # the interpreter's own file (a symlink into /root) cannot even be opened
        return False
    return probe.returncode == 0


@pytest.fixture
def shared():
    """A directory `nobody` can read, for files and directories root makes unreadable to it."""
    if not _nobody_can_start_this_python():
        pytest.skip(f"user nobody cannot start {sys.executable} (it reads files only root may read)")
    base = Path(f"/tmp/h7-bad-input-{uuid.uuid4().hex[:8]}")
    base.mkdir(mode=0o755)
    (base / "sets").mkdir(mode=0o755)
    (base / "src" / "vllm").mkdir(parents=True, mode=0o755)
    (base / "src").chmod(0o755)
    (base / "src" / "vllm" / "__init__.py").write_text("")
    (base / "src" / "vllm" / "__init__.py").chmod(0o644)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def as_nobody(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], env=dict(env, HOME=str(cwd)), capture_output=True, text=True, timeout=300,
                          cwd=cwd, user=NOBODY, group=NOBODY, extra_groups=[])


@as_root
def test_unreadable_set_files_and_unlistable_directories_as_another_user(shared):
    sets = shared / "sets"
    (sets / "good.hunk").write_text("@@ vllm.v1.request:Request.__lt__\n         \"\"\"\n+        pass\n")
    (sets / "secret.hunk").write_text("@@ vllm.v1.request:Request.__lt__\n+        pass\n")
    for path in sets.iterdir():
        path.chmod(0o644)
    (sets / "secret.hunk").chmod(0o600)  # root's: nobody cannot read it
    closed = shared / "closed"
    closed.mkdir(mode=0o700)  # nobody cannot list it
    env = surgeon_env(VLLM_SURGEON_PATH=f"{closed}{os.pathsep}{sets}", PYTHONPATH=str(shared / "src"))

    listed = as_nobody(["-m", "vllm_surgeon", "list"], env, shared)
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    assert f"# UNREADABLE: cannot list {closed} (VLLM_SURGEON_PATH): Permission denied" in listed.stdout
    assert "good  [hunk" in listed.stdout and f"secret  UNREADABLE  {sets / 'secret.hunk'}:1: cannot open this set file" in listed.stdout

    verify = as_nobody(["-m", "vllm_surgeon", "verify", "secret"], env, shared)
    assert verify.returncode == 2 and "Traceback" not in verify.stderr
    assert f"cannot list {closed} (VLLM_SURGEON_PATH): Permission denied" in verify.stderr  # it might hold `secret`

    env = dict(env, VLLM_SURGEON_PATH=str(sets))
    verify = as_nobody(["-m", "vllm_surgeon", "verify", "secret"], env, shared)
    assert verify.returncode == 2 and f"{sets / 'secret.hunk'}:1: cannot open this set file: Permission denied" in verify.stderr

    started = as_nobody(["-c", "import vllm"], dict(env, VLLM_SURGEON_HUNKS="secret"), shared)
    assert started.returncode == 1 and "SurgeonError" in started.stderr
    assert f"vllm-surgeon cannot load hunk set 'secret': {sets / 'secret.hunk'}:1: cannot open this set file" in started.stderr
    assert as_nobody(["-c", "print('fine')"], dict(env, VLLM_SURGEON_HUNKS="secret"), shared).stdout.strip() == "fine"


# -- fuzzing ----------------------------------------------------------------------------------------

PIECES = st.sampled_from([
    "@@ ", " @@", "@@ pkg.mod:f", "@@ pkg.mod:C.m @@ +3", "@@ pkg.mod", "@@ 9bad:x", "@@ pkg.mod:f @@ +" + "7" * 30,
    "description: x", "vllm: >=0.1", "vllm: ==" + "9" * 40, "vllm: banana", "why:", "written-against: 1",
    " ", "-", "+", "    x = 1", "    return x", "def f():", "#", "\\", ":", "\t", "\u2028", "\x0c", "\x85", "\r", "\r\n",
    "\n", "\n", "\n", "\x00", "é", "<locals>", "class C:", "        pass",
])
SOURCE = "def f():\n    x = 1\n    return x\n\n\nclass C:\n    def m(self):\n        x = 1\n        return x\n"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(PIECES, max_size=40).map("".join))
def test_fuzzed_hunk_text_parses_or_fails_located_and_plans_cleanly(text):
    try:
        hunk_set = parse_hunk_file(text, "/sets/f.hunk", "f")
    except HunkFileError as exc:
        assert re.match(r"/sets/f\.hunk:(\d+): ", str(exc)), str(exc)
        line = int(str(exc).split(":")[1])
        assert 1 <= line <= text.count("\n") + text.count("\r") + 1
        return
    plan = planner.plan([hunk_set], lambda m: ModuleSource(m, "/src/pkg/mod.py", SOURCE) if m == "pkg.mod" else None, "0.32.0")
    for refusal in plan.refusals:
        assert refusal.message()  # every refusal renders


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.binary(max_size=300), st.lists(PIECES, max_size=40).map(lambda p: "".join(p).encode("utf-8", "surrogatepass"))),
       suffix=st.sampled_from([".hunk", ".patch", ".diff"]))
def test_fuzzed_set_files_load_or_fail_with_a_hunk_file_error(tmp_path, data, suffix):
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(data)
    try:
        load_file(path)
    except HunkFileError as exc:
        assert str(exc).startswith(f"{path}:")
