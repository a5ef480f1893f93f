"""The `full` parameter sections of chapters 08 (Sec. 4.1) and 09 (Sec. 4.2) are the README commands.

The commands below are the README commands of github.com/ondrejbiza/negative-sampling-icml-21
(data generation with their sizes and seeds, training flags, evaluation script). We parse them with
our own CLIs' parsers (which accept the original flags) and compare the resulting settings value by
value with book/params/full.yaml.
"""

import argparse
import shlex
from dataclasses import asdict

import pytest
import yaml

from cswm_lib.book import declared_parameters, to_notebook
from cswm_lib.data.generate import README_DATASETS
from cswm_lib.data.generate import build_parser as data_parser
from cswm_lib.experiments import readme_model, strategy_config
from cswm_lib.train import TrainConfig, config_from_args
from cswm_lib.train import build_parser as train_parser
from cswm_lib.utils import project_root

GEN, TRAIN = "python -m ns.data_gen.env", "python -m ns.scr.train"
ATARI = "--encoder medium --embedding-dim 4 --action-dim 6 --copy-action --epochs 200"
README = {
    "08_immovable": {
        "data": [
            f"{GEN} --env-id ShapesImmovableTrain-v0 --fname data/shapes_imm_train.h5 "
            "--num-episodes 1000 --seed 1",
            f"{GEN} --env-id ShapesImmovableEval-v0 --fname data/shapes_imm_eval.h5 "
            "--num-episodes 10000 --seed 2 --save-state-ids",
            f"{GEN} --env-id CubesImmovableTrain-v0 --fname data/cubes_imm_train.h5 "
            "--num-episodes 1000 --seed 3",
            f"{GEN} --env-id CubesImmovableEval-v0 --fname data/cubes_imm_eval.h5 "
            "--num-episodes 10000 --seed 4 --save-state-ids",
        ],
        "train": {
            ("shapes", "baseline"): f"{TRAIN} --dataset data/shapes_imm_train.h5 --encoder small",
            (
                "shapes",
                "mixed",
            ): f"{TRAIN} --dataset data/shapes_imm_train.h5 --encoder small "
            "--custom-neg --disable-time-aligned",
            ("cubes", "baseline"): f"{TRAIN} --dataset data/cubes_imm_train.h5 --encoder large",
            (
                "cubes",
                "mixed",
            ): f"{TRAIN} --dataset data/cubes_imm_train.h5 --encoder large "
            "--custom-neg --disable-time-aligned",
        },
        "eval": "python -m ns.scr.eval_ids --dataset data/shapes_imm_eval.h5 --save-folder checkpoints/x "
        "--num-steps 1 --dedup",
        "score_setting": "global_dedup",
        "divisors": {
            "shapes_imm_train": ("shapes", "train_divisor"),
            "shapes_imm_eval": ("shapes", "eval_divisor"),
            "cubes_imm_train": ("cubes", "train_divisor"),
            "cubes_imm_eval": ("cubes", "eval_divisor"),
        },
        "per_dataset": {
            "shapes": ("shapes",),  # the per-world budget dict of chapter 08
            "cubes": ("cubes",),
        },
    },
    "09_atari_time_aligned": {
        "data": [
            f"{GEN} --env-id PongDeterministic-v4 --fname data/pong_train.h5 "
            "--num-episodes 1000 --seed 1 --atari",
            f"{GEN} --env-id PongDeterministic-v4 --fname data/pong_eval.h5 "
            "--num-episodes 100 --seed 2 --atari --save-state-ids",
            f"{GEN} --env-id SpaceInvadersDeterministic-v4 --fname data/spaceinvaders_train.h5 "
            "--num-episodes 1000 --seed 1 --atari",
            f"{GEN} --env-id SpaceInvadersDeterministic-v4 --fname data/spaceinvaders_eval.h5 "
            "--num-episodes 100 --seed 2 --atari --save-state-ids",
        ],
        "train": {
            ("pong", "baseline"): f"{TRAIN} --dataset data/pong_train.h5 {ATARI} --num-objects 3",
            ("pong", "time_aligned"): f"{TRAIN} --dataset data/pong_train.h5 {ATARI} --num-objects 3 "
            "--custom-neg --in-ep-prob 0.0",
            (
                "spaceinvaders",
                "baseline",
            ): f"{TRAIN} --dataset data/spaceinvaders_train.h5 {ATARI} --num-objects 5",
            ("spaceinvaders", "time_aligned"): f"{TRAIN} --dataset data/spaceinvaders_train.h5 {ATARI} "
            "--num-objects 5 --custom-neg --in-ep-prob 0.0",
        },
        "eval": "python -m ns.scr.eval_ids --dataset data/pong_eval.h5 --save-folder checkpoints/x "
        "--num-steps 1",
        "score_setting": "global",
        "divisors": {
            "pong_train": ("train_divisor",),
            "pong_eval": ("eval_divisor",),
            "spaceinvaders_train": ("train_divisor",),
            "spaceinvaders_eval": ("eval_divisor",),
        },
        "per_dataset": {
            "pong": (),  # chapter 09: one budget for both games, at the section's top level
            "spaceinvaders": (),
        },
    },
}
CHAPTERS = sorted(README)


