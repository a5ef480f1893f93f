"""Scoring world models: a model and a path dataset -> Hits@k and MRR in one of the named evaluation
settings of :data:`SETTINGS` (the logic of the four published evaluation scripts), and the CLI
``python -m cswm_lib.evaluate`` (``cswm-eval``).

Two layers over :mod:`cswm_lib.ranking` (pure ranking of embeddings):

1. :func:`embed_paths`: a model and a path dataset -> predictions, targets (and all states): the
   project's one embedding function (experiments, analysis and the explorer call it too);
2. :func:`evaluate` (one call per setting) and :func:`evaluate_settings` (many settings and roll-out
   lengths from one embedding pass, with their controls).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cswm_lib.data.episodes import Episodes, to_float
from cswm_lib.errors import CswmError
from cswm_lib.model import check_compatible
from cswm_lib.ranking import AVERAGING, DEDUP, nearest_start, rank_global, rank_local, scores
from cswm_lib.utils import eval_mode

#: The named evaluation settings (``setting=`` of :func:`evaluate`, ``--setting`` of the command line,
#: ``settings`` of an experiment). A name says what it includes: the ``candidates`` a prediction is
#: ranked among (``global``: every query's prediction; ``batched``: those of the query's batch of
#: ``batch_size``; ``local``: the T + 1 states of the query's own episode; ``local_later``: the T states
#: of the episode after its start state o_0 -- the same candidates for a model and its no-transition
#: control, which then predicts "the nearest other state", so that control is not 0 by construction)
#: and the de-duplication by ground-truth state ids (``_dedup``: the published repair, a top candidate
#: with the target's id counts as a hit; ``_dedup_correct``: every candidate with the target's id is a
#: true match). Without a suffix nothing is de-duplicated.
SETTINGS: dict[str, dict[str, Any]] = {
    "global": dict(candidates="global"),  # eval.py
    "global_dedup": dict(candidates="global", dedup="published"),  # eval_ids.py --dedup
    "global_dedup_correct": dict(candidates="global", dedup="correct"),
    "batched": dict(candidates="batched", order="original"),  # eval_ids_b.py
    # eval_ids_b.py --dedup: also its averaging (mean of running means), its dropped last batch and
    # its batches of the file's episodes in h5py's order (see ORDERS)
    "batched_dedup": dict(candidates="batched", dedup="published", averaging="published", order="original"),
    "local": dict(candidates="local"),
    # eval_ids_b_inep.py --dedup
    "local_dedup": dict(candidates="local", dedup="published", order="original"),
    "local_dedup_correct": dict(candidates="local", dedup="correct"),
    "local_later": dict(candidates="local_later"),
    "local_later_dedup": dict(candidates="local_later", dedup="published"),
}
#: Suffix of a setting scored with the no-transition predictor ``p = z_0`` (same encoder, no dynamics).
NO_TRANSITION = "_no_transition"
#: The name of :func:`cswm_lib.ranking.nearest_start` in result rows (local settings only).
NEAREST_START = "nearest_start"
#: The episode order of the queries -- ``"original"``: on an original-layout file, the order the published
#: scripts read it in (``Episodes.original_order``, h5py's "0", "1", "10", "100", ...), which
#: decides who shares a batch of 100 and which incomplete last batch is dropped; ``"numeric"`` --
#: episodes 0, 1, 2, ... (the order our loader and every reader uses). Files in our format have
#: one order only. Scores that neither batch nor drop episodes are the same in both.
ORDERS = ("numeric", "original")


@torch.no_grad()
def embed_paths(
    model: nn.Module,
    episodes: Episodes,
    num_steps: int | Sequence[int] = 1,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    all_states: bool = False,
    num_episodes: int | None = None,
    no_transition: bool = False,
    masks: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Encode and roll out the first ``num_steps`` steps of every episode (one query per episode).

    ``z_0 = encode(o_0)``, ``p = z_0`` advanced ``L`` times by ``model.predict(p, a_t)`` (skipped
    with ``no_transition``), ``target = encode(o_L)``. Runs in eval mode without gradients, in
    batches of ``batch_size`` episodes, and restores the model's train/eval mode afterwards.

    Returns a dict of CPU tensors: ``predictions [N, K, D]``, ``targets [N, K, D]``,
    ``target_ids [N, S]`` (or None), and with ``all_states``: ``states [N, T+1, K, D]`` (every frame
    of each episode encoded) and ``state_ids [N, T+1, S]``; with ``masks`` (needs ``all_states``)
    also the object masks ``masks`` uint8 ``[N, T+1, K, h, w]`` (mask * 255). ``N = num_episodes``
    (default all). With a list of roll-out lengths, ``num_steps=[1, 5, 10]``, every frame is encoded
    once and the result is ``{L: dict}``, one dict as above per ``L`` (sharing ``states``).
    """
    from tqdm.auto import tqdm

    T = episodes.episode_length
    steps = [num_steps] if isinstance(num_steps, int) else sorted(set(num_steps))
    if not steps or not all(1 <= L <= T for L in steps):
        raise CswmError(f"num_steps must be in 1..{T} (episodes have {T} steps), got {num_steps}")
    if masks and not all_states:
        raise CswmError("masks=True needs all_states=True (the masks of every frame)")
    n = episodes.num_episodes if num_episodes is None else min(num_episodes, episodes.num_episodes)
    if device is not None:
        model = model.to(device)
    dev = next(model.parameters()).device
    preds: dict[int, list[torch.Tensor]] = {L: [] for L in steps}
    targets: dict[int, list[torch.Tensor]] = {L: [] for L in steps}
    states, mask_list = [], []
    with eval_mode(model):
        for s in tqdm(range(0, n, batch_size), desc="encode", disable=not progress, leave=False):
            sl = slice(s, min(n, s + batch_size))
            if all_states:
                fr = torch.from_numpy(episodes.frames[sl])  # [b, T+1, C, H, W] uint8
                x = to_float(fr.flatten(0, 1)).to(dev)
                if masks:
                    m = model.masks(x)
                    z = model.obj_encoder(m)
                    m8 = m.mul(255).round_().to(torch.uint8)
                    mask_list.append(m8.view(fr.shape[0], T + 1, *m.shape[1:]).cpu())
                else:
                    z = model.encode(x)
                z = z.view(fr.shape[0], T + 1, *z.shape[1:])
                states.append(z.cpu())
                z0, zl = z[:, 0], {L: z[:, L] for L in steps}
            else:
                fr = episodes.frames[sl, [0, *steps]]  # only the frames needed, one read per chunk
                z0 = model.encode(to_float(fr[:, 0]).to(dev))
                zl = {L: model.encode(to_float(fr[:, i]).to(dev)) for i, L in enumerate(steps, 1)}
            pred = z0
            acts = torch.from_numpy(episodes.actions[sl, : steps[-1]]).to(dev)
            for i in range(1, steps[-1] + 1):
                if not no_transition:
                    pred = model.predict(pred, acts[:, i - 1])
                if i in preds:
                    preds[i].append(pred.cpu())
                    targets[i].append(zl[i].cpu())
    ids = episodes.state_ids
    shared: dict[str, Any] = {}
    if all_states:
        shared["states"] = torch.cat(states)
        shared["state_ids"] = None if ids is None else torch.from_numpy(ids[:n])
    if masks:
        shared["masks"] = torch.cat(mask_list)
    out = {
        L: {
            "predictions": torch.cat(preds[L]),
            "targets": torch.cat(targets[L]),
            "target_ids": None if ids is None else torch.from_numpy(ids[:n, L]),
            **shared,
        }
        for L in steps
    }
    return out[num_steps] if isinstance(num_steps, int) else out


