"""PPO under a KL leash: the seed's RLHF algorithm (InstructGPT; TRL; OpenRLHF).

One rollout feeds `epochs x minibatches` optimizer steps of the shared loop. Before the
first of them (the loop's between-steps hook, every rank its own share, in eval mode):

1. sample an answer per prompt with the engine (temperature T, KV cache);
2. score it: the reward model at the end-of-turn token, minus a penalty for answers that
   never end; normalise with running statistics and clip;
3. per-token reward = -kl_coef * KL(policy || SFT reference) (k1 or k3), plus the score on
   the last answer token; GAE (gamma, lambda) against the value model; whiten advantages.

Each step then takes one minibatch (its micro-batches split by the loop) and minimises the
clipped policy loss plus vf_coef times the clipped value loss. The value model starts from
the reward model (InstructGPT); policy and value are one `PolicyValueModel`, so the loop's
optimizer, clipping, DDP and checkpoints hold both. The KL coefficient adapts after every
rollout when a target is set (Ziegler et al.). Checkpoints fall on rollout boundaries, and
the running statistics, KL coefficient and alarms are task state, so a killed run resumes to
the uninterrupted run's numbers.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence

import torch
import torch.distributed as dist
from rich.console import Console

from chatforge.align.collect import corpus_prompts, decided_prompts, generation_key, safety_requests
from chatforge.align.judges import RuleJudge
from chatforge.align.pairs import greedy_answers, prompt_messages, reward_scores
from chatforge.align.prefs import PrefStore
from chatforge.align.rl import (
    AdaptiveKL,
    Alarms,
    RunningMoments,
    clipped_policy_loss,
    clipped_value_loss,
    entropy_from_logits,
    explained_variance,
    gae,
    kl_estimate,
    masked_mean,
    minibatch_rows,
    rollout,
    scaled_logprobs,
    whiten,
)
from chatforge.answer_memo import remembered
from chatforge.config import Config
from chatforge.device import pick_device
from chatforge.model.checkpoint import load_checkpoint, load_model, resolve_checkpoint
from chatforge.model.gpt import GPT, GPTConfig, token_logprobs
from chatforge.model.reward import PolicyValueModel, RewardModel
from chatforge.runs import RunDir, atomic_write_json, files_digest
from chatforge.stage import StageResult
from chatforge.tokenizer.bpe import Tokenizer, load_tokenizer
from chatforge.tokenizer.chat import render_prompt
from chatforge.train.loop import Dist, TrainTask, identity, init_distributed, train


def judge_answers(prompts: Sequence[dict], completions: Sequence) -> dict[str, float]:
    """Accuracy on the verifiable held-out prompts and refusals of the harmful ones."""
    right: dict[str, list[bool]] = {"fact": [], "arithmetic": []}
    refused = []
    for p, c in zip(prompts, completions, strict=True):
        ended = c.finish_reason == "stop"
        if p["kind"] in right:
            right[p["kind"]].append(bool(RuleJudge.score(p, c.text, ended)))
        elif p["kind"] == "refusal":
            refused.append(bool(RuleJudge.score(p, c.text, ended)))
    both = right["fact"] + right["arithmetic"]
    return {"accuracy": sum(both) / max(len(both), 1),
            **{f"accuracy_{k}": sum(v) / max(len(v), 1) for k, v in right.items()},
            "refusal_rate": sum(refused) / max(len(refused), 1), "n": len(both)}


@torch.no_grad()
def answer_kl(policy: GPT, ref: GPT, tok: Tokenizer, prompts: Sequence[dict], temperature: float,
              max_new_tokens: int, seed: int) -> float:
    """Mean per-answer KL(policy || reference) on sampled answers to held-out prompts."""
    ro = rollout(policy, tok, prompts, temperature, max_new_tokens, seed)
    logp, _ = scaled_logprobs(policy, ro.ids, ro.targets, temperature)
    ref_logp, _ = scaled_logprobs(ref, ro.ids, ro.targets, temperature)
    return float((kl_estimate(logp, ref_logp, "k1") * ro.mask).sum(1).mean())


class PPOTask:
    """Rollouts, advantages and the PPO losses, as a TrainTask for the shared loop."""

    def __init__(self, model: PolicyValueModel, ref: GPT, rm: RewardModel, tok: Tokenizer,
                 prompts: list[dict], heldout: list[dict], cfg: Config, ddp: Dist):
        self.model, self.ref, self.rm, self.tok = model, ref, rm, tok
        self.prompts, self.heldout, self.cfg, self.ddp = prompts, heldout, cfg, ddp
        p = cfg.ppo
        self.p = p
        self.local_prompts = p.rollout_prompts
        self.local_accum = max(1, p.train.grad_accum // ddp.world)
        self.mb_size = p.train.batch_size * self.local_accum  # rows per optimizer step, per process
        self.minibatches = max(1, self.local_prompts // self.mb_size)
        self.cycle = p.epochs * self.minibatches
        self.kl = AdaptiveKL(p.kl_coef, p.kl_target, p.kl_horizon)
        self.moments = RunningMoments()
        self.alarms = Alarms(p.kl_bound, p.entropy_floor, p.length_factor)
        self.history: list[dict] = []  # held-out evaluations, for the hacking alarm
        self.buffer: dict | None = None
        self.buffer_step = -1
        self.stats: dict[str, float] = {}
        self.console = Console(stderr=True)
        sample = prompts[:64]
        self.row_tokens = sum(len(render_prompt(tok, prompt_messages(x))) for x in sample) / max(len(sample), 1) \
            + p.max_new_tokens / 2  # a rollout row's expected length, for throughput

    # -- rollouts --

    @torch.no_grad()
    def collect(self, model: PolicyValueModel, step: int) -> None:
        p, seed = self.p, self.cfg.run.seed
        index = step // self.cycle
        rng = random.Random(f"{seed}/{index}/{self.ddp.rank}")
        batch = [self.prompts[rng.randrange(len(self.prompts))] for _ in range(self.local_prompts)]
        ro = rollout(model.policy, self.tok, batch, p.temperature, p.max_new_tokens,
                     seed=seed * 1_000_003 + index * 7919 + self.ddp.rank * 104_729)
        old_logp, entropy = scaled_logprobs(model.policy, ro.ids, ro.targets, p.temperature)
        ref_logp, _ = scaled_logprobs(self.ref, ro.ids, ro.targets, p.temperature)
        values = model.value(ro.ids)
        score = self.rm(ro.ids, ro.last, ro.targets) + p.missing_eos_penalty * (~ro.ended).float()
        self.moments.update(score)
        norm = ((score - self.moments.mean) / self.moments.std) if p.normalize_reward else score
        norm = norm.clamp(-p.reward_clip, p.reward_clip)
        kl = kl_estimate(old_logp, ref_logp, p.kl_estimator) * ro.mask
        rewards = -self.kl.value * kl
        last = _last_masked(ro.mask)
        has = last >= 0
        rewards[has.nonzero().flatten(), last[has]] += norm[has]
        adv, returns = gae(rewards, values, ro.mask, p.gamma, p.lam)
        adv = whiten(adv, ro.mask)
        self.buffer = {"ids": ro.ids, "targets": ro.targets, "mask": ro.mask, "old_logp": old_logp,
                       "adv": adv, "returns": returns, "old_values": values}
        self.buffer_step = index
        kl_per_answer = float(kl.sum(1).mean())
        self.stats = {
            "score": float(score.mean()), "kl": kl_per_answer,
            "non_score_reward": float((-self.kl.value * kl).sum(1).mean()),
            "entropy": float(masked_mean(entropy, ro.mask)),
            "response_len": float(ro.lengths.float().mean()), "ended": float(ro.ended.float().mean()),
            "explained_variance": explained_variance(values, returns, ro.mask),
            "kl_coef": self.kl.value,
        }
        self.stats = _all_ranks_mean(self.stats, self.ddp)
        self.kl.update(self.stats["kl"], self.local_prompts * self.ddp.world)
        for message in self.alarms.check_rollout(step, self.stats):
            self.console.print(f"[bold yellow]ppo alarm:[/bold yellow] {message}")
        self.last_texts = ro.texts[:3]

    def between_steps(self, model: PolicyValueModel, step: int) -> None:
        if step % self.cycle == 0 or self.buffer_step != step // self.cycle:
            self.collect(model, step)

    # -- the loop's contract --

    def train_batch(self, gen: torch.Generator, step: int, micro: int):
        rows = minibatch_rows(step, micro, rows=self.local_prompts, cycle=self.cycle,
                              minibatches=self.minibatches, mb_size=self.mb_size,
                              micro_size=self.p.train.batch_size, local_accum=self.local_accum,
                              seed=self.cfg.run.seed * 31)
        b = self.buffer
        return tuple(b[name][rows] for name in ("ids", "targets", "mask", "old_logp", "adv", "returns", "old_values"))

    def loss_fn(self, model, batch):
        ids, targets, mask, old_logp, adv, returns, old_values = batch
        logits, values = model(ids)
        t = self.p.temperature
        logits = logits / t if t > 0 else logits
        logp, entropy = token_logprobs(logits, targets), entropy_from_logits(logits)
        pg, clipfrac, approx_kl = clipped_policy_loss(logp, old_logp, adv, mask, self.p.clip)
        vf, vf_clipfrac = clipped_value_loss(values, old_values, returns, mask, self.p.value_clip)
        loss = pg + self.p.vf_coef * vf
        return loss, {"pg_loss": pg.detach(), "value_loss": vf.detach(), "clipfrac": clipfrac,
                      "approx_kl": approx_kl, "vf_clipfrac": vf_clipfrac,
                      "policy_entropy": masked_mean(entropy.detach(), mask), **self.stats}

    def evaluate(self, model: PolicyValueModel) -> dict[str, float]:
        done = greedy_answers(model.policy, self.tok, self.heldout, self.p.max_new_tokens)
        scores = reward_scores(self.rm, self.tok, self.heldout, [c.text for c in done])
        judged = judge_answers(self.heldout, done)
        self.history.append({"score": sum(scores) / len(scores), "accuracy": judged["accuracy"],
                             "n": judged["n"]})
        for message in self.alarms.check_heldout(len(self.history), self.history):
            self.console.print(f"[bold yellow]ppo alarm:[/bold yellow] {message}")
        return {"heldout_score": self.history[-1]["score"], "heldout_accuracy": judged["accuracy"],
                "heldout_refusal_rate": judged["refusal_rate"]}

    def sample(self, model) -> list[str]:
        return list(getattr(self, "last_texts", []))

    def state(self) -> dict:
        return {"kl_coef": self.kl.value, "moments": dataclasses.asdict(self.moments),
                "alarms": self.alarms.state(), "history": self.history}

    def load_state(self, d: dict) -> None:
        self.kl.value = d["kl_coef"]
        self.moments = RunningMoments(**d["moments"])
        self.alarms.load(d["alarms"])
        self.history = list(d["history"])

    def as_train_task(self) -> TrainTask:
        return TrainTask(
            model=self.model, train_batch=self.train_batch, loss_fn=self.loss_fn,
            tokens_per_batch=round(self.mb_size / self.local_accum * self.row_tokens),
            flops_per_token=2 * self.model.policy.flops_per_token(), evaluate=self.evaluate,
            sample=self.sample, between_steps=self.between_steps, state=self.state,
            load_state=self.load_state, save_extra={"stage": "ppo"},
        )


def _last_masked(mask: torch.Tensor) -> torch.Tensor:
    """Index of each row's last masked position (-1 for none)."""
    positions = torch.arange(mask.size(1)).expand_as(mask)
    return torch.where(mask, positions, torch.full_like(positions, -1)).max(dim=1).values


