"""Fixtures of the bad-input battery."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_worlds import tiny_episodes

from .common import _train


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny trained run (the battery's one training configuration, ``common._train``)."""
    return _train(tmp_path_factory.mktemp("ckpt"), tiny_episodes(E=2, T=4), dataset="tiny.h5")
