"""Who can change a set file, judged in this process (core/trust.py, sets/reader.py): the rules that
tests/test_trust.py checks through real starts, one case each, fast enough to run per mutant
(tools/mutate.py, issue 13's "tests that pin the guarantees")."""

import contextlib
import fcntl
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from vllm_surgeon.core import trust
from vllm_surgeon.core.model import HunkFileError
from vllm_surgeon.sets.reader import ENFORCE, OWN, REPORT, SetReader, UntrustedSetError, set_rule

NOBODY = 65534
pytestmark = pytest.mark.skipif(not trust.SUPPORTED or os.geteuid() != 0, reason="needs root to give files to another user")


@pytest.fixture
def base(tmp_path: Path) -> Path:
    """A folder that passes: root's, 0755, under pytest's root-only temporary folders."""
    tmp_path.chmod(0o755)
    return tmp_path


def write(path: Path, text: str = "set\n", mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def problems(path: Path, rule: trust.Rule | None = None) -> list[trust.Problem]:
    with trust.Walker(rule or set_rule()) as walker:
        opened = walker.open_file(path)
        os.close(opened.fd)
        return opened.problems


def words(path: Path, rule: trust.Rule | None = None) -> list[str]:
    return [str(p) for p in problems(path, rule)]


def read(path: Path, mode: str = ENFORCE) -> tuple[bytes, list[trust.Problem]]:
    with SetReader(mode) as reader:
        return reader.read(path), reader.problems


# -- the file --------------------------------------------------------------------------------------

def test_a_set_file_of_root_in_root_folders_is_read_with_no_problem(base):
    path = write(base / "sets" / "x.hunk", "root's set\n")
    assert problems(path) == []
    assert read(path) == (b"root's set\n", [])


def test_a_set_file_owned_by_another_user_is_refused_naming_the_owner_and_the_fix(base):
    path = write(base / "sets" / "x.hunk")
    os.chown(path, NOBODY, NOBODY)
    (problem,) = problems(path)
    assert problem.path == str(path)
    assert problem.what == "is owned by nobody (uid 65534), not by root (the user running this): its owner can change it"
    assert problem.fix == f"chown root {path}"
    with pytest.raises(UntrustedSetError) as refused:
        read(path)
    assert refused.value.problems == (problem,)
    assert str(refused.value).startswith(f"{path}: refused: a set is code that runs in every vLLM process")
    assert f"\n  {problem}" in str(refused.value)


@pytest.mark.parametrize("mode, who", [
    (0o666, "group root and by others"),
    (0o646, "others"),
    (0o664, "group root"),
])
def test_a_set_file_others_or_its_group_can_write_is_refused(base, mode, who):
    path = write(base / "sets" / "x.hunk", mode=mode)
    (problem,) = problems(path)
    assert problem.what == f"is writable by {who} (mode {stat.filemode(stat.S_IFREG | mode)}, {mode:04o}): they can rewrite it"
    assert problem.fix == f"chmod go-w {path}"
    with pytest.raises(UntrustedSetError):
        read(path)


def test_a_set_file_only_its_owner_can_write_is_read_whatever_else_its_mode_says(base):
    for mode in (0o600, 0o644, 0o755, 0o4755, 0o444, 0o400):
        assert problems(write(base / "sets" / f"x{mode:o}.hunk", mode=mode)) == [], oct(mode)


# -- the folders above it --------------------------------------------------------------------------

@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757, 0o1777, 0o1775])
def test_the_folder_holding_a_set_may_not_be_writable_by_others_even_sticky(base, mode):
    folder = base / "sets"
    path = write(folder / "x.hunk")
    folder.chmod(mode)
    (problem,) = problems(path)
    assert problem.path == str(folder)
    if mode & stat.S_ISVTX:  # sticky and shared (by others or the group): others still add files
        assert problem.what == (f"is a folder anyone can add files to (mode {stat.filemode(stat.S_IFDIR | mode)}, "
                                f"{mode:04o}, sticky like /tmp): not a safe place for sets")
        assert problem.fix.endswith(f"(mkdir -m 755 {folder}/NAME), not directly in {folder}")
    else:
        assert problem.what.startswith("is writable by ") and problem.what.endswith("they can replace what is in it")
        assert problem.fix == f"chmod go-w {folder}"