def _all_ranks_mean(stats: dict[str, float], ddp: Dist) -> dict[str, float]:
    if ddp.world == 1:
        return stats
    names = sorted(stats)
    t = torch.tensor([stats[n] for n in names], dtype=torch.float64)
    dist.all_reduce(t)
    return {n: v / ddp.world for n, v in zip(names, t.tolist(), strict=True)}


def rl_prompts(run: RunDir, cfg: Config) -> tuple[list[dict], list[dict]]:
    """(training, held-out) prompts: the corpus's verifiable and harmful requests. Held out too:
    the harmful requests in held-out wordings (DPO's and red teaming's), which SFT does not
    always refuse; its held-out conversations' harmful requests it refuses every time."""
    prompts = corpus_prompts(run, cfg.ppo.prompts, cfg.ppo.heldout_prompts, cfg.run.seed + 1)
    harmful = safety_requests(run.corpus / "eval" / "harmful_heldout.jsonl", "refusal", split="heldout")
    train = [p for p in prompts if p["split"] == "train"]
    if cfg.ppo.prompt_focus == "decided":
        decided = decided_prompts(PrefStore(run.path("prefs", "prefs.db")), generation_key(cfg, run))
        if len(decided) >= cfg.ppo.rollout_prompts:  # too few: a preference store without generated pairs
            train = decided
    return train, [p for p in prompts if p["split"] == "heldout"] + harmful


