"""Measurements of learned latents (cswm_lib.analysis) against brute-force loops over pairs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_worlds import tiny_episodes

from cswm_lib.analysis import beyond_hinge, energy_summary
from cswm_lib.data.episodes import Episodes, to_float
from cswm_lib.errors import CswmError
from cswm_lib.model import CSWM, ModelConfig


def small_model(hinge: float = 1.0, seed: int = 2) -> CSWM:
    """An untrained model (its states lie close together: pair energies ~1e-4 to 4e-3)."""
    torch.manual_seed(seed)
    return CSWM(ModelConfig(embedding_dim=2, hidden_dim=64, num_objects=2, hinge=hinge)).eval()


def test_beyond_hinge_counts_distinct_pairs_within_and_across_episodes():
    ep = tiny_episodes(E=4, T=5, K=2, seed=3)
    model = small_model(hinge=5e-4)
    got = beyond_hinge(model, ep, num_episodes=3)
    with torch.no_grad():  # brute force over the states o_0..o_4 of episodes 0..2
        states = [(e, t) for e in range(3) for t in range(5)]
        z = model.encode(to_float(np.stack([ep.frames[e, t] for e, t in states])))
    counts = {True: [0, 0], False: [0, 0]}  # same episode -> [beyond, distinct pairs]
    for i, (e, t) in enumerate(states):
        for j, (f, u) in enumerate(states):
            if (ep.state_ids[e, t] != ep.state_ids[f, u]).any():
                counts[e == f][1] += 1
                counts[e == f][0] += bool(model.energy(z[i], z[j]) > 5e-4)
    assert got["within_episode"] == pytest.approx(counts[True][0] / counts[True][1])
    assert got["across_episodes"] == pytest.approx(counts[False][0] / counts[False][1])
    assert 0 < got["within_episode"] < 1 and 0 < got["across_episodes"] < 1  # the hinge splits the pairs
    assert beyond_hinge(small_model(hinge=0.0), ep, 3) == {"within_episode": 1.0, "across_episodes": 1.0}
    assert beyond_hinge(small_model(hinge=1e9), ep, 3) == {"within_episode": 0.0, "across_episodes": 0.0}
    model.train()
    beyond_hinge(model, ep, 2)
    assert model.training  # computed in eval mode, the mode restored
    with pytest.raises(CswmError, match="state ids"):
        beyond_hinge(model, Episodes(ep.frames, ep.actions, None, {}), 2)


def test_energy_summary_of_a_batch():
    z = torch.tensor([[[0.0, 0.0], [0.0, 0.0]], [[1.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 3.0]]])
    action = torch.tensor([0, 5, 2])
    # energy = 0.5 / sigma^2 (sigma 0.5) * mean over the 2 slots of the squared distance: pairs
    # (0, 1), (0, 2), (1, 2) have energies 1, 9 and 10, each pair counted both ways
    for hinge, inside in ((1.0, 0.0), (1.5, 1 / 3), (9.5, 2 / 3)):
        model = small_model(hinge=hinge)
        with torch.no_grad():
            z_next = model.predict(z, action)  # a perfect prediction: positive energy 0
            got = energy_summary(model, z, z_next, action)
            off = energy_summary(model, z, z, action)["positive"]
        assert got["positive"] == 0.0 and off > 0
        assert got["pair"] == pytest.approx(20 / 3)
        assert got["inside_hinge"] == pytest.approx(inside)  # energy 1 is not inside a hinge of 1


def test_slot_paths_of_a_seed_one_dataset_lacks(monkeypatch):
    """A sweep may give one dataset fewer seeds (4.2: Space Invaders 3, Pong 5): the slots of a seed
    are drawn for the datasets that have it, and the others are left out, not a KeyError."""
    import cswm_lib.analysis as analysis

    ep = tiny_episodes(E=2, T=3, K=2, seed=1)
    monkeypatch.setattr(analysis, "load_model", lambda folder, device: small_model(seed=len(str(folder))))
    folders = {"many": {("baseline", 1): "a", ("baseline", 5): "bb"}, "few": {("baseline", 1): "c"}}
    data = {"many": (ep, ep), "few": (ep, ep)}
    assert set(analysis.slot_paths(data, folders, ["baseline"], 5)) == {("many", "baseline")}
    both = analysis.slot_paths(data, folders, ["baseline"], 1)
    assert set(both) == {("many", "baseline"), ("few", "baseline")}
    assert both["few", "baseline"].shape == (4, 2, 2)  # T + 1 states, K slots, D = 2
