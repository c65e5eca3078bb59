"""Single-file PPO (CleanRL style) on loantwin.make_vec("cartpole").

    PYTHONPATH=build/python python3 python/examples/ppo_cartpole.py

Clipped PPO with GAE (Schulman et al. 2017; CleanRL's ppo.py hyperparameters for CartPole),
truncated episodes bootstrapped from V(final observation) (same-step autoreset gives it in
info["final_obs"]). Stops when the mean return of the last 20 episodes reaches --target and exits
0; exits 1 if --total-timesteps pass first. Prints steps/s and the time to solve.
"""

import argparse
import collections
import time

import numpy as np
import torch
import torch.nn as nn

import loantwin


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--num-envs", type=int, default=8)
    p.add_argument("--num-steps", type=int, default=128, help="rollout length per env")
    p.add_argument("--total-timesteps", type=int, default=500_000)
    p.add_argument("--learning-rate", type=float, default=2.5e-4)
    p.add_argument("--gamma", type=float, default=0.99)
    p.add_argument("--gae-lambda", type=float, default=0.95)
    p.add_argument("--num-minibatches", type=int, default=4)
    p.add_argument("--update-epochs", type=int, default=4)
    p.add_argument("--clip-coef", type=float, default=0.2)
    p.add_argument("--ent-coef", type=float, default=0.01)
    p.add_argument("--vf-coef", type=float, default=0.5)
    p.add_argument("--max-grad-norm", type=float, default=0.5)
    p.add_argument("--target", type=float, default=475.0, help="20-episode mean return to stop at")
    p.add_argument("--threads", type=int, default=1, help="torch and environment threads")
    return p.parse_args()


def layer(n_in, n_out, std=np.sqrt(2)):
    lin = nn.Linear(n_in, n_out)
    nn.init.orthogonal_(lin.weight, std)
    nn.init.constant_(lin.bias, 0.0)
    return lin


class Agent(nn.Module):
    def __init__(self, obs_dim, n_actions):
        super().__init__()
        self.critic = nn.Sequential(layer(obs_dim, 64), nn.Tanh(), layer(64, 64), nn.Tanh(),
                                    layer(64, 1, std=1.0))
        self.actor = nn.Sequential(layer(obs_dim, 64), nn.Tanh(), layer(64, 64), nn.Tanh(),
                                   layer(64, n_actions, std=0.01))

    def value(self, x):
        return self.critic(x).squeeze(-1)

    def act(self, x, action=None):
        dist = torch.distributions.Categorical(logits=self.actor(x))
        if action is None:
            action = dist.sample()
        return action, dist.log_prob(action), dist.entropy(), self.value(x)


def main():
    args = parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    env = loantwin.make_vec("cartpole", num_envs=args.num_envs, seed=args.seed,
                            threads=args.threads)
    obs_dim = env.single_observation_space.shape[0]
    agent = Agent(obs_dim, env.single_action_space.n)
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)

    n, t_len = args.num_envs, args.num_steps
    batch = n * t_len
    minibatch = batch // args.num_minibatches
    num_updates = args.total_timesteps // batch
    obs_buf = torch.zeros(t_len, n, obs_dim)
    act_buf = torch.zeros(t_len, n, dtype=torch.long)
    logp_buf = torch.zeros(t_len, n)
    rew_buf = torch.zeros(t_len, n)
    done_buf = torch.zeros(t_len, n)
    val_buf = torch.zeros(t_len, n)

    obs, info = env.reset(seed=args.seed)
    next_obs = torch.tensor(obs)  # obs views the environment's buffer: keep a copy
    next_done = torch.zeros(n)
    recent = collections.deque(maxlen=20)
    episodes, steps, start = 0, 0, time.perf_counter()
    solved_at = None
    for update in range(num_updates):
        optimizer.param_groups[0]["lr"] = args.learning_rate * (1.0 - update / num_updates)
        for t in range(t_len):
            obs_buf[t] = next_obs
            done_buf[t] = next_done
            with torch.no_grad():
                action, logp, _, value = agent.act(next_obs)
            act_buf[t], logp_buf[t], val_buf[t] = action, logp, value
            obs, rew, term, trunc, info = env.step(action.numpy().astype(np.int32))
            steps += n
            r = torch.tensor(rew)
            if trunc.any():  # bootstrap truncated episodes from V(final observation)
                idx = np.flatnonzero(trunc)
                with torch.no_grad():
                    v_final = agent.value(torch.tensor(info["final_obs"][idx]))
                r[idx] += args.gamma * v_final
            rew_buf[t] = r
            next_obs = torch.tensor(obs)
            next_done = torch.from_numpy((term | trunc).astype(np.float32))
            for i in np.flatnonzero(info["_final_obs"]):
                recent.append(float(info["final_info"]["episode_return"][i]))
                episodes += 1
        mean20 = np.mean(recent) if len(recent) == recent.maxlen else 0.0
        if mean20 >= args.target:
            solved_at = (steps, time.perf_counter() - start)
            break

        with torch.no_grad():
            next_value = agent.value(next_obs)
            adv = torch.zeros(t_len, n)
            last = torch.zeros(n)
            for t in reversed(range(t_len)):
                not_done = 1.0 - (next_done if t == t_len - 1 else done_buf[t + 1])
                v_next = next_value if t == t_len - 1 else val_buf[t + 1]
                delta = rew_buf[t] + args.gamma * v_next * not_done - val_buf[t]
                last = delta + args.gamma * args.gae_lambda * not_done * last
                adv[t] = last
            ret = adv + val_buf

        b_obs, b_act = obs_buf.reshape(batch, obs_dim), act_buf.reshape(batch)
        b_logp, b_adv, b_ret = logp_buf.reshape(batch), adv.reshape(batch), ret.reshape(batch)
        for _ in range(args.update_epochs):
            perm = torch.randperm(batch)
            for s in range(0, batch, minibatch):
                mb = perm[s:s + minibatch]
                _, logp, entropy, value = agent.act(b_obs[mb], b_act[mb])
                ratio = (logp - b_logp[mb]).exp()
                a = b_adv[mb]
                a = (a - a.mean()) / (a.std() + 1e-8)
                pg = torch.max(-a * ratio, -a * ratio.clamp(1 - args.clip_coef, 1 + args.clip_coef))
                loss = (pg.mean() - args.ent_coef * entropy.mean()
                        + args.vf_coef * 0.5 * ((value - b_ret[mb]) ** 2).mean())
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()
        if update % 10 == 0:
            print(f"steps {steps:>8}  episodes {episodes:>5}  mean return (last 20) {mean20:6.1f}  "
                  f"{steps / (time.perf_counter() - start):8.0f} steps/s", flush=True)

    elapsed = time.perf_counter() - start
    print(f"{steps} steps in {elapsed:.1f} s: {steps / elapsed:.0f} steps/s (environment + PPO)")
    if solved_at:
        print(f"solved: 20-episode mean {np.mean(recent):.1f} >= {args.target} after "
              f"{solved_at[0]} steps, {solved_at[1]:.1f} s")
        return 0
    print(f"not solved: 20-episode mean {np.mean(recent) if recent else 0:.1f} < {args.target} "
          f"after {steps} steps")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
