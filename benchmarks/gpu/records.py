"""The records of the GPU script (full_scale.py): one per chapter, grown wave by wave, rewritten
atomically in today's results format plus ``provenance``; and the models kept beside them."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from device_checks import T0


def write_json_atomic(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str) + "\n")
    os.replace(tmp, path)


def _verdict(claim: Any, records: list, untrained: list, name: str, kw: dict[str, Any]) -> dict[str, Any]:
    """:func:`cswm_lib.verdict.verdict` on the declared ``claim``, as the chapter's Verdict section
    computes it; an error (e.g. a seed missing from one strategy) is recorded in the row instead of
    losing the record."""
    from cswm_lib.experiments import verdict_set
    from cswm_lib.verdict import verdict

    try:  # the verdict judges one eval set: the whole one (records also hold its subsets)
        records, untrained = verdict_set(records), verdict_set(untrained)
        return verdict(records, claim.text, claim.section, name, claim.new, setting=claim.setting,
                       controls=claim.controls, paper_settings=claim.paper_settings, metric=claim.metric,
                       rule=claim.rule, untrained=untrained, **kw)
    except Exception as err:  # noqa: BLE001 - the record must still be written
        return {"claim": claim.text, "experiment": claim.section, "dataset": name, "new": claim.new,
                "verdict": "error", "why": f"{type(err).__name__}: {err}"}


class Recorder:
    """Everything a chapter's record holds, grown wave by wave and rewritten atomically."""

    def __init__(self, chapter: str, scale: str, out: Path, prov: dict[str, Any], command: str,
                 note: str, n_train: dict[str, int], claim: Any) -> None:
        """``claim``: the declared claim the chapter judges (full_scale.chapter_claim)."""
        self.chapter, self.scale, self.out, self.prov, self.n_train = chapter, scale, out, prov, n_train
        self.claim = claim
        self.command, self.note, self.t0 = command, note, time.time()
        self.specs: dict[str, Any] = {}
        self.folders: dict[str, dict] = {}
        self.records: dict[str, list] = {}
        self.big_records: dict[str, list] = {}
        self.big: dict[str, Any] = {}
        self.runs: dict[str, dict] = {}
        self.skipped: dict[str, str] = {}  # world -> why it has no runs

    def write(self) -> Path:
        from cswm_lib import experiments as ex
        from cswm_lib.book import portable
        from cswm_lib.curves import curve_table
        from cswm_lib.provenance import declaration, load_average
        from cswm_lib.train import TrainConfig, total_updates
        from cswm_lib.utils import project_root

        rows, big_rows, verdicts, big_verdicts = [], [], [], []
        for name, spec in self.specs.items():
            if not self.records.get(name):
                continue
            rows += ex.aggregate(spec, self.records[name])
            n = self.n_train[name]
            cfg = TrainConfig(**spec.model, epochs=spec.epochs, num_updates=spec.num_updates,
                              batch_size=spec.batch_size)
            kw = dict(updates=total_updates(cfg, n), batch_size=spec.batch_size, scale=self.scale,
                      data=f"{n} transitions")
            untrained = ex.score_untrained(spec)
            rows += ex.aggregate(spec, untrained)
            verdicts.append(_verdict(self.claim, self.records[name], untrained, name, kw))
            if self.big_records.get(name):
                big_untrained = ex.score_untrained(self.big[name])
                big_rows += ex.aggregate(self.big[name], self.big_records[name] + big_untrained)
                big_verdicts.append(_verdict(self.claim, self.big_records[name], big_untrained, name, kw))
        results = {
            "table": rows, "per_seed": self.records,
            "specs": {n: ex.spec_dict(s) for n, s in self.specs.items()},
            "curves": {n: curve_table(f) for n, f in self.folders.items()},
            "verdicts": verdicts, "seconds": time.time() - self.t0, "not_run": self.skipped,
            "runs": self.runs,
        }
        if self.big:
            results.update(eval_big={n: s.eval_data for n, s in self.big.items()},
                           table_eval_big=big_rows, per_seed_eval_big=self.big_records,
                           verdicts_eval_big=big_verdicts)
        record = {
            "chapter": self.chapter, "scale": self.scale, "results": results, "command": self.command,
            "wall_seconds": round(time.time() - T0, 1), "load": load_average(),
            "cores": os.cpu_count(), "note": self.note,
            "provenance": self.prov,
            "declared": declaration(project_root() / "book" / "params" / "full.yaml"),
        }
        work = Path(os.environ["CSWM_DATA"]).parent
        record = portable(portable(record, work), project_root())
        path = self.out / "results" / self.scale / f"{self.chapter}.json"
        write_json_atomic(path, record)
        return path


def keep_models(rec: Recorder, out: Path) -> None:
    """The first seed's ``model.pt`` of every run, with config, log and curve (small: a few MB each)."""
    from cswm_lib.utils import checkpoints_dir

    for folders in rec.folders.values():
        first = min(seed for _, seed in folders)
        for (_, seed), folder in folders.items():
            target = out / "checkpoints" / Path(folder).relative_to(checkpoints_dir())
            target.mkdir(parents=True, exist_ok=True)
            keep = ["config.json", "log.jsonl", "curve.jsonl"] + (["model.pt"] if seed == first else [])
            for f in keep:
                if (Path(folder) / f).is_file():
                    shutil.copy2(Path(folder) / f, target / f)
