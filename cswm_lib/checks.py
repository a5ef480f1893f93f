"""One style of checking the numbers of a config: type, range, finiteness, seeds.

Every config class calls these in its ``__post_init__``; each returns the value (as a plain Python
``int``/``float``) or raises a one-line :class:`~cswm_lib.CswmError` that names the setting::

    checks.integer(8, "--hidden-dim", 16, why="the encoder has hidden_dim // 16 channels")
    CswmError: --hidden-dim must be >= 16 (the encoder has hidden_dim // 16 channels), got 8

Types are strict: an integer setting takes an ``int`` (or a NumPy integer), never a ``bool``
and never a float such as ``1.5`` or ``2.0``; a real setting takes an ``int`` or a ``float``
(not a ``bool``) and must be finite unless ``finite=False``.

Seeds (:func:`seed`) must lie in ``[0, 2**32)``, the range every random generator we seed accepts:
NumPy's legacy ``RandomState`` takes ``[0, 2**32)``, ``np.random.default_rng`` and gymnasium's
``reset(seed=)`` take any integer >= 0, ``torch.manual_seed`` takes ``[-2**63, 2**64)``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np

from cswm_lib.errors import CswmError

#: One past the largest seed every RNG of the library accepts (seeds lie in [0, 2**32), see the
#: module docstring)
SEED_MAX = 2**32


def flag(field: str) -> str:
    """The command-line spelling of a config field: ``"hidden_dim"`` -> ``"--hidden-dim"``."""
    return "--" + field.replace("_", "-")


def _range_text(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {lo}"
    return f"{'<' if hi_open else '<='} {hi}"


def _check_range(value: float, name: str, lo: float | None, hi: float | None, lo_open: bool,
                 hi_open: bool, why: str) -> None:
    below = lo is not None and (value <= lo if lo_open else value < lo)
    above = hi is not None and (value >= hi if hi_open else value > hi)
    if below or above:
        reason = f" ({why})" if why else ""
        raise CswmError(f"{name} must be {_range_text(lo, hi, lo_open, hi_open)}{reason}, got {value!r}")


def integer(value: Any, name: str, lo: int | None = None, hi: int | None = None, *, hi_open: bool = False,
            why: str = "") -> int:
    """``value`` as an ``int`` in ``[lo, hi]`` (``[lo, hi)`` with ``hi_open``); ``name`` is shown."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise CswmError(f"{name} must be a whole number, got {value!r} ({type(value).__name__})")
    value = int(value)
    _check_range(value, name, lo, hi, False, hi_open, why)
    return value


def optional_integer(value: Any, name: str, lo: int | None = None, hi: int | None = None, *,
                     why: str = "") -> int | None:
    """:func:`integer`, or ``None``."""
    return None if value is None else integer(value, name, lo, hi, why=why)


def real(value: Any, name: str, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
         hi_open: bool = False, finite: bool = True, why: str = "") -> float:
    """``value`` as a finite ``float`` within the bounds (open bounds with ``lo_open``/``hi_open``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise CswmError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if math.isnan(value) or (finite and math.isinf(value)):
        raise CswmError(f"{name} must be a {'finite ' if finite else ''}number, got {value!r}")
    _check_range(value, name, lo, hi, lo_open, hi_open, why)
    return value


def seed(value: Any, name: str = "--seed", scale: int = 1, offset: int = 0) -> int:
    """A seed every RNG accepts: an integer in ``[0, 2**32)``; with ``scale``/``offset``, one whose
    derived seeds ``seed * scale + offset`` stay in that range too."""
    hi = (SEED_MAX - 1 - offset) // scale + 1  # exclusive
    derived = f", also for the seeds derived as seed x {scale} + up to {offset}" if scale > 1 else ""
    return integer(value, name, 0, hi, hi_open=True, why="the range every random generator accepts" + derived)


def boolean(value: Any, name: str) -> bool:
    """``True`` or ``False`` (also NumPy's); a string such as ``"no"`` is refused, not truthy."""
    if not isinstance(value, (bool, np.bool_)):
        raise CswmError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    return bool(value)


def choice(value: Any, name: str, options: Iterable[str]) -> str:
    """One of ``options``."""
    options = tuple(options)
    if value not in options:
        raise CswmError(f"unknown {name} {value!r}: expected one of {', '.join(options)}")
    return value
