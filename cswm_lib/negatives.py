"""Negative-sampling strategies (Biza, van der Pol & Kipf, 2021), drawn as whole-batch index tensors.

A positive is a transition ``(episode e, step t)``. A negative is another observation whose state
the model must keep at least ``hinge`` energy away from z_t. The strategies differ only in *which*
observation is picked:

* ``baseline`` -- the current state of a random batch member: one permutation of the batch per
  negative, so a sample can be its own negative. Original: no ``--custom-neg`` (tkipf/c-swm).
* ``time_aligned`` -- step t of a uniformly random episode (may be e itself).
  Original: ``--custom-neg --in-ep-prob 0.0``.
* ``episodic`` -- a uniformly random step t' != t of the same episode e.
  Original: ``--custom-neg --in-ep-prob 1.0``.
* ``out_of_episode`` -- a uniformly random step of a uniformly random episode (may be e).
  Original: ``--custom-neg --in-ep-prob 0.0 --disable-time-aligned``.
* ``mixed`` -- episodic with probability beta, else out-of-episode, which is time-aligned unless
  ``time_aligned=False``. Original: ``--custom-neg [--in-ep-prob beta] [--disable-time-aligned]``.

The paper's Sec. 4.1 (immovable objects) and 4.3 (A3C Atari) use ``mixed`` with beta = 0.5 and
``time_aligned=False``; Sec. 4.2 (random-action Atari) uses ``time_aligned``. Like the fork, the
"out-of-episode" episode is drawn from all episodes without excluding e (with E episodes it is e
itself with probability 1/E), and negative steps index observations ``0 .. T-1`` (the ``obs`` of a
transition, never the final ``next_obs``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from cswm_lib.errors import CswmError

#: The strategy names accepted by :func:`sample_negatives`.
STRATEGIES = ("baseline", "time_aligned", "episodic", "out_of_episode", "mixed")


class Negatives(NamedTuple):
    """Where the negatives of a batch come from, each ``[B, N]``.

    ``episode``/``step`` always name the negative observation in the dataset. For ``baseline``,
    ``batch_index`` also gives its position in the batch (so its embedding z_t can be reused
    without encoding the frame again); it is ``None`` for the dataset strategies.
    """

    episode: Tensor
    step: Tensor
    batch_index: Tensor | None


def strategy_from_flags(
    custom_neg: bool, in_ep_prob: float = 0.5, disable_time_aligned: bool = False
) -> tuple[str, float, bool]:
    """Map the fork's flags to ``(strategy, beta, time_aligned)`` (see the table above)."""
    if not custom_neg:
        return "baseline", in_ep_prob, not disable_time_aligned
    if not 0.0 <= in_ep_prob <= 1.0:
        raise CswmError(f"--in-ep-prob must be in [0, 1], got {in_ep_prob}")
    if in_ep_prob == 1.0:
        return "episodic", 1.0, not disable_time_aligned
    if in_ep_prob == 0.0:
        return ("out_of_episode" if disable_time_aligned else "time_aligned"), 0.0, not disable_time_aligned
    return "mixed", in_ep_prob, not disable_time_aligned


def sample_negatives(
    strategy: str,
    episode: Tensor,
    step: Tensor,
    num_episodes: int,
    episode_length: int,
    generator: torch.Generator | None = None,
    beta: float = 0.5,
    num_negatives: int = 1,
    time_aligned: bool = True,
) -> Negatives:
    """Draw ``num_negatives`` negatives for each positive ``(episode[b], step[b])``, ``b < B``.

    Args:
        strategy: one of :data:`STRATEGIES`.
        episode, step: int64 ``[B]`` indices of the batch's transitions (CPU tensors).
        num_episodes, episode_length: dataset size E and transitions per episode T.
        generator: torch RNG (CPU) for reproducible draws.
        beta: probability of an episodic negative (``mixed`` only).
        time_aligned: whether the out-of-episode part of ``mixed`` keeps step t.
    Returns:
        :class:`Negatives` with ``[B, N]`` tensors.
    """
    if strategy not in STRATEGIES:
        raise CswmError(f"unknown negative strategy {strategy!r}: expected one of {', '.join(STRATEGIES)}")
    if num_negatives < 1:
        raise CswmError(f"num_negatives must be >= 1, got {num_negatives}")
    B, N, E, T, g = episode.shape[0], num_negatives, num_episodes, episode_length, generator
    e, t = episode[:, None].expand(B, N), step[:, None].expand(B, N)
    if strategy == "baseline":
        idx = torch.stack([torch.randperm(B, generator=g) for _ in range(N)], 1)  # [B, N]
        return Negatives(episode[idx], step[idx], idx)

    def random_episode() -> Tensor:
        return torch.randint(E, (B, N), generator=g)

    def random_step() -> Tensor:
        return torch.randint(T, (B, N), generator=g)

    def other_step() -> Tensor:  # uniform over {0..T-1} \ {t}
        if T < 2:
            raise CswmError(f"episodic negatives need episodes of >= 2 steps, got {T}")
        s = torch.randint(T - 1, (B, N), generator=g)
        return s + (s >= t).long()

    if strategy == "time_aligned":
        return Negatives(random_episode(), t.clone(), None)
    if strategy == "episodic":
        return Negatives(e.clone(), other_step(), None)
    if strategy == "out_of_episode":
        return Negatives(random_episode(), random_step(), None)
    # mixed: draw both candidates for everyone, keep one by a beta coin (fixed RNG use per batch)
    if not 0.0 <= beta <= 1.0:
        raise CswmError(f"beta (--in-ep-prob) must be in [0, 1], got {beta}")
    in_ep = torch.rand((B, N), generator=g) < beta
    out_e, out_t = random_episode(), (t if time_aligned else random_step())
    return Negatives(torch.where(in_ep, e, out_e), torch.where(in_ep, other_step(), out_t), None)


def coincidence(
    strategy: str,
    state_ids: Tensor,
    objects: slice,
    num_draws: int,
    batch_size: int,
    generator: torch.Generator | None = None,
    **kwargs: Any,
) -> float:
    """Share of ``strategy``'s negatives whose ground-truth ids in ``objects`` equal the positive's.

    That is the loss, in units of the hinge, of an ideal encoder that sees only those objects: it
    cannot tell such a negative from the positive, and tells every other one apart. ``state_ids``
    int ``[E, T+1, S]`` (e.g. the (row, col) of every object, or the step index for a "time-only"
    encoder); positives are drawn uniformly, in batches of ``batch_size`` (so ``baseline`` permutes
    a realistic batch), until at least ``num_draws``; ``kwargs`` go to :func:`sample_negatives`.
    """
    E, T = state_ids.shape[0], state_ids.shape[1] - 1
    hits, n = 0, 0
    while n < num_draws:
        e = torch.randint(E, (batch_size,), generator=generator)
        t = torch.randint(T, (batch_size,), generator=generator)
        neg = sample_negatives(strategy, e, t, E, T, generator, **kwargs)
        a, b = state_ids[e, t, objects], state_ids[neg.episode[:, 0], neg.step[:, 0], objects]
        hits += int((a == b).all(-1).sum())
        n += batch_size
    return hits / n
