"""The embedding explorer's user interface: :class:`EmbeddingExplorer` (sliders, live re-rendering
by Agg blitting, the static pyplot figure). What it draws is built by :mod:`cswm_lib.widgets.views`."""

from __future__ import annotations

import contextlib
import io
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from cswm_lib.data.episodes import Episodes, to_float
from cswm_lib.errors import CswmError
from cswm_lib.figstyle import FONT, WIDTH
from cswm_lib.model import CSWM, check_compatible
from cswm_lib.utils import eval_mode, torch_threads
from cswm_lib.widgets.views import DIRECTIONS, ModelView, _Row, _strip, build_view, frame_rgb, slot_colour


class EmbeddingExplorer:
    """Interactive view of one model (or two side by side) on an eval set.

    Args:
        model_or_folder: a :class:`~cswm_lib.model.CSWM` or a checkpoint folder (``load_model``).
        episodes: an :class:`~cswm_lib.data.episodes.Episodes` or the path of an HDF5 dataset.
        other: a second model or folder, shown side by side (e.g. baseline vs mixed negatives).
        names: display names of the models (default: folder names, else "model" / "other").
        num_neighbours: thumbnails of nearest states per model.
        neighbours_from: "all" states but the shown one, or "other episodes" (an attribute: may be
            changed later).
        device: where folders are loaded and the precomputation runs (models passed in stay put).
        mask_budget: keep all masks in memory while they need at most this many bytes.

    Bad input (a dataset the model cannot read: channels, image size, actions) is a one-line
    :class:`~cswm_lib.CswmError`.
    """

    def __init__(
        self,
        model_or_folder: CSWM | str | Path,
        episodes: Episodes | str | Path,
        other: CSWM | str | Path | None = None,
        *,
        names: Sequence[str] | None = None,
        num_neighbours: int = 4,
        neighbours_from: str = "all",
        batch_size: int = 512,
        device: str | None = None,
        mask_budget: int = 2**28,
        figsize_per_row: tuple[float, float] = (12.0, 3.0),
        dpi: int = 90,
        progress: bool = True,
    ):
        from cswm_lib.checkpoint import load_model

        if not isinstance(episodes, Episodes):
            from cswm_lib.data.hdf5 import load_episodes

            episodes = load_episodes(episodes)
        if episodes.num_episodes < 1:
            raise CswmError("the eval set has no episodes")
        if num_neighbours < 0:
            raise CswmError(f"num_neighbours must be >= 0, got {num_neighbours}")
        sources = [model_or_folder] if other is None else [model_or_folder, other]
        if names is not None and len(names) != len(sources):
            raise CswmError(f"names has {len(names)} entries for {len(sources)} models")
        if names is None:
            fallback = ["model", "other"]
            names = [Path(s).name if isinstance(s, (str, Path)) else fallback[i]
                     for i, s in enumerate(sources)]
            if len(names) == 2 and names[0] == names[1]:
                names = [f"{names[0]} (1)", f"{names[1]} (2)"]
        if len(set(names)) != len(names) or "side by side" in names:
            raise CswmError(f"model names must be distinct and not 'side by side', got {list(names)}")
        self.episodes = episodes
        self.views: list[ModelView] = []
        for name, src in zip(names, sources, strict=True):
            model = src if isinstance(src, torch.nn.Module) else load_model(src, device)
            if not isinstance(model, CSWM):
                raise CswmError(f"{name}: expected a CSWM or a checkpoint folder, got {type(src).__name__}")
            try:
                check_compatible(model.config, episodes, episodes.attrs.get("path", "the eval set"))
            except CswmError as err:
                raise CswmError(f"{name}: {err}") from None
            self.views.append(build_view(name, model, episodes, batch_size, mask_budget, progress))
        self.num_neighbours = int(num_neighbours)
        self.neighbours_from = neighbours_from
        self.figsize_per_row, self.dpi = figsize_per_row, dpi
        self._pred_cache: OrderedDict[tuple[int, int, int], np.ndarray] = OrderedDict()
        self._holding = False
        self._episode, self._step = 0, 0
        self._shown = list(range(len(self.views)))
        self._block_pushing = "Shapes" in str(episodes.attrs.get("env_id", "")) or "Cubes" in str(
            episodes.attrs.get("env_id", "")
        )
        self._widgets: dict[str, Any] | None = None
        self._build_live()

    # -- data ---------------------------------------------------------------------------------
    @property
    def episode(self) -> int:
        return self._episode

    @property
    def step(self) -> int:
        return self._step

    @property
    def neighbours_from(self) -> str:
        """Where the nearest-state thumbnails come from, "all" states or "other episodes"."""
        return self._neighbours_from

    @neighbours_from.setter
    def neighbours_from(self, value: str) -> None:
        if value not in ("all", "other episodes"):
            raise CswmError(f"neighbours_from must be 'all' or 'other episodes', got {value!r}")
        self._neighbours_from = value
        if getattr(self, "rows", None):  # the live figure: new static title, so a new background
            for row in self.rows:
                row.nn_title.set_text(self._nn_title())
            self._background = None
            self._update()

    def _nn_title(self) -> str:
        where = "" if self.neighbours_from == "all" else "\n(other episodes)"
        return f"nearest states of the eval set{where}"

    @property
    def T(self) -> int:
        return self.episodes.episode_length

    def predictions(self, view: ModelView, episode: int, step: int) -> np.ndarray:
        """``z_t + T(z_t, a)`` for every action a: ``[A, K, D]`` (A = 1 when actions are ignored)."""
        key = (self.views.index(view), episode, step)
        if key in self._pred_cache:
            self._pred_cache.move_to_end(key)
            return self._pred_cache[key]
        model = view.model
        dev = next(model.parameters()).device
        z = torch.from_numpy(view.z[episode, step]).to(dev)
        A = view.num_actions
        with torch.no_grad(), torch_threads(1 if dev.type == "cpu" else None), eval_mode(model):
            if A == 0:
                out = model.predict(z[None], None)
            else:
                out = model.predict(z[None].expand(A, *z.shape), torch.arange(A, device=dev))
        out = out.float().cpu().numpy()
        self._pred_cache[key] = out
        if len(self._pred_cache) > 4096:
            self._pred_cache.popitem(last=False)
        return out

    def _mask_image(self, row: _Row, episode: int, step: int) -> np.ndarray:
        view = row.view
        if view.masks is not None:
            m = view.masks[episode, step].astype(np.float32) / 255
        else:
            model = view.model
            dev = next(model.parameters()).device
            with torch.no_grad(), torch_threads(1 if dev.type == "cpu" else None):
                x = to_float(self.episodes.frames[episode, step : step + 1]).to(dev)
                m = model.masks(x)[0].float().cpu().numpy()
        K = m.shape[0]
        return _strip([m[k, :, :, None] * slot_colour(k)[None, None] for k in range(K)], row.mask_gap)

    def _action_text(self, a: int) -> str:
        if self._block_pushing and self.views[0].model.config.action_dim == 4:
            return f"action {a}:\nobject {a // 4} {DIRECTIONS[a % 4]}"
        return f"action {a}"

    # -- figure -------------------------------------------------------------------------------
    def _build(self, fig: Figure, shown: Sequence[int], animated: bool,
               compact: bool = False) -> tuple[tuple, list[_Row], list]:
        """Lay out the panels of the models ``shown`` on ``fig``: per model one row of panels, or
        with ``compact`` (static pages, ``figstyle.WIDTH`` in wide) two rows, the embeddings
        beside the masks over the nearest states.

        Returns (observation artists, one row of artists per model, every artist that changes)."""
        H, W = self.episodes.obs_shape[1:]
        n = len(shown)
        if compact:
            height = fig.get_size_inches()[1]  # margins in inches: the title's lines, the x label
            gs = fig.add_gridspec(2 * n, 3, width_ratios=[0.8, 2.4, 2.6], wspace=0.35, hspace=1.0,
                                  left=0.07, right=0.99, top=1 - 0.8 / height, bottom=0.45 / height)
            cells = [(gs[2 * r, 2], gs[2 * r:2 * r + 2, 1], gs[2 * r + 1, 2]) for r in range(n)]
        else:
            gs = fig.add_gridspec(n, 4, width_ratios=[0.9, 2.0, 2.1, 2.6], wspace=0.3, hspace=0.55,
                                  left=0.03, right=0.99, top=0.84 if n == 1 else 0.9, bottom=0.13)
            cells = [(gs[r, 1], gs[r, 2], gs[r, 3]) for r in range(n)]
        ax = fig.add_subplot(gs[:, 0])
        self.obs_gap = max(1, H // 10)
        obs = ax.imshow(np.ones((2 * H + self.obs_gap, W, 3)), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([H / 2, H + self.obs_gap + H / 2], ["$o_t$", "$o_{t+1}$"])
        ax.tick_params(length=0)
        title = fig.suptitle("", fontsize=FONT + 1)
        action = ax.text(W / 2, 2 * H + self.obs_gap + 2, "", ha="center", va="top", fontsize=FONT)
        ax.set_ylim(2 * H + self.obs_gap + 0.22 * H, -0.5)
        dyn = [obs, title, action]
        for a in dyn:
            a.set_animated(animated)
        rows = [_Row(fig, cells[r], self.views[i], self.T, self.num_neighbours, (H, W), animated)
                for r, i in enumerate(shown)]
        for row in rows:
            row.nn_title.set_text(self._nn_title())
        return (obs, title, action), rows, dyn + [a for row in rows for a in row.dynamic]

    def _fill(self, obs_artists: tuple, rows: list[_Row], episode: int, step: int) -> None:
        """Put the data of (episode, step) into the artists (no drawing)."""
        ep, T = self.episodes, self.T
        obs, title, action = obs_artists
        nxt = ep.frames[episode, step + 1] if step < T else np.full_like(ep.frames[episode, step], 255)
        obs.set_data(_strip([frame_rgb(ep.frames[episode, step]) / 255, frame_rgb(nxt) / 255], self.obs_gap,
                            vertical=True))
        title.set_text(f"episode {episode}, step {step} of {T}")
        a = int(ep.actions[episode, step]) if step < T else None
        action.set_text(self._action_text(a) if a is not None else "(end of\nepisode)")
        H, W = ep.obs_shape[1:]
        for row in rows:
            v = row.view
            row.masks.set_data(self._mask_image(row, episode, step))
            xy = v.xy[episode]  # [T+1, K, 2]
            for k, line in enumerate(row.traj):
                line.set_data(xy[:, k, 0], xy[:, k, 1])
            cur = xy[step]
            row.current.set_offsets(cur)
            pred = v.project(self.predictions(v, episode, step))  # [A, K, 2]
            row.pred_xy = pred
            row.preds.set_offsets(pred.reshape(-1, 2))
            start = np.broadcast_to(cur[None], pred.shape)
            row.arrows.set_segments(np.stack([start, pred], 2).reshape(-1, 2, 2))
            empty = np.zeros((0, 2))
            if a is not None:
                row.taken.set_offsets(pred[a if v.num_actions else 0])
                row.next.set_offsets(xy[step + 1])
                z_pred = self.predictions(v, episode, step)[a if v.num_actions else 0]
                diff = z_pred - v.z[episode, step + 1]
                e_pos = 0.5 / v.model.config.sigma**2 * (diff**2).sum(-1).mean()
                row.info.set_text(f"E(x, o) = {e_pos:.3g}")
            else:
                row.taken.set_offsets(empty)
                row.next.set_offsets(empty)
                row.info.set_text("")
            flat = episode * (T + 1) + step
            exclude: int | slice = flat
            if self.neighbours_from == "other episodes":
                exclude = slice(episode * (T + 1), (episode + 1) * (T + 1))
            idx, energy = v.index.query(v.z[episode, step], self.num_neighbours, exclude=exclude)
            thumbs = [frame_rgb(ep.frames[i // (T + 1), i % (T + 1)]) / 255 for i in idx]
            thumbs += [np.ones((H, W, 3))] * (max(self.num_neighbours, 1) - len(thumbs))
            row.nn.set_data(_strip(thumbs, row.nn_gap))
            row.neighbours = [
                (int(i // (T + 1)), int(i % (T + 1)), float(e)) for i, e in zip(idx, energy, strict=True)
            ]
            for i, lab in enumerate(row.nn_labels):
                if i < len(row.neighbours):
                    e_, t_, en = row.neighbours[i]
                    lab.set_text(f"ep {e_}\nt {t_}\nE={en:.2g}")
                else:
                    lab.set_text("")

    def _figsize(self, n_rows: int) -> tuple[float, float]:
        w, h = self.figsize_per_row
        return w, h * n_rows + 0.4

    def _build_live(self) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        self.figure = Figure(figsize=self._figsize(len(self._shown)), dpi=self.dpi)
        FigureCanvasAgg(self.figure)
        self._obs_artists, self.rows, self._dynamic = self._build(self.figure, self._shown, animated=True)
        self._background = None
        self._fill(self._obs_artists, self.rows, self._episode, self._step)
        self._png: bytes | None = None

    def render(self) -> bytes:
        """Draw the current state and return it as PNG bytes (what the live widget displays).

        The static parts are drawn once and cached; each call restores them and draws only the
        artists that change (blitting)."""
        from PIL import Image

        canvas = self.figure.canvas
        if self._background is None:
            canvas.draw()  # animated artists are skipped: this is the static background
            self._background = canvas.copy_from_bbox(self.figure.bbox)
        canvas.restore_region(self._background)
        for a in self._dynamic:
            self.figure.draw_artist(a)
        buf = io.BytesIO()
        Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3]).save(buf, format="png", compress_level=1)
        self._png = buf.getvalue()
        return self._png

    # -- control ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _hold(self) -> Iterator[None]:
        held, self._holding = self._holding, True
        try:
            yield
        finally:
            self._holding = held

    def _check(self, episode: int, step: int) -> None:
        E, T = self.episodes.num_episodes, self.T
        if not 0 <= episode < E:
            raise CswmError(f"episode must be in 0..{E - 1}, got {episode}")
        if not 0 <= step <= T:
            raise CswmError(f"step must be in 0..{T} (episodes have {T} steps), got {step}")

    def set(self, episode: int | None = None, step: int | None = None, view: str | None = None) -> None:
        """Show (episode, step) -- and with two models ``view`` = "side by side" or a model's name --
        exactly as moving the sliders would: one update, one render."""
        episode = self._episode if episode is None else int(episode)
        step = self._step if step is None else int(step)
        self._check(episode, step)
        if view is not None:
            self._rows_of(view)  # validate before touching any widget
        with self._hold():
            if self._widgets is not None:
                self._widgets["episode"].value = episode
                self._widgets["step"].value = step
                if view is not None and "view" in self._widgets:
                    self._widgets["view"].value = view
        if view is not None:
            self._set_view(view)
        self._episode, self._step = episode, step
        self._update()

    def _rows_of(self, view: str) -> list[int]:
        """Indices of the models a view shows: "side by side" (all) or one model's name."""
        names = [v.name for v in self.views]
        if view == "side by side":
            return list(range(len(self.views)))
        if view in names:
            return [names.index(view)]
        raise CswmError(f"view must be 'side by side' or one of {names}, got {view!r}")

    def _set_view(self, view: str) -> None:
        shown = self._rows_of(view)
        if shown != self._shown:
            self._shown = shown
            self._build_live()

    def _update(self) -> None:
        self._fill(self._obs_artists, self.rows, self._episode, self._step)
        if self._widgets is not None:
            self._widgets["image"].value = self.render()

    def _on_change(self, change: dict) -> None:
        if self._holding:
            return
        w = self._widgets
        assert w is not None
        if change["owner"] is w.get("view"):
            self._set_view(change["new"])
        self._episode, self._step = int(w["episode"].value), int(w["step"].value)
        self._update()

    @property
    def widget(self) -> Any:
        """The ipywidgets control, sliders (and a model picker with two models) above the figure."""
        if self._widgets is None:
            import ipywidgets as ipw

            w: dict[str, Any] = {
                "episode": ipw.IntSlider(self._episode, 0, self.episodes.num_episodes - 1,
                                         description="episode", continuous_update=True),
                "step": ipw.IntSlider(self._step, 0, self.T, description="step", continuous_update=True),
            }
            controls = [w["episode"], w["step"]]
            if len(self.views) > 1:
                names = [v.name for v in self.views]
                current = "side by side" if len(self._shown) > 1 else names[self._shown[0]]
                w["view"] = ipw.ToggleButtons(options=["side by side", *names], value=current,
                                              description="models")
                controls.append(w["view"])
            for c in controls:
                c.observe(self._on_change, names="value")
            w["image"] = ipw.Image(value=self.render(), format="png")
            w["box"] = ipw.VBox([ipw.HBox(controls[:2]), *controls[2:], w["image"]])
            self._widgets = w
        return self._widgets["box"]

    @property
    def sliders(self) -> dict[str, Any]:
        """The ipywidgets objects by name ("episode", "step", and "view" with two models)."""
        self.widget  # noqa: B018 -- builds them
        assert self._widgets is not None
        return {k: v for k, v in self._widgets.items() if k in ("episode", "step", "view")}

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    # -- reading back -------------------------------------------------------------------------
    @property
    def title(self) -> str:
        """The figure's title as drawn, e.g. "episode 3, step 5 of 10"."""
        return self._obs_artists[1].get_text()

    def shown(self) -> dict[str, Any]:
        """What the figure currently displays, read from its artists: episode, step, title and per
        model row ``name``, ``current`` ``[K, 2]``, ``predictions`` ``[A, K, 2]``, ``next`` ``[K, 2]``
        (empty at the last step), ``masks`` image, ``trajectory`` ``[T+1, K, 2]``, ``neighbours``
        [(episode, step, energy)]."""
        rows = []
        for row in self.rows:
            rows.append(dict(
                name=row.view.name,
                current=np.asarray(row.current.get_offsets()).copy(),
                predictions=np.asarray(row.preds.get_offsets()).reshape(row.pred_xy.shape).copy(),
                next=np.asarray(row.next.get_offsets()).copy(),
                masks=np.asarray(row.masks.get_array()).copy(),
                trajectory=np.stack([np.column_stack(line.get_data()) for line in row.traj], 1),
                neighbours=list(row.neighbours),
            ))
        return dict(episode=self._episode, step=self._step, title=self.title,
                    observation=np.asarray(self._obs_artists[0].get_array()).copy(), rows=rows)

    # -- static pages ---------------------------------------------------------------------------
    def plot(self, episode: int | None = None, step: int | None = None, view: str = "side by side") -> Figure:
        """The panels of (episode, step) as a new pyplot figure for static pages (``plt.show()``):
        laid out to fit a book's text column, ``figstyle.WIDTH`` in wide, text at least
        ``figstyle.FONT`` pt."""
        import matplotlib.pyplot as plt

        episode = self._episode if episode is None else int(episode)
        step = self._step if step is None else int(step)
        self._check(episode, step)
        shown = self._rows_of(view)
        fig = plt.figure(figsize=(WIDTH, 3.6 * len(shown) + 0.5), dpi=100)
        obs_artists, rows, _ = self._build(fig, shown, animated=False, compact=True)
        self._fill(obs_artists, rows, episode, step)
        return fig
