"""Env steps per second while agents learn on B batched users, and where the time goes.

    python benchmarks/train_throughput.py [--num-envs 1 64 1024] [--timesteps 8192]
        [--policy candidate_scoring|MultiInputPolicy] [--device cpu] [--dummy 16] [--threads 1]
        [--bandit-users 16384] [--bandit-steps 10]

PPO: for each ``B`` a fresh PPO learns ``--timesteps`` user-steps on
:class:`~recoworld.envs.sb3_vec.SB3SlateVecEnv` (``action_format="scores"``, 50 candidates,
slates of 10, the default kernel), with rollouts of about 2,048 user-steps
(``n_steps = 2048 // B``), 4 epochs of minibatches of 256. Reported: user-steps per second
over the whole ``learn`` call, the share of that time spent inside the env (the adapter's
``env_seconds``: simulator, reward, observations, autoresets) and the rest (policy inference
during rollouts, buffers, gradient steps), and the env's own user-steps per second.

Bandit: :class:`~recoworld.agents.linear.LinUCB` serves ``--bandit-users`` users through
:func:`recoworld.envs.rollout.rollout` (act, step, update) for ``--bandit-steps`` batched
steps, after one warm-up step; reported as user-steps per second of the loop, agent and
env together, and the env's share.

``--dummy B`` also times the same PPO on SB3's ``DummyVecEnv`` of ``B`` single
``SlateEnv`` — what SB3 does with any non-VecEnv — to show what batching the users buys.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnvWrapper

from recoworld.agents.linear import LinUCB
from recoworld.agents.sb3_policies import CandidateScoringPolicy, catalog_policy_kwargs
from recoworld.envs.rollout import rollout
from recoworld.envs.sb3_vec import SB3SlateVecEnv
from recoworld.envs.slate import SlateEnv


class EnvTimer(VecEnvWrapper):
    """Times ``reset`` and ``step_wait`` of any VecEnv (for the DummyVecEnv baseline)."""

    def __init__(self, venv):
        super().__init__(venv)
        self.env_seconds = 0.0

    def reset(self):
        start = time.perf_counter()
        obs = self.venv.reset()
        self.env_seconds += time.perf_counter() - start
        return obs

    def step_wait(self):
        start = time.perf_counter()
        out = self.venv.step_wait()
        self.env_seconds += time.perf_counter() - start
        return out


class TimedVectorEnv(gym.vector.VectorWrapper):
    """Times ``step`` of a Gymnasium vector env (the env's part of a rollout loop)."""

    def __init__(self, env):
        super().__init__(env)
        self.env_seconds = 0.0

    def step(self, actions):
        start = time.perf_counter()
        out = self.env.step(actions)
        self.env_seconds += time.perf_counter() - start
        return out


def bandit_loop(n_users: int, steps: int, seed: int = 0) -> dict:
    """LinUCB serving ``n_users`` users for ``steps`` batched steps through ``rollout``."""
    env = TimedVectorEnv(gym.make_vec("RecoWorld/Slate-v0", num_envs=n_users,
                                      vectorization_mode="vector_entry_point"))
    agent = LinUCB()
    rollout(env, agent, 1, seed)  # warm-up: set-up and first-call costs
    env.env_seconds = 0.0
    result = rollout(env, agent, steps, seed, setup=False)
    return {"B": n_users, "user_steps": n_users * steps, "seconds": result.seconds,
            "steps_per_s": n_users * steps / result.seconds, "env_share": env.env_seconds / result.seconds,
            "env_steps_per_s": n_users * steps / max(env.env_seconds, 1e-9),
            "kernel": env.unwrapped.world.kernels}


def train(venv, policy: str, timesteps: int, device: str, seed: int = 0) -> dict:
    B = venv.num_envs
    if policy == "candidate_scoring":
        policy, policy_kwargs = CandidateScoringPolicy, {**catalog_policy_kwargs(venv.get_attr("catalog")[0]),
                                                         "log_std_init": -1.0}
    else:
        policy_kwargs = {}
    n_steps = max(2048 // B, 4)
    model = PPO(policy, venv, n_steps=n_steps, batch_size=min(256, n_steps * B), n_epochs=4,
                learning_rate=1e-3, gamma=0.9, seed=seed, device=device, policy_kwargs=policy_kwargs)
    start = time.perf_counter()
    model.learn(timesteps)
    seconds = time.perf_counter() - start
    steps = model.num_timesteps
    env_seconds = venv.env_seconds
    return {"B": B, "user_steps": steps, "seconds": seconds, "steps_per_s": steps / seconds,
            "env_share": env_seconds / seconds, "env_steps_per_s": steps / max(env_seconds, 1e-9)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-envs", type=int, nargs="+", default=[1, 64, 1024])
    parser.add_argument("--timesteps", type=int, default=8192)
    parser.add_argument("--policy", default="candidate_scoring", choices=["candidate_scoring", "MultiInputPolicy"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dummy", type=int, default=0, help="also time DummyVecEnv of this many single envs")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1, as recoworld run uses; 0 keeps torch's default)")
    parser.add_argument("--bandit-users", type=int, default=16384, help="users of the LinUCB loop (0: skip it)")
    parser.add_argument("--bandit-steps", type=int, default=10, help="batched steps of the LinUCB loop")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    print(f"PPO ({args.policy}, {args.device}), {args.timesteps} user-steps per run, "
          f"{torch.get_num_threads()} torch threads")
    header = f"{'loop':<22}{'B':>6}{'user-steps/s':>14}{'env share':>11}{'env user-steps/s':>18}{'seconds':>9}"
    print(header)
    print("-" * len(header))
    rows = []
    for B in args.num_envs:
        row = train(SB3SlateVecEnv(num_envs=B, action_format="scores"), args.policy, args.timesteps, args.device)
        rows.append(("SB3SlateVecEnv", row))
    if args.dummy:
        venv = EnvTimer(DummyVecEnv([lambda i=i: SlateEnv(action_format="scores") for i in range(args.dummy)]))
        rows.append(("DummyVecEnv(SlateEnv)", train(venv, args.policy, args.timesteps, args.device)))
    if args.bandit_users:
        rows.append(("LinUCB + rollout", bandit_loop(args.bandit_users, args.bandit_steps)))
    for label, r in rows:
        print(f"{label:<22}{r['B']:>6}{r['steps_per_s']:>14.0f}{r['env_share']:>10.0%}"
              f"{r['env_steps_per_s']:>18.0f}{r['seconds']:>9.1f}")


if __name__ == "__main__":
    main()