def test_a_sticky_folder_only_its_owner_can_write_is_a_safe_place(base):
    path = write(base / "sets" / "x.hunk")
    (base / "sets").chmod(0o1755)  # the sticky bit alone shares nothing
    assert problems(path) == []


@pytest.mark.parametrize("mode", [0o777, 0o775])
def test_a_folder_writable_by_others_anywhere_above_a_set_is_refused(base, mode):
    path = write(base / "a" / "b" / "sets" / "x.hunk")
    (base / "a").chmod(mode)
    assert [p.path for p in problems(path)] == [str(base / "a")]


def test_a_sticky_folder_others_write_is_accepted_above_the_sets_folder_not_as_it(base):
    path = write(base / "shared" / "mine" / "x.hunk")
    (base / "shared").chmod(0o1777)  # /tmp/mine/x.hunk: others cannot rename or remove `mine`
    assert problems(path) == []
    (base / "shared").chmod(0o1775)  # sticky, writable by the group only: accepted above too
    assert problems(path) == []
    (base / "shared").chmod(0o777)  # not sticky: anyone can rename `mine` away and put theirs
    assert [p.path for p in problems(path)] == [str(base / "shared")]


def test_a_folder_above_owned_by_another_user_is_refused(base):
    path = write(base / "theirs" / "sets" / "x.hunk")
    os.chown(base / "theirs", NOBODY, NOBODY)
    (problem,) = problems(path)
    assert problem.path == str(base / "theirs") and "is owned by nobody (uid 65534)" in problem.what


def test_every_problem_on_the_way_is_named_once(base):
    path = write(base / "a" / "sets" / "x.hunk", mode=0o666)
    (base / "a").chmod(0o777)
    os.chown(path, NOBODY, NOBODY)
    found = problems(path)
    assert [p.path for p in found] == [str(base / "a"), str(path), str(path)]
    assert len(set(found)) == len(found)


def test_a_folder_the_user_may_pass_through_but_not_list_is_walked(tmp_path):
    """Another user, whose sets sit under root's 0711 folder (allowed to pass, not to list): the walk
    opens folders for passing through (O_PATH), as the kernel's own path lookup does."""
    try:
        started = subprocess.run([sys.executable, "-c", "import vllm_surgeon"], capture_output=True, cwd="/",
                                 user=NOBODY, group=NOBODY, extra_groups=[], timeout=60).returncode == 0
    except PermissionError:  # the interpreter's own file (a symlink into /root) cannot even be opened
        started = False
    if not started:
        pytest.skip(f"user nobody cannot start {sys.executable} with vllm-surgeon (files only root may read)")
    top = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        top.chmod(0o755)
        write(top / "hidden" / "sets" / "x.hunk", "the set\n")
        (top / "hidden").chmod(0o711)
        code = ("import sys; from pathlib import Path; from vllm_surgeon.sets.reader import SetReader\n"
                "sys.stdout.write(SetReader().read(Path(sys.argv[1])).decode())")
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        out = subprocess.run([sys.executable, "-c", code, str(top / "hidden" / "sets" / "x.hunk")], env=env, cwd="/",
                             capture_output=True, text=True, user=NOBODY, group=NOBODY, extra_groups=[], timeout=60)
        assert (out.returncode, out.stdout) == (0, "the set\n"), out.stderr
    finally:
        shutil.rmtree(top)


# -- symlinks --------------------------------------------------------------------------------------

def test_a_symlink_to_a_set_in_a_safe_place_is_read(base):
    target = write(base / "real" / "x.hunk", "the real set\n")
    link = base / "sets" / "x.hunk"
    link.parent.mkdir()
    link.symlink_to(target)
    assert problems(link) == [] and read(link)[0] == b"the real set\n"
    relative = base / "sets" / "y.hunk"
    relative.symlink_to("../real/x.hunk")
    assert problems(relative) == [] and read(relative)[0] == b"the real set\n"


