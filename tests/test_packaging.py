"""The wheel carries the .pth bootstrap at site-packages' root, the bundled sets, and both entry points."""

import subprocess
import sys
import zipfile

from conftest import REPO


def test_wheel_has_pth_bundled_sets_and_entry_points(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(REPO)], check=True)
    (wheel,) = tmp_path.glob("vllm_surgeon-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        pth = z.read("vllm_surgeon.pth").decode()
        entry_points = next(z.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    assert "vllm_surgeon/_bundled_hunks/priority.hunk" in names and "vllm_surgeon/_runtime.py" in names
    assert pth.startswith("import os;") and pth.count("\n") == 1 and "VLLM_SURGEON_HUNKS" in pth
    assert "[vllm.general_plugins]\nvllm_surgeon = vllm_surgeon._plugin:register" in entry_points
    assert "[console_scripts]\nvllm-surgeon = vllm_surgeon._cli:main" in entry_points