def _get(section: dict, path: tuple[str, ...]):
    """``section[path[0]][path[1]]...``: a value of a chapter's parameters (``()``: the section)."""
    for key in path:
        section = section[key]
    return section


def args_of(command: str, prefix: str) -> list[str]:
    assert command.startswith(prefix)
    return shlex.split(command[len(prefix) :])


@pytest.fixture(scope="module")
def full():
    return yaml.safe_load((project_root() / "book" / "params" / "full.yaml").read_text())["chapters"]


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_datasets_are_the_readme_sizes_and_seeds(full, chapter):
    section = full[chapter]
    for command in README[chapter]["data"]:
        a = data_parser().parse_args(args_of(command, GEN))
        name = a.fname.removeprefix("data/").removesuffix(".h5")
        ours = README_DATASETS[name]
        assert ours["env_id"] == a.env_id
        assert ours["seed"] == a.seed
        assert ours.get("atari", False) == a.atari
        assert ours.get("save_state_ids", False) == a.save_state_ids
        divisor = _get(section, README[chapter]["divisors"][name])
        assert ours["num_episodes"] // divisor == a.num_episodes, name


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_training_flags_are_the_readme_commands(full, chapter):
    section = full[chapter]
    assert section["seeds"] == [TrainConfig().seed]  # no --seed in the README: train.py's default 42
    ignore = {"name", "dataset", "save_folder", "device", "progress"}
    assert set(section["strategies"]) == {label for _, label in README[chapter]["train"]}
    for (data, label), command in README[chapter]["train"].items():
        expected = asdict(config_from_args(train_parser().parse_args(args_of(command, TRAIN))))
        budget = _get(section, README[chapter]["per_dataset"][data])
        ours = asdict(
            TrainConfig(
                **readme_model(data, hidden_dim=section["hidden_dim"]),  # README_MODELS: the README's flags
                **strategy_config(label, section["strategies"][label]),
                epochs=budget["epochs"],
                batch_size=budget["batch_size"],
                learning_rate=section["learning_rate"],
                seed=section["seeds"][0],
            )
        )
        for key in sorted(set(expected) - ignore):
            assert ours[key] == expected[key], (
                f"{chapter} {data} {label}: {key} {ours[key]!r} != {expected[key]!r}"
            )


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_scored_as_the_readme_eval_command(full, chapter):
    p = argparse.ArgumentParser()
    p.add_argument("--dataset")
    p.add_argument("--save-folder")
    p.add_argument("--num-steps", type=int, default=1)
    p.add_argument("--dedup", action="store_true")
    a = p.parse_args(shlex.split(README[chapter]["eval"])[3:])
    section = full[chapter]
    assert a.num_steps in section["num_steps"]
    setting = "global_dedup" if a.dedup else "global"
    assert setting == README[chapter]["score_setting"] and setting in section["settings"]


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_full_section_names_only_declared_parameters(full, chapter, tmp_path):
    declared = declared_parameters(
        to_notebook(project_root() / "book" / "chapters" / f"{chapter}.py", tmp_path / f"{chapter}.ipynb")
    )
    assert set(full[chapter]) <= set(declared)