def run(cfg: Config, run: RunDir, console: Console | None = None) -> StageResult:
    """Pipeline stage: checkpoints/sft + checkpoints/reward -> checkpoints/ppo, eval/ppo.json."""
    console = console or Console(stderr=True)
    p = cfg.ppo
    device = pick_device(cfg.run.device)
    ddp = init_distributed(device)
    tok = load_tokenizer(run.tokenizer)
    sft_dir, rm_dir = run.checkpoint("sft"), run.checkpoint("reward")
    sft = load_model(sft_dir, device)
    ref = load_model(sft_dir, device).eval()
    rm = load_checkpoint(rm_dir, device).eval()
    for frozen in (ref, rm):
        frozen.requires_grad_(False)
    model_cfg = GPTConfig(**{**sft.cfg.to_dict(), "dropout": 0.0})  # dropout off: ratios stay exact
    model = PolicyValueModel(model_cfg).to(device)
    model.policy.load_state_dict(sft.state_dict())
    model.value.init_from(rm)  # the critic starts from the reward model
    if p.critic_head == "zero":
        model.value.zero_head()
    del sft
    train_prompts, heldout = rl_prompts(run, cfg)
    task = PPOTask(model, ref, rm, tok, train_prompts, heldout, cfg, ddp)
    tcfg = dataclasses.replace(p.train, checkpoint_every=_round_up(p.train.checkpoint_every, task.cycle))
    ident = identity(tcfg, seed=cfg.run.seed, **{k: v for k, v in dataclasses.asdict(p).items() if k != "train"})
    upstream = {"sft": files_digest([resolve_checkpoint(sft_dir) / "model.safetensors"]),
                "reward": files_digest([resolve_checkpoint(rm_dir) / "model.safetensors"])}
    result = train(task.as_train_task(), tcfg, run.checkpoint("ppo"), run.metrics("ppo"), seed=cfg.run.seed,
                   ident=ident, upstream=upstream, device=device, console=console, stage="ppo",
                   restart=run.restart)
    if not ddp.main:
        return StageResult(device=device.type)
    with remembered(run.answers):
        report = compare_with_sft(model.policy, ref, rm, tok, heldout, cfg, p.temperature, p.max_new_tokens)
    report.update(steps=result.steps, alarms=task.alarms.fired, final_kl_coef=task.kl.value,
                  wall_s=result.wall_s, **{f"last_{k}": v for k, v in result.metrics.items()})
    atomic_write_json(run.eval("ppo"), report)
    return StageResult(outputs={"checkpoint": str(run.checkpoint("ppo")), "eval": str(run.eval("ppo"))},
                       metrics=report, summary=_summary("ppo", report), device=device.type)