def evaluate(
    model: nn.Module,
    episodes: Episodes,
    num_steps: int = 1,
    setting: str = "global",
    dedup: str | None = None,
    batch_size: int = 100,
    averaging: str | None = None,
    ks: Sequence[int] = (1, 5, 10),
    drop_last: bool | None = None,
    no_transition: bool = False,
    device: str | torch.device | None = None,
    encode_batch_size: int = 256,
    return_ranks: bool = False,
    progress: bool = True,
    embeddings: dict[str, Any] | None = None,
    order: str | None = None,
) -> dict[str, Any]:
    """Score ``model`` on a path dataset: Hits@k for each k and MRR.

    Args:
        model: has ``encode(obs [B, C, H, W]) -> [B, K, D]`` and ``predict(z, action [B]) -> [B, K, D]``.
        episodes: eval episodes (one query per episode: its first ``num_steps`` steps).
        setting: a name of :data:`SETTINGS`: ``"global"`` (rank among all queries' predictions,
            ``eval.py``), ``"global_dedup"`` (``eval_ids.py --dedup``), ``"global_dedup_correct"``,
            ``"batched"`` (within disjoint batches of ``batch_size``), ``"batched_dedup"``
            (``eval_ids_b.py --dedup``: published de-duplication and averaging), ``"local"`` (among the
            T + 1 states of the query's own episode), ``"local_dedup"`` (``eval_ids_b_inep.py
            --dedup``), ``"local_dedup_correct"``, ``"local_later"`` / ``"local_later_dedup"`` (among
            the episode's states after o_0).
        dedup: ``None`` | ``"published"`` | ``"correct"`` (see :func:`cswm_lib.ranking.rank_global`);
            combines with a setting that names no de-duplication (``batched``, ``local``).
        averaging: ``"mean"`` (plain mean over queries; the default unless the setting says otherwise)
            or ``"published"`` (the scripts' averaging, see :func:`cswm_lib.ranking.scores`).
        drop_last: use only ``batch_size * floor(E / batch_size)`` episodes, as every published script
            does (it skips the incomplete last batch of 100). Default: True for ``batched`` candidates
            or ``averaging="published"``; otherwise every episode is a query.
        embeddings: output of :func:`embed_paths` to reuse (skips encoding; must cover the setting,
            all episodes when the original order applies).
        order: ``"original"`` or ``"numeric"`` (see :data:`ORDERS`). Default: the setting's
            (``"original"`` for the settings of published scripts that batch), else ``"numeric"``.

    Returns:
        A dict with ``Hits@k`` for each k, ``MRR``, ``N`` (queries), ``num_candidates``,
        ``num_duplicate_targets`` and the settings; with ``return_ranks`` also ``ranks`` and
        ``episode_index`` (the episode each rank belongs to, in evaluation order).
    """
    if setting not in SETTINGS:
        raise CswmError(f"setting must be one of {', '.join(SETTINGS)}, got {setting!r}")
    spec = SETTINGS[setting]
    for key, given in (("dedup", dedup), ("averaging", averaging)):
        if key in spec and given not in (None, spec[key]):
            raise CswmError(f"setting={setting!r} implies {key}={spec[key]!r}, but {key}={given!r} was given")
    candidates = spec["candidates"]
    local = candidates.startswith("local")
    dedup = spec.get("dedup", dedup)
    averaging = spec.get("averaging", averaging or "mean")
    order = order or spec.get("order", "numeric")
    if order not in ORDERS:
        raise CswmError(f"order must be one of {ORDERS}, got {order!r}")
    if dedup not in DEDUP:
        raise CswmError(f"dedup must be one of {DEDUP}, got {dedup!r}")
    if averaging not in AVERAGING:
        raise CswmError(f"averaging must be one of {AVERAGING}, got {averaging!r}")
    where = episodes.attrs.get("path", "the eval set")
    if dedup is not None and episodes.state_ids is None:
        raise CswmError(f"dedup={dedup!r} needs ground-truth state ids but {where} has none "
                        "(generate it with save_state_ids=True)")
    T, E = episodes.episode_length, episodes.num_episodes
    _check_ints(num_steps=num_steps, batch_size=batch_size, ks=ks)
    if not 1 <= num_steps <= T:
        raise CswmError(f"num_steps must be in 1..{T} ({where} has {T} steps per episode), got {num_steps}")
    cfg = getattr(model, "config", None)
    if cfg is not None:
        check_compatible(cfg, episodes, where)
    if drop_last is None:
        drop_last = candidates == "batched" or averaging == "published"
    n = E - E % batch_size if drop_last else E
    if n == 0:
        raise CswmError(f"{where} has {E} episodes, fewer than one batch of {batch_size}")
    cands = {"global": n, "batched": batch_size, "local": T + 1, "local_later": T}[candidates]
    for k in ks:
        if not 1 <= k <= cands:
            raise CswmError(f"Hits@{k} asked for, but {candidates} ranking has only {cands} "
                            "candidates per query")

    index = np.arange(n)  # episodes queried, in evaluation order
    if order == "original" and episodes.original_order is not None:
        index = episodes.original_order[:n]
    need = int(index.max()) + 1
    emb = embeddings
    if emb is None or (local and "states" not in emb):
        emb = embed_paths(model, episodes, num_steps, encode_batch_size, device, all_states=local,
                          num_episodes=need, no_transition=no_transition, progress=progress)
    if emb["predictions"].shape[0] < need:
        raise CswmError(f"embeddings cover {emb['predictions'].shape[0]} episodes, {need} needed")
    pick = torch.from_numpy(index)
    emb = {k: (v[pick] if isinstance(v, torch.Tensor) else v) for k, v in emb.items()}
    if local:
        first = 1 if candidates == "local_later" else 0  # local_later: o_0 is no candidate
        ids = emb.get("state_ids")
        ranking = rank_local(emb["predictions"], emb["states"][:, first:], num_steps - first,
                             None if ids is None else ids[:, first:], dedup)
        res = scores(ranking, ks, averaging, batch_size if averaging == "published" else None)
    else:
        ranking = rank_global(emb["predictions"], emb["targets"], emb["target_ids"], dedup,
                              batch_size if candidates == "batched" else None)
        res = scores(ranking, ks, averaging)
    res.update(
        setting=setting, candidates=candidates, dedup=dedup, num_steps=num_steps, N=n, num_episodes=E,
        num_candidates=cands, batch_size=batch_size if (candidates == "batched" or drop_last) else None,
        averaging=averaging, drop_last=drop_last, no_transition=no_transition, order=order,
        num_duplicate_targets=int((ranking.num_dup > 0).sum()) if episodes.state_ids is not None else None,
    )
    if return_ranks:
        res["ranks"] = ranking.effective_rank.numpy()
        res["episode_index"] = index.copy()
    return res