# ------------------------------------------------------------------ Sec. 4.3 (chapter 10, Engineer LOCAL)
# The README commands of the negative-sampling repository (github.com/ondrejbiza/negative-sampling-icml-21)
# for the A3C ("full") datasets: collection (burn-in ranges, 10000 / 1000 / 1000
# episodes, seeds 1 / 2 / 3, eps 0.5, 10 steps; valid checked against train, test against train and
# valid), training (--epochs 100 --learning-rate 0.0005) and the two scores (eval_ids_b / _inep --dedup).
# Only the train and test file names are given there; the valid name follows the same pattern.
COLLECT = "python -m a3c.scr.collect"
A3C_TRAIN = (
    "--encoder medium --embedding-dim 4 --action-dim 6 --copy-action --epochs 100 --learning-rate 0.0005"
)
LOCAL = "10_local_global"
README_43 = {
    "collect": [
        f"{COLLECT} PongDeterministic-v4 --min-burnin 58 --max-burnin 100 --max-episodes 10000 "
        "--num-steps 10 --save-path data/pong_full_train_eps_0_5.h5 --eps 0.5 --seed 1",
        f"{COLLECT} PongDeterministic-v4 --min-burnin 58 --max-burnin 100 --max-episodes 1000 --num-steps 10 "
        "--save-path data/pong_full_valid_eps_0_5.h5 --check-dup-paths data/pong_full_train_eps_0_5.h5 "
        "--eps 0.5 --seed 2",
        f"{COLLECT} PongDeterministic-v4 --min-burnin 58 --max-burnin 100 --max-episodes 1000 --num-steps 10 "
        "--save-path data/pong_full_test_dup_eps_0_5.h5 --check-dup-paths data/pong_full_train_eps_0_5.h5 "
        "data/pong_full_valid_eps_0_5.h5 --eps 0.5 --seed 3",
        f"{COLLECT} SpaceInvadersDeterministic-v4 --min-burnin 50 --max-burnin 300 --max-episodes 10000 "
        "--num-steps 10 --save-path data/spaceinvaders_full_train_eps_0_5.h5 --eps 0.5 --seed 1",
        f"{COLLECT} SpaceInvadersDeterministic-v4 --min-burnin 50 --max-burnin 300 --max-episodes 1000 "
        "--num-steps 10 --save-path data/spaceinvaders_full_valid_eps_0_5.h5 "
        "--check-dup-paths data/spaceinvaders_full_train_eps_0_5.h5 --eps 0.5 --seed 2",
        f"{COLLECT} SpaceInvadersDeterministic-v4 --min-burnin 50 --max-burnin 300 --max-episodes 1000 "
        "--num-steps 10 --save-path data/spaceinvaders_full_test_dup_eps_0_5.h5 "
        "--check-dup-paths data/spaceinvaders_full_train_eps_0_5.h5 data/spaceinvaders_full_valid_eps_0_5.h5 "
        "--eps 0.5 --seed 3",
    ],
    "train": {
        (
            "pong",
            "baseline",
        ): f"{TRAIN} --dataset data/pong_full_train_eps_0_5.h5 {A3C_TRAIN} --num-objects 3",
        ("pong", "mixed"): f"{TRAIN} --dataset data/pong_full_train_eps_0_5.h5 {A3C_TRAIN} "
        "--num-objects 3 --custom-neg --disable-time-aligned",
        ("spaceinvaders", "baseline"): f"{TRAIN} --dataset data/spaceinvaders_full_train_eps_0_5.h5 "
        f"{A3C_TRAIN} --num-objects 5",
        (
            "spaceinvaders",
            "mixed",
        ): f"{TRAIN} --dataset data/spaceinvaders_full_train_eps_0_5.h5 "
        f"{A3C_TRAIN} --num-objects 5 --custom-neg --disable-time-aligned",
    },
    "eval": {
        "batched_dedup": "python -m ns.scr.eval_ids_b --dataset data/pong_full_test_dup_eps_0_5.h5 "
        "--save-folder checkpoints/x --num-steps 1 --dedup",
        "local_dedup": "python -m ns.scr.eval_ids_b_inep --dataset data/pong_full_test_dup_eps_0_5.h5 "
        "--save-folder checkpoints/x --num-steps 1 --dedup",
    },
}


