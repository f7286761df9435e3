"""``recoworld fidelity``: how well the calibrated statistical user reproduces held-out behaviour.

The held-out interactions are each user's latest 20% of ratings, which the calibration
never saw (:mod:`recoworld.calibration.split`). For every user the *calibrated user* is
the fitted user simulated by :class:`~recoworld.simulators.statistical.StatisticalUsers`
at the start of a session (no satiation, no recent clicks, the session's novelty draw):
its choice probability of an item is the simulator's ``click_probabilities``, and its
rating the simulator's rating response. The *MF baseline* is a plain logistic matrix
factorisation (:func:`~recoworld.calibration.choice.fit_choice` with all ratings weighed
alike and no Platt scaling) for choices, and a biased MF
(:func:`~recoworld.calibration.ratings.fit_rating_mf`) for ratings, fitted on the same
training split.

Sections of the report:

* **Discrimination**: per-user ROC AUC of the choice probability between the user's
  held-out items and the items the user never rated, averaged over users.
  Also per population segment (:data:`SEGMENTS`), with F1 at 1:1.
* **The 1:m protocol** (m = 1, 3, 9): each user's held-out items mixed with m times as
  many never-rated items; the simulated user "would watch" an item when its choice
  probability exceeds 1/2; accuracy, precision, recall and F1 pooled over all users (and,
  for reference, the expected values when each answer is a Bernoulli draw).
* **Ratings**: RMSE of the expected rating on held-out ratings, and the distribution of
  simulated ratings (one draw per held-out rating) against the real one.
* **Aggregate realism**: each user consumes, by the model's choice probabilities, as many
  items (among those they had not rated in training) as they really did in the held-out
  period; the long-tail curve and the genre shares of this simulated consumption are
  compared with the real held-out consumption.
* **Policy ranking**: a lineup of agents ranked by their click-through in the calibrated
  simulator and in a replay of the held-out ratings, and Kendall's tau between the two
  rankings (:mod:`recoworld.apps.fidelity.ranking`; ``--agents`` names the lineup).
* **LLM and hybrid users** (``--users statistical,hybrid,llm``): AUC where the user has a
  choice probability and the 1:m protocol on ``--llm-users`` sampled users
  (:mod:`recoworld.apps.fidelity.llm`, which also says how to run it at scale on an
  OpenAI-compatible server).
* **Social influence** (``--social``): Gini of consumption over a long horizon with word
  of mouth off and on (:mod:`recoworld.apps.calibrate.concentration`).

Usage::

    recoworld fidelity                       # report in ./fidelity-report
    recoworld fidelity --out DIR --social    # elsewhere, with the social-influence section
    recoworld fidelity --users statistical,hybrid,llm --llm-users 8   # + LLM users (minutes)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recoworld.calibration.choice import ChoiceFitConfig, fit_choice, rating_weights
from recoworld.apps.calibrate.fit import Stages, ensure_world, subsample, torch_threads
from recoworld.calibration.metrics import (concentration_curve, decide, expected_decisions, genre_shares, gini,
                                           one_to_m_lists, rmse, user_auc)
from recoworld.apps.fidelity.ranking import AGENTS, RankingConfig, policy_ranking
from recoworld.calibration.ratings import expected_rating, fit_rating_mf, star_probabilities
from recoworld.calibration.split import Split, holdout_split, interaction_matrix
from recoworld.data.movielens import MovieLens100K, load_movielens_100k
from recoworld.simulators.calibrated import CalibratedWorld, select
from recoworld.simulators.statistical import StatisticalUsers

#: The plain MF baseline: the choice model's factorisation alone, with every rating
#: weighed alike (its L2 chosen on the same validation fold).
BASELINE = ChoiceFitConfig(half_life=None, l2=0.03, neighbourhood_weight=0.0)
#: The rating baseline's L2 penalty, chosen on the validation fold (RMSE 0.951 there).
RATING_MF_L2 = 0.15
RATIOS = (1, 3, 9)
#: Population segments (specs of :mod:`recoworld.simulators.calibrated`) the discrimination
#: results are broken down by.
SEGMENTS = {
    "women": {"gender": "F"}, "men": {"gender": "M"}, "under 25": {"age": [0, 24]}, "45 and over": {"age": [45, None]},
    "low patience": {"patience": "low"}, "high patience": {"patience": "high"},
    "mostly Sci-Fi": {"favourite_genre": "Sci-Fi"}, "mostly Horror": {"favourite_genre": "Horror"},
}
TARGETS = {"auc": 0.90, "f1_1to1": 0.75}


def held_out_split(world: CalibratedWorld, data: MovieLens100K | None = None) -> tuple[MovieLens100K, Split]:
    """The data and the split the world was calibrated on (checked against its fingerprint)."""
    from recoworld.apps.calibrate.fit import _fingerprint

    settings = world.meta.get("calibration", {})
    data = data if data is not None else load_movielens_100k()
    if settings.get("users") is not None:
        data = subsample(data, settings["users"], settings.get("seed", 0))
    split = holdout_split(data.ratings, settings.get("holdout_fraction", 0.2), len(data.users), len(data.items))
    expected = world.meta.get("split", {}).get("test_fingerprint")
    if expected is not None and _fingerprint(split.test) != expected:
        raise ValueError("the held-out ratings differ from those the world was calibrated without; "
                         "the data or the split changed since — recalibrate with `recoworld calibrate --force`")
    if split.test.empty:
        raise ValueError("the world was calibrated without held-out ratings (holdout_fraction=0)")
    return data, split


def simulated_probabilities(world: CalibratedWorld, chunk: int = 256) -> torch.Tensor:
    """``[n_users, n_items]``: each fitted user's click probability of every item at a session start."""
    population = world.population()
    n_users, n_items = len(world.users), world.catalog.n_items
    out = torch.empty(n_users, n_items)
    items = torch.arange(n_items)
    for start in range(0, n_users, chunk):
        rows = np.arange(start, min(start + chunk, n_users))
        sim = StatisticalUsers(world.catalog, world.config, population.pinned(rows, rows))
        sim.reset(len(rows), seed=torch.as_tensor(rows))
        out[rows] = sim.click_probabilities(items[None, :].expand(len(rows), n_items).contiguous())
    return out


