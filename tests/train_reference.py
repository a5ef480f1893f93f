"""The bit-identity reference of training (issue 21 item 3): 20 optimizer updates on a tiny world.

``python tests/train_reference.py`` trains the reference runs with the code on the path and writes
``tests/data/train_reference.json``: a sha256 of every saved tensor (model.pt, last.pt, the model
and optimizer of state.pt) and the log and curve lines, less wall-clock fields. It was written once
by commit cac58f3 (the loop before its rewrite); ``test_train.py`` retrains and compares, so a
refactor of the loop that changes one bit of the weights or one digit of a log line fails.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from tiny_worlds import tiny_episodes  # noqa: E402

REFERENCE = Path(__file__).parent / "data" / "train_reference.json"
#: two runs: the in-batch baseline with a learning curve, and dataset negatives (2 per positive).
#: 18 transitions in batches of 6 = 3 updates per epoch: 20 updates end 2 updates into epoch 7.
RUNS = {
    "baseline_curve": dict(strategy="baseline", eval_every=5, eval_episodes=2),
    "mixed": dict(strategy="mixed", num_negatives=2, time_aligned=False, beta=0.5, learning_rate=0.02,
                  eval_every=7, eval_episodes=1),
}
COMMON = dict(hidden_dim=32, embedding_dim=2, num_objects=2, action_dim=4, batch_size=6,
              learning_rate=1e-3, num_updates=20, seed=7, progress=False, device="cpu")
WALL_CLOCK = ("seconds", "train_seconds")


def tensor_digest(obj: object) -> str:
    """sha256 over every tensor in ``obj`` (nested dicts/lists), in key order, with dtype and shape."""
    h = hashlib.sha256()

    def walk(x: object, key: str) -> None:
        if isinstance(x, torch.Tensor):
            h.update(f"{key}:{x.dtype}:{list(x.shape)}".encode())
            h.update(x.detach().cpu().contiguous().numpy().tobytes())
        elif isinstance(x, dict):
            for k in sorted(x, key=str):
                walk(x[k], f"{key}/{k}")
        elif isinstance(x, (list, tuple)):
            for i, v in enumerate(x):
                walk(v, f"{key}/{i}")
        else:
            h.update(f"{key}={x!r}".encode())

    walk(obj, "")
    return h.hexdigest()


def _lines(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [{k: v for k, v in r.items() if k not in WALL_CLOCK} for r in rows]


def train_reference(tmp: Path, strategy_key: str = "strategy") -> dict:
    """Train the reference runs under ``tmp``; return what the reference file records."""
    from cswm_lib.train import TrainConfig, train

    eps, eval_eps = tiny_episodes(E=3, T=6, seed=3), tiny_episodes(E=2, T=6, seed=4)
    out: dict = {"torch": torch.__version__}
    for name, kw in RUNS.items():
        kw = {(strategy_key if k == "strategy" else k): v for k, v in kw.items()}
        cfg = TrainConfig(**{**COMMON, **kw, "name": name, "save_folder": str(tmp)})
        folder = train(cfg, eps, eval_eps if kw.get("eval_every") else None)
        state = torch.load(folder / "state.pt", weights_only=True)
        run = {
            "model.pt": tensor_digest(torch.load(folder / "model.pt", weights_only=True)),
            "last.pt": tensor_digest(torch.load(folder / "last.pt", weights_only=True)),
            "state.model": tensor_digest(state["model"]),
            "state.optimizer": tensor_digest(state["optimizer"]),
            "state": {k: state[k] for k in ("epoch", "updates", "best_loss")},
            "log": _lines(folder / "log.jsonl"),
        }
        if (folder / "curve.jsonl").exists():
            run["curve"] = _lines(folder / "curve.jsonl")
        out[name] = run
    return out


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        key = sys.argv[1] if len(sys.argv) > 1 else "strategy"
        REFERENCE.write_text(json.dumps(train_reference(Path(tmp), key), indent=1) + "\n")
    print(f"wrote {REFERENCE}")
