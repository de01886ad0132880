"""One section per stage, in the seed's order, built from report facts in one language.

Every section exists whether or not its stage ran (a stage that did not run says so), so two
runs always line up side by side and a reader sees what is missing rather than an empty table.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from chatforge.report import plots
from chatforge.report.doc import Image, Para, Pre, Section, Sub, Table
from chatforge.report.i18n import num, pct, sci, seconds, small, t, usd

# The seed's benchmark table: (label, scoreboard key of the built-in set in the same format,
# GPT-4's published score from its technical report, for scale).
BENCHMARKS = (
    ("MMLU", "mc_accuracy", 0.864),
    ("GSM8K", "word_problem_accuracy", 0.920),
    ("HumanEval", "code_pass@1", 0.670),
    ("TruthfulQA (MC1)", "truthful_mc1", 0.59),
)
MAX_ANSWER_CHARS = 400
# For scale beside the run's sources: GPT-3's training mix as published (Brown et al. 2020,
# table 2.2): source, tokens, share of the training mix.
GPT3_MIX = (("Common Crawl (filtered)", 410e9, 0.60), ("WebText2", 19e9, 0.22), ("Books1", 12e9, 0.08),
            ("Books2", 55e9, 0.08), ("Wikipedia", 3e9, 0.03))
CHECKPOINT_ORDER = ("base", "sft", "dpo", "ppo", "grpo")
# The cost calculator's line items and phases (chatforge.cost.estimate) in both languages.
COST_NAMES = {
    "pre-training compute": {"en": "pre-training compute", "tr": "ön eğitim hesaplaması"},
    "fine-tuning (SFT) compute": {"en": "fine-tuning (SFT) compute", "tr": "ince ayar (SFT) hesaplaması"},
    "RLHF compute": {"en": "RLHF compute", "tr": "RLHF hesaplaması"},
    "data preparation: processing": {"en": "data preparation: processing", "tr": "veri hazırlığı: işleme"},
    "data preparation: storage": {"en": "data preparation: storage", "tr": "veri hazırlığı: depolama"},
    "human labelling: SFT demonstrations": {"en": "human labelling: SFT demonstrations",
                                            "tr": "insan emeği: SFT örnek yanıtları"},
    "human labelling: comparisons": {"en": "human labelling: comparisons", "tr": "insan emeği: karşılaştırmalar"},
    "evaluation: compute": {"en": "evaluation: compute", "tr": "değerlendirme: hesaplama"},
    "evaluation: human ratings": {"en": "evaluation: human ratings", "tr": "değerlendirme: insan puanları"},
    "red teaming": {"en": "red teaming", "tr": "kırmızı takım"},
    "data": {"en": "data", "tr": "veri"},
    "pre-training": {"en": "pre-training", "tr": "ön eğitim"},
    "fine-tuning (SFT)": {"en": "fine-tuning (SFT)", "tr": "ince ayar (SFT)"},
    "RLHF": {"en": "RLHF", "tr": "RLHF"},
    "evaluation & safety": {"en": "evaluation & safety", "tr": "değerlendirme ve güvenlik"},
    "deployment": {"en": "deployment", "tr": "yayına alma"},
}


def _clip(text: str | None, n: int = MAX_ANSWER_CHARS) -> str:
    text = (text or "").strip()
    return text if len(text) <= n else text[: n - 1] + "…"


def _absent(section: Section, lang: str) -> Section:
    section.ran = False
    section.blocks = [Para(t("not_run", lang))]
    return section


def _metric_table(metrics: dict[str, Any], lang: str, per_row: int = 3) -> Table:
    """A stage's manifest metrics as they are (numbers formatted, lists and dicts as JSON),
    `per_row` figure/value pairs to a row so a long list stays on one screen."""
    cells = []
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            cells.append([key, json.dumps(value, ensure_ascii=False)[:200]])
        elif isinstance(value, float) and 0 < abs(value) < 1e-3:
            cells.append([key, sci(value, lang)])
        else:
            cells.append([key, num(value, lang, 4) if isinstance(value, float) else num(value, lang)])
    per_row = per_row if len(cells) > 8 else 1
    rows = [sum(cells[i:i + per_row], []) for i in range(0, len(cells), per_row)]
    if rows and len(rows[-1]) < 2 * per_row:
        rows[-1] += [""] * (2 * per_row - len(rows[-1]))
    return Table([t("col_metric", lang), t("col_value", lang)] * per_row, rows)


def env_section(f: dict[str, Any], lang: str) -> Section:
    env = f["environment"]
    versions = ", ".join(f"{k} {env[k]}" for k in ("chatforge", "python", "torch", "matplotlib"))
    hardware = f"{env['platform']}; {env['cpu']}, {env['cpu_count']} threads" + (
        f"; {env['cuda']}" if env["cuda"] else "")
    rows = [[t("k_run_dir", lang), f["run_dir"]], [t("k_preset", lang), str(f["preset"] or "–")],
            [t("k_seed", lang), str(f["seed"]) if f["seed"] is not None else "–"],
            [t("k_commit", lang), env["git_commit"] or "–"], [t("k_versions", lang), versions],
            [t("k_hardware", lang), hardware]]
    config = "\n".join(f"[{k}] " + json.dumps(v, ensure_ascii=False) for k, v in f["config"].items()
                       if isinstance(v, dict))
    return Section("env", t("h_env", lang), [Para(t("env_explain", lang)), Table(["", ""], rows),
                                             Sub(t("k_config", lang)), Pre(config or "–")])


def stages_section(f: dict[str, Any], lang: str, expected: tuple[str, ...]) -> Section:
    done = {s["name"]: s for s in f["stages"]}
    order = list(expected) + [n for n in done if n not in expected]
    rows: list[list[str]] = []
    absent: list[str] = []
    for name in order:
        s = done.get(name)
        if s is None:
            absent.append(name)
            rows.append([name, t("status_absent", lang), "–", "–"])
            continue
        status = t("status_complete", lang) if s["status"] == "complete" else t("status_running", lang)
        device = f"{s['device_name']} × {s['n_devices']}" if s["device_name"] else "–"
        rows.append([name, status, seconds(s["wall_s"], lang), device])
    rows.append([t("total", lang), "", seconds(sum(s["wall_s"] or 0 for s in f["stages"]), lang), ""])
    blocks = [Table([t("col_stage", lang), t("col_status", lang), t("col_wall", lang), t("col_device", lang)], rows),
              Para(f"{t('stages_absent', lang)}: {', '.join(absent) if absent else t('none', lang)}.")]
    scaled = [f"{s['name']} {seconds(s['metrics']['train_budget_s'], lang)}"
              for s in f["stages"] if "train_budget_s" in s["metrics"]]
    if scaled:
        blocks.append(Para(f"{t('stages_scaled', lang)}: {', '.join(scaled)}."))
    return Section("stages", t("h_stages", lang), blocks)


def data_section(f: dict[str, Any], lang: str, tag: str) -> Section:
    sec = Section("data", t("h_data", lang))
    d = f["data"]
    if d is None:
        return _absent(sec, lang)
    steps, first, last = d["steps"], d["steps"][0], d["steps"][-1]
    src_rows = []
    for source, counts in sorted(d["per_source"].items()):
        a, b = counts[first], counts[last]
        src_rows.append([source, num(a["docs"], lang), num(b["docs"], lang), num(a["bytes"], lang),
                         num(b["bytes"], lang), pct(b["docs"] / a["docs"] if a["docs"] else None, lang)])
    tot_a, tot_b = d["total"][first], d["total"][last]
    src_rows.append([t("total", lang), num(tot_a["docs"], lang), num(tot_b["docs"], lang),
                     num(tot_a["bytes"], lang), num(tot_b["bytes"], lang), pct(d["retention"]["docs"], lang)])
    funnel_rows = [[step, num(d["total"][step]["docs"], lang), num(d["total"][step]["bytes"], lang),
                    pct(d["total"][step]["docs"] / tot_a["docs"] if tot_a["docs"] else None, lang)]
                   for step in steps]
    shares = {src: [c[s]["docs"] / c[first]["docs"] if c[first]["docs"] else 0.0 for s in steps]
              for src, c in d["per_source"].items()}
    total_share = [d["total"][s]["docs"] / tot_a["docs"] if tot_a["docs"] else 0.0 for s in steps]
    web = d["per_source"].get("warc")
    web_share = web[last]["docs"] / web[first]["docs"] if web and web[first]["docs"] else None
    skipped = d.get("skipped") or {}
    skipped_n = sum(v for v in skipped.values() if isinstance(v, int)) if isinstance(skipped, dict) else 0
    sec.blocks = [
        Para(t("data_explain", lang)),
        Sub(t("h_sources", lang)),
        Table([t("col_source", lang), t("col_docs_in", lang), t("col_docs_out", lang), t("col_bytes_in", lang),
               t("col_bytes_out", lang), t("col_retention", lang)], src_rows),
        Para(t("gpt3_mix", lang)),
        Table([t("col_source", lang), t("col_tokens", lang), t("col_share", lang)],
              [[name, sci(tokens, lang), pct(share, lang, 0)] for name, tokens, share in GPT3_MIX]),
        Sub(t("h_funnel", lang)),
        Image(f"{tag}funnel", plots.funnel(steps, shares, total_share, lang), t("plot_funnel", lang)),
        Table([t("col_step", lang), t("col_docs", lang), t("col_bytes", lang), t("col_of_start", lang)], funnel_rows),
        Para(t("retention_claim", lang, web=pct(web_share, lang), all=pct(d["retention"]["docs"], lang))),
        Para(f"{t('contaminated', lang)}: {num(len(d.get('contaminated_items') or []), lang)}. "
             f"{t('skipped', lang)}: {num(skipped_n, lang)}."),
    ]
    return sec


def _ids_rows(side: dict[str, Any] | None, label: str, lang: str) -> list[list[str]]:
    if not side:
        return []
    return [[phrase, label, str(v["ids"]), " · ".join(repr(p)[1:-1] for p in v["pieces"]),
             num(v["bytes_per_token"], lang, 2)] for phrase, v in side.items()]


def tokenizer_section(f: dict[str, Any], lang: str) -> Section:
    sec = Section("tokenizer", t("h_tokenizer", lang))
    tk = f["tokenizer"]
    if tk is None:
        return _absent(sec, lang)
    rows = _ids_rows(tk["run"], t("this_run", lang), lang) + _ids_rows(tk["cl100k"], t("gpt4", lang), lang)
    rows.sort(key=lambda r: r[0])
    blocks: list = [Para(t("tokenizer_explain", lang)),
                    Table([t("col_phrase", lang), t("col_tokenizer", lang), t("col_ids", lang),
                           t("col_pieces", lang), t("col_bpt", lang)], rows)]
    if tk["cl100k"] is None:
        blocks.append(Para(t("no_reference", lang)))
    stats = (tk.get("stats") or {}).get("heldout") or {}
    bpt_rows = [[k, num(v["bytes"], lang), num(v["tokens"], lang), num(v["bytes_per_token"], lang, 2)]
                for group in ("by_lang", "by_source") for k, v in sorted((stats.get(group) or {}).items())]
    if "bytes_per_token" in stats:
        bpt_rows.append([t("total", lang), "", "", num(stats["bytes_per_token"], lang, 2)])
    if bpt_rows:
        blocks += [Sub(t("h_bpt_lang", lang)),
                   Table([t("col_lang", lang), t("col_bytes", lang), t("col_tokens", lang), t("col_bpt", lang)], bpt_rows)]
    if tk.get("vocab_size"):
        blocks.append(Para(f"{t('vocab', lang)}: {num(tk['vocab_size'], lang)}."))
    sec.blocks = blocks
    return sec


def pretrain_section(f: dict[str, Any], lang: str, tag: str) -> Section:
    sec = Section("pretrain", t("h_pretrain", lang))
    p = f["pretrain"]
    if p is None:
        return _absent(sec, lang)
    m, c = p["metrics"], p["curves"]
    rows = [[t("k_val_bpb", lang), num(m.get("val_bpb"), lang, 3)],
            [t("k_final_loss", lang), num(m.get("final_loss"), lang, 3)],
            [t("k_steps", lang), num(m.get("steps"), lang)], [t("k_params", lang), num(m.get("params"), lang)],
            [t("k_tokens_seen", lang), num(m.get("tokens"), lang)],
            [t("k_throughput", lang), num(m.get("tokens_per_s"), lang, 0)],
            [t("k_mfu", lang), pct(m.get("mfu"), lang, 2)]]
    blocks: list = [Para(t("pretrain_explain", lang)), Table([t("col_metric", lang), t("col_value", lang)], rows)]
    loss = {t("train_loss", lang): c["loss"]} if c.get("loss") else {}
    if c.get("val_loss"):
        loss[t("val_loss", lang)] = c["val_loss"]
    if loss:
        blocks.append(Image(f"{tag}pretrain_loss", plots.lines(loss, t("plot_loss", lang), t("step", lang), lang),
                            t("plot_loss", lang)))
    if c.get("val_bpb"):
        blocks.append(Image(f"{tag}pretrain_bpb", plots.lines({"bpb": c["val_bpb"]}, t("plot_bpb", lang),
                                                              t("step", lang), lang), t("plot_bpb", lang)))
    if p["completion"]:
        blocks += [Sub(t("h_completion", lang)), Para(t("completion_explain", lang)), Pre(p["completion"])]
    if p.get("samples_by_step"):
        text = "\n\n".join(f"{t('step', lang)} {step}:\n" + "\n".join(_clip(x) for x in samples)
                            for step, samples in p["samples_by_step"])
        blocks += [Sub(t("h_samples_steps", lang)), Para(t("samples_steps_explain", lang)), Pre(text)]
    if p["samples"]:
        blocks += [Sub(t("h_samples", lang)), Pre("\n\n---\n\n".join(_clip(s) for s in p["samples"]))]
    sec.blocks = blocks
    return sec


def _answers_table(f: dict[str, Any], names: list[str], lang: str) -> Table:
    rows = [[_clip(p["prompt"], 200)] + [_clip(f["answers"][n][i]) for n in names]
            for i, p in enumerate(f["prompts"])]
    return Table([t("col_prompt", lang)] + [t(n, lang) for n in names], rows)


def sft_section(f: dict[str, Any], lang: str, tag: str) -> Section:
    sec = Section("sft", t("h_sft", lang))
    s = f["sft"]
    if s is None:
        return _absent(sec, lang)
    names = [n for n in ("base", "sft") if n in f["answers"]]
    blocks: list = [Para(t("sft_explain", lang))]
    if names:
        blocks.append(_answers_table(f, names, lang))
    if s["metrics"]:
        blocks += [Sub(t("h_sft_metrics", lang)), _metric_table(s["metrics"], lang)]
    loss = {k: s["curves"][k] for k in ("loss", "val_loss") if s["curves"].get(k)}
    if loss:
        blocks.append(Image(f"{tag}sft_loss", plots.lines(loss, t("plot_sft", lang), t("step", lang), lang),
                            t("plot_sft", lang)))
    sec.blocks = blocks
    return sec


# What each RL stage logs as its score (TRL's names), most telling first, and as its leash.
SCORE_KEYS = ("reward", "score", "rm_score", "reward_margin", "heldout_reward_margin")
SECOND_KEYS = ("kl", "kl_ref", "approx_kl", "reward_accuracy")


def _rl_curve(curves: dict[str, list], algo: str, lang: str, tag: str) -> Image | None:
    """The score on the left axis and the KL to the reference on the right, as PPO logs them;
    DPO logs no KL, so its implicit reward accuracy takes that axis."""
    score = {k: curves[k] for k in SCORE_KEYS if curves.get(k)}
    second = {k: curves[k] for k in SECOND_KEYS if curves.get(k)}
    second = dict(list(second.items())[:1]) if score else second
    if not score and not second:
        score = {"loss": curves["loss"]} if curves.get("loss") else {}
    if not score and not second:
        return None
    title = t("plot_rl", lang, algo=algo.upper())
    return Image(f"{tag}{algo}_curve", plots.lines(score or second, title, t("step", lang), lang,
                                                   secondary=second if score else None), title)


def rlhf_section(f: dict[str, Any], lang: str, tag: str) -> Section:
    sec = Section("rlhf", t("h_rlhf", lang))
    parts = {k: f[k] for k in ("prefs", "reward", "dpo", "ppo", "grpo") if f.get(k)}
    if not parts:
        return _absent(sec, lang)
    blocks: list = [Para(t("rlhf_explain", lang))]
    pr = f.get("prefs")
    if pr:
        blocks += [Sub(t("h_pairs", lang)), Para(f"{t('pairs_count', lang)}: {num(pr['count'], lang)}."),
                   Table([t("col_prompt", lang), t("col_chosen", lang), t("col_rejected", lang)],
                         [[_clip(e["prompt"], 200), _clip(e["chosen"]), _clip(e["rejected"])] for e in pr["examples"]])]
    rw = f.get("reward")
    blocks.append(Sub(t("h_reward", lang)))
    if rw:
        m = rw["metrics"]
        blocks += [Para(t("reward_explain", lang)),
                   Para(t("reward_headline", lang, acc=pct(m.get("heldout_accuracy"), lang),
                          n=num(m.get("heldout_pairs"), lang))),
                   _metric_table(m, lang)]
    else:
        blocks.append(Para(t("not_run", lang)))
    for algo in ("dpo", "ppo", "grpo"):
        blocks.append(Sub(t(f"h_{algo}", lang)))
        part = f.get(algo)
        if not part:
            blocks.append(Para(t("not_run", lang)))
            continue
        if algo == "dpo" and "heldout_pair_accuracy" in part["metrics"]:
            m = part["metrics"]
            blocks.append(Para(t("dpo_headline", lang, acc=pct(m["heldout_pair_accuracy"], lang),
                                 refusal=pct(m.get("refusal_rate"), lang), sft=pct(m.get("sft_refusal_rate"), lang))))
        blocks.append(_metric_table(part["metrics"], lang))
        img = _rl_curve(part["curves"], algo, lang, tag)
        if img:
            blocks.append(img)
    after = [n for n in ("sft", "dpo", "ppo", "grpo") if n in f["answers"]]
    if len(after) > 1:
        blocks += [Sub(t("h_before_after", lang)), _answers_table(f, after, lang)]
    sec.blocks = blocks
    return sec


def eval_section(f: dict[str, Any], lang: str) -> Section:
    sec = Section("eval", t("h_eval", lang))
    e = f["eval"]
    if e is None or not e.get("scoreboard"):
        return _absent(sec, lang)
    board = e["scoreboard"]
    names = sorted(board, key=lambda n: (list(CHECKPOINT_ORDER).index(n) if n in CHECKPOINT_ORDER else 99, n))
    rows = [[label, pct(gpt4, lang)] + [pct(board[n].get(key), lang) for n in names]
            for label, key, gpt4 in BENCHMARKS]
    known = {key for _, key, _ in BENCHMARKS}
    for key in sorted({k for n in names for k in board[n]} - known):
        rows.append([key, "–"] + [pct(v, lang) if isinstance(v := board[n].get(key), float) and 0 <= v <= 1
                                  else num(v, lang, 3) for n in names])
    sec.blocks = [Para(t("eval_explain", lang)),
                  Table([t("col_benchmark", lang), t("col_gpt4", lang)] + [t(n, lang) if n in
                        ("base", "sft", "dpo", "ppo", "grpo") else n for n in names], rows)]
    return sec


def redteam_section(f: dict[str, Any], lang: str, tag: str) -> Section:
    sec = Section("redteam", t("h_redteam", lang))
    r = f["redteam"]
    if r is None or not r["checkpoints"]:
        return _absent(sec, lang)
    ck = r["checkpoints"]
    names = sorted(ck, key=lambda n: (list(CHECKPOINT_ORDER).index(n) if n in CHECKPOINT_ORDER else 99, n))

    def rate(entry: dict | None) -> str:
        return f"{pct(entry['rate'], lang)} (n={entry['n']})" if entry else "–"

    head = [t("col_metric", lang)] + [t(n, lang) for n in names]
    summary = [[t("asr_plain", lang)] + [rate(ck[n]["asr"]) for n in names],
               [t("refusal", lang)] + [rate(ck[n]["refusal_rate"]) for n in names],
               [t("over_refusal", lang)] + [rate(ck[n]["over_refusal"]) for n in names]]
    attacks = sorted({a for n in names for a in ck[n]["asr_by_attack"] or {}})
    cats = sorted({c for n in names for c in ck[n]["asr_by_category"] or {}})
    by_attack = [[a] + [rate((ck[n]["asr_by_attack"] or {}).get(a)) for n in names] for a in attacks]
    by_cat = [[c] + [rate((ck[n]["asr_by_category"] or {}).get(c)) for n in names] for c in cats]
    grid = [[(ck[n]["asr_by_attack"] or {}).get(a, {}).get("rate") for n in names] for a in attacks]
    sec.blocks = [Para(t("redteam_explain", lang)), Para(f"{t('judge', lang)}: {r['primary_judge']}."),
                  Table(head, summary),
                  Image(f"{tag}redteam_attacks", plots.heatmap(attacks, [t(n, lang) for n in names], grid,
                                                               t("plot_asr", lang), lang), t("plot_asr", lang)),
                  Table([t("col_attack", lang)] + head[1:], by_attack),
                  Table([t("col_category", lang)] + head[1:], by_cat)]
    return sec


def cost_section(f: dict[str, Any], lang: str, tag: str) -> Section:
    c = f["cost"]
    m, s = c["measured"], c["scaled"]
    label = s["label"] if s["label"] != "gpt4" else "GPT-4"
    sec = Section("cost", t("h_cost", lang))
    run_rows = [[st["stage"], seconds(st["wall_s"], lang), f"{st['device']} × {st['n_devices']}",
                 small(st["device_hours"], lang), small(st["energy_kwh"], lang), usd(st["usd"], lang)]
                for st in m["stages"]]
    tot = m["totals"]
    run_rows.append([t("total", lang), seconds(tot["wall_s"], lang), "", small(tot["device_hours"], lang),
                     small(tot["energy_kwh"], lang), usd(tot["usd"], lang)])
    pub = s.get("published") or {}

    def with_pub(key: str, text: str, fmt: Callable[[float], str]) -> str:
        return f"{text} ({t('published_vs', lang, value=fmt(pub[key]['value']))})" if key in pub else text

    head_rows = [[t("k_params", lang), sci(s["params"], lang)], [t("k_tokens_seen", lang), sci(s["tokens"], lang)],
                 [t("k_flops", lang), with_pub("flops", sci(s["flops"], lang), lambda v: sci(v, lang))],
                 [t("k_gpus", lang), f"{num(s['gpus'], lang)} × {s['gpu']}"],
                 [t("k_days", lang), with_pub("days", num(s["days"], lang, 0), lambda v: num(v, lang, 0))],
                 [t("k_energy", lang), num(s["energy_mwh"], lang, 0)],
                 [t("k_total_usd", lang), with_pub("cost_usd", usd(s["total_usd"], lang), lambda v: usd(v, lang))]]
    lines = [[COST_NAMES.get(x["name"], {}).get(lang, x["name"]), usd(x["usd"], lang), x["detail"]]
             for x in s["lines"]]
    phases = [[COST_NAMES.get(p["phase"], {}).get(lang, p["phase"]), num(p["start_month"], lang, 1), num(p["months"], lang, 1), p["detail"]]
              for p in s["timeline"]]
    sec.blocks = [
        Para(t("cost_explain", lang, label=label)), Sub(t("h_cost_run", lang)),
        Table([t("col_stage", lang), t("col_wall", lang), t("col_device", lang), t("col_device_hours", lang),
               t("col_energy", lang), t("col_usd", lang)], run_rows),
        Sub(t("h_cost_scale", lang, label=label)),
        Table([t("col_metric", lang), t("col_value", lang)], head_rows),
        Table([t("col_item", lang), t("col_usd", lang), t("col_detail", lang)], lines),
        Sub(t("h_timeline", lang)),
        Image(f"{tag}timeline", plots.timeline(
            [{**p, "phase": COST_NAMES.get(p["phase"], {}).get(lang, p["phase"])} for p in s["timeline"]], lang),
            t("plot_timeline", lang)),
        Table([t("col_phase", lang), t("col_start", lang), t("col_months", lang), t("col_detail", lang)], phases),
    ]
    return sec


SECTION_IDS = ("env", "stages", "data", "tokenizer", "pretrain", "sft", "rlhf", "eval", "redteam", "cost")


def build(f: dict[str, Any], lang: str, expected: tuple[str, ...], tag: str = "") -> list[Section]:
    """The report's sections for one run; `expected` are the stages a full run has, so the
    stage table can name those that did not run; `tag` keeps image names unique per run."""
    return [env_section(f, lang), stages_section(f, lang, expected), data_section(f, lang, tag),
            tokenizer_section(f, lang), pretrain_section(f, lang, tag), sft_section(f, lang, tag),
            rlhf_section(f, lang, tag), eval_section(f, lang), redteam_section(f, lang, tag),
            cost_section(f, lang, tag)]