def simulated_consumption(probability: torch.Tensor, allowed: torch.Tensor, counts: torch.Tensor,
                          seed: int = 0) -> torch.Tensor:
    r"""``[n_items]`` times each item is consumed when user ``b`` takes ``counts[b]`` allowed items.

    The choice models are fitted with each user's unchosen items weighted up to the mass
    of the chosen ones, so their logit is the log-odds of choosing an item *plus* a
    per-user constant (the log of that weight): the implied chance that the user picks
    item :math:`i` out of the whole catalog is proportional to the odds
    :math:`p_{bi}/(1 - p_{bi})`, not to :math:`p_{bi}`. Items are drawn without replacement
    with those weights (Efraimidis and Spirakis, "Weighted random sampling with a
    reservoir", IPL 2006: the largest keys :math:`u^{1/w}`).
    """
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(probability.shape, generator=gen, dtype=torch.float64)
    p = probability.double().clamp(1e-12, 1 - 1e-12)
    keys = torch.log(u) / (p / (1 - p))
    keys = keys.masked_fill(~allowed, -torch.inf)
    order = torch.argsort(keys, dim=1, descending=True)
    taken = torch.arange(probability.shape[1])[None, :] < counts[:, None]
    consumed = torch.zeros(probability.shape[1])
    consumed.index_add_(0, order[taken], torch.ones(int(taken.sum())))
    return consumed


def evaluate(world: CalibratedWorld, data: MovieLens100K | None = None, seed: int = 0,
             stages: Stages | None = None, threads: int = 1) -> dict:
    """Every number of the report, as a dict (plots' data under ``"curves"``).

    ``threads``: torch threads meanwhile; one is fastest for these small tensors, and much
    faster than several on a busy machine.
    """
    with torch_threads(threads):
        return _evaluate(world, data, seed, stages or Stages(5, False, "fidelity"))