def compare_with_sft(policy: GPT, ref: GPT, rm: RewardModel, tok: Tokenizer, heldout: list[dict],
                     cfg: Config, temperature: float, max_new_tokens: int) -> dict:
    """An RL policy against SFT on held-out prompts: reward-model score (and its gain in SFT
    standard deviations), accuracy, refusals, and the KL to SFT."""
    policy.eval()
    mine, base = greedy_answers(policy, tok, heldout, max_new_tokens), greedy_answers(ref, tok, heldout, max_new_tokens)
    s_mine = torch.tensor(reward_scores(rm, tok, heldout, [c.text for c in mine]))
    s_base = torch.tensor(reward_scores(rm, tok, heldout, [c.text for c in base]))
    j_mine, j_base = judge_answers(heldout, mine), judge_answers(heldout, base)
    std = float(s_base.std()) or 1.0
    return {
        "rm_score": float(s_mine.mean()), "rm_score_std": float(s_mine.std()),
        "sft_rm_score": float(s_base.mean()), "sft_rm_score_std": std,
        "score_gain_in_sft_std": (float(s_mine.mean()) - float(s_base.mean())) / std,
        "accuracy": j_mine["accuracy"], "sft_accuracy": j_base["accuracy"],
        "refusal_rate": j_mine["refusal_rate"], "sft_refusal_rate": j_base["refusal_rate"],
        "kl_to_sft": answer_kl(policy, ref, tok, heldout, temperature, max_new_tokens, cfg.run.seed),
        "heldout_prompts": len(heldout),
    }


