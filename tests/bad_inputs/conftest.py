"""Fixtures of the bad-input battery."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_worlds import tiny_episodes


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    from cswm_lib.train import TrainConfig, train

    folder = tmp_path_factory.mktemp("ckpt")
    cfg = TrainConfig(
        dataset="tiny.h5",
        save_folder=str(folder),
        name="run",
        hidden_dim=16,
        num_objects=2,
        batch_size=8,
        epochs=1,
        progress=False,
        device="cpu",
    )
    return train(cfg, tiny_episodes(E=2, T=4))
