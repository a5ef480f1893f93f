"""Adam whose moments live in shared memory, so every A3C worker process updates the same ones."""

from __future__ import annotations

from collections.abc import Iterable

import torch


class SharedAdam(torch.optim.Adam):
    """``torch.optim.Adam`` with its state (step count, first and second moments) created up front
    and moved to shared memory.

    Worker processes receive the optimizer (pickled by ``torch.multiprocessing``, which passes
    shared tensors by handle) and call the ordinary ``Adam.step``: since the state already exists,
    Adam updates these shared tensors in place, so all workers accumulate one set of moments.

    baby-a3c meant to do the same: its ``SharedAdam`` pre-allocated shared moment tensors and a shared
    step counter, plus a ``step`` method that advanced that counter. By an indentation quirk the
    method sat inside ``__init__``, so it was never installed: the stock ``Adam.step`` ran instead. It
    did update the shared moments in place, but the step count it used for the bias correction was
    each process's private integer and the shared counter never moved. Here the step count is a
    shared tensor as well, so all state is common to the workers. (The practical effect of the quirk
    is small: bias correction matters only in the first few thousand updates.)
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float = 1e-4, betas=(0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0):
        # foreach=False: the per-tensor path updates each state tensor in place, which is what
        # sharing needs; the models here are small, so the fused/foreach speed-up does not matter.
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=False)
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p] = {
                    "step": torch.zeros((), dtype=torch.float32),
                    "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                    "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
                }
        self.share_memory()

    def share_memory(self) -> SharedAdam:
        """Move every state tensor to shared memory (again after ``load_state_dict``)."""
        for state in self.state.values():
            for key, value in state.items():
                if torch.is_tensor(value):
                    state[key] = value.share_memory_()
        return self
