"""The fidelity report's page: ``report.md``, ``metrics.json`` and the PNG plots.

:func:`write_report` lays out what :func:`recoworld.apps.fidelity.evaluation.evaluate`
measured (and the optional sections ``recoworld fidelity`` adds); each section of the
page is one function returning its Markdown lines, each plot one function drawing it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from recoworld.apps.fidelity.evaluation import RATIOS
from recoworld.apps.fidelity.sessions import MIN_HALF_USERS
from recoworld.calibration.bootstrap import is_undefined
from recoworld.logs import new_folder, strict_json
from recoworld.simulators.calibrated import ORIGINAL_ID, CalibratedWorld
from recoworld.wording import plural


def write_report(results: dict, out: Path, world: CalibratedWorld) -> Path:
    """``report.md``, ``metrics.json`` (strict JSON: an undefined number is ``null``) and PNG
    plots in the new (or empty) folder ``out``, written whole
    (:func:`recoworld.logs.new_folder`); returns the report's ``report.md``."""
    with new_folder(out) as written:
        _write_files(results, written.folder, world)
    return written.path / "report.md"


def _write_files(results: dict, out: Path, world: CalibratedWorld) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for plot in ((plot_long_tail,) + ((plot_genre_shares,) if results.get("genre_shares") else ())
                 + ((plot_ratings,) if results["ratings"] else ())):
        plot(plt, results, out)
    if results.get("social"):
        plot_concentration(plt, results["social"], out)
    if results.get("splits"):
        plot_calibration(plt, results["splits"], out, events(results))
    names = list(results["models"])
    noun = events(results)
    lines = introduction(results)
    lines += ["## Headline", ""] + headline(results) + [""]
    lines += ["## Targets", ""] + _targets(results["targets"])
    lines += discrimination_section(results, names)
    lines += ratings_section(results["ratings"])
    not_scored = results.get("not_scored", {})
    lines += aggregate_section(results["aggregate"], bool(results.get("genre_shares")))
    lines += splits_section(results.get("splits"), results.get("split_targets"), noun,
                            {k.removeprefix("split "): v for k, v in not_scored.items() if k.startswith("split ")})
    lines += sessions_section(results.get("sessions"), results.get("session_targets"), noun,
                              not_scored.get("sessions"))
    lines += ranking_section(results.get("policy_ranking"), noun, not_scored.get("policy ranking"))
    lines += user_kinds_section(results.get("user_kinds"), world, results.get("data", {}).get("name", "MovieLens"))
    lines += social_section(results.get("social"))
    lines += world_section(world, has_ratings(results))
    (out / "report.md").write_text("\n".join(lines))
    serialisable = {k: v for k, v in results.items() if k != "curves"}
    (out / "metrics.json").write_text(json.dumps(strict_json(serialisable), indent=1, allow_nan=False))


