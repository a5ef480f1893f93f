"""A3C: network shapes, the GAE loss on a hand-computed case, shared Adam, training, resume, CLI."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from cswm_lib.a3c import (
    AtariPolicy,
    MLPPolicy,
    SharedAdam,
    atari_agent_obs,
    evaluate_policy,
    load_checkpoint,
    load_policy,
    read_returns,
)
from cswm_lib.a3c.train import A3CConfig, a3c_loss, discount, main, train
from cswm_lib.errors import CswmError


def test_atari_agent_obs_crops_greys_and_halves():
    rgb = np.zeros((210, 160, 3), np.uint8)
    rgb[35:37, 0:2] = [30, 60, 90]  # first 2x2 block of the crop: grey 60
    rgb[34] = 255  # above the crop: ignored
    rgb[195:] = 255  # below the crop: ignored
    x = atari_agent_obs(rgb)
    assert x.shape == (1, 80, 80) and x.dtype == np.float32
    assert x[0, 0, 0] == pytest.approx(60 / 255)
    assert x.sum() == pytest.approx(60 / 255)


def test_atari_policy_shapes_and_recurrence():
    torch.manual_seed(0)
    net = AtariPolicy(num_actions=6)
    obs = torch.rand(2, 1, 80, 80)
    value, logits, hx = net(obs, net.initial_state(2))
    assert value.shape == (2, 1) and logits.shape == (2, 6) and hx.shape == (2, 256)
    assert net.gru.input_size == 800  # 32 channels x 5 x 5 after four stride-2 convs
    _, logits2, _ = net(obs, hx)
    assert not torch.allclose(logits, logits2)  # the GRU state matters


def test_mlp_policy_shapes():
    net = MLPPolicy(obs_dim=4, num_actions=2)
    value, logits, hx = net(torch.zeros(3, 4))
    assert value.shape == (3, 1) and logits.shape == (3, 2) and hx is None


def test_discount_by_hand():
    out = discount(torch.tensor([1.0, 0.0, 4.0]), 0.5)
    assert out.tolist() == [2.0, 2.0, 4.0]


def test_a3c_loss_hand_computed():
    # T = 2, gamma 0.5, tau 1: V = [1, 2], r = [1, 0], V(s_2) = 4.
    # deltas = [1 + .5*2 - 1, 0 + .5*4 - 2] = [1, 0] -> advantages [1, 0]
    # returns = [1 + .5*(0 + .5*4), 0 + .5*4] = [2, 2] -> value loss .5*((2-1)^2 + 0) = .5
    # uniform logits over 2 actions: log pi = -ln 2, entropy per step ln 2
    values = torch.tensor([1.0, 2.0], requires_grad=True)
    logits = torch.zeros(2, 2, requires_grad=True)
    loss, parts = a3c_loss(values, logits, torch.tensor([0, 1]), torch.tensor([1.0, 0.0]), bootstrap=4.0,
                           gamma=0.5, tau=1.0, value_coef=0.5, entropy_coef=0.01)
    assert parts["policy"] == pytest.approx(math.log(2))
    assert parts["value"] == pytest.approx(0.5)
    assert parts["entropy"] == pytest.approx(2 * math.log(2))
    assert loss.item() == pytest.approx(math.log(2) + 0.25 - 0.02 * math.log(2))
    loss.backward()
    assert values.grad.tolist() == pytest.approx([-0.5, 0.0])  # 0.5 * (V - R), critic only


def test_a3c_loss_tau_zero_is_one_step_td():
    values = torch.tensor([1.0, 2.0])
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]])  # pi(a=1|s_0) = 3/4
    _, parts = a3c_loss(values, logits, torch.tensor([1, 0]), torch.tensor([1.0, 0.0]), bootstrap=4.0,
                        gamma=0.5, tau=0.0)
    # advantages = deltas = [1, 0]
    assert parts["policy"] == pytest.approx(-math.log(0.75))


def test_shared_adam_matches_adam_and_is_shared():
    torch.manual_seed(0)
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    b.load_state_dict(a.state_dict())
    opt_a, opt_b = SharedAdam(a.parameters(), lr=0.1), torch.optim.Adam(b.parameters(), lr=0.1)
    for _ in range(3):
        x = torch.randn(5, 3)
        for m, o in ((a, opt_a), (b, opt_b)):
            o.zero_grad()
            m(x).pow(2).sum().backward()
            o.step()
    assert torch.allclose(a.weight, b.weight, atol=1e-6)
    state = opt_a.state[a.weight]
    assert all(v.is_shared() for v in state.values()) and state["step"].item() == 3


def _child_step(model, opt):
    model(torch.ones(1, 3)).sum().backward()
    opt.step()


def test_shared_adam_child_process_updates_parent_moments():
    model = torch.nn.Linear(3, 2)
    model.share_memory()
    opt = SharedAdam(model.parameters(), lr=0.1)
    before = model.weight.detach().clone()
    p = mp.get_context("fork").Process(target=_child_step, args=(model, opt))
    p.start()
    p.join(30)
    assert p.exitcode == 0
    assert opt.state[model.weight]["step"].item() == 1  # the child's step, seen by the parent
    assert opt.state[model.weight]["exp_avg"].abs().sum() > 0
    assert not torch.equal(model.weight.detach(), before)


def test_config_errors_are_one_line():
    with pytest.raises(CswmError, match="num_workers"):
        train(A3CConfig(env_id="CartPole-v1", num_workers=0))
    with pytest.raises(CswmError, match="no A3C checkpoint"):
        load_checkpoint("/nonexistent/a3c")


def test_cli_bad_env_exits_2(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["NoSuchEnv-v9", "--folder", str(tmp_path), "--num-workers", "1"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown environment 'NoSuchEnv-v9'") and "\n" not in err


@pytest.mark.slow
def test_train_checkpoints_and_resumes(tmp_path):
    cfg = A3CConfig(env_id="CartPole-v1", num_workers=2, max_frames=1500, checkpoint_every=500, lr=2e-3,
                    folder=str(tmp_path), progress=False, start_method="fork")
    train(cfg)
    first = load_checkpoint(tmp_path)
    assert first["frames"] >= 1500 and first["stats"]["episodes"] > 0
    curve = read_returns(tmp_path)
    assert len(curve) == first["stats"]["episodes"]
    cfg.max_frames = 3000  # the run resumes from its checkpoint and continues the curve
    train(cfg)
    second = load_checkpoint(tmp_path)
    assert second["frames"] >= 3000 and second["stats"]["episodes"] > first["stats"]["episodes"]
    curve2 = read_returns(tmp_path)
    assert [r["episode"] for r in curve2] == list(range(1, len(curve2) + 1))
    assert curve2[: len(curve)] == curve
    assert train(cfg) == tmp_path and load_checkpoint(tmp_path)["frames"] == second["frames"]  # finished


@pytest.mark.slow
def test_a3c_learns_cartpole(tmp_path):
    """The verification run: 2 workers reach a mean return >= 195 over 100 episodes."""
    cfg = A3CConfig(env_id="CartPole-v1", num_workers=2, max_frames=400_000, lr=2e-3, target_return=195,
                    folder=str(tmp_path), progress=False, checkpoint_every=100_000)
    train(cfg)
    ckpt = load_checkpoint(tmp_path)
    assert len(ckpt["stats"]["recent"]) == 100 and np.mean(ckpt["stats"]["recent"]) >= 195, ckpt["frames"]
    policy = load_policy(tmp_path)
    assert evaluate_policy(policy, "CartPole-v1", episodes=10, seed=0).mean() > 100  # the saved weights play


@pytest.mark.slow
def test_atari_training_runs_and_resumes(tmp_path):
    """The baby-a3c network on Pong end to end: a few rollouts, a checkpoint, a resumed continuation."""
    cfg = A3CConfig(env_id="PongDeterministic-v4", num_workers=1, max_frames=40, checkpoint_every=20,
                    folder=str(tmp_path), progress=False, start_method="fork")
    train(cfg)
    first = load_checkpoint(tmp_path)
    assert first["frames"] >= 40 and first["config"]["env_id"] == "PongDeterministic-v4"
    assert first["optimizer"]["state"][0]["step"].item() >= 2  # two or more shared Adam steps
    cfg.max_frames = 80
    train(cfg)
    second = load_checkpoint(tmp_path)
    assert second["frames"] >= 80
    assert second["optimizer"]["state"][0]["step"].item() > first["optimizer"]["state"][0]["step"].item()
    policy = load_policy(tmp_path)
    assert isinstance(policy, AtariPolicy) and not policy.training