def _check_ints(**values: Any) -> None:
    """One-line errors for API arguments of the wrong type (``num_steps=1.5``, ``ks="15"``)."""
    for name, v in values.items():
        if name == "ks" and isinstance(v, (str, bytes)):
            raise CswmError(f"ks must be a list of whole numbers such as [1, 5, 10], got {v!r}")
        for x in (v if name == "ks" else [v]):
            if isinstance(x, bool) or not isinstance(x, (int, np.integer)):
                raise CswmError(f"{name} must be a whole number, got {x!r} ({type(x).__name__})")
            if x < 1:
                raise CswmError(f"{name} must be >= 1, got {x}")


def check_setting(setting: str) -> str:
    """The base name of ``setting`` (a name of :data:`SETTINGS`, optionally with the suffix
    :data:`NO_TRANSITION`); a one-line error for any other name."""
    base = setting.removesuffix(NO_TRANSITION)
    if base not in SETTINGS:
        raise CswmError(f"unknown evaluation setting {setting!r}: expected one of {', '.join(SETTINGS)} "
                        f"(optionally with the suffix {NO_TRANSITION})")
    return base


def evaluate_settings(
    model: nn.Module,
    episodes: Episodes,
    settings: Sequence[str],
    num_steps: Sequence[int] = (1,),
    batch_size: int = 100,
    device: str | torch.device | None = None,
    embeddings: dict[int, dict[str, Any]] | None = None,
) -> dict[tuple[str, int], dict[str, Any]]:
    """:func:`evaluate` in every setting and roll-out length, every eval frame encoded once.

    ``settings`` are names of :data:`SETTINGS`, optionally with the suffix :data:`NO_TRANSITION` (the
    no-transition predictor ``p = z_0``: the same encoder, no dynamics). ``embeddings`` (the
    ``{L: dict}`` of :func:`embed_paths` with ``all_states=True``) are reused when given; then
    their roll-out lengths are scored. Hits@k is computed for the k of 1, 5, 10 that do not exceed
    the candidates. Local settings also get :data:`NEAREST_START`, the share of predictions nearest
    the start state. Returns ``{(setting, L): scores}``, roll-out lengths in increasing order, then
    settings.
    """
    if embeddings is None:
        embeddings = embed_paths(model, episodes, list(num_steps), device=device, all_states=True,
                                 progress=False)
    T = episodes.episode_length
    out = {}
    for steps, emb in embeddings.items():
        for name in settings:
            base, control = check_setting(name), name.endswith(NO_TRANSITION)
            e = dict(emb, predictions=emb["states"][:, 0]) if control else emb
            candidates = SETTINGS[base]["candidates"]
            cands = {"global": episodes.num_episodes, "batched": batch_size,
                     "local": T + 1, "local_later": T}[candidates]
            r = evaluate(model, episodes, steps, setting=base, ks=[k for k in (1, 5, 10) if k <= cands],
                         progress=False, embeddings=e, batch_size=batch_size, no_transition=control)
            if candidates == "local":
                r[NEAREST_START] = nearest_start(e["predictions"], e["states"])
            out[name, steps] = r
    return out


