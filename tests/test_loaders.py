"""Training batches: exact frames, coverage of every transition, reproducible shuffling."""

import torch
from tiny_worlds import tiny_episodes

from cswm_lib.data.episodes import to_float
from cswm_lib.data.loaders import TransitionBatches


def test_batches_cover_every_transition_once_with_matching_frames():
    eps = tiny_episodes(E=5, T=7)
    tb = TransitionBatches(eps, batch_size=8)
    seen = []
    for b in tb.epoch(torch.Generator().manual_seed(0)):
        assert b.obs.dtype == torch.float32 and b.obs.shape[1:] == (3, 50, 50)
        torch.testing.assert_close(b.obs, to_float(eps.frames[b.episode, b.step]))
        torch.testing.assert_close(b.next_obs, to_float(eps.frames[b.episode, b.step + 1]))
        assert torch.equal(b.action, torch.from_numpy(eps.actions)[b.episode, b.step])
        seen += (b.episode * 7 + b.step).tolist()
    assert sorted(seen) == list(range(35)) and len(tb) == 5  # 35 = 4 x 8 + 3 (last batch kept)


def test_shuffle_is_seeded_and_frames_are_not_copied():
    eps = tiny_episodes(E=4, T=5)
    tb = TransitionBatches(eps, batch_size=6)
    a = [b.step for b in tb.epoch(torch.Generator().manual_seed(3))]
    b = [b.step for b in tb.epoch(torch.Generator().manual_seed(3))]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert tb.frames.data_ptr() == eps.frames.__array_interface__["data"][0]
    assert tb.obs(torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 3, dtype=torch.long)).shape == (
        2,
        3,
        3,
        50,
        50,
    )


def test_episodes_repr_is_one_short_line_and_summary_is_a_table():
    import numpy as np

    from cswm_lib.data.episodes import Episodes

    attrs = {"env_id": "ShapesTrain-v0", "seed": np.int64(3), "source": "/very/long/path/x.h5",
             "notes": "x" * 200}
    ep = Episodes(np.zeros((4, 6, 3, 5, 5), np.uint8), np.zeros((4, 5), np.int64),
                  np.zeros((4, 6, 10), np.int64), attrs)
    text = repr(ep)
    assert "\n" not in text and len(text) <= 88, text
    assert "E=4" in text and "T=5" in text and "ShapesTrain-v0" in text
    assert "/very" not in text and "xxxx" not in text
    table = ep.summary()._repr_markdown_().splitlines()
    assert table[0] == "| property | value |"
    rows = dict(line.strip("| ").split(" | ") for line in table[2:])
    assert rows["episodes E"] == "4" and rows["transitions"] == "20"
    assert rows["env_id"] == "ShapesTrain-v0" and rows["seed"] == "3"
    assert "source" not in rows and "notes" not in rows  # paths and long values are left out
    assert len(rows) <= 12
    assert "episodes E" in str(ep.summary())