def test_a_symlink_is_followed_only_to_a_place_that_passes_the_same_checks(base):
    drop = base / "drop"
    target = write(drop / "x.hunk")
    drop.chmod(0o777)  # anyone may replace the file the link leads to
    link = base / "sets" / "x.hunk"
    link.parent.mkdir()
    link.symlink_to(target)
    assert [p.path for p in problems(link)] == [str(drop)]
    with pytest.raises(UntrustedSetError):
        read(link)


def test_a_symlink_owned_by_another_user_is_refused(base):
    target = write(base / "real" / "x.hunk")
    link = base / "sets" / "x.hunk"
    link.parent.mkdir()
    link.symlink_to(target)
    os.chown(link, NOBODY, NOBODY, follow_symlinks=False)
    (problem,) = problems(link)
    assert problem.path == str(link) and "is owned by nobody" in problem.what


def test_a_symlinked_folder_on_the_way_is_walked_and_its_target_checked(base):
    real = base / "real"
    write(real / "x.hunk")
    (base / "via").symlink_to(real)
    assert problems(base / "via" / "x.hunk") == []
    real.chmod(0o777)
    assert [p.path for p in problems(base / "via" / "x.hunk")] == [str(real)]


def test_a_symlink_loop_is_an_os_error_not_a_hang(base):
    (base / "sets").mkdir()
    (base / "sets" / "a.hunk").symlink_to("b.hunk")
    (base / "sets" / "b.hunk").symlink_to("a.hunk")
    with pytest.raises(HunkFileError, match="cannot open this set file"):
        read(base / "sets" / "a.hunk")


def test_a_chain_of_symlinks_is_followed_as_far_as_the_kernel_follows_one(base):
    """40 links, as Linux's ELOOP limit: what the kernel opens is read, one more is refused."""
    write(base / "real" / "x.hunk", "the set\n")
    links = base / "links"
    links.mkdir()
    (links / "l40").symlink_to(base / "real" / "x.hunk")
    for i in range(39, -1, -1):
        (links / f"l{i}").symlink_to(f"l{i + 1}")
    assert (links / "l1").read_text() == "the set\n"  # 40 links: the kernel follows them
    assert read(links / "l1")[0] == b"the set\n"
    with pytest.raises(OSError):  # 41: it does not
        (links / "l0").read_text()
    with pytest.raises(HunkFileError, match="cannot open this set file: Too many levels of symbolic links"):
        read(links / "l0")


def test_dot_dot_right_below_the_root_goes_to_the_root(base):
    top, *rest = base.parts[1:]
    write(base / "x.hunk", "here\n")
    assert read(Path("/", top, "..", top, *rest, "x.hunk"))[0] == b"here\n"


def test_dot_dot_is_resolved_as_the_kernel_does_after_a_symlink(base):
    write(base / "real" / "x.hunk", "real\n")
    (base / "deep" / "inner").mkdir(parents=True)
    (base / "link").symlink_to(base / "deep" / "inner")
    # link/.. is deep (the kernel's answer), not base (the text's).
    write(base / "deep" / "x.hunk", "deep\n")
    assert read(base / "link" / ".." / "x.hunk")[0] == b"deep\n"


def test_an_owner_with_no_name_is_named_by_uid(base, monkeypatch):
    path = write(base / "sets" / "x.hunk")
    os.chown(path, 4242, 4242)  # no such user here: a file from another machine, an image's build user
    (problem,) = problems(path)
    assert problem.what == "is owned by uid 4242, not by root (the user running this): its owner can change it"
    monkeypatch.setenv("VLLM_SURGEON_TRUSTED_GROUP", "100")
    (problem,) = problems(path, set_rule())  # a user with no name is no member of any group
    assert problem.what.startswith("is owned by uid 4242, not by root (the user running this) or a member of group")


