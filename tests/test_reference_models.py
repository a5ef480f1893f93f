"""The shipped reference models re-score to their record: the machinery on a tiny run, then every
model shipped under book/results/ against the record beside it (eval data regenerated from its seed)."""

import json

import pytest

from cswm_lib import reference_models as rm
from cswm_lib.errors import CswmError
from cswm_lib.experiments import evaluate_all, spec_dict, train_all
from cswm_lib.report.results import load_record
from cswm_lib.utils import project_root
from tests.test_experiments import tiny_spec

RESULTS = project_root() / "book" / "results"


@pytest.fixture
def tmp_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("CSWM_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("CSWM_CHECKPOINTS", str(tmp_path / "ckpt"))
    return tmp_path


def test_a_shipped_model_rescores_to_its_record_from_regenerated_data(tmp_dirs, monkeypatch):
    spec = tiny_spec(seeds=[0], epochs=1, num_steps=[1])
    folders = train_all(spec)
    record = {"scale": "cpu", "results": {"specs": {spec.dataset: spec_dict(spec)},
                                          "per_seed": {spec.dataset: evaluate_all(spec, folders)}}}
    (folder,) = rm.ship(record, "08_immovable", tmp_dirs / "ckpt", [(spec.dataset, "mixed", 0)],
                        root=tmp_dirs / "results")
    assert folder == tmp_dirs / "results/cpu/models/08_immovable/shapes_immovable/mixed_s0"
    shipped_config = (folder / "config.json").read_text()
    assert str(tmp_dirs) not in shipped_config and '"data/' in shipped_config  # no machine's path
    assert rm.shipped("08_immovable", root=tmp_dirs / "results") == [("shapes_immovable", "mixed", 0, folder)]
    monkeypatch.setenv("CSWM_DATA", str(tmp_dirs / "fresh"))  # the eval set is generated again
    pairs = rm.rescore(record, spec.dataset, "mixed", 0, folder)
    rows = record["results"]["per_seed"][spec.dataset]
    assert len(pairs) == len([r for r in rows if r["strategy"] == "mixed"]) > 0
    assert all(abs(r["value"] - now) <= 1e-6 for r, now in pairs)
    with pytest.raises(CswmError, match="no run"):
        rm.ship(record, "08_immovable", tmp_dirs / "ckpt", [(spec.dataset, "mixed", 7)], root=tmp_dirs / "r")
    # loaded with its one-line provenance: from config.json alone, then with its record's score
    root = tmp_dirs / "results"
    assert rm.available("08_immovable", spec.dataset, ["mixed"], 0, root=root)
    assert not rm.available("08_immovable", spec.dataset, ["baseline", "mixed"], 0, root=root)
    ref = rm.load("08_immovable", spec.dataset, "mixed", 0, root=root)
    assert ref.folder == folder and ref.rows == [] and ref.model.config.num_objects == 5
    assert ref.label.startswith("mixed (β = 0.5), seed 0: ") and "not in this checkout" in ref.label
    rm.record_path("08_immovable", root=root).write_text(json.dumps(record))
    ref = rm.load("08_immovable", spec.dataset, "mixed", 0, root=root)
    (hits,) = [r for r in rows if r["strategy"] == "mixed" and r["num_steps"] == 1
               and r["setting"] == "local_dedup" and r["metric"] == "Hits@1"]
    assert ref.rows and ref.label.endswith(f"recorded 1-step local_dedup Hits@1 {hits['value']:.3f}"
                                           f" ({hits['eval_episodes']:,d} eval episodes)")
    with pytest.raises(CswmError, match="no shipped model"):
        rm.load("08_immovable", spec.dataset, "baseline", 0, root=root)


def _shipped():
    for record_path in sorted(RESULTS.glob("*/*.json")):
        for dataset_slug, strategy, seed, folder in rm.shipped(record_path.stem, record_path.parent.name):
            yield pytest.param(record_path, dataset_slug, strategy, seed, folder,
                               id=f"{record_path.stem}-{dataset_slug}-{strategy}-s{seed}")


@pytest.mark.parametrize("record_path, dataset_slug, strategy, seed, folder", list(_shipped()))
def test_every_shipped_model_matches_its_record(record_path, dataset_slug, strategy, seed, folder, tmp_dirs):
    record = load_record(record_path)
    (dataset,) = [d for d in record["results"]["specs"] if rm.slug(d) == dataset_slug]
    pairs = rm.rescore(record, dataset, strategy, seed, folder)
    assert pairs
    worst = max(abs(r["value"] - now) for r, now in pairs)
    assert worst <= 1e-6, f"re-scored {strategy} seed {seed} differs from the record by {worst}"


def test_the_41_record_ships_a_model_of_each_strategy():
    record_path = RESULTS / "cpu" / "08_immovable.json"
    if not record_path.is_file():
        pytest.skip("no 4.1 cpu record yet")
    record = load_record(record_path)
    strategies = set(record["results"]["specs"]["Shapes immovable"]["strategies"])
    have = {s for d, s, _, _ in rm.shipped("08_immovable") if d == "shapes_immovable"}
    assert have == strategies
