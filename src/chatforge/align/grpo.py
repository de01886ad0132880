"""GRPO with verifiable rewards (DeepSeekMath; TRL's GRPOTrainer; Dr. GRPO; DAPO).

No value model: each prompt (a fresh word problem of the corpus, one SFT never trained on) gets
`group` sampled answers, each answer a reward the corpus can check (1 for the right number, 0
otherwise; on the held-out prompts also 1 for the right fact or for refusing a harmful request;
optionally plus the reward model's score), and the advantage of an
answer is its reward minus its group's mean, divided by the group's std (Dr. GRPO: not
divided). The loss is PPO's clipped surrogate on those advantages, per answer or (DAPO)
per token, with an optional k3 KL penalty against the SFT model. A group whose answers all
get the same reward teaches nothing: the share of such groups is logged, and an alarm fires
when it dominates.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable

import torch
from rich.console import Console

from chatforge.align.collect import corpus_prompts, fresh_problems
from chatforge.align.judges import RuleJudge
from chatforge.align.pairs import greedy_answers, prompt_messages, reward_scores
from chatforge.align.ppo import answer_kl, compare_with_sft, judge_answers
from chatforge.align.rl import (
    Alarms,
    clipped_policy_loss,
    entropy_from_logits,
    group_advantages,
    kl_estimate,
    masked_mean,
    minibatch_rows,
    rollout,
    scaled_logprobs,
)
from chatforge.answer_memo import remembered
from chatforge.config import Config
from chatforge.device import pick_device
from chatforge.model.checkpoint import load_checkpoint, load_model, resolve_checkpoint
from chatforge.model.gpt import GPT, GPTConfig, token_logprobs
from chatforge.runs import RunDir, atomic_write_json, files_digest
from chatforge.stage import StageResult
from chatforge.tokenizer.bpe import Tokenizer, load_tokenizer
from chatforge.tokenizer.chat import render_prompt
from chatforge.train.loop import Dist, TrainTask, identity, init_distributed, train

VERIFIABLE = ("fact", "arithmetic", "refusal")


def verifiable_reward(prompt: dict, text: str, ended: bool) -> float:
    """The rule judge's score: 1 for a right answer (or a refusal of a harmful request), else 0."""
    return RuleJudge.score(prompt, text, ended) or 0.0


