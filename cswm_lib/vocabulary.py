"""One name per concept, and the names files written before it still carry.

The book names each concept once, in code, CLI, results files and prose:

* **strategy**: the negative-sampling strategy, by its id (:data:`cswm_lib.negatives.STRATEGIES`:
  ``baseline``, ``time_aligned``, ``episodic``, ``out_of_episode``, ``mixed``); the field of a
  result row and the key of an experiment's ``strategies``;
* **setting**: an evaluation setting (``global``, ``global_dedup``, ``global_dedup_correct``,
  ``batched``, ``batched_dedup``, ``local``, ``local_dedup``, ``local_dedup_correct``; a control
  adds ``_no_transition``);
* **metric**: ``Hits@1``, ``Hits@5``, ``Hits@10``, ``MRR`` and ``nearest_start`` (the share of
  local predictions nearest the start state);
* **num_steps**: the roll-out length (``L`` only in equations).

Files written before these names (the recorded results under ``book/results/``, a run's
``curve.jsonl``) stay as they are on disk and are read through :func:`modernise`, which renames
their fields and values by the tables below. This module is that one mapping table.
"""

from __future__ import annotations

import re
from typing import Any

#: old field name -> field name now
FIELDS = {"negatives": "strategy", "mode": "setting", "modes": "settings"}
#: old strategy label -> strategy id
STRATEGY_LABELS = {"episodic+out-of-episode": "mixed", "episodic+ooe": "mixed",
                   "time-aligned": "time_aligned"}
#: old evaluation setting -> setting now (a ``_no_transition`` control follows its setting)
SETTINGS = {"dedup": "global_dedup", "dedup_correct": "global_dedup_correct"}
#: old metric name -> metric now
METRICS = {"hits@1": "Hits@1", "hits@5": "Hits@5", "hits@10": "Hits@10", "mrr": "MRR",
           "argmin=o_0": "nearest_start", "local_argmin_o0": "nearest_start"}
#: fields whose text names strategies and settings inside a sentence (a verdict's score and reason)
_TEXT_FIELDS = ("score", "why")
_NO_TRANSITION = "_no_transition"
_SETTING_WORD = re.compile(r"(?<![\w])(" + "|".join(sorted(SETTINGS, key=len, reverse=True)) + r")(?![\w])")
_LABEL_WORD = re.compile("|".join(re.escape(k) for k in sorted(STRATEGY_LABELS, key=len, reverse=True)))


def name(value: str) -> str:
    """The name now of one old name (a strategy label, a setting with or without its
    ``_no_transition`` suffix, a metric); a compound key of parts joined by ``|`` or `` | ``
    (``"dedup|1|Hits@1"``, ``"Pong | time-aligned"``) is renamed part by part. Other strings are
    returned unchanged."""
    for sep in (" | ", "|"):
        if sep in value:
            return sep.join(name(part) for part in value.split(sep))
    if value in STRATEGY_LABELS:
        return STRATEGY_LABELS[value]
    if value in METRICS:
        return METRICS[value]
    base = value.removesuffix(_NO_TRANSITION)
    return SETTINGS[base] + value[len(base):] if base in SETTINGS else value


def text(value: str) -> str:
    """A sentence (a verdict's score or reason) with its old strategy labels and settings renamed."""
    value = _LABEL_WORD.sub(lambda m: STRATEGY_LABELS[m.group(0)], value)
    return _SETTING_WORD.sub(lambda m: SETTINGS[m.group(1)], value)


def modernise(obj: Any) -> Any:
    """``obj`` (parsed JSON) with every old field name and old name renamed: dict keys by
    :data:`FIELDS` and :func:`name`, string values by :func:`name` (in a verdict's score and reason
    by :func:`text`). Prose (a claim, a note, a command) is left as it was recorded."""
    if isinstance(obj, list):
        return [modernise(x) for x in obj]
    if not isinstance(obj, dict):
        return name(obj) if isinstance(obj, str) else obj
    out = {}
    for key, value in obj.items():
        new_key = FIELDS.get(key, name(key))
        if key in _TEXT_FIELDS and isinstance(value, str):
            out[new_key] = text(value)
        elif key in ("claim", "note", "command", "paper_note", "source"):
            out[new_key] = value
        else:
            out[new_key] = modernise(value)
    return out
