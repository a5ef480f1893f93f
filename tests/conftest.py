"""Test-suite set-up: every chapter of the book runs under nbval.

nbval collects only ``.ipynb`` files, while our chapters are jupytext ``.py`` files. When pytest
meets ``tests/chapters.nbval`` and nbval is enabled (``--nbval`` or ``--nbval-lax``), the collector
below converts each chapter listed in ``_toc.yml`` to ``_build/nbval/<chapter>.ipynb`` and hands
it to nbval, so a chapter that stops running fails the test-suite.
"""

from __future__ import annotations

import pytest

from cswm_lib.book import to_notebook, toc_chapters
from cswm_lib.utils import project_root


class BookChapters(pytest.File):
    """Collects one nbval notebook per chapter in ``_toc.yml``."""

    def collect(self):
        from nbval.plugin import IPyNbFile

        out = project_root() / "_build" / "nbval"
        for chapter in toc_chapters():
            if chapter.suffix != ".py":  # plain pages (intro, API reference) have no code
                continue
            yield IPyNbFile.from_parent(self, path=to_notebook(chapter, out / f"{chapter.stem}.ipynb"))


def pytest_collect_file(file_path, parent):
    option = parent.config.option
    if file_path.name == "chapters.nbval" and (option.nbval or option.nbval_lax):
        return BookChapters.from_parent(parent, path=file_path)
    return None
