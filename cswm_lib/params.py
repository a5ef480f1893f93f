"""Parameter files (``book/params/<scale>.yaml``): reading and checking one, and the names a scale may
take. The runner (:mod:`cswm_lib.book`) injects their values into the chapters; pages read a chapter's
declared section through :func:`load_params` too (``cswm_lib.report.declared``), so both see the
same checked file. Layout::

    scale: full            # injected into every chapter as `scale`
    defaults: {device: null}  # injected into every chapter whose parameters cell declares the name
    chapters:
      04_model: {dataset_episodes: 1000, epochs: 100}
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from cswm_lib.errors import CswmError


def load_params(path: Path) -> dict[str, Any]:
    """Read and check a parameter file (see the module docstring for its layout)."""
    if path.is_dir():
        raise CswmError(f"parameter file {path} is a folder; give a file such as book/params/cpu.yaml")
    if not path.is_file():
        raise CswmError(f"parameter file not found: {path}")
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise CswmError(f"parameter file {path} is not a text file (not UTF-8)") from None
    except yaml.YAMLError as err:
        raise CswmError(f"parameter file {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if spec is None:  # an empty (or comments-only) file would silently run every chapter at its defaults
        raise CswmError(f"parameter file {path} is empty: expected keys scale/defaults/chapters")
    if not isinstance(spec, dict):
        raise CswmError(f"parameter file {path} must hold a mapping (scale/defaults/chapters), "
                        f"got a {type(spec).__name__}")
    if not isinstance(spec.get("defaults") or {}, dict):
        raise CswmError(f"parameter file {path}: 'defaults' must map names to values, "
                        f"got {type(spec['defaults']).__name__}")
    chapters = spec.get("chapters") or {}
    for name, own in (chapters.items() if isinstance(chapters, dict) else []):
        if own is not None and not isinstance(own, dict):
            raise CswmError(f"parameter file {path}: chapter {name!r} must map parameter names to values, "
                            f"got {own!r}")
    unknown = set(spec) - {"scale", "defaults", "chapters"}
    if unknown or not isinstance(spec.get("chapters", {}), dict):
        raise CswmError(f"parameter file {path}: expected keys scale/defaults/chapters, got {sorted(spec)}")
    if "scale" in spec:
        scale_name(spec["scale"], f"parameter file {path}")
    return spec


_SCALE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def scale_name(scale: Any, where: str) -> str:
    """``scale`` if it is a plain name (letters, digits, ``_.-``; it becomes a folder name under
    ``runs/`` and ``book/results/``), else a one-line error: ``5`` or ``../../x`` are refused."""
    if not isinstance(scale, str) or not _SCALE.fullmatch(scale) or scale.startswith(".."):
        raise CswmError(f"{where}: 'scale' must be a plain name such as cpu or full (letters, digits, "
                        f"_ . -), got {scale!r}")
    return scale
