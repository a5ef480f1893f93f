"""A3C agents and policy-driven Atari datasets (Section 4.3 of Biza et al.).

- :mod:`cswm_lib.a3c.model`: the baby-a3c conv+GRU policy for Atari, an MLP policy for CartPole.
- :mod:`cswm_lib.a3c.optim`: :class:`SharedAdam`, Adam moments in shared memory.
- :mod:`cswm_lib.a3c.agent`: environments, the policy's input, policies, checkpoints, evaluation.
- :mod:`cswm_lib.a3c.train`: multi-process training with checkpoints, resume and a training curve
  (``python -m cswm_lib.a3c.train``), read top to bottom: config, loss, actor, train.
- :mod:`cswm_lib.a3c.collect`: burn-in with the agent, then random-action episodes, written in the
  book's HDF5 format (``python -m cswm_lib.a3c.collect``).
- :mod:`cswm_lib.a3c.standin`: RAM-reading stand-in burn-in policies (``track_ball`` for Pong) for
  scales whose agents play no better than random, and their returns against random play.

The package imports no command-line module (``train``, ``collect``), so ``python -m`` runs them
without a second copy; import their names from those modules.
"""

from cswm_lib.a3c.agent import (
    evaluate_policy,
    load_checkpoint,
    load_policy,
    make_env,
    make_policy,
    read_returns,
)
from cswm_lib.a3c.model import AtariPolicy, MLPPolicy, atari_agent_obs
from cswm_lib.a3c.optim import SharedAdam

__all__ = [
    "AtariPolicy", "MLPPolicy", "SharedAdam", "atari_agent_obs", "evaluate_policy", "load_checkpoint",
    "load_policy", "make_env", "make_policy", "read_returns",
]