def headline(results: dict) -> list[str]:
    """The headline numbers as a Markdown table: calibrated user against the MF baseline."""
    names = list(results["models"])
    rows = [("AUC", lambda n: _number(results['models'][n]['auc'], 4))]
    rows += [(f"F1 at 1:{m}", lambda n, m=m: f"{results['models'][n][f'1:{m}']['f1']:.3f}") for m in RATIOS]
    if results["ratings"]:
        rows.append(("rating RMSE", lambda n: f"{results['ratings']['rmse'][n]:.4f}"))
    ranking = results.get("policy_ranking")
    if ranking:
        # Only a simulator ranks policies; the baseline is a scorer, not a simulator.
        rows.append(("Kendall tau-b, policy ranking", lambda n: _number(ranking["kendall_tau"], 3)
                     if n == "calibrated user" else "-"))
    lines = ["| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines += [f"| {label} | " + " | ".join(cell(n) for n in names) + " |" for label, cell in rows]
    return lines


# ------------------------------------------------------------------ sections
def has_ratings(results: dict) -> bool:
    """Whether the world's log has ratings: a log read without a ``rating`` column (a click
    or view log) has none, and its world keeps the simulator's default rating response."""
    return results.get("data", {}).get("has_ratings", True)


def events(results: dict) -> str:
    """What the log's rows are called on the page: ratings, or interactions for a log
    without a rating column (a click or view log)."""
    return "ratings" if has_ratings(results) else "interactions"


def introduction(results: dict) -> list[str]:
    split, noun = results["split"], events(results)
    name = results.get("data", {}).get("name", "MovieLens-100K")
    baseline = ("a plain logistic MF (choices) and a biased MF (ratings)" if has_ratings(results)
                else "a plain logistic MF (choices)")
    return [f"# Fidelity of the calibrated statistical user ({name})", "",
            f"Held-out: each user's latest 20% of {noun} ({split['held_out']:,} {noun} of "
            f"{split['users']} users); training: the rest ({split['train']:,}). "
            "The calibrated user is the fitted user as simulated by `StatisticalUsers` at a session start; "
            f"the MF baseline is {baseline} on the same split. "
            f"The calibrated user's choices come from the same logistic MF fitted with recency-weighted {noun} "
            f"(a weight halves with every 20 newer {noun} of the user) plus an item-to-item (EASE) term "
            f"on those {noun}, brought back to one vector per user and per item by a truncated SVD, and "
            "Platt-scaled on a validation fold (the last 20% of the training split); the baselines' penalties "
            "were chosen on that fold too.",
            ""]


def _decision_table(entries: dict[str, dict], first: str, auc) -> list[str]:
    """AUC, F1 and accuracy at every 1:m, one row per entry (``auc(entry)`` formats the AUC)."""
    lines = [f"| {first} | AUC | " + " | ".join(f"F1 1:{m}" for m in RATIOS) + " | "
             + " | ".join(f"acc 1:{m}" for m in RATIOS) + " |",
             "|---|---|" + "---|" * (2 * len(RATIOS))]
    for name, e in entries.items():
        lines.append(f"| {name} | {auc(e)} | " + " | ".join(f"{e[f'1:{m}']['f1']:.3f}" for m in RATIOS)
                     + " | " + " | ".join(f"{e[f'1:{m}']['accuracy']:.3f}" for m in RATIOS) + " |")
    return lines


def short_lists_note(short: dict[str, float] | None) -> list[str]:
    """Which 1:m lists hold fewer never-rated items per held-out one than their name says
    (:func:`~recoworld.apps.fidelity.evaluation.short_lists`), if any."""
    if not short:
        return []
    held = ", ".join(f"the {mix} lists {ratio:.1f}" for mix, ratio in short.items())
    return ["", f"Too few never-rated items for the full mixes: {held} never-rated items per held-out one (a user "
            "with fewer unrated items than the mix asks for is given all of them); read those columns at that mix."]


def discrimination_section(results: dict, names: list[str]) -> list[str]:
    lines = ["", "## Discrimination and the 1:m protocol", ""]
    lines += _decision_table({n: results["models"][n] for n in names}, "model", lambda e: _number(e["auc"], 4))
    lines += ["", "Precision / recall (would watch = choice probability > 1/2; in brackets the expected F1 "
              "when each answer is a Bernoulli draw):", "",
              "| model | " + " | ".join(f"1:{m} P / R (F1 drawn)" for m in RATIOS) + " |",
              "|---|" + "---|" * len(RATIOS)]
    for name in names:
        e = results["models"][name]
        lines.append(f"| {name} | " + " | ".join(
            f"{e[f'1:{m}']['precision']:.3f} / {e[f'1:{m}']['recall']:.3f} ({e[f'1:{m} (Bernoulli draws)']['f1']:.3f})"
            for m in RATIOS) + " |")
    lines += short_lists_note(results.get("short_lists"))
    segments = results.get("segments", {})
    if segments:
        lines += ["", "Per population segment (specs as in `simulator.population`; AUC averaged over the "
                  "segment's users, F1 at 1:1 pooled over their lists):", "",
                  "| segment | users | " + " | ".join(f"{n} AUC | {n} F1 1:1" for n in names) + " |",
                  "|---|---|" + "---|---|" * len(names)]
        for segment, entry in segments.items():
            lines.append(f"| {segment} | {entry['users']} | " + " | ".join(
                f"{_number(entry[n]['auc'], 4)} | {_number(entry[n]['f1_1to1'], 3)}" for n in names) + " |")
        if any(_number(entry[n]["f1_1to1"], 3) == "n/a" for entry in segments.values() for n in names):
            noun = events(results)
            lines += ["", f"n/a: none of the segment's users has held-out {noun} (too few {noun} to hold one out)."]
    return lines


def ratings_section(r: dict | None) -> list[str]:
    if r is None:
        return ["", "## Ratings", "", "The log has no ratings: there is nothing to score the rating response "
                "against, and the world keeps the simulator's default one."]
    lines = ["", "## Ratings", "", "| predictor | RMSE |", "|---|---|"]
    lines += [f"| {k} | {v:.4f} |" for k, v in r["rmse"].items()]
    lines += [f"| calibrated user, one simulated draw per rating | {r['rmse_of_simulated_draws']:.4f} |", "",
              "| stars | " + " | ".join(str(s) for s in range(1, 6)) + " |", "|---|" + "---|" * 5]
    lines += [f"| {k} | " + " | ".join(f"{x:.3f}" for x in v) + " |" for k, v in r["distribution"].items()]
    return lines + ["", "![ratings](ratings.png)"]


def aggregate_section(aggregate: dict, with_genres: bool = True) -> list[str]:
    lines = ["", "## Aggregate realism", "",
             "| consumption | Gini | top-10% items' share | items consumed | genre TV distance |",
             "|---|---|---|---|---|"]
    for name, a in aggregate.items():
        tv = f"{a['genre_total_variation']:.3f}" if "genre_total_variation" in a else "-"
        lines.append(f"| {name} | {a['gini']:.3f} | {a['top10%_share']:.3f} | {a['items_consumed']} | {tv} |")
    if not with_genres:
        return lines + ["", "The log's items have no genres (every item is in the placeholder genre `unknown`): "
                        "there are no genre shares to compare.", "", "![long tail](long_tail.png)", ""]
    return lines + ["", "![long tail](long_tail.png)", "", "![genre shares](genre_shares.png)", ""]


SPLIT_TITLES = {"latest": "each user's latest {noun}", "time": "a global time cut",
                "users": "held-out users (folded in on their early {noun})"}


def split_title(kind: str, noun: str) -> str:
    """The heading of split ``kind``, its rows called ``noun`` (:func:`events`)."""
    return SPLIT_TITLES.get(kind, kind).format(noun=noun)


def _number(value: float | None, digits: int) -> str:
    """``value`` to ``digits`` places; ``n/a`` for an undefined one (NaN, or JSON's null)."""
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _duration(days: float | None) -> str:
    """A duration of ``days``, in hours or minutes where under a tenth of a day: a log that
    spans a day has gaps of minutes, which would read "0.0 days"; ``n/a`` for an undefined
    one. Hours from what rounds to 60.0 minutes: just under an hour reads "1.0 hours"."""
    if _number(days, 1) == "n/a":
        return "n/a"
    minutes = 24 * 60 * days
    if days >= 0.1 or minutes <= 0:
        return f"{days:.1f} days"
    return f"{minutes / 60:.1f} hours" if round(minutes, 1) >= 60 else f"{minutes:.1f} minutes"


def _with_interval(entry: dict, digits: int = 3, draws: str = "resamples") -> str:
    """``value [low, high]`` of an interval (:func:`~recoworld.calibration.bootstrap.interval`);
    ``value [n/a: k of N resamples defined]`` where the metric is undefined on too many of
    its ``draws`` for an interval, ``value [n/a]`` where the interval is undefined otherwise
    (one user cannot be resampled), ``n/a`` where the value is."""
    value = _number(entry["value"], digits)
    if value == "n/a":
        return value
    low, high = _number(entry["low"], digits), _number(entry["high"], digits)
    if "n/a" not in (low, high):
        return f"{value} [{low}, {high}]"
    if "n_draws" in entry and is_undefined(entry):
        return f"{value} [n/a: {entry['n_defined']} of {entry['n_draws']} {draws} defined]"
    return f"{value} [n/a]"


def _targets(targets: dict[str, bool | None]) -> list[str]:
    """One line per target: met, not met, or n/a where it has no verdict (``None``: what
    it reads is undefined)."""
    return [f"- {k}: {'n/a (undefined)' if v is None else 'met' if v else '**not met**'}" for k, v in targets.items()]


def _threshold(t: float) -> str:
    """A validation-chosen threshold; one below 0 says yes to every item
    (:func:`~recoworld.calibration.metrics.f1_threshold`)."""
    return "all yes" if t < 0 else f"{t:.3f}"


def splits_section(splits: dict | None, targets: dict | None, noun: str = "ratings",
                   not_scored: dict[str, str] | None = None) -> list[str]:
    """The three splits against the baselines, with 95% bootstrap intervals over users, and
    the reason for each split in ``not_scored`` (split: why) the data could not give."""
    splits, not_scored = splits or {}, not_scored or {}
    if not splits and not not_scored:
        return []
    lines = ["## Splits and baselines", "",
             "The calibrated user against popularity, recent popularity (30 days before the held-out period), "
             f"MF and EASE, each fitted on the split's training {noun} and Platt-scaled on its validation fold "
             "(`recoworld.apps.fidelity.splits`). In brackets: 95% bootstrap intervals over users. ECE: expected "
             "calibration error of the 1:1 lists. F1 in the first table: would watch = probability above 1/2; "
             "in the second, above the threshold chosen per mix on the validation fold's lists (never the test "
             "lists): even calibrated probabilities maximise F1 at about half the best F1, not at 1/2 "
             "(Lipton, Elkan and Naryanaswamy, 2014); \"all yes\": the best F1 on the validation lists says yes to "
             "every item, so the model separates them no better than saying yes to all. The F1 target reads the second. "
             "[n/a]: no interval, as one user cannot be resampled; [n/a: k of N resamples defined]: no interval, as "
             "the metric is undefined on more than 5% of the resamples (those that draw none of the few users it "
             "needs), too many for a 95% interval; in the calibration plot, such a bin is drawn hollow.", ""]
    for kind, why in not_scored.items():
        lines += [f"### Split: {split_title(kind, noun)}", "", f"Not scored: {why}.", ""]
    for kind, split in splits.items():
        lines += [f"### Split: {split_title(kind, noun)}", "",
                  f"{split['held_out']:,} held-out {noun} of {plural(split['users'], 'user')}; {split['train']:,} training "
                  f"{noun}.", "",
                  "| model | AUC | F1 1:1 | F1 1:3 | F1 1:9 | ECE | rating RMSE |", "|---|---|---|---|---|---|---|"]
        rmse = split.get("rmse", {})
        for name, e in split["models"].items():
            error = rmse.get(name) or (rmse.get("MF") if name == "MF" else None)
            lines.append(f"| {name} | {_with_interval(e['auc'], 4)} | " + " | ".join(
                _with_interval(e[f"f1_1to{m}"]) for m in RATIOS) + f" | {_with_interval(e['calibration']['ece'])} | "
                + (_with_interval(error, 4) if error else "-") + " |")
        for name in ("item mean", "global mean"):
            if name in rmse:
                lines.append(f"| {name} (ratings only) | - | - | - | - | - | {_with_interval(rmse[name], 4)} |")
        lines += ["", "| model | " + " | ".join(f"1:{m} threshold | F1 1:{m}" for m in RATIOS) + " |",
                  "|---|" + "---|---|" * len(RATIOS)]
        for name, e in split["models"].items():
            lines.append(f"| {name} | " + " | ".join(
                f"{_threshold(e['decision_threshold'][f'1:{m}'])} | "
                f"{_with_interval(e[f'f1_1to{m}_at_validation_threshold'])}"
                for m in RATIOS) + " |")
        lines += short_lists_note(split.get("short_lists")) + [""]
    if targets:
        lines += ["Targets:", ""] + _targets(targets)
    return lines + (["", "![calibration curves](calibration.png)", ""] if splits else [""])


def _distances(entry: dict, digits: int) -> list[str]:
    """``distance [interval]`` and ``noise [interval]`` cells for each distance, and the verdicts."""
    cells = []
    for metric, distance in entry["distance"].items():
        within = entry["within_noise"][metric]
        cells += [_with_interval(distance, digits), _with_interval(entry["noise"][metric], digits, "halvings"),
                  "n/a" if within is None else "within noise" if within else "**outside noise**"]
    return cells


def _quantiles_cell(summary: dict, keys: tuple[str, ...], digits: int) -> str:
    return " / ".join(f"{summary[k]['value']:.{digits}f}" for k in keys if k in summary) + f" (n={summary['n']})"


SESSIONS_INTRO = (
    "The session dynamics (returns, activity, leave hazard, return and gap levels) fitted again without {held_out} held-out "
    "users; the other {fitted} users simulated over their real observation windows with the leave fit's "
    "reference recommender, their clicks cut into sessions as the {noun} are "
    "(`recoworld.apps.fidelity.sessions`). Distance: simulated against held-out, 95% bootstrap interval over "
    "users; noise: the same distance between two random halves of the held-out users (median and 95% interval "
    "over halvings); within noise: the distance is at most the noise's upper end, i.e. the simulated users differ "
    "from the held-out ones no more than two halves of the held-out users differ in 97.5% of halvings. KS: the "
    "Kolmogorov-Smirnov statistic, from 0 (same distribution) to 1; W1: the 1-Wasserstein distance, in the "
    "statistic's own unit ({noun} per session, days, a share). n: the values a distribution is read from "
    "(sessions, or gaps between them).")


def sessions_section(section: dict | None, targets: dict | None, noun: str = "ratings",
                     not_scored: str | None = None) -> list[str]:
    """Session dynamics of the calibrated users against held-out users
    (:mod:`recoworld.apps.fidelity.sessions`), or why the data could not give them (``not_scored``)."""
    if not_scored:
        return ["## Session dynamics against held-out users", "", f"Not scored: {not_scored}.", ""]
    if not section:
        return []
    statistics = section["statistics"]
    lines = ["## Session dynamics against held-out users", "",
             SESSIONS_INTRO.format(held_out=section["held_out_users"], fitted=section["fitted_users"], noun=noun), "",
             "| statistic | held-out | simulated | KS | KS noise | KS verdict | W1 | W1 noise | W1 verdict |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, entry in statistics.items():
        if entry["kind"] != "distribution":
            continue
        shares = name == "genre_repetition"
        keys, digits = (("mean",), 3) if shares else (("p50", "p80", "p95", "mean"), 2)
        cells = [f"{entry['title'].replace('ratings', noun)} ({' / '.join(keys)})",
                 _quantiles_cell(entry["held_out"], keys, digits),
                 _quantiles_cell(entry["simulated"], keys, digits), *_distances(entry, 3)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "n/a: undefined, where a side has fewer than 3 sessions followed by a gap, or no spread in "
              "the session's value or in the gaps (a Spearman correlation), or no values (a distribution); "
              "[n/a: k of N resamples (halvings) defined]: no interval, as the statistic is undefined on more than "
              "5% of them, too many for a 95% interval; a verdict is n/a where the distance or the noise's upper "
              "end is.", ""]
    if section["held_out_users"] < 2 * MIN_HALF_USERS:
        lines += [f"The noise is n/a: {plural(section['held_out_users'], 'user')} held out, fewer than {MIN_HALF_USERS} "
                  "in each half (a half of one user is that user, not a sample of users), so no verdict.", ""]
    lines += ["| correlation | held-out | simulated | difference | noise | verdict |", "|---|---|---|---|---|---|"]
    for entry in statistics.values():
        if entry["kind"] == "correlation":
            cells = [entry["title"], _with_interval(entry["held_out"]["value"]),
                     _with_interval(entry["simulated"]["value"]), *_distances(entry, 3)]
            lines.append("| " + " | ".join(cells) + " |")
    law, c = section.get("gap_law"), section["config"]
    if law:
        exponential, weibull = law["exponential"], law["weibull"]
        shape = (f"Weibull gaps of shape {weibull['shape']:.3f}" if weibull.get("shape_fitted", True) else
                 "gaps held exponential (too few users come back after gaps of differing length to fit a shape)")
        spread = (f", the users' log activities ~ N(0, {weibull['activity_spread']:.2f}²), the fitted users' own "
                  f"(posterior modes, shrunk towards the mean) spread {weibull['activity_modes_spread']:.2f}"
                  if "activity_modes_spread" in weibull else "")
        lines += ["", (f"Gap law on the fitted users' {law['sessions']} sessions: log-likelihood per session "
                       f"{exponential['log_likelihood']:.4f} with exponential gaps, "
                       f"{weibull['log_likelihood']:.4f} with {shape} "
                       f"whose mean falls with the session's length to the power "
                       f"-{weibull.get('length_elasticity', 0.0):.3f} (mean {_duration(weibull['mean_gap_days'])} "
                       f"after a session of the median length for an average user{spread}; the calibration's law).")]
    shape_held = "" if (law or {}).get("weibull", {}).get("shape_fitted", True) else "held "
    lines += ["", (f"Refitted: leave base {c['leave_base']:.2f}, first session "
                   f"{c.get('leave_first_session', 0.0):+.2f} (spread between newcomers "
                   f"{c.get('first_session_spread', 0.0):.2f}, patience's share "
                   f"{c.get('first_session_patience', 1.0):.2f}), quick visits "
                   f"{c.get('quick_visit_share', 0.0):.0%}, session theme {c.get('theme_weight', 0.0):.2f}, length "
                   f"{c['leave_length']:.3f}, patience "
                   f"{c['leave_patience']:.1f}; return base {c['return_base']:.2f}, after a first session "
                   f"{c.get('return_first_session', 0.0):+.2f}; gap {_duration(c['gap_days'])}, times "
                   f"{np.exp(c.get('gap_first_session', 0.0)):.2f} after a first session for "
                   f"{c.get('gap_first_share', 1.0):.0%} of the newcomers who return, {shape_held}gap shape "
                   f"{c['gap_shape']:.3f}, gap elasticity to session length "
                   f"{c.get('gap_length_elasticity', 0.0):.3f}.")]
    if targets:
        lines += ["", "Targets:", ""] + _targets(targets)
    return lines + [""]


def ranking_section(ranking: dict | None, noun: str = "ratings", not_scored: str | None = None) -> list[str]:
    """The agents' click-through in the simulator and in the replay
    (:mod:`recoworld.apps.fidelity.ranking`), or why the data could not give them (``not_scored``)."""
    if not_scored:
        return ["## Policy ranking", "", f"Not scored: {not_scored}.", ""]
    if not ranking:
        return []
    left_out = ranking.get("replay_left_out_users", 0)
    sat_out = (f"; sat out: {plural(left_out, 'user')} with fewer than {ranking['settings']['num_candidates'] - 1} "
               "never-rated items" if left_out else "")
    lines = ["## Policy ranking", "",
             f"Agents ranked by click-through (clicks per shown item) serving the calibrated users in "
             f"`RecoWorld/Slate-v0` and in a replay of {ranking['replay_rounds']:,} held-out {noun} "
             f"({ranking['settings']['num_candidates']} candidates: the held-out item and never-rated ones; "
             f"slates of {ranking['settings']['slate_size']}; chance {ranking['chance_ctr']:.3f}{sat_out}). "
             f"Kendall's tau-b between the rankings (ties count as neither agreement nor disagreement; n/a where "
             f"either side scores every agent alike): **{_number(ranking['kendall_tau'], 3)}** "
             f"(p = {_number(ranking['p_value'], 3)}). Ranks: {ranking.get('ranks', 'rank 1 is the highest click-through')}.",
             "",
             "| agent | simulator CTR | simulator rank | replay CTR | replay rank |", "|---|---|---|---|---|"]
    for name, a in sorted(ranking["agents"].items(), key=lambda kv: kv[1]["simulator_rank"]):
        lines.append(f"| {name} | {a['simulator_ctr']:.4f} | {a['simulator_rank']} | {a['replay_ctr']:.4f} "
                     f"| {a['replay_rank']} |")
    return lines + [""]


def user_kinds_section(users: dict | None, world: CalibratedWorld, data: str = "MovieLens") -> list[str]:
    """The LLM and hybrid users against the statistical one on sampled users, named by their
    ids in the ``data`` the ``world`` was fitted on (MovieLens', or the log's own), or by the
    world's own ids (``users["user_id"]``) for a world made without the data's."""
    if not users:
        return []
    sampled = np.asarray(users["users"])
    if ORIGINAL_ID in world.users:
        ids = f"{data} ids {', '.join(world.original_user_id(sampled))}"
    else:  # made in Python without them, as CalibratedWorld allows: it still runs
        ids = f"the world's own user ids {', '.join(str(u) for u in sampled)}: it was made without the data's"
    lines = ["## LLM and hybrid users", "",
             f"{len(users['users'])} sampled users ({ids}), "
             "the same lists for every kind. The hybrid user's clicks are its statistical core's, so its "
             "numbers are the calibrated user's; the LLM user has no choice probability, hence no AUC. "
             "Small samples: read these as a check that the pipeline runs, not as estimates "
             "(see `recoworld.apps.fidelity.llm` for runs at scale).", ""]
    kinds = {kind: users[kind] for kind in ("statistical", "hybrid", "llm") if kind in users}
    lines += _decision_table(kinds, "user", lambda e: _number(e["auc"], 4))
    if "llm" in users and users["llm"].get("llm"):
        usage = users["llm"]["llm"]
        lines += ["", "LLM use: " + ", ".join(f"{k} {v:g}" for k, v in usage.items())]
    return lines + [""]


def social_section(social: dict | None) -> list[str]:
    if not social:
        return []
    lines = ["## Social influence", "", social["description"], "",
             "| recommender | social weight | Gini of exposure | Gini of consumption | top-1% items' share |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['policy']} | {r['social_weight']:g} | {r['gini_exposure']:.3f} | {r['gini_consumption']:.3f} "
              f"| {r['top1%_consumption']:.3f} |" for r in social["final"]]
    return lines + ["", "![concentration](concentration.png)", ""]


def world_section(world: CalibratedWorld, with_ratings: bool = True) -> list[str]:
    """The fitted parameters; for a log without ratings (``with_ratings`` false) the rating
    response is named as the defaults it keeps, not printed as if the log had informed it."""
    c = world.config
    ratings = (f"ratings: center {c.rating_center:.2f}, slope {c.rating_slope:.3f}, quality {c.rating_quality:.3f}, "
               f"noise {c.rating_noise:.3f}" if with_ratings else
               "ratings: none in the log, so the rating response keeps the simulator's defaults")
    return ["## The calibrated world", "",
            f"interest weight {c.interest_weight:.2f}, quality weight {c.quality_weight:.3f}, click threshold "
            f"{c.click_threshold:.2f}; {ratings}; leave base {c.leave_base:.2f}, "
            f"leave length {c.leave_length:.3f}; return base {c.return_base:.2f}, gap {_duration(c.gap_days)}. "
            "What the data can and cannot identify: `recoworld.calibration`'s documentation.", ""]


# ------------------------------------------------------------------ plots
def _save(plt, fig, ax, out: Path, name: str) -> None:
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / name, dpi=120)
    plt.close(fig)


def plot_long_tail(plt, results: dict, out: Path) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, curve in results["curves"].items():
        ax.plot(curve["x"], curve["y"], label=name, lw=2 if name == "held-out" else 1.3,
                ls="-" if name == "held-out" else "--")
    ax.set_xlabel("share of items, most popular (in training) first")
    ax.set_ylabel("share of consumption")
    ax.set_title("Long tail of held-out consumption")
    _save(plt, fig, ax, out, "long_tail.png")


def plot_genre_shares(plt, results: dict, out: Path) -> None:
    genres = list(next(iter(results["genre_shares"].values())))
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(results["genre_shares"])
    for k, (name, shares) in enumerate(results["genre_shares"].items()):
        ax.bar(np.arange(len(genres)) + k * width, [shares[g] for g in genres], width, label=name)
    ax.set_xticks(np.arange(len(genres)) + 0.4 - width / 2, genres, rotation=60, ha="right")
    ax.set_ylabel("share of consumption")
    ax.set_title("Genre shares of held-out consumption")
    _save(plt, fig, ax, out, "genre_shares.png")


def plot_ratings(plt, results: dict, out: Path) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 4))
    dist = results["ratings"]["distribution"]
    width = 0.8 / len(dist)
    for k, (name, shares) in enumerate(dist.items()):
        ax.bar(np.arange(1, 6) + (k - 1) * width, shares, width, label=name)
    ax.set_xlabel("stars")
    ax.set_ylabel("share of held-out ratings")
    ax.set_title("Rating distribution")
    _save(plt, fig, ax, out, "ratings.png")


