"""The robustness report: a rich table on the console and three files in the study's folder.

:func:`write` puts ``robustness.json`` (everything :func:`~recoworld.apps.robustness.study.run_study`
returns), ``worlds.csv`` (a row per world: kind, varied parameter, every parameter's value,
each agent's score and rank, :math:`\\tau` against the configured world) and ``report.md``
into the study's folder (:mod:`~recoworld.apps.robustness.studydir`) once every world has
run. Each is written beside its name and all three are renamed only when all are written
(:func:`recoworld.logs.replacing`), so the folder holds the whole report or none of it; a
study stopped while writing leaves no report file, and its resume writes the report.
"""

from __future__ import annotations

import json
import math
from contextlib import ExitStack
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from recoworld.apps.robustness.study import REWARD_PER_STEP
from recoworld.logs import replacing, strict_json
from recoworld.wording import listing

FILES = ("robustness.json", "worlds.csv", "report.md")


def write(folder: str | Path, result: dict, console: Console | None = None) -> Path:
    """Write the report's files into ``folder`` (all of them or none, module docstring) and
    print the tables; returns the folder."""
    folder = Path(folder)
    with ExitStack() as files:  # the renames happen together, once every file is written
        json_file, csv_file, markdown_file = (files.enter_context(replacing(folder / name)) for name in FILES)
        json_file.write_text(json.dumps(strict_json(result), indent=1) + "\n")
        worlds_frame(result).to_csv(csv_file, index=False)
        markdown_file.write_text(markdown(result))
    console = console or wide_console()
    console.print(agents_table(result))
    console.print(pairs_table(result))
    console.print(sensitivity_table(result))
    console.print(summary_line(result))
    console.print(noise_verdict(result))
    console.print(f"report in {folder}")
    return folder


def wide_console() -> Console:
    """A console at least 120 columns wide: the tables are wide; do not truncate them."""
    return Console(width=max(Console().width, 120))


def worlds_frame(result: dict) -> pd.DataFrame:
    """One row per world (module docstring)."""
    configured = {n: r["configured"] for n, r in result["ranges"].items()}
    rows = []
    for index, world in enumerate(result["worlds"]):
        row = {"world": index, "kind": world["kind"], "parameter": world["parameter"], "tau": world["tau"],
               "swapped_pairs": world["swapped_pairs"], "seeds": " ".join(map(str, world["seeds"]))}
        row.update({n: world["values"].get(n, configured[n]) for n in configured})
        row.update({f"score_{a}": s for a, s in world["scores"].items()})
        row.update({f"rank_{a}": r for a, r in world["ranks"].items()})
        rows.append(row)
    return pd.DataFrame(rows)


def summary_line(result: dict) -> str:
    s, noise = result["stability"], result["seed_noise"]
    tau = s["tau"]
    level = round(100 * result["settings"]["confidence"])
    worlds = _drawn(result)
    over = f"{worlds} sampled worlds" if tau["n"] == worlds else (
        f"{tau['n']} of {worlds} sampled worlds ({worlds - tau['n']} scored every agent alike: no tau)")
    line = (f"Kendall tau against the configured world over {over}: {_f(tau['mean'])} "
            f"[{_f(tau['low'])}, {_f(tau['high'])}] ({level}% bootstrap), lowest {_f(s['tau_min'])}; "
            f"same ranking in {s['same_ranking_share']:.0%} of worlds, {_top(s['top_agents'])} on top in "
            f"{s['same_top_share']:.0%}")
    if noise is not None:
        tau = noise["tau"]
        line += (f"; the configured world with other users ({noise['worlds']} worlds): {_f(tau['mean'])} "
                 f"[{_f(tau['low'])}, {_f(tau['high'])}]")
    return line + "."


def _drawn(result: dict) -> int:
    """How many worlds were drawn from the ranges, those that have no tau included."""
    return result["stability"].get("worlds", result["stability"]["tau"]["n"])


def _top(names: list[str]) -> str:
    """The configured world's top agent, or all of those tied on top: ``a and b (tied)``."""
    return names[0] if len(names) == 1 else f"{listing(names)} (tied)"


def noise_verdict(result: dict) -> str:
    """Whether the sampled worlds' mean tau is within the seed noise: the ranking moves with
    the parameters no more than with other users (its interval's lower end or above), or beyond."""
    tau, noise = result["stability"]["tau"], result["seed_noise"]
    if noise is None:
        return "No seed-noise worlds (--seed-noise 0): no floor to read the sampled worlds' tau against."
    floor = noise["tau"]
    if any(v is None or math.isnan(v) for v in (tau["mean"], floor["mean"], floor["low"])):
        return "The sampled worlds' tau or the seed noise's is undefined: no verdict."
    if tau["mean"] >= floor["low"]:
        return (f"Within noise: the sampled worlds' mean tau {_f(tau['mean'])} is at or above the lower end "
                f"{_f(floor['low'])} of the seed noise's interval; the parameters move the ranking no more than "
                "serving other users does.")
    return (f"Beyond noise: the sampled worlds' mean tau {_f(tau['mean'])} is below the lower end "
            f"{_f(floor['low'])} of the seed noise's interval; the parameters move the ranking more than serving "
            "other users does.")