def test_the_refusal_names_who_is_trusted(monkeypatch):
    assert trust.euid_words() == "root (the user running this)"
    assert trust.euid_words(0) == "root (the user running this) or a member of group root"
    monkeypatch.setattr(trust, "euid", lambda: NOBODY)
    assert trust.euid_words() == "you (nobody, uid 65534) or root"
    monkeypatch.setattr(trust, "euid", lambda: 4242)
    assert trust.euid_words() == "you (uid 4242) or root"
    assert trust.user(4242) == "uid 4242" and trust.user(NOBODY) == "nobody (uid 65534)"


def test_a_user_other_than_root_is_told_to_ask_root_or_copy_the_set(base, monkeypatch):
    path = write(base / "sets" / "x.hunk")
    os.chown(path, 4242, 4242)
    monkeypatch.setattr(trust, "euid", lambda: NOBODY)
    problem = trust.owner_problem(str(path), path.stat(), trust.Rule(frozenset({NOBODY, 0})))
    assert problem is not None and problem.fix == f"chown nobody {path} (as root), or copy it to a folder of yours"


# -- the trusted group -----------------------------------------------------------------------------

def test_a_trusted_group_may_write_and_own_sets_and_no_other_group(base, monkeypatch):
    path = write(base / "sets" / "x.hunk", mode=0o664)
    os.chown(path, NOBODY, 100)  # nobody's file, group 100 (users) may write it
    monkeypatch.setenv("VLLM_SURGEON_TRUSTED_GROUP", "100")
    rule = set_rule()
    assert rule.group == 100
    found = words(path, rule)
    # nobody is no member of group 100: its owner is still refused; the group's write bit is not
    assert len(found) == 1 and "is owned by nobody" in found[0] and "or a member of group" in found[0]
    os.chown(path, 0, 100)
    assert problems(path, rule) == []
    os.chown(path, 0, 0)
    (problem,) = problems(path, rule)
    assert "is writable by group root" in problem.what and problem.fix == f"chmod go-w {path}, or chgrp {trust.group_name(100)} {path}"


def test_a_member_of_the_trusted_group_may_own_a_set(base, monkeypatch):
    import grp
    import pwd

    member = next((p for p in pwd.getpwall() if p.pw_uid not in (0,) and p.pw_gid != 0), None)
    if member is None:
        pytest.skip("no user with a primary group here")
    path = write(base / "sets" / "x.hunk")
    os.chown(path, member.pw_uid, member.pw_gid)
    assert problems(path) != []
    monkeypatch.setenv("VLLM_SURGEON_TRUSTED_GROUP", grp.getgrgid(member.pw_gid).gr_name)
    assert problems(path, set_rule()) == []


# -- how the reader reads ----------------------------------------------------------------------------

def test_report_reads_a_refused_file_and_keeps_why_own_does_not_ask(base):
    path = write(base / "sets" / "x.hunk", "anyone's\n", mode=0o666)
    data, found = read(path, REPORT)
    assert data == b"anyone's\n" and [p.path for p in found] == [str(path)]
    assert read(path, OWN) == (b"anyone's\n", [])
    with SetReader(REPORT) as reader:  # the same problem twice is kept once
        reader.read(path)
        reader.read(path)
        assert len(reader.problems) == 1
        assert reader.refusal(path).problems == tuple(reader.problems)


def test_a_fifo_or_a_folder_is_not_a_set_file(base):
    (base / "sets").mkdir()
    os.mkfifo(base / "sets" / "x.hunk")
    with pytest.raises(HunkFileError, match="not a regular file"):
        read(base / "sets" / "x.hunk")
    (base / "sets" / "d.hunk").mkdir()
    with pytest.raises(HunkFileError, match="not a regular file"):
        read(base / "sets" / "d.hunk")


