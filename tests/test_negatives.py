"""Each negative strategy's defining property, flag mapping, reproducibility and errors."""

import pytest
import torch

from cswm_lib.errors import CswmError
from cswm_lib.negatives import coincidence, sample_negatives, strategy_from_flags

E, T, B, N = 7, 9, 500, 3


def draw(strategy, seed=0, **kw):
    g = torch.Generator().manual_seed(seed)
    ep, st = torch.randint(E, (B,), generator=g), torch.randint(T, (B,), generator=g)
    return ep, st, sample_negatives(strategy, ep, st, E, T, g, num_negatives=N, **kw)


def in_range(neg):
    return (
        neg.episode.shape == (B, N)
        and neg.step.shape == (B, N)
        and (0 <= neg.episode).all()
        and (neg.episode < E).all()
        and (0 <= neg.step).all()
        and (neg.step < T).all()
    )


def test_baseline_is_a_permutation_of_the_batch():
    ep, st, neg = draw("baseline")
    assert in_range(neg)
    for n in range(N):
        assert sorted(neg.batch_index[:, n].tolist()) == list(range(B))
    assert torch.equal(neg.episode, ep[neg.batch_index]) and torch.equal(neg.step, st[neg.batch_index])


def test_time_aligned_shares_t():
    ep, st, neg = draw("time_aligned")
    assert in_range(neg) and neg.batch_index is None
    assert torch.equal(neg.step, st[:, None].expand(B, N))
    assert len(neg.episode.unique()) == E  # episodes are random, including e itself


def test_episodic_shares_episode_and_differs_in_t():
    ep, st, neg = draw("episodic")
    assert in_range(neg)
    assert torch.equal(neg.episode, ep[:, None].expand(B, N))
    assert (neg.step != st[:, None]).all()
    assert len(neg.step.unique()) == T


def test_out_of_episode_random_episode_and_step():
    ep, st, neg = draw("out_of_episode")
    assert in_range(neg)
    same_t = (neg.step == st[:, None]).float().mean().item()
    assert same_t < 0.3  # ~1/T, not time-aligned


@pytest.mark.parametrize("time_aligned", [True, False])
def test_mixed_beta(time_aligned):
    ep, st, neg = draw("mixed", beta=0.3, time_aligned=time_aligned)
    assert in_range(neg)
    same_ep = neg.episode == ep[:, None]
    episodic = same_ep & (neg.step != st[:, None])
    frac = episodic.float().mean().item()
    assert 0.25 < frac < 0.45  # ~beta, plus out-of-episode draws that land on e at another step
    if time_aligned:  # every non-episodic negative keeps t
        assert ((neg.step == st[:, None]) | episodic).all()
    assert torch.equal(draw("mixed", beta=0.3, time_aligned=time_aligned)[2].step, neg.step)  # seeded


def test_beta_extremes():
    ep, st, neg = draw("mixed", beta=1.0)
    assert torch.equal(neg.episode, ep[:, None].expand(B, N)) and (neg.step != st[:, None]).all()
    ep, st, neg = draw("mixed", beta=0.0)
    assert torch.equal(neg.step, st[:, None].expand(B, N))


def test_original_flag_mapping():
    assert strategy_from_flags(False)[0] == "baseline"
    assert strategy_from_flags(True, 0.0) == ("time_aligned", 0.0, True)
    assert strategy_from_flags(True, 0.5, True) == ("mixed", 0.5, False)
    assert strategy_from_flags(True) == ("mixed", 0.5, True)
    assert strategy_from_flags(True, 1.0)[0] == "episodic"
    assert strategy_from_flags(True, 0.0, True)[0] == "out_of_episode"


def test_errors():
    ep = torch.zeros(3, dtype=torch.long)
    with pytest.raises(CswmError, match="unknown negative strategy 'random'"):
        sample_negatives("random", ep, ep, 2, 5)
    with pytest.raises(CswmError, match=">= 2 steps"):
        sample_negatives("episodic", ep, ep, 2, 1)
    with pytest.raises(CswmError, match="in-ep-prob"):
        strategy_from_flags(True, 1.5)


def test_coincidence_is_the_share_of_negatives_an_ideal_partial_encoder_cannot_tell_apart():
    """Ids: column 0 = the episode (an object that never moves), column 1 = the step (the clock)."""
    e_ids = torch.arange(E)[:, None, None].expand(E, T + 1, 1)
    t_ids = torch.arange(T + 1)[None, :, None].expand(E, T + 1, 1)
    ids = torch.cat([e_ids, t_ids], -1)
    g = torch.Generator().manual_seed(0)

    def share(strategy, objects, **kw):
        return coincidence(strategy, ids, objects, num_draws=4000, batch_size=B, generator=g, **kw)

    assert share("episodic", slice(0, 1)) == 1.0  # the same episode every time
    assert share("episodic", slice(1, 2)) == 0.0  # never the same step
    assert share("time_aligned", slice(1, 2)) == 1.0
    assert share("mixed", slice(0, 2), beta=1.0) == 0.0  # episodic only: never the same state
    assert abs(share("out_of_episode", slice(0, 1)) - 1 / E) < 0.02  # the positive's episode by chance
    assert abs(share("baseline", slice(1, 2)) - 1 / T) < 0.02  # another batch member's step
    a = coincidence("mixed", ids, slice(0, 1), 1000, 100, torch.Generator().manual_seed(5), beta=0.5)
    b = coincidence("mixed", ids, slice(0, 1), 1000, 100, torch.Generator().manual_seed(5), beta=0.5)
    assert a == b and 0.4 < a < 0.7  # seeded; about beta + (1 - beta) / E