def agents_table(result: dict) -> Table:
    metric = result["settings"]["metric"]
    # The rank columns read every sampled world, those without a tau (every agent alike) too.
    table = Table(title=f"Ranking by {metric} across {_drawn(result)} sampled worlds")
    for column in ("agent", f"{metric} (configured)", "rank (configured)", "mean rank", "rank range", "kept rank"):
        table.add_column(column, justify="left" if column == "agent" else "right")
    for name, a in sorted(result["agents"].items(), key=lambda item: item[1]["default_rank"]):
        table.add_row(name, f"{a['default_score']:.4f}", str(a["default_rank"]), f"{a['mean_rank']:.2f}",
                      f"{a['best_rank']}-{a['worst_rank']}", f"{a['kept_rank_share']:.0%}")
    return table


def pairs_table(result: dict) -> Table:
    table = Table(title="Pairs of agents")
    for column in ("ahead", "behind", "margin (configured)", "kept in sampled worlds", "kept with other users"):
        table.add_column(column, justify="left" if column in ("ahead", "behind") else "right")
    for p in result["pairs"]:
        noise = p["kept_with_other_users"]
        table.add_row(p["ahead"], p["behind"], "tied" if p.get("tied") else f"{p['margin']:.4f}",
                      f"{p['kept_share']:.0%}",
                      "-" if noise is None else f"{noise:.0%}")
    return table


def sensitivity_table(result: dict) -> Table:
    sweep = {row["parameter"]: row for row in result["sensitivity"]["one_at_a_time"]}
    correlation = result["sensitivity"]["rank_correlation"]
    table = Table(title="Which parameters move the ranking")
    worlds = result["stability"]["tau"]["n"]
    for column in ("parameter", "range", "configured", "tau at low", "tau at high", "one-at-a-time effect",
                   f"Spearman(parameter, tau), {worlds} worlds"):
        table.add_column(column, justify="left" if column == "parameter" else "right")
    order = list(sweep) or list(correlation)
    for name in order:
        r = result["ranges"][name]
        row = sweep.get(name)
        table.add_row(name, f"{_g(r['low'])}-{_g(r['high'])} ({r['scale']})", _g(r["configured"]),
                      *(("-",) * 3 if row is None else (_f(row["tau_low"]), _f(row["tau_high"]), _f(row["effect"]))),
                      _f(correlation[name]))
    return table


def markdown(result: dict) -> str:
    """``report.md``: the settings, the ranking's stability, the agents and the sensitivity."""
    st = result["settings"]
    lines = ["# Robustness of the agents' ranking", "",
             f"Agents ranked by **{st['metric']}** in the configured world and in {_drawn(result)} worlds "
             f"drawn by {st['sampler']} (seed {st['sample_seed']}) from the plausible ranges of the parameters "
             f"the data cannot identify; {st['users']} users x {st['steps']} steps, seeds {st['seeds']}.", "",
             f"Score: {metric_meaning(st['metric'])}; higher ranks first.", "",
             summary_line(result), "", noise_verdict(result), "",
             "Kendall's tau (tau-b, ties allowed) is 1 when a world orders the agents as the configured world does "
             "and -1 when it reverses them; the interval resamples the sampled worlds. The seed-noise worlds are "
             "the configured world with other users: the parameters move the ranking only as far as the sampled "
             "worlds' tau falls below theirs (within noise: the mean tau is at or above the lower end of the "
             "seed-noise interval).", "",
             "## Agents", "", _markdown_table(agents_table(result)), "",
             "## Pairs of agents", "",
             "Each pair as the configured world orders it: the margin there, the share of sampled worlds that "
             "keep the order, and the share of seed-noise worlds (other users) that keep it (a pair the configured "
             "world ties: the share that keeps them tied).", "",
             _markdown_table(pairs_table(result)), "",
             "## Which parameters move the ranking", "",
             "One-at-a-time: each parameter alone at each end of its range (effect = 1 - the lower tau: 0 the "
             "ranking holds, 2 it reverses). Spearman: rank correlation of the parameter with tau over the "
             "sampled worlds, every parameter moving at once (coarse with few worlds).", "",
             _markdown_table(sensitivity_table(result)), "", "## Ranges", "",
             "| parameter | low | high | scale | configured | why |", "|---|---|---|---|---|---|"]
    lines += [f"| {n} | {_g(r['low'])} | {_g(r['high'])} | {r['scale']} | {_g(r['configured'])} | {r['why']} |"
              for n, r in result["ranges"].items()]
    return "\n".join(lines) + "\n"


def metric_meaning(metric: str) -> str:
    """What the score ``metric`` measures, in words, with its unit."""
    from recoworld.metrics import METRICS

    if metric == REWARD_PER_STEP:
        return "reward_per_step, the env's reward per user-step (per slate served), averaged over the rollout seeds"
    return f"{metric}, {METRICS.get(metric, 'a metric of recoworld.metrics')}, averaged over the rollout seeds"


def _markdown_table(table: Table) -> str:
    header = [str(c.header) for c in table.columns]
    cells = [[str(cell) for cell in c.cells] for c in table.columns]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    rows += ["| " + " | ".join(row) + " |" for row in zip(*cells)]
    return "\n".join(rows)


def _f(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:+.3f}"


def _g(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g}"