def _summary(stage: str, r: dict) -> str:
    alarms = f"; ALARMS: {' | '.join(r['alarms'])}" if r.get("alarms") else ""
    return (f"held-out RM score {r['sft_rm_score']:.2f} -> {r['rm_score']:.2f} "
            f"({r['score_gain_in_sft_std']:+.2f} SFT std), KL to SFT {r['kl_to_sft']:.2f}, "
            f"accuracy {r['sft_accuracy']:.1%} -> {r['accuracy']:.1%}, refusals "
            f"{r['sft_refusal_rate']:.0%} -> {r['refusal_rate']:.0%}{alarms}")


def _round_up(n: int, multiple: int) -> int:
    return max(multiple, -(-n // multiple) * multiple)


def reward_and_kl(run: RunDir, cfg: Config, checkpoints: dict[str, str]) -> dict[str, dict[str, float]]:
    """For the scoreboard: each checkpoint's reward-model score (mean and std over greedy
    answers to the held-out RL prompts) and, for the RL checkpoints, the mean per-answer KL
    to the SFT model. Empty when the run has no reward model. `checkpoints`: name -> stage."""
    rm_dir = run.checkpoint("reward")
    if not (rm_dir / "LATEST").is_file():
        return {}
    device = pick_device(cfg.run.device)
    tok = load_tokenizer(run.tokenizer)
    rm = load_checkpoint(rm_dir, device).eval()
    _, heldout = rl_prompts(run, cfg)
    sft = load_model(run.checkpoint("sft"), device).eval() if "sft" in checkpoints else None
    out: dict[str, dict[str, float]] = {}
    for name, stage in checkpoints.items():
        model = load_model(run.checkpoint(stage), device).eval()
        answers = greedy_answers(model, tok, heldout, cfg.ppo.max_new_tokens)
        scores = torch.tensor(reward_scores(rm, tok, heldout, [c.text for c in answers]))
        out[name] = {"rm_score": float(scores.mean()), "rm_score_std": float(scores.std())}
        if sft is not None and stage not in ("pretrain", "sft"):
            out[name]["kl_to_sft"] = answer_kl(model, sft, tok, heldout, cfg.ppo.temperature,
                                               cfg.ppo.max_new_tokens, cfg.run.seed)
    return out