def _evaluate(world: CalibratedWorld, data: MovieLens100K | None, seed: int, stages: Stages) -> dict:
    with stages.stage("recomputing the held-out split"):
        data, split = held_out_split(world, data)
        n_users, n_items = len(data.users), len(data.items)
        catalog = world.catalog
        test, train = split.test, split.train
        positive = interaction_matrix(test, n_users, n_items)
        trained = interaction_matrix(train, n_users, n_items)
        never = ~(positive | trained)
    with stages.stage("simulating the calibrated users"):
        calibrated = simulated_probabilities(world)
    with stages.stage("fitting the MF baselines"):
        baseline = torch.sigmoid(fit_choice(rating_weights(train, n_users, n_items, None), BASELINE).logits())
        rating_mf = fit_rating_mf(train["user_id"], train["item_id"], train["rating"], n_users, n_items,
                                  l2=RATING_MF_L2)

    results: dict = {"models": {}}
    lists = {m: one_to_m_lists(positive, never, m, seed=seed + m) for m in RATIOS}
    rows, cols = torch.tensor(test["user_id"].to_numpy()), torch.tensor(test["item_id"].to_numpy())
    real_stars = test["rating"].to_numpy()
    with stages.stage("scoring choices and ratings"):
        for name, probability in (("calibrated user", calibrated), ("MF baseline", baseline)):
            auc = user_auc(probability, positive, never)
            entry = {"auc": float(auc.nanmean()), "auc_users": int((~torch.isnan(auc)).sum())}
            for m, shown in lists.items():
                p = probability[shown.users, shown.items]
                entry[f"1:{m}"] = asdict(decide(p, shown.labels))
                entry[f"1:{m} (Bernoulli draws)"] = asdict(expected_decisions(p, shown.labels))
            results["models"][name] = entry
            for segment, spec in SEGMENTS.items():
                try:
                    members = torch.as_tensor(select(world.users, spec)[0])
                except ValueError:  # no user in this segment (e.g. data other than MovieLens)
                    continue
                shown = lists[1]
                inside = members[shown.users]
                results.setdefault("segments", {}).setdefault(segment, {"population": spec,
                                                                        "users": int(members.sum())})[name] = {
                    "auc": float(auc[members].nanmean()),
                    "f1_1to1": decide(probability[shown.users[inside], shown.items[inside]], shown.labels[inside]).f1,
                }

        # Ratings: the calibrated response at the held-out pairs, as the simulator computes it.
        config = world.config
        utility = torch.logit(calibrated[rows, cols].double().clamp(1e-7, 1 - 1e-7))
        bias = torch.tensor(world.users["rating_bias"].to_numpy())[rows]
        level = (config.rating_center + config.rating_slope * utility
                 + config.rating_quality * catalog.quality[cols].double() + bias)
        stars = star_probabilities(level, config.rating_noise)
        gen = torch.Generator().manual_seed(seed)
        drawn = torch.multinomial(stars.float(), 1, generator=gen)[:, 0].numpy() + 1
        mf_prediction = rating_mf.predict(rows, cols).numpy()
        sums = np.bincount(train["item_id"], weights=train["rating"].to_numpy(np.float64), minlength=n_items)
        counts = np.bincount(train["item_id"], minlength=n_items)
        raw_item_mean = np.where(counts > 0, sums / np.maximum(counts, 1), train["rating"].mean())
        results["ratings"] = {
            "rmse": {
                "calibrated user": rmse(expected_rating(level, config.rating_noise).numpy(), real_stars),
                "MF baseline": rmse(mf_prediction, real_stars),
                "item mean": rmse(raw_item_mean[cols.numpy()], real_stars),
                "global mean": rmse(np.full(len(real_stars), train["rating"].mean()), real_stars),
            },
            "rmse_of_simulated_draws": rmse(drawn, real_stars),
            "distribution": {
                "held-out": _shares(real_stars),
                "calibrated user (draws)": _shares(drawn),
                "MF baseline (rounded)": _shares(np.clip(np.round(mf_prediction), 1, 5).astype(int)),
            },
        }

    with stages.stage("simulating consumption"):
        held_counts = positive.sum(1)
        allowed = ~trained
        real = positive.sum(0).float()
        consumption = {"held-out": real}
        for name, probability in (("calibrated user", calibrated), ("MF baseline", baseline)):
            consumption[name] = simulated_consumption(probability, allowed, held_counts, seed=seed)
        order = catalog.popularity.numpy()
        weights = catalog.genre_weights.numpy()
        curves, shares, aggregate = {}, {}, {}
        for name, counts_ in consumption.items():
            x, y = concentration_curve(counts_.numpy(), order)
            curves[name] = (x, y)
            shares[name] = genre_shares(counts_.numpy(), weights)
            top = int(round(0.1 * n_items))
            aggregate[name] = {"gini": gini(counts_.numpy()), "top10%_share": float(y[top - 1]),
                               "items_consumed": int((counts_ > 0).sum())}
        for name in ("calibrated user", "MF baseline"):
            aggregate[name]["genre_total_variation"] = float(0.5 * np.abs(shares[name] - shares["held-out"]).sum())
        results["aggregate"] = aggregate
        results["genre_shares"] = {name: dict(zip(catalog.genre_names, map(float, s))) for name, s in shares.items()}
        results["curves"] = {name: {"x": x.tolist(), "y": y.tolist()} for name, (x, y) in curves.items()}
    results["targets"] = {
        "auc >= 0.90": results["models"]["calibrated user"]["auc"] >= TARGETS["auc"],
        "auc >= MF baseline": results["models"]["calibrated user"]["auc"] >= results["models"]["MF baseline"]["auc"],
        "F1 at 1:1 >= 0.75": results["models"]["calibrated user"]["1:1"]["f1"] >= TARGETS["f1_1to1"],
    }
    results["split"] = {"train": len(train), "held_out": len(test), "users": n_users}
    return results


