"""A3C agents and policy-driven Atari datasets (Section 4.3 of Biza et al.).

- :mod:`cswm_lib.a3c.model`: the baby-a3c conv+GRU policy for Atari, an MLP policy for CartPole.
- :mod:`cswm_lib.a3c.optim`: :class:`SharedAdam`, Adam moments in shared memory.
- :mod:`cswm_lib.a3c.train`: multi-process training with checkpoints, resume and a training curve
  (``python -m cswm_lib.a3c.train``).
- :mod:`cswm_lib.a3c.collect`: burn-in with the agent, then random-action episodes, written in the
  book's HDF5 format (``python -m cswm_lib.a3c.collect``).

Collection lives in :mod:`cswm_lib.a3c.collect` (not re-exported: its ``collect`` function would
hide the module of the same name).
"""

import warnings

# ``python -m cswm_lib.a3c.train`` runs a module this package has already imported; runpy warns about
# that. Harmless here: the CLI entry points hand over to the package's copy of their module.
warnings.filterwarnings("ignore", message=r".*found in sys\.modules after import of package 'cswm_lib\.a3c'",
                        category=RuntimeWarning)

from cswm_lib.a3c.model import AtariPolicy, MLPPolicy, atari_agent_obs  # noqa: E402
from cswm_lib.a3c.optim import SharedAdam  # noqa: E402
from cswm_lib.a3c.train import (  # noqa: E402
    A3CConfig,
    a3c_loss,
    evaluate_policy,
    load_checkpoint,
    load_policy,
    make_env,
    make_policy,
    plot_curve,
    read_curve,
    train,
)

__all__ = [
    "A3CConfig", "AtariPolicy", "MLPPolicy", "SharedAdam", "a3c_loss", "atari_agent_obs", "evaluate_policy",
    "load_checkpoint", "load_policy", "make_env", "make_policy", "plot_curve", "read_curve", "train",
]