def test_a_set_file_past_the_size_limit_is_refused_unread(base, monkeypatch):
    from vllm_surgeon.sets import reader

    path = write(base / "sets" / "x.hunk", "x" * 100)
    monkeypatch.setattr(reader, "MAX_SET_BYTES", 99)
    with pytest.raises(HunkFileError, match="100 bytes: too large for a hunk set \\(the limit is 99\\)"):
        read(path)
    monkeypatch.setattr(reader, "MAX_SET_BYTES", 100)
    assert read(path)[0] == b"x" * 100


# -- directories asked for (the code cache's rule: sticky accepted neither above nor as the place) ----

def test_check_dir_and_open_dir_judge_the_folder_itself(base):
    folder = base / "d"
    folder.mkdir(mode=0o755)
    inside = trust.Rule(frozenset({0}), sticky_above=False)

    def rule(path: str) -> trust.Rule:  # as the cache's: /tmp above may be sticky, the folder may not
        return inside if path == str(folder) else trust.Rule(frozenset({0}))

    with trust.Walker(rule) as walker:
        assert walker.check_dir(folder) == []
    folder.chmod(0o1777)
    with trust.Walker(rule) as walker:
        (problem,) = walker.check_dir(folder)
        assert problem.what.startswith("is writable by group root and by others")
        opened = walker.open_dir(folder)
        info = os.fstat(opened.fd)
        os.close(opened.fd)
        assert opened.problems == [problem]
        assert (info.st_dev, info.st_ino) == (folder.stat().st_dev, folder.stat().st_ino)  # the folder itself
        assert opened.path == str(folder)
    with trust.Walker(trust.Rule(frozenset({0}), sticky_place=True)) as walker:
        assert walker.check_dir(folder) == []
    with trust.Walker(trust.Rule(frozenset({0}))) as walker:
        assert "not a safe place" in walker.check_dir(folder)[0].what


# -- read-only filesystems: nobody writes them, their owners still count -----------------------------

@contextlib.contextmanager
def read_only_tmpfs(path: Path, files: dict[str, int]):
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0777", "tmpfs", str(path)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()})")
    try:
        for name, uid in files.items():
            write(path / name, mode=0o666)
            os.chown(path / name, uid, uid)
        subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_read_only_mount_nobody_can_write_passes_and_its_owner_still_counts(base):
    with read_only_tmpfs(base / "ro", {"x.hunk": 0, "y.hunk": NOBODY}) as volume:
        assert problems(volume / "x.hunk") == []  # 0777 folder, 0666 file: but read-only
        assert [p.what.split(",")[0] for p in problems(volume / "y.hunk")] == [
            "is owned by nobody (uid 65534)"]


def test_a_filesystem_that_cannot_be_asked_counts_as_writable():
    fd = os.open("/", os.O_RDONLY)
    os.close(fd)  # a descriptor no longer open: fstatvfs fails
    assert trust.readonly(fd)() is False


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
def test_no_descriptor_is_left_open_when_a_check_fails(base, monkeypatch):
    path = write(base / "sets" / "x.hunk")
    before = open_fds()

    real_problems_of = trust.Walker._problems_of

    def fails_on_the_file(self, path, fd, info, step=None):
        if step is None:  # the file's check (a folder's comes with its step)
            raise RuntimeError("a check that fails")
        return real_problems_of(self, path, fd, info, step)

    with monkeypatch.context() as m:
        m.setattr(trust.Walker, "_problems_of", fails_on_the_file)
        with pytest.raises(RuntimeError), trust.Walker(set_rule()) as walker:
            walker.open_file(path)
    assert open_fds() == before
    real_fstat = os.fstat

    def fstat_fails_on_files(fd):
        info = real_fstat(fd)
        if stat.S_ISREG(info.st_mode):
            raise OSError(5, "Input/output error")
        return info

    with monkeypatch.context() as m:
        m.setattr(trust.os, "fstat", fstat_fails_on_files)
        with pytest.raises(OSError), trust.Walker(set_rule()) as walker:
            walker.open_file(path)
    assert open_fds() == before


