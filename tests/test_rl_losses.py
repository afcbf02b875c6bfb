"""The RL losses of okapi_kit_rl against the formulas of ALGORITHMS.md, on fixed tensors with
expectations worked out by hand (and, for the long-sequence paths, a plain loop)."""

from __future__ import annotations

import math

import pytest
import torch
from okapi_kit_rl.losses import (
    AdaptiveKLController,
    copg_loss,
    discounted_cumsum,
    gae,
    ipo_loss,
    kl_estimate,
    masked_mean,
    masked_whiten,
    policy_gradient_loss,
    ppo_policy_loss,
    ppo_value_loss,
    rloo_advantages,
    selective_log_softmax,
    sequence_rewards,
    token_rewards,
    update_baseline,
)


def t(*rows):
    return torch.tensor(rows, dtype=torch.float64)


def close(a, b, tol=1e-6):
    torch.testing.assert_close(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64),
                               atol=tol, rtol=0)


def test_masked_mean_and_whitening_ignore_padding():
    values, mask = t(1.0, 2.0, 3.0, 100.0), t(1.0, 1.0, 1.0, 0.0)
    close(masked_mean(values, mask), 2.0)
    close(masked_mean(values, mask, denominator=6), 1.0)
    # mean 2, population variance 2/3
    s = math.sqrt(2 / 3)
    close(masked_whiten(values, mask), [-1 / s, 0.0, 1 / s, 0.0], 1e-5)
    close(masked_whiten(values, mask, shift_mean=False), [-1 / s + 2, 2.0, 1 / s + 2, 0.0], 1e-5)


def test_kl_estimators():
    logp, ref = t(-1.0, -2.0), t(-1.5, -1.0)
    close(kl_estimate(logp, ref, "k1"), [0.5, -1.0])
    close(kl_estimate(logp, ref, "k3"), [math.exp(-0.5) - 1 + 0.5, math.exp(1.0) - 1 - 1.0])
    with pytest.raises(ValueError):
        kl_estimate(logp, ref, "k2")


def test_per_token_rewards_put_the_score_on_the_last_response_token():
    kl = t([0.1, 0.2, 0.3], [0.5, 7.0, 7.0])
    mask = t([1.0, 1.0, 1.0], [1.0, 0.0, 0.0])
    rewards = token_rewards(t(2.0, 1.0), kl, mask, kl_coef=0.5)
    close(rewards, [[-0.05, -0.1, -0.15 + 2.0], [-0.25 + 1.0, 0.0, 0.0]])


def test_gae_by_hand():
    rewards = t([0.0, 0.0, 1.0], [0.0, 2.0, 9.0])
    values = t([0.5, 0.6, 0.7], [1.0, 0.5, 3.0])
    mask = t([1.0, 1.0, 1.0], [1.0, 1.0, 0.0])
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=0.5)
    # row 0: deltas 0.1, 0.1, 0.3 -> A2 = 0.3, A1 = 0.1 + 0.5*0.3, A0 = 0.1 + 0.5*0.25
    # row 1: V after the last token is 0: deltas -0.5, 1.5 -> A1 = 1.5, A0 = -0.5 + 0.75
    close(adv, [[0.225, 0.25, 0.3], [0.25, 1.5, 0.0]])
    close(ret, [[0.725, 0.85, 1.0], [1.25, 2.0, 0.0]])
    adv_g, _ = gae(rewards[:1], values[:1], mask[:1], gamma=0.9, lam=1.0)
    # delta_t = r_t + 0.9 V_{t+1} - V_t: 0.04, 0.03, 0.3; A = discounted sums with 0.9
    close(adv_g, [[0.04 + 0.9 * 0.03 + 0.81 * 0.3, 0.03 + 0.9 * 0.3, 0.3]])


def test_discounted_cumsum_matches_a_loop_across_blocks():
    gen = torch.Generator().manual_seed(0)
    values = torch.randn(3, 1300, generator=gen, dtype=torch.float64)
    for discount in (0.0, 0.95, 1.0):
        expected = torch.zeros_like(values)
        running = torch.zeros(3, dtype=torch.float64)
        for i in range(values.shape[1] - 1, -1, -1):
            running = values[:, i] + discount * running
            expected[:, i] = running
        close(discounted_cumsum(values, discount, block=512), expected, 1e-8)


def test_ppo_policy_loss_by_hand():
    logp, old = t(0.0, 0.5, -0.5), t(0.0, 0.0, 0.0)
    adv, mask = t(1.0, 1.0, -1.0), t(1.0, 1.0, 1.0)
    loss, clip_frac, approx_kl = ppo_policy_loss(logp, old, adv, mask, clip_range=0.2)
    # token 1: rho = e^0.5 > 1.2 with A > 0 -> clipped at 1.2; token 2: rho = e^-0.5 < 0.8 with A < 0 -> 0.8
    close(loss, (-1.0 - 1.2 + 0.8) / 3)
    close(clip_frac, 2 / 3)
    close(approx_kl, 0.5 * (0.25 + 0.25) / 3)
    # a masked token changes nothing; a minibatch denominator rescales
    loss2, _, _ = ppo_policy_loss(t(0.0, 0.5, 9.0), old, adv, t(1.0, 1.0, 0.0), 0.2, denominator=4)
    close(loss2, (-1.0 - 1.2) / 4)