def plot_calibration(plt, splits: dict, out: Path, noun: str = "ratings") -> None:
    """Reliability of the predicted click probabilities on the 1:1 lists, per split (``noun``:
    what the log's rows are called in the titles, :func:`events`)."""
    fig, axes = plt.subplots(1, len(splits), figsize=(4.5 * len(splits), 4), squeeze=False)
    for ax, (kind, split) in zip(axes[0], splits.items()):
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
        for name, entry in split["models"].items():
            curve = entry["calibration"]["curve"]
            x = [c["predicted"] for c in curve]
            y = [c["observed"]["value"] for c in curve]
            err = [[c["observed"]["value"] - c["observed"]["low"] for c in curve],
                   [c["observed"]["high"] - c["observed"]["value"] for c in curve]]
            line = ax.errorbar(x, y, yerr=err, marker="o", ms=3, capsize=2, label=name,
                               lw=2 if name == "calibrated user" else 1)
            # a bin without an interval (NaN ends) is drawn hollow, so that it does not read as exact
            bare = [k for k, c in enumerate(curve) if not np.isfinite(c["observed"]["low"])]
            ax.plot([x[k] for k in bare], [y[k] for k in bare], ls="none", marker="o", ms=6, mfc="white",
                    color=line[0].get_color())
        ax.set_xlabel("predicted click probability")
        ax.set_ylabel("observed share chosen (1:1 lists)")
        ax.set_title(split_title(kind, noun))
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "calibration.png", dpi=120)
    plt.close(fig)


def plot_concentration(plt, social: dict, out: Path) -> None:
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