def test_a_set_whose_name_is_a_symlink_in_a_sticky_shared_folder_is_refused_wherever_it_leads(base):
    safe = base / "safe"
    write(safe / "x.hunk")
    shared = base / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    (shared / "x.hunk").symlink_to(safe / "x.hunk")  # the set's name is looked up in the shared folder
    assert [p.path for p in problems(shared / "x.hunk")] == [str(shared)]
    (shared / "dir").symlink_to(safe)  # a folder's name too
    assert [p.path for p in problems(shared / "dir" / "x.hunk")] == [str(shared)]


def test_dot_dot_at_the_root_stays_at_the_root(base):
    write(base / "x.hunk", "here\n")
    assert read(Path("/", "..", *base.parts[1:], "x.hunk"))[0] == b"here\n"


def test_descriptors_are_not_inherited_by_processes_started_later(base):
    path = write(base / "sets" / "x.hunk")
    with trust.Walker(set_rule()) as walker:
        for opened in (walker.open_file(path), walker.open_dir(base / "sets")):
            try:
                assert fcntl.fcntl(opened.fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
            finally:
                os.close(opened.fd)


def test_open_dir_judges_the_folder_asked_for_as_the_place(base):
    folder = base / "shared"
    folder.mkdir()
    folder.chmod(0o1777)
    with trust.Walker(trust.Rule(frozenset({0}))) as walker:  # sticky accepted above, not as the place
        opened = walker.open_dir(folder)
        os.close(opened.fd)
        assert [p.path for p in opened.problems] == [str(folder)]
        opened = walker.open_dir(folder.parent)
        os.close(opened.fd)
        assert opened.problems == []


def test_a_group_with_no_name_is_named_by_gid(base):
    path = write(base / "sets" / "x.hunk", mode=0o664)
    os.chown(path, 0, 4242)  # no such group here
    (problem,) = problems(path)
    assert problem.what.startswith("is writable by group 4242 (mode -rw-rw-r--, 0664)")


# -- the reader's own details ---------------------------------------------------------------------------

def test_a_refusal_names_the_file_at_its_first_line_and_the_trusted_group(base, monkeypatch):
    from vllm_surgeon.core.model import Origin

    path = write(base / "sets" / "x.hunk", mode=0o666)
    monkeypatch.setenv("VLLM_SURGEON_TRUSTED_GROUP", "100")
    with pytest.raises(UntrustedSetError) as refused:
        read(path)
    assert refused.value.origin == Origin(str(path), 1)
    assert f"someone other than root (the user running this) or a member of group {trust.group_name(100)} can change" in str(refused.value)


def test_even_its_own_files_are_read_without_blocking_nor_leaking_the_descriptor(base):
    from vllm_surgeon.sets import reader

    assert reader._FLAGS & os.O_NONBLOCK and reader._FLAGS & os.O_CLOEXEC
    (base / "sets").mkdir()
    os.mkfifo(base / "sets" / "x.hunk")
    with pytest.raises(HunkFileError, match="not a regular file"):
        read(base / "sets" / "x.hunk", OWN)


def test_a_set_file_that_grows_past_the_limit_while_read_is_refused(base, monkeypatch):
    from vllm_surgeon.sets import reader

    path = write(base / "sets" / "x.hunk", "x" * 101)
    monkeypatch.setattr(reader, "MAX_SET_BYTES", 100)
    real_fstat = os.fstat

    def smaller_when_checked(fd):  # the size when checked; the writer is not done
        info = real_fstat(fd)
        return os.stat_result((*info[:6], 50, *info[7:])) if stat.S_ISREG(info.st_mode) else info

    monkeypatch.setattr(reader.os, "fstat", smaller_when_checked)
    with pytest.raises(HunkFileError, match="grew past 100 bytes while being read"):
        read(path, OWN)


def test_text_that_is_not_utf8_is_refused_at_its_line():
    from vllm_surgeon.sets.reader import decode_set_text

    with pytest.raises(HunkFileError, match=r"^/s/x.hunk:3: not UTF-8 text: byte 0xff cannot be decoded"):
        decode_set_text(b"\nok\nbad \xff\n", "/s/x.hunk")