def _table_row(r: dict[str, Any], ks: Sequence[int]) -> dict[str, str]:
    scores = {f"Hits@{k}": f"{100 * r[f'Hits@{k}']:.2f}" for k in ks} | {"MRR": f"{100 * r['MRR']:.2f}"}
    return {"setting": r["setting"], "dedup": str(r["dedup"] or "-"), "num_steps": str(r["num_steps"]),
            "N": str(r["N"]), "candidates": str(r["num_candidates"])} | scores


def default_json_name(args: argparse.Namespace) -> str:
    """``<checkpoint folder>_<dataset>_<setting>_<hash>.json``: the hash covers every setting that
    changes the scores (and the resolved paths), so evaluations with other settings never overwrite
    each other."""
    import hashlib
    import json

    settings = {k: v for k, v in sorted(vars(args).items()) if k not in ("json", "device", "no_progress")}
    settings["save_folder"] = str(Path(args.save_folder).resolve())
    settings["dataset"] = str(Path(args.dataset).resolve())
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return f"{Path(args.save_folder).resolve().name}_{Path(args.dataset).stem}_{args.setting}_{digest}.json"

def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    from cswm_lib.paths import is_json_of, output_file
    from cswm_lib.tables import format_table
    from cswm_lib.utils import ArgumentParser, results_dir, write_json

    ap = ArgumentParser(prog="python -m cswm_lib.evaluate", description=__doc__.split("\n")[0])
    ap.add_argument("--save-folder", required=True, help="checkpoint folder (ours or the original's)")
    ap.add_argument("--dataset", default="data/shapes_eval.h5", help="eval HDF5 file")
    ap.add_argument("--num-steps", type=int, nargs="+", default=[1], help="latent roll-out steps (1 5 10)")
    ap.add_argument("--setting", "--mode", dest="setting", choices=tuple(SETTINGS), default="global",
                    help="evaluation setting (see SETTINGS; --mode is the old name)")
    ap.add_argument("--dedup", nargs="?", const="published", default=None, choices=["published", "correct"],
                    help="de-duplicate by state ids: --dedup as eval_ids.py, --dedup correct: fixed variant")
    ap.add_argument("--batch-size", type=int, default=100, help="batch size (batched, published)")
    ap.add_argument("--averaging", choices=AVERAGING, default=None, help="default: the preset's, else mean")
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 5, 10])
    ap.add_argument("--order", choices=ORDERS, default=None,
                    help="episode order on original-layout files (default: the preset's, see ORDERS)")
    ap.add_argument("--no-transition", action="store_true", help="predict z_0 (no latent step)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    ap.add_argument("--overwrite", action="store_true",
                    help="replace a --json file that is not a scores file of this command")
    ap.add_argument("--json", default=None,
                    help="output JSON (default <results>/evaluate/<folder>_<dataset>_<setting>_<hash>.json)")
    args = ap.parse_args(argv)

    for path, what in ((args.save_folder, "checkpoint folder"), (args.dataset, "dataset")):
        if not Path(path).exists():
            raise CswmError(f"{what} {path} does not exist")
    out = Path(args.json) if args.json else results_dir() / "evaluate" / default_json_name(args)
    # checked before the evaluation, not after it: never over an input, nor over a file it did not write
    out = output_file(out, "--json", inputs=[args.save_folder, args.dataset], overwrite=args.overwrite,
                      ours=is_json_of("save_folder", "dataset", "results"), make_parents=True,
                      example="scores.json", foreign="a scores file of this command")
    from cswm_lib.checkpoint import load_model
    from cswm_lib.data.hdf5 import load_episodes
    from cswm_lib.utils import get_device

    device = get_device(args.device)
    model = load_model(args.save_folder, device=device)
    episodes = load_episodes(args.dataset, lazy=True)  # frames stay on disk: read per chunk
    episodes.attrs.setdefault("path", str(args.dataset))
    ks = sorted(set(args.ks))
    rows = []
    for steps in args.num_steps:
        r = evaluate(model, episodes, steps, setting=args.setting, dedup=args.dedup,
                     batch_size=args.batch_size, averaging=args.averaging, ks=ks,
                     no_transition=args.no_transition, order=args.order, progress=not args.no_progress)
        rows.append(r)
    print(format_table([_table_row(r, ks) for r in rows]))
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, {"save_folder": str(args.save_folder), "dataset": str(args.dataset), "results": rows})
    print(f"wrote {out}")
    return rows


if __name__ == "__main__":
    from cswm_lib.utils import cli_errors

    cli_errors(main)()
