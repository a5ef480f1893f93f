"""Where a command may write: one check for every output, used by every command line.

- :func:`output_folder`: ``path`` is (or can become) a folder: nothing on the way is a file.
- :func:`output_file`: ``path`` is (or can become) a regular file in an existing folder (or one the
  command will make), it is not one of the command's inputs nor inside one, and an existing file is
  replaced only when the command wrote it (``ours``) or the user said ``--overwrite``.

Both resolve links first, so ``out.json -> model.pt`` is the same file as ``model.pt``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from cswm_lib.errors import CswmError

PathLike = str | os.PathLike


def _resolved(path: PathLike) -> Path:
    return Path(os.path.abspath(path)).resolve()


def output_folder(path: PathLike, what: str = "output folder", make: bool = False) -> Path:
    """Check that ``path`` is a folder or can be made one (no file on the way); with ``make`` make it.
    One line otherwise: ``<what> <path> ...: <p> is a file, not a folder``."""
    path = Path(path)
    for p in (path, *path.parents):
        if p.exists() and not p.is_dir():
            if p == path:
                raise CswmError(f"{what} {path} is a file, not a folder")
            raise CswmError(f"cannot use {path} as the {what}: {p} is a file, not a folder")
        if p.is_dir():
            break
    if make:
        path.mkdir(parents=True, exist_ok=True)
    return path


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_not_an_input(path: PathLike, inputs: Iterable[PathLike | None], what: str) -> None:
    """Refuse an output that is one of ``inputs``, lies inside one (an input folder), or holds one."""
    out = _resolved(path)
    for i in inputs:
        if i is None or str(i) == "":
            continue
        src = _resolved(i)
        if _inside(out, src):
            rel = "is" if out == src else "lies inside"
            raise CswmError(f"{what} {path} {rel} the input {i}: refusing to write over an input; "
                            "give another path")


def output_file(
    path: PathLike,
    what: str,
    *,
    inputs: Iterable[PathLike | None] = (),
    ours: Callable[[Path], bool] | None = None,
    overwrite: bool = False,
    make_parents: bool = False,
    example: str = "data.h5",
    foreign: str = "a file this command wrote",
) -> Path:
    """Check an output file before any work; return it as a :class:`~pathlib.Path`. One line when:

    - it is a folder, or exists and is not a regular file (a device, pipe or broken link);
    - it is one of ``inputs`` (after resolving links) or lies inside one of them;
    - it exists, is not ``ours`` (a file this command writes, described by ``foreign`` in the
      message) and ``overwrite`` is not given;
    - its folder is missing (unless ``make_parents``; a file on the way is refused either way) or
      not writable.
    """
    path = Path(path)
    if str(path) == "" or path.is_dir():
        shown = path if str(path) else Path(".")
        raise CswmError(f"{what} {shown} is a folder; give a file name such as {shown / example}")
    if (path.exists() or path.is_symlink()) and not path.is_file():
        raise CswmError(f"{what} {path} exists and is not a regular file (a device, pipe or broken link): "
                        "refusing to write there")
    check_not_an_input(path, inputs, what)
    if path.exists() and not overwrite and ours is not None and not ours(path):
        raise CswmError(f"{what} {path} exists and is not {foreign}; pass --overwrite to "
                        "replace it")
    parent = path.parent if str(path.parent) else Path(".")
    for p in (parent, *parent.parents):
        if p.exists() and not p.is_dir():
            raise CswmError(f"cannot write {path}: {p} is a file, not a folder")
        if p.is_dir():
            if not make_parents and p != parent:
                raise CswmError(f"the folder of {what} does not exist: {parent} (create it first)")
            if not os.access(p, os.W_OK | os.X_OK):
                raise CswmError(f"cannot write into {p}: permission denied (read-only folder?)")
            break
    return path


def is_json_of(*keys: str) -> Callable[[Path], bool]:
    """An ``ours`` test for :func:`output_file`: the file is a JSON object holding ``keys``."""

    def check(path: Path) -> bool:
        import json

        try:
            obj = json.loads(path.read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            return False
        return isinstance(obj, dict) and all(k in obj for k in keys)

    return check