def test_ppo_policy_gradient_stops_outside_the_trust_region():
    logp = torch.tensor([0.5, 0.0], dtype=torch.float64, requires_grad=True)
    loss, _, _ = ppo_policy_loss(logp, t(0.0, 0.0), t(1.0, 1.0), t(1.0, 1.0), 0.2)
    loss.backward()
    # clipped token: no gradient; the other: d/dlogp of -rho*A/2 at rho = 1 is -0.5
    close(logp.grad, [0.0, -0.5])


def test_ppo_value_loss_by_hand():
    values, old, returns, mask = t(1.0, 2.0), t(0.5, 2.0), t(2.0, 1.0), t(1.0, 1.0)
    loss, clip_frac = ppo_value_loss(values, old, returns, mask, clip_range=0.2)
    # V clipped to 0.7 for the first: max(1, 1.69) = 1.69; second: 1
    close(loss, 0.5 * (1.69 + 1.0) / 2)
    close(clip_frac, 0.5)


def test_adaptive_kl_controller():
    ctl = AdaptiveKLController(0.1, target=6.0, horizon=10000)
    close(ctl.update(12.0, 100), 0.1 * (1 + 0.2 * 100 / 10000))  # error clipped at +0.2
    ctl = AdaptiveKLController(0.1, target=6.0, horizon=10000)
    close(ctl.update(5.4, 100), 0.1 * (1 - 0.1 * 100 / 10000))
    fixed = AdaptiveKLController(0.1, target=None)
    close(fixed.update(100.0, 100), 0.1)


def test_reinforce_reward_baseline_and_loss():
    close(sequence_rewards(t(3.0), t(-10.0), t(-12.0), 0.1), [2.8])
    assert update_baseline(None, 2.0, 0.9) == 2.0
    close(update_baseline(2.0, 4.0, 0.9), 2.2)
    logp = torch.tensor([-1.0, -2.0], dtype=torch.float64, requires_grad=True)
    loss = policy_gradient_loss(logp, t(0.5, -1.0))
    close(loss, -(0.5 * -1.0 + -1.0 * -2.0) / 2)
    loss.backward()
    close(logp.grad, [-0.25, 0.5])


def test_rloo_advantages():
    close(rloo_advantages(t(1.0, 2.0, 3.0, 6.0), k=2), [-1.0, 1.0, -3.0, 3.0])
    close(rloo_advantages(t(1.0, 2.0, 3.0, 6.0), k=4), [1 - 11 / 3, 2 - 10 / 3, 0.0, 4.0])


def test_copg_loss_and_gradient():
    logp = torch.tensor([-1.0], dtype=torch.float64, requires_grad=True)
    other = torch.tensor([-2.0], dtype=torch.float64, requires_grad=True)
    ref, other_ref, r, other_r, beta = t(-1.5), t(-1.8), t(2.0), t(0.5), 0.1
    loss = copg_loss(logp, other, ref, other_ref, r, other_r, beta)
    # reward gap 1.5, log-prob gap 1.0, log-ratio gap 0.5 - (-0.2) = 0.7
    close(loss, -(1.5 * 1.0 - 0.05 * 0.49))
    loss.backward()
    # -(R_beta(y) - R_beta(y')) = -(1.5 - 0.1 * 0.7) on y, the opposite on y'
    close(logp.grad, [-1.43])
    close(other.grad, [1.43])


def test_copg_equals_its_squared_form_and_ipo_up_to_constants():
    gen = torch.Generator().manual_seed(1)
    ref, other_ref = torch.randn(5, generator=gen, dtype=torch.float64), torch.randn(5, generator=gen, dtype=torch.float64)
    r, other_r, beta = torch.randn(5, generator=gen, dtype=torch.float64), torch.randn(5, generator=gen, dtype=torch.float64), 0.3
    gaps, ipo_gaps = [], []
    for _ in range(3):  # several policies: the differences must not depend on the policy
        logp = torch.randn(5, generator=gen, dtype=torch.float64)
        other = torch.randn(5, generator=gen, dtype=torch.float64)
        copg = copg_loss(logp, other, ref, other_ref, r, other_r, beta, denominator=1) / 5
        ratio_gap = (logp - ref) - (other - other_ref)
        squared = ((r - other_r - beta * ratio_gap) ** 2 / (2 * beta)).mean()
        gaps.append(float(copg - squared))
        # R = 1 for the chosen, 0 for the rejected, beta = 2 tau: CoPG = beta/2 * IPO + const
        copg01 = copg_loss(logp, other, ref, other_ref, torch.ones(5, dtype=torch.float64),
                           torch.zeros(5, dtype=torch.float64), beta)
        ipo = ipo_loss(logp, other, ref, other_ref, tau=beta / 2)
        ipo_gaps.append(float(copg01 - beta / 2 * ipo))
    assert max(gaps) - min(gaps) < 1e-9
    assert max(ipo_gaps) - min(ipo_gaps) < 1e-9
    # the constant of the IPO case: -1/(2 beta) - mean(log pi_ref(y) - log pi_ref(y'))
    close(ipo_gaps[0], -1 / (2 * beta) - float((ref - other_ref).mean()))


def test_ipo_by_hand():
    # h = (-1 - -2) - (-3 - -3) = 1; tau = 0.25 -> target 2 -> (1 - 2)^2
    close(ipo_loss(t(-1.0), t(-3.0), t(-2.0), t(-3.0), tau=0.25), 1.0)


def test_selective_log_softmax():
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(11, 4, 7, generator=gen)
    tokens = torch.randint(0, 7, (11, 4), generator=gen)
    expected = torch.log_softmax(logits, -1).gather(-1, tokens[..., None]).squeeze(-1)
    torch.testing.assert_close(selective_log_softmax(logits, tokens, chunk=3), expected)