class GRPOTask:
    """Group rollouts and the clipped loss, as a TrainTask for the shared loop. `reward_fn`
    (prompt, answer text, ended) -> float is the verifiable reward unless given."""

    def __init__(self, policy: GPT, ref: GPT | None, rm, tok: Tokenizer, prompts: list[dict],
                 heldout: list[dict], cfg: Config, ddp: Dist,
                 reward_fn: Callable[[dict, str, bool], float] = verifiable_reward):
        self.model, self.ref, self.rm, self.tok, self.reward_fn = policy, ref, rm, tok, reward_fn
        self.prompts, self.heldout, self.cfg, self.ddp = prompts, heldout, cfg, ddp
        g = self.g = cfg.grpo
        self.rows = g.rollout_prompts * g.group
        self.local_accum = max(1, g.train.grad_accum // ddp.world)
        self.mb_size = g.train.batch_size * self.local_accum
        self.minibatches = max(1, self.rows // self.mb_size)
        self.cycle = g.epochs * self.minibatches
        self.alarms = Alarms(g.kl_bound, g.entropy_floor, g.length_factor, g.flat_group_share)
        self.history: list[dict] = []
        self.buffer: dict | None = None
        self.buffer_step = -1
        self.stats: dict[str, float] = {}
        self.console = Console(stderr=True)
        sample = prompts[:64]
        self.row_tokens = sum(len(render_prompt(tok, prompt_messages(x))) for x in sample) / max(len(sample), 1) \
            + g.max_new_tokens / 2

    @torch.no_grad()
    def collect(self, model: GPT, step: int) -> None:
        g, seed = self.g, self.cfg.run.seed
        index = step // self.cycle
        rng = random.Random(f"grpo/{seed}/{index}/{self.ddp.rank}")
        chosen = [self.prompts[rng.randrange(len(self.prompts))] for _ in range(g.rollout_prompts)]
        batch = [p for p in chosen for _ in range(g.group)]  # each prompt's group side by side
        ro = rollout(model, self.tok, batch, g.temperature, g.max_new_tokens,
                     seed=seed * 1_000_003 + index * 7919 + self.ddp.rank * 104_729)
        old_logp, entropy = scaled_logprobs(model, ro.ids, ro.targets, g.temperature)
        rewards = torch.tensor([self.reward_fn(p, t, bool(e)) for p, t, e in zip(batch, ro.texts, ro.ended, strict=True)])
        if g.reward_model_weight > 0:
            rewards = rewards + g.reward_model_weight * torch.tensor(reward_scores(self.rm, self.tok, batch, ro.texts))
        adv = group_advantages(rewards, g.group, scale=g.scale_advantages)
        ref_logp = scaled_logprobs(self.ref, ro.ids, ro.targets, g.temperature)[0] if self.ref is not None else old_logp
        self.buffer = {"ids": ro.ids, "targets": ro.targets, "mask": ro.mask, "old_logp": old_logp,
                       "ref_logp": ref_logp, "adv": adv[:, None].expand_as(old_logp).contiguous()}
        self.buffer_step = index
        flat = (rewards.view(-1, g.group).std(dim=1) == 0).float().mean()
        self.stats = {
            "score": float(rewards.mean()), "flat_groups": float(flat),
            "kl": float((kl_estimate(old_logp, ref_logp, "k1") * ro.mask).sum(1).mean()),
            "entropy": float(masked_mean(entropy, ro.mask)),
            "response_len": float(ro.lengths.float().mean()), "ended": float(ro.ended.float().mean()),
        }
        for message in self.alarms.check_rollout(step, self.stats):
            self.console.print(f"[bold yellow]grpo alarm:[/bold yellow] {message}")
        self.last_texts = ro.texts[:3]

    def between_steps(self, model: GPT, step: int) -> None:
        if step % self.cycle == 0 or self.buffer_step != step // self.cycle:
            self.collect(model, step)

    def train_batch(self, gen: torch.Generator, step: int, micro: int):
        rows = minibatch_rows(step, micro, rows=self.rows, cycle=self.cycle, minibatches=self.minibatches,
                              mb_size=self.mb_size, micro_size=self.g.train.batch_size,
                              local_accum=self.local_accum, seed=self.cfg.run.seed * 37)
        return tuple(self.buffer[n][rows] for n in ("ids", "targets", "mask", "old_logp", "ref_logp", "adv"))

    def loss_fn(self, model, batch):
        ids, targets, mask, old_logp, ref_logp, adv = batch
        logits = model(ids) / self.g.temperature
        logp = token_logprobs(logits, targets)
        loss, clipfrac, approx_kl = clipped_policy_loss(logp, old_logp, adv, mask, self.g.clip,
                                                        token_level=self.g.token_level)
        metrics = {"clipfrac": clipfrac, "approx_kl": approx_kl,
                   "policy_entropy": masked_mean(entropy_from_logits(logits.detach()), mask), **self.stats}
        if self.g.kl_coef > 0:
            kl = masked_mean(kl_estimate(logp, ref_logp, "k3"), mask)
            loss = loss + self.g.kl_coef * kl
            metrics["kl_penalty"] = kl.detach()
        return loss, metrics

    def evaluate(self, model: GPT) -> dict[str, float]:
        judged = judge_answers(self.heldout, greedy_answers(model, self.tok, self.heldout, self.g.max_new_tokens))
        self.history.append({"score": judged["accuracy"], "accuracy": judged["accuracy"]})
        return {"heldout_accuracy": judged["accuracy"], "heldout_refusal_rate": judged["refusal_rate"]}

    def state(self) -> dict:
        return {"alarms": self.alarms.state(), "history": self.history}

    def load_state(self, d: dict) -> None:
        self.alarms.load(d["alarms"])
        self.history = list(d["history"])

    def as_train_task(self) -> TrainTask:
        return TrainTask(
            model=self.model, train_batch=self.train_batch, loss_fn=self.loss_fn,
            tokens_per_batch=round(self.g.train.batch_size * self.row_tokens),
            flops_per_token=self.model.flops_per_token(), evaluate=self.evaluate,
            sample=lambda m: list(getattr(self, "last_texts", [])), between_steps=self.between_steps,
            state=self.state, load_state=self.load_state, save_extra={"stage": "grpo"},
        )


def run(cfg: Config, run: RunDir, console: Console | None = None) -> StageResult:
    """Pipeline stage: checkpoints/sft -> checkpoints/grpo, eval/grpo.json."""
    console = console or Console(stderr=True)
    g = cfg.grpo
    device = pick_device(cfg.run.device)
    ddp = init_distributed(device)
    tok = load_tokenizer(run.tokenizer)
    sft_dir = run.checkpoint("sft")
    sft = load_model(sft_dir, device)
    policy = GPT(GPTConfig(**{**sft.cfg.to_dict(), "dropout": 0.0})).to(device)
    policy.load_state_dict(sft.state_dict())
    ref = sft.eval().requires_grad_(False)
    rm_dir = run.checkpoint("reward")
    rm = load_checkpoint(rm_dir, device).eval().requires_grad_(False) if (rm_dir / "LATEST").is_file() else None
    # Training on fresh word problems: to the requests SFT trained on, its answers barely vary,
    # so nearly every group is flat; held-out facts and refusals watch that nothing else falls.
    train_prompts = fresh_problems(run, "train", g.prompts, cfg.run.seed + 2)
    heldout = (corpus_prompts(run, 0, g.heldout_prompts, cfg.run.seed + 2, kinds=VERIFIABLE)
               + fresh_problems(run, "heldout", g.heldout_problems, cfg.run.seed + 2))
    task = GRPOTask(policy, ref if g.kl_coef > 0 else None, rm, tok, train_prompts, heldout, cfg, ddp)
    tcfg = dataclasses.replace(g.train, checkpoint_every=max(task.cycle, -(-g.train.checkpoint_every // task.cycle) * task.cycle))
    ident = identity(tcfg, seed=cfg.run.seed, **{k: v for k, v in dataclasses.asdict(g).items() if k != "train"})
    upstream = {"sft": files_digest([resolve_checkpoint(sft_dir) / "model.safetensors"])}
    result = train(task.as_train_task(), tcfg, run.checkpoint("grpo"), run.metrics("grpo"), seed=cfg.run.seed,
                   ident=ident, upstream=upstream, device=device, console=console, stage="grpo",
                   restart=run.restart)
    if not ddp.main:
        return StageResult(device=device.type)
    policy.eval()
    with remembered(run.answers):  # the reward comparison below asks the same prompts again
        mine = judge_answers(heldout, greedy_answers(policy, tok, heldout, g.max_new_tokens))
        base = judge_answers(heldout, greedy_answers(ref, tok, heldout, g.max_new_tokens))
        report = {"accuracy": mine["accuracy"], "sft_accuracy": base["accuracy"],
                  "word_problem_accuracy": mine["accuracy_arithmetic"],
                  "sft_word_problem_accuracy": base["accuracy_arithmetic"],
                  "refusal_rate": mine["refusal_rate"], "sft_refusal_rate": base["refusal_rate"],
                  "kl_to_sft": answer_kl(policy, ref, tok, heldout, g.temperature, g.max_new_tokens, cfg.run.seed),
                  "steps": result.steps, "alarms": task.alarms.fired, "wall_s": result.wall_s,
                  **{f"last_{k}": v for k, v in result.metrics.items()}}
        if rm is not None:
            r = compare_with_sft(policy, ref, rm, tok, heldout, cfg, g.temperature, g.max_new_tokens)
            report.update({k: r[k] for k in ("rm_score", "rm_score_std", "sft_rm_score", "score_gain_in_sft_std")})
    atomic_write_json(run.eval("grpo"), report)
    alarms = f"; ALARMS: {' | '.join(report['alarms'])}" if report["alarms"] else ""
    return StageResult(
        outputs={"checkpoint": str(run.checkpoint("grpo")), "eval": str(run.eval("grpo"))}, metrics=report,
        summary=(f"held-out accuracy {base['accuracy']:.1%} -> {mine['accuracy']:.1%} (word problems "
                 f"{base['accuracy_arithmetic']:.1%} -> {mine['accuracy_arithmetic']:.1%}), refusals "
                 f"{base['refusal_rate']:.0%} -> {mine['refusal_rate']:.0%}, KL to SFT {report['kl_to_sft']:.2f}{alarms}"),
        device=device.type,
    )
