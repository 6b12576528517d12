"""What form a module has in a tree read from a listing (a wheel's members) or from a folder on disk:
Python source, a package, a namespace folder, an extension, a `.pyc` (issue 13 item 3: a set may not
create `vllm._C` over `vllm/_C.abi3.so`)."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

_EXTENSIONS = (".so", ".pyd")


def _is_extension(file_name: str, stem: str) -> bool:
    """`_C.abi3.so`, `_C.cpython-311-x86_64-linux-gnu.so`, `_C.so`, `_C.cp311-win_amd64.pyd` for stem `_C`."""
    return file_name.startswith(stem + ".") and file_name.endswith(_EXTENSIONS)


def form_in_listing(names: Collection[str], module: str, where: str) -> str | None:
    """The form of `module` among a wheel's member names (`vllm/_C.abi3.so`); `where` labels them."""
    base = module.replace(".", "/")
    parent, _, stem = base.rpartition("/")
    if f"{base}.py" in names:
        return f"a module ({where}!/{base}.py)"
    if f"{base}/__init__.py" in names:
        return f"a package ({where}!/{base}/__init__.py)"
    prefix = f"{parent}/" if parent else ""
    for name in names:
        if name.startswith(base + "/"):
            return f"a folder without __init__.py, imported as a namespace package ({where}!/{base}/)"
        if name.startswith(prefix) and "/" not in name[len(prefix):]:
            file_name = name[len(prefix):]
            if _is_extension(file_name, stem) or file_name == f"{stem}.pyc":
                return f"{'an extension' if _is_extension(file_name, stem) else 'a compiled'} module ({where}!/{name})"
    return None


def form_on_disk(root: Path, module: str) -> str | None:
    """The form of `module` in the folder tree `root` (a checkout, a site-packages)."""
    base = root.joinpath(*module.split("."))
    if base.with_name(base.name + ".py").is_file():
        return f"a module ({base}.py)"
    if base.is_dir():
        if (base / "__init__.py").is_file():
            return f"a package ({base / '__init__.py'})"
        return f"a folder without __init__.py, imported as a namespace package ({base})"
    try:
        siblings = list(base.parent.iterdir())
    except OSError:
        return None
    for path in siblings:
        if path.is_file() and (_is_extension(path.name, base.name) or path.name == f"{base.name}.pyc"):
            return f"{'an extension' if _is_extension(path.name, base.name) else 'a compiled'} module ({path})"
    return None
