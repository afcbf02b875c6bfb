"""Options of the RL trainers (light: pydantic only, no torch).

Defaults follow the papers and TRL; docs/plugins/rl.md says where each comes from.
Sizes are per process: under ``accelerate launch`` every process samples its own
``batch_size`` prompts per step.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from okapi_kit import ComponentConfig, InputPath

SCHEDULERS = ("linear", "cosine", "constant")


class RLTrainConfig(ComponentConfig):
    """Optimisation, model, LoRA and checkpoint options shared by every RL trainer."""

    learning_rate: float = Field(1e-6, gt=0, description="Peak learning rate of AdamW (TRL's RLOO: 1e-6).")
    max_steps: int | None = Field(None, gt=0, description="Steps to train; one step is one batch of prompts "
                                  "(or pairs) and its updates. Overrides num_epochs.")
    num_epochs: float = Field(1.0, gt=0, description="Passes over the records when max_steps is not set.")
    batch_size: int = Field(16, ge=1, description="Prompts (offline: pairs) per step and process.")
    micro_batch_size: int = Field(8, ge=1, description="Sequences per forward/backward pass; gradients "
                                  "accumulate over the rest of the batch (less memory, same result).")
    kl_coef: float = Field(0.05, ge=0, description="beta, the strength of the KL penalty to the reference "
                           "model (Stiennon et al. 2020 and TRL: 0.05).")
    lr_scheduler: Literal["linear", "cosine", "constant"] = Field(
        "linear", description="Learning-rate decay after warm-up: linear (TRL's default), cosine or constant.")
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description="Share of the optimiser steps spent warming up.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in the backward pass: less memory, slower training passes.")
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        "auto", description="Mixed precision; auto is bf16 on a GPU that supports it, else fp32.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto takes CUDA when present.")
    attn_implementation: str | None = Field(
        None, description="transformers attention implementation (eager, sdpa, flash_attention_2); "
        "None keeps the model's.")
    lora: bool = Field(False, description="Train LoRA adapters instead of all weights; the reference model "
                       "is then the same model with the adapters disabled (one copy of the weights).")
    lora_r: int = Field(16, ge=1, description="LoRA rank.")
    lora_alpha: int = Field(32, ge=1, description="LoRA scaling alpha.")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="LoRA dropout (0 keeps sampling and "
                                "training log-probabilities identical).")
    lora_target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="Modules that get adapters: all-linear or a list of module names.")
    save_steps: int = Field(100, ge=1, description="Write a resumable checkpoint every this many steps.")
    save_total_limit: int | None = Field(2, ge=1, description="Checkpoints kept (None keeps all).")
    logging_steps: int = Field(10, ge=1, description="Append a line to metrics.jsonl every this many steps "
                               "(and after the first and the last).")


class OnlineConfig(RLTrainConfig):
    """Sampling and reward options of the trainers that learn from their own samples."""

    max_new_tokens: int = Field(64, ge=1, description="Longest completion in tokens; longer ones are cut.")
    max_prompt_length: int = Field(512, ge=1, description="Prompt tokens kept (BOS and the last ones).")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature; log-probabilities are taken "
                               "at the same temperature, so training stays on-policy.")
    top_k: int = Field(0, ge=0, description="Sample among the top k tokens (0: all). Leave at 0 for exact "
                       "on-policy log-probabilities.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling (1: off).")
    generation_batch_size: int | None = Field(
        None, ge=1, description="Sequences per generate call (None: the whole step at once).")
    generation_backend: Literal["auto", "transformers", "vllm"] = Field(
        "auto", description="transformers generate, or vLLM (the okapi-kit[vllm] extra, a CUDA GPU); auto "
        "takes vLLM when it is installed and a GPU is present.")
    vllm_gpu_memory_utilization: float = Field(
        0.3, gt=0, lt=1, description="Share of the GPU's memory the vLLM engine may take (it shares the GPU "
        "with training).")
    missing_eos_penalty: float | None = Field(
        None, ge=0, description="Subtracted from the reward of a completion cut at max_new_tokens "
        "without EOS (TRL's missing_eos_penalty; None: no penalty).")
    adaptive_kl: bool = Field(False, description="Adapt kl_coef towards kl_target (Ziegler et al. 2019).")
    kl_target: float = Field(6.0, gt=0, description="Target KL per completion, in nats, of the adaptive controller.")
    kl_horizon: int = Field(10000, ge=1, description="Horizon of the adaptive controller, in samples.")


class PPOConfig(OnlineConfig):
    """Options of the ``ppo`` trainer (TRL 1.12 and InstructGPT defaults)."""

    learning_rate: float = Field(3e-6, gt=0, description="Peak learning rate of AdamW (TRL's PPO examples: 3e-6).")
    ppo_epochs: int = Field(4, ge=1, description="Passes over each batch of samples (TRL: 4).")
    mini_batch_size: int | None = Field(
        None, ge=1, description="Samples per optimiser step within a PPO epoch (None: the whole batch).")
    clip_range: float = Field(0.2, gt=0, description="epsilon of the clipped policy loss.")
    value_clip_range: float = Field(0.2, gt=0, description="epsilon_v of the clipped value loss.")
    vf_coef: float = Field(0.1, ge=0, description="c_v, weight of the value loss (TRL: 0.1).")
    gamma: float = Field(1.0, ge=0, le=1, description="Discount factor.")
    lam: float = Field(0.95, ge=0, le=1, description="GAE lambda.")
    whiten_advantages: bool = Field(True, description="Whiten the advantages over the batch.")
    whiten_rewards: bool = Field(False, description="Whiten the per-token rewards over the batch.")
    kl_estimator: Literal["k1", "k3"] = Field(
        "k1", description="Per-token KL estimate in the reward: k1 = log pi - log pi_ref; k3 = "
        "exp(-k1) - 1 + k1 (lower variance).")
    critic: Literal["head", "reward_model"] = Field(
        "head", description="head: a value head on the policy's backbone (trlx, as Okapi). reward_model: "
        "a separate critic initialised from the reward model (InstructGPT, TRL).")
    critic_model: str | None = Field(
        None, description="With critic: reward_model, the model to start the critic from (default: the "
        "reward source's model). It must share the policy's tokenizer.")
    critic_learning_rate: float | None = Field(
        None, gt=0, description="Learning rate of the value head or critic (None: learning_rate).")
    ptx_data: InputPath | None = Field(
        None, description="PPO-ptx: JSON/JSONL of pretraining texts ({'text'} or {'prompt', "
        "'completion'}) whose log-likelihood is mixed into the loss (InstructGPT).")
    ptx_coef: float = Field(0.05, ge=0, description="gamma_ptx, weight of the pretraining term "
                            "(OpenRLHF: 0.05).")
    ptx_batch_size: int = Field(4, ge=1, description="Pretraining texts per optimiser step.")


class ReinforceConfig(OnlineConfig):
    """Options of the ``reinforce`` trainer (Ahmadian et al. 2024)."""

    baseline_decay: float = Field(
        0.9, ge=0, lt=1, description="b <- decay * b + (1 - decay) * mean R of the batch; the first "
        "batch starts b at its own mean.")
    normalize_advantages: bool = Field(False, description="Divide the advantages by their batch std.")


class RLOOConfig(OnlineConfig):
    """Options of the ``rloo`` trainer (Ahmadian et al. 2024)."""

    batch_size: int = Field(8, ge=1, description="Prompts per step and process (each sampled k times).")
    k: int = Field(4, ge=2, description="Completions per prompt; each one's baseline is the mean reward of "
                   "the other k-1 (the paper's best runs: 4).")
    normalize_advantages: bool = Field(False, description="Divide the advantages by their batch std.")


class CoPGConfig(OnlineConfig):
    """Options of the online ``copg`` trainer (Flet-Berliac et al. 2024): two samples per prompt."""

    batch_size: int = Field(8, ge=1, description="Prompts per step and process (each sampled twice).")


class OfflineCoPGConfig(RLTrainConfig):
    """Options of the ``copg_offline`` trainer: pairs of completions with their rewards."""

    batch_size: int = Field(8, ge=1, description="Pairs per step and process.")
    kl_coef: float = Field(0.5, gt=0, description="beta: a pair's loss is least when the log-ratio gap "
                           "l(y) - l(y') equals the reward gap / beta; offline nothing else holds the "
                           "policy back, so beta must map the data's reward gaps to a few nats.")
    max_prompt_length: int = Field(512, ge=1, description="Prompt tokens kept (BOS and the last ones).")
    max_completion_length: int = Field(512, ge=1, description="Completion tokens kept (the first ones).")
