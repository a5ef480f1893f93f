"""The console commands that ``pip install`` puts on the PATH (``[project.scripts]`` of
``pyproject.toml``), one per command-line entry point of the library::

    cswm-generate   = python -m cswm_lib.data.generate   (datasets)
    cswm-train      = python -m cswm_lib.train           (one C-SWM run)
    cswm-eval       = python -m cswm_lib.evaluate        (score a trained model)
    cswm-a3c        = python -m cswm_lib.a3c.train       (an A3C agent)
    cswm-collect    = python -m cswm_lib.a3c.collect     (datasets played by an agent)
    cswm-book       = python -m cswm_lib.book            (run the book's chapters)

Each reads ``sys.argv`` as its ``python -m`` twin does and returns ``None``, so the installed
wrapper exits 0 on success (a ``main`` that returns a value would make it print the value and exit
1); bad input ends in one line on stderr and exit status 2, as with ``python -m``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

#: console command -> the module whose ``main`` it runs (what ``python -m`` runs)
COMMANDS = {
    "cswm-generate": "cswm_lib.data.generate",
    "cswm-train": "cswm_lib.train",
    "cswm-eval": "cswm_lib.evaluate",
    "cswm-a3c": "cswm_lib.a3c.train",
    "cswm-collect": "cswm_lib.a3c.collect",
    "cswm-book": "cswm_lib.book",
}


def _command(command: str) -> Callable[[], None]:
    """The console command ``command``: runs the ``main`` of its module (looked up when it runs)."""

    def run() -> None:
        importlib.import_module(COMMANDS[command]).main()

    run.__name__ = run.__qualname__ = command.removeprefix("cswm-").replace("eval", "evaluate")
    run.__doc__ = f"``{command}``: ``python -m {COMMANDS[command]}``."
    return run


generate, train, evaluate, a3c, collect, book = (_command(c) for c in COMMANDS)