def _shares(stars) -> list[float]:
    counts = np.bincount(np.asarray(stars, dtype=np.int64), minlength=6)[1:6]
    return (counts / max(counts.sum(), 1)).tolist()


# ------------------------------------------------------------------ the page
def write_report(results: dict, out: Path, world: CalibratedWorld) -> Path:
    """``report.md``, ``metrics.json`` and PNG plots in ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    names = list(results["models"])

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, curve in results["curves"].items():
        ax.plot(curve["x"], curve["y"], label=name, lw=2 if name == "held-out" else 1.3,
                ls="-" if name == "held-out" else "--")
    ax.set_xlabel("share of items, most popular (in training) first")
    ax.set_ylabel("share of consumption")
    ax.set_title("Long tail of held-out consumption")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "long_tail.png", dpi=120)
    plt.close(fig)

    genres = list(next(iter(results["genre_shares"].values())))
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(results["genre_shares"])
    for k, (name, shares) in enumerate(results["genre_shares"].items()):
        ax.bar(np.arange(len(genres)) + k * width, [shares[g] for g in genres], width, label=name)
    ax.set_xticks(np.arange(len(genres)) + 0.4 - width / 2, genres, rotation=60, ha="right")
    ax.set_ylabel("share of consumption")
    ax.set_title("Genre shares of held-out consumption")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "genre_shares.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5.5, 4))
    dist = results["ratings"]["distribution"]
    width = 0.8 / len(dist)
    for k, (name, shares) in enumerate(dist.items()):
        ax.bar(np.arange(1, 6) + (k - 1) * width, shares, width, label=name)
    ax.set_xlabel("stars")
    ax.set_ylabel("share of held-out ratings")
    ax.set_title("Rating distribution")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "ratings.png", dpi=120)
    plt.close(fig)

    figures = ["long_tail.png", "genre_shares.png", "ratings.png"]
    social = results.get("social")
    if social:
        table = pd.DataFrame(social["series"])
        policies = list(dict.fromkeys(table["policy"]))
        fig, axes = plt.subplots(1, len(policies), figsize=(5 * len(policies), 3.8), squeeze=False)
        for ax, policy in zip(axes[0], policies):
            for weight, group in table[table["policy"] == policy].groupby("social_weight"):
                ax.plot(group["step"], group["gini_consumption"], label=f"social weight {weight:g}")
                ax.plot(group["step"], group["gini_exposure"], ls=":", color=ax.lines[-1].get_color())
            ax.set_xlabel("step")
            ax.set_ylabel("Gini (solid: consumption, dotted: exposure)")
            ax.set_title(f"{policy} recommender")
            ax.legend()
        fig.tight_layout()
        fig.savefig(out / "concentration.png", dpi=120)
        plt.close(fig)
        figures.append("concentration.png")

    lines = ["# Fidelity of the calibrated statistical user (MovieLens-100K)", ""]
    lines += [f"Held-out: each user's latest 20% of ratings ({results['split']['held_out']:,} ratings of "
              f"{results['split']['users']} users); training: the rest ({results['split']['train']:,}). "
              "The calibrated user is the fitted user as simulated by `StatisticalUsers` at a session start; "
              "the MF baseline is a plain logistic MF (choices) and a biased MF (ratings) on the same split. "
              "The calibrated user's choices come from the same logistic MF fitted with recency-weighted ratings "
              "(a rating's weight halves with every 20 newer ratings of its user) plus an item-to-item (EASE) term "
              "on those ratings, brought back to one vector per user and per item by a truncated SVD, and "
              "Platt-scaled on a validation fold (the last 20% of the training split); the baselines' penalties "
              "were chosen on that fold too.",
              ""]
    lines += ["## Headline", ""] + headline(results) + [""]
    lines += ["## Targets", ""] + [f"- {k}: {'met' if v else '**not met**'}" for k, v in results["targets"].items()]
    lines += ["", "## Discrimination and the 1:m protocol", "",
              "| model | AUC | " + " | ".join(f"F1 1:{m}" for m in RATIOS) + " | "
              + " | ".join(f"acc 1:{m}" for m in RATIOS) + " |",
              "|---|---|" + "---|" * (2 * len(RATIOS))]
    for name in names:
        e = results["models"][name]
        lines.append(f"| {name} | {e['auc']:.4f} | " + " | ".join(f"{e[f'1:{m}']['f1']:.3f}" for m in RATIOS)
                     + " | " + " | ".join(f"{e[f'1:{m}']['accuracy']:.3f}" for m in RATIOS) + " |")
    lines += ["", "Precision / recall (would watch = choice probability > 1/2; in brackets the expected F1 "
              "when each answer is a Bernoulli draw):", "",
              "| model | " + " | ".join(f"1:{m} P / R (F1 drawn)" for m in RATIOS) + " |",
              "|---|" + "---|" * len(RATIOS)]
    for name in names:
        e = results["models"][name]
        lines.append(f"| {name} | " + " | ".join(
            f"{e[f'1:{m}']['precision']:.3f} / {e[f'1:{m}']['recall']:.3f} ({e[f'1:{m} (Bernoulli draws)']['f1']:.3f})"
            for m in RATIOS) + " |")
    segments = results.get("segments", {})
    if segments:
        lines += ["", "Per population segment (specs as in `simulator.population`; AUC averaged over the "
                  "segment's users, F1 at 1:1 pooled over their lists):", "",
                  "| segment | users | " + " | ".join(f"{n} AUC | {n} F1 1:1" for n in names) + " |",
                  "|---|---|" + "---|---|" * len(names)]
        for segment, entry in segments.items():
            lines.append(f"| {segment} | {entry['users']} | " + " | ".join(
                f"{entry[n]['auc']:.4f} | {entry[n]['f1_1to1']:.3f}" for n in names) + " |")
    r = results["ratings"]
    lines += ["", "## Ratings", "", "| predictor | RMSE |", "|---|---|"]
    lines += [f"| {k} | {v:.4f} |" for k, v in r["rmse"].items()]
    lines += [f"| calibrated user, one simulated draw per rating | {r['rmse_of_simulated_draws']:.4f} |", "",
              "| stars | " + " | ".join(str(s) for s in range(1, 6)) + " |", "|---|" + "---|" * 5]
    lines += [f"| {k} | " + " | ".join(f"{x:.3f}" for x in v) + " |" for k, v in r["distribution"].items()]
    lines += ["", "![ratings](ratings.png)", "", "## Aggregate realism", "",
              "| consumption | Gini | top-10% items' share | items consumed | genre TV distance |",
              "|---|---|---|---|---|"]
    for name, a in results["aggregate"].items():
        tv = f"{a['genre_total_variation']:.3f}" if "genre_total_variation" in a else "-"
        lines.append(f"| {name} | {a['gini']:.3f} | {a['top10%_share']:.3f} | {a['items_consumed']} | {tv} |")
    lines += ["", "![long tail](long_tail.png)", "", "![genre shares](genre_shares.png)", ""]
    ranking = results.get("policy_ranking")
    if ranking:
        lines += ["## Policy ranking", "",
                  f"Agents ranked by click-through (clicks per shown item) serving the calibrated users in "
                  f"`RecoWorld/Slate-v0` and in a replay of {ranking['replay_rounds']:,} held-out ratings "
                  f"({ranking['settings']['num_candidates']} candidates: the held-out item and never-rated ones; "
                  f"slates of {ranking['settings']['slate_size']}; chance {ranking['chance_ctr']:.3f}). "
                  f"Kendall's tau between the rankings: **{ranking['kendall_tau']:.3f}** "
                  f"(p = {ranking['p_value']:.3f}).", "",
                  "| agent | simulator CTR | simulator rank | replay CTR | replay rank |", "|---|---|---|---|---|"]
        for name, a in sorted(ranking["agents"].items(), key=lambda kv: kv[1]["simulator_rank"]):
            lines.append(f"| {name} | {a['simulator_ctr']:.4f} | {a['simulator_rank']} | {a['replay_ctr']:.4f} "
                         f"| {a['replay_rank']} |")
        lines.append("")
    users = results.get("user_kinds")
    if users:
        lines += ["## LLM and hybrid users", "",
                  f"{len(users['users'])} sampled users (MovieLens ids {', '.join(str(u + 1) for u in users['users'])}), "
                  "the same lists for every kind. The hybrid user's clicks are its statistical core's, so its "
                  "numbers are the calibrated user's; the LLM user has no choice probability, hence no AUC. "
                  "Small samples: read these as a check that the pipeline runs, not as estimates "
                  "(see `recoworld.apps.fidelity.llm` for runs at scale).", "",
                  "| user | AUC | " + " | ".join(f"F1 1:{m}" for m in RATIOS) + " | "
                  + " | ".join(f"acc 1:{m}" for m in RATIOS) + " |", "|---|---|" + "---|" * (2 * len(RATIOS))]
        for kind in ("statistical", "hybrid", "llm"):
            if kind in users:
                e = users[kind]
                auc = "n/a" if e["auc"] is None else f"{e['auc']:.4f}"
                lines.append(f"| {kind} | {auc} | " + " | ".join(f"{e[f'1:{m}']['f1']:.3f}" for m in RATIOS)
                             + " | " + " | ".join(f"{e[f'1:{m}']['accuracy']:.3f}" for m in RATIOS) + " |")
        if "llm" in users and users["llm"].get("llm"):
            usage = users["llm"]["llm"]
            lines += ["", "LLM use: " + ", ".join(f"{k} {v:g}" for k, v in usage.items())]
        lines.append("")
    if social:
        lines += ["## Social influence", "", social["description"], "",
                  "| recommender | social weight | Gini of exposure | Gini of consumption | top-1% items' share |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['policy']} | {r['social_weight']:g} | {r['gini_exposure']:.3f} | {r['gini_consumption']:.3f} "
                  f"| {r['top1%_consumption']:.3f} |" for r in social["final"]]
        lines += ["", "![concentration](concentration.png)", ""]
    c = world.config
    lines += ["## The calibrated world", "",
              f"interest weight {c.interest_weight:.2f}, quality weight {c.quality_weight:.3f}, click threshold "
              f"{c.click_threshold:.2f}; ratings: center {c.rating_center:.2f}, slope {c.rating_slope:.3f}, "
              f"quality {c.rating_quality:.3f}, noise {c.rating_noise:.3f}; leave base {c.leave_base:.2f}, "
              f"leave length {c.leave_length:.3f}; return base {c.return_base:.2f}, gap {c.gap_days:.1f} days. "
              "What the data can and cannot identify: `recoworld.calibration`'s documentation.", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    serialisable = {k: v for k, v in results.items() if k != "curves"}
    (out / "metrics.json").write_text(json.dumps(serialisable, indent=1, default=_json_default))
    return path


def headline(results: dict) -> list[str]:
    """The headline numbers as a Markdown table: calibrated user against the MF baseline."""
    names = list(results["models"])
    rows = [("AUC", lambda n: f"{results['models'][n]['auc']:.4f}")]
    rows += [(f"F1 at 1:{m}", lambda n, m=m: f"{results['models'][n][f'1:{m}']['f1']:.3f}") for m in RATIOS]
    rows.append(("rating RMSE", lambda n: f"{results['ratings']['rmse'][n]:.4f}"))
    ranking = results.get("policy_ranking")
    if ranking:
        # Only a simulator ranks policies; the baseline is a scorer, not a simulator.
        rows.append(("Kendall tau, policy ranking", lambda n: f"{ranking['kendall_tau']:.3f}"
                     if n == "calibrated user" else "-"))
    lines = ["| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines += [f"| {label} | " + " | ".join(cell(n) for n in names) + " |" for label, cell in rows]
    return lines


def _json_default(value):
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value)} to JSON")


def _settings(pairs: Sequence[str]) -> dict:
    """``["backend=openai", "max_concurrency=64"]`` as a mapping (numbers parsed)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"recoworld fidelity: --llm {pair!r}; give KEY=VALUE, e.g. --llm backend=openai")
        for kind in (int, float):
            try:
                value = kind(value)
                break
            except ValueError:
                pass
        out[key] = value
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``recoworld fidelity [--out DIR] [--world DIR] [--social] [--agents A,B] [--users KINDS]
    [--llm-users N] [--llm KEY=VALUE ...] [--quiet]``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="recoworld fidelity", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("fidelity-report"), help="report folder")
    parser.add_argument("--world", type=Path, default=None, help="calibrated-world artifact (default: the cache; "
                        "calibrated first if missing)")
    parser.add_argument("--social", action="store_true", help="add the social-influence concentration section")
    parser.add_argument("--agents", default=",".join(AGENTS), help="agents (conf/agent/ names) of the policy "
                        "ranking, comma-separated; empty: no ranking (default: %(default)s)")
    parser.add_argument("--users", default="statistical", help="user kinds of the LLM section, comma-separated "
                        "among statistical, hybrid, llm (default: statistical only: no LLM section)")
    parser.add_argument("--llm-users", type=int, default=8, help="users sampled for the LLM section (default 8: "
                        "the embedded model makes ~0.06 user-steps/s on a CPU)")
    parser.add_argument("--llm", action="append", default=[], metavar="KEY=VALUE",
                        help="a recoworld.llm.LLMConfig field of the LLM users' model, e.g. --llm backend=openai "
                        "--llm base_url=http://localhost:8000/v1 --llm model=NAME (default: the embedded model)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    agents = [a for a in args.agents.split(",") if a]
    kinds = [k for k in args.users.split(",") if k]
    with_users = kinds != ["statistical"] and bool(kinds)
    start = time.perf_counter()
    world = ensure_world(args.world, progress=not args.quiet)
    stages = Stages(5 + bool(agents) + with_users + args.social, not args.quiet, "fidelity")
    with torch_threads(1):
        results = evaluate(world, seed=args.seed, stages=stages)
        data, split = held_out_split(world)
        if agents:
            with stages.stage("ranking agents in the simulator and on held-out logs"):
                results["policy_ranking"] = policy_ranking(world, split, RankingConfig(agents=agents, seed=args.seed))
        if with_users:
            from recoworld.apps.fidelity.llm import evaluate_users

            llm = {"cache_dir": str(args.out / "llm-cache"), **_settings(args.llm)}
            with stages.stage(f"LLM and hybrid users ({args.llm_users} users)"):
                results["user_kinds"] = evaluate_users(world, data, split, kinds, args.llm_users, llm, RATIOS,
                                                       args.seed)
        if args.social:
            from recoworld.apps.calibrate.concentration import concentration_experiment, describe

            with stages.stage("social influence over a long horizon"):
                series = pd.concat([
                    concentration_experiment(world.catalog, world.config, world.population(), policy=policy,
                                             seed=args.seed).assign(policy=policy)
                    for policy in ("random", "popular")])
                results["social"] = describe(series)
    path = write_report(results, args.out, world)
    print("\n".join(headline(results)))
    print(f"report: {path} ({time.perf_counter() - start:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
