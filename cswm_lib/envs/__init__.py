"""The paper's worlds as gymnasium ids, registered on ``import cswm_lib`` (this module does it).

Block pushing (``cswm_lib.envs.block_pushing``): ``{Shapes,Cubes}[Immovable]{Train,Eval}-v0``
(Train = 100-step episodes, Eval = 10-step). Atari (``cswm_lib.envs.atari``):
``PongDeterministic-v4``, ``SpaceInvadersDeterministic-v4``.
"""

from __future__ import annotations

import gymnasium as gym

from cswm_lib.envs.atari import ATARI_IDS, register_atari
from cswm_lib.errors import CswmError

BLOCK_PUSHING_IDS = tuple(
    f"{render}{imm}{split}-v0"
    for render in ("Shapes", "Cubes")
    for imm in ("", "Immovable")
    for split in ("Train", "Eval")
)
ENV_IDS = BLOCK_PUSHING_IDS + ATARI_IDS


def register_block_pushing() -> None:
    """Register the eight block-pushing ids (idempotent)."""
    for env_id in BLOCK_PUSHING_IDS:
        if env_id in gym.registry:
            continue
        gym.register(
            id=env_id,
            entry_point="cswm_lib.envs.block_pushing:BlockPushing",
            kwargs=dict(render_type="cubes" if env_id.startswith("Cubes") else "shapes",
                        immovable="Immovable" in env_id),
            max_episode_steps=100 if "Train" in env_id else 10,
        )


def check_env_id(env_id: str) -> str:
    """Return ``env_id`` if it is one of ours, else raise a one-line :class:`CswmError`."""
    if env_id not in ENV_IDS:
        raise CswmError(f"unknown env id {env_id!r}: known ids are {', '.join(ENV_IDS)}")
    return env_id


def make(env_id: str, **kwargs) -> gym.Env:
    """``gym.make`` for our ids, with a one-line error for an unknown id."""
    return gym.make(check_env_id(env_id), **kwargs)


register_block_pushing()
register_atari()

__all__ = ["ATARI_IDS", "BLOCK_PUSHING_IDS", "ENV_IDS", "check_env_id", "make"]