def test_43_collection_is_the_readme_commands(full):
    from cswm_lib.a3c.collect import _parser as collect_parser

    section = full[LOCAL]
    assert list(section["split_episodes"]) == ["train", "valid", "test"]  # the duplicate-check chain order
    for command in README_43["collect"]:
        a = collect_parser().parse_args(args_of(command, COLLECT))
        split = a.save_path.split("_full_")[1].split("_")[0]
        game = a.env_id
        assert game in section["a3c"]["games"]
        assert section["burnin"][game] == [a.min_burnin, a.max_burnin], command
        assert section["split_episodes"][split] == a.max_episodes, command
        assert section["split_seeds"][split] == a.seed, command
        assert section["eps"] == a.eps and section["episode_steps"] == a.num_steps
        earlier = list(section["split_episodes"])[: list(section["split_episodes"]).index(split)]
        assert [p.split("_full_")[1].split("_")[0] for p in a.check_dup_paths] == earlier, command


def test_43_agents_are_baby_a3c_and_chapter_07s(full):
    from cswm_lib.a3c.train import A3CConfig

    section, agents = full[LOCAL], full["07_agents"]
    default = A3CConfig()  # baby-a3c: 20 processes, 8e7 frames, lr 1e-4, a checkpoint every 2M frames
    assert section["a3c"]["workers"] == default.num_workers == 20
    assert section["a3c"]["max_frames"] == default.max_frames == 80_000_000
    assert section["a3c"]["lr"] == default.lr
    assert section["a3c"]["checkpoint_every"] == default.checkpoint_every
    for key in ("a3c", "burnin", "split_episodes", "split_seeds", "eps"):
        assert section[key] == agents[key], key  # same agents and files as chapter 07
    assert section.get("standin", {}) == {}  # the full scale keeps A3C as published
    assert section["episode_steps"] == agents["num_steps"]


def test_43_training_flags_are_the_readme_commands(full):
    section = full[LOCAL]
    assert section["seeds"] == [TrainConfig().seed]
    assert set(section["strategies"]) == {label for _, label in README_43["train"]}
    ignore = {"name", "dataset", "save_folder", "device", "progress"}
    for (data, label), command in README_43["train"].items():
        expected = asdict(config_from_args(train_parser().parse_args(args_of(command, TRAIN))))
        ours = asdict(
            TrainConfig(
                **readme_model(data, hidden_dim=section["hidden_dim"]),
                **strategy_config(label, section["strategies"][label]),
                epochs=section["epochs"],
                batch_size=section["batch_size"],
                learning_rate=section["learning_rate"],
                seed=section["seeds"][0],
            )
        )
        for key in sorted(set(expected) - ignore):
            assert ours[key] == expected[key], f"{data} {label}: {key} {ours[key]!r} != {expected[key]!r}"


def test_43_scored_as_the_readme_eval_commands(full):
    p = argparse.ArgumentParser()
    p.add_argument("--dataset")
    p.add_argument("--save-folder")
    p.add_argument("--num-steps", type=int, default=1)
    p.add_argument("--dedup", action="store_true")
    section = full[LOCAL]
    for setting, command in README_43["eval"].items():
        a = p.parse_args(shlex.split(command)[3:])
        assert a.dedup and a.num_steps in section["num_steps"] and setting in section["settings"]
    assert section["eval_batch_size"] == 100  # eval_ids_b.py's batch


def test_43_sections_name_only_declared_parameters(full, tmp_path):
    declared = declared_parameters(
        to_notebook(project_root() / "book" / "chapters" / f"{LOCAL}.py", tmp_path / f"{LOCAL}.ipynb")
    )
    cpu = yaml.safe_load((project_root() / "book" / "params" / "cpu.yaml").read_text())["chapters"]
    assert set(full[LOCAL]) <= set(declared) and set(cpu[LOCAL]) <= set(declared)
