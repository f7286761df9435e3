"""``recoworld fidelity``: how well the calibrated statistical user reproduces held-out behaviour.

The held-out interactions are each user's latest 20% of ratings, which the calibration
never saw (:mod:`recoworld.calibration.split`). For every user the *calibrated user* is
the fitted user simulated by :class:`~recoworld.simulators.statistical.StatisticalUsers`
at the start of a session (no satiation, no recent clicks, the session's novelty draw):
its choice probability of an item is the simulator's ``click_probabilities``, and its
rating the simulator's rating response. The *MF baseline* is a plain logistic matrix
factorisation (:func:`~recoworld.calibration.choice.fit_choice` with all ratings weighed
alike and no Platt scaling) for choices, and, where the log has ratings, a biased MF
(:func:`~recoworld.calibration.ratings.fit_rating_mf`) for ratings, fitted on the same
training split.

Sections of the report:

* **Discrimination**: per-user ROC AUC of the choice probability between the user's
  held-out items and the items the user never rated, averaged over users.
  Also per population segment (:data:`SEGMENTS`), with F1 at 1:1.
* **The 1:m protocol** (m = 1, 3, 9): each user's held-out items mixed with m times as
  many never-rated items (all of them, for a user who left fewer unrated: the report says
  how many a mix holds per held-out item where that falls short of m); the simulated user
  "would watch" an item when its choice probability exceeds 1/2; accuracy, precision,
  recall and F1 pooled over all users (and, for reference, the expected values when each
  answer is a Bernoulli draw).
* **Ratings**: RMSE of the expected rating on held-out ratings, and the distribution of
  simulated ratings (one draw per held-out rating) against the real one. A log without
  ratings (``recoworld calibrate --data`` without a ``rating`` column) has none to score:
  the section says so, the rating columns and the session statistic built on the
  mean rating are left out, and the calibrated world's parameters name the rating
  response as the simulator's defaults, which the log did not inform.
* **Aggregate realism**: each user consumes, by the model's choice probabilities, as many
  items (among those they had not rated in training) as they really did in the held-out
  period; the long-tail curve and the genre shares of this simulated consumption are
  compared with the real held-out consumption.
* **Policy ranking**: a lineup of agents ranked by their click-through in the calibrated
  simulator and in a replay of the held-out ratings, and Kendall's tau between the two
  rankings (:mod:`recoworld.apps.fidelity.ranking`; ``--agents`` names the lineup). A user
  who rated all but a few items (fewer than the 19 never-rated candidates a request shows)
  sits the replay out, and the section counts them; where every user does, the section is
  named with the reason in its place.
* **LLM and hybrid users** (``--users statistical,hybrid,llm``): AUC where the user has a
  choice probability and the 1:m protocol on ``--llm-users`` sampled users
  (:mod:`recoworld.apps.fidelity.llm`, which also says how to run it at scale on an
  OpenAI-compatible server). When more than ``--max-fallback-share`` (default 0.05) of the
  LLM users' answers fell back to the statistical twin (a server down, a model whose replies
  do not parse), the command stops with the first failure and its fix, exit status 1, and
  writes no report: its LLM row would be the twin's.
* **Splits and baselines** (``--splits``, all three by default): each user's latest
  ratings, a global time cut and held-out users, each against popularity, recent
  popularity, MF and EASE, with bootstrap intervals and calibration curves, F1 at 1/2
  and at a threshold per mix chosen on the validation fold
  (:mod:`recoworld.apps.fidelity.splits`), and the targets of :data:`SPLIT_TARGETS`. A split
  the data cannot give (no user rated both before and after the time cut, too few users to
  fold any in) is named with the reason in its place, and so is a session section the data
  cannot give; the rest of the report is written. A split of one user has no intervals
  (``[n/a]``), and neither has a metric undefined on more than 5% of the resamples, such
  as a reliability bin of one or two users (``[n/a: k of N resamples defined]``; each
  interval in ``metrics.json`` says on how many draws it rests).
* **Session dynamics** (on by default; ``--no-sessions`` skips it): session length, gaps,
  the next gap against the last session and genre repetition of the calibrated users
  against users the fit never saw, with distances, bootstrap intervals and the noise
  between two halves of the held-out users (:mod:`recoworld.apps.fidelity.sessions`; n/a, and
  no verdict, with fewer than two users in each half); genre
  repetition is left out for a log whose items have no genres, as the genre shares of the
  aggregate-realism section are.
* **Social influence** (``--social``): Gini of consumption over a long horizon with word
  of mouth off and on (:mod:`recoworld.apps.calibrate.concentration`).

The numbers come from :mod:`recoworld.apps.fidelity.evaluation`, the page (Markdown,
``metrics.json`` and plots) from :mod:`recoworld.apps.fidelity.page`.

Usage::

    recoworld fidelity                       # report in ./fidelity-report
    recoworld fidelity --out DIR --social    # elsewhere, with the social-influence section
    recoworld fidelity --users statistical,hybrid,llm --llm-users 8   # + LLM users (minutes)
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import typing
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import pandas as pd

from recoworld.apps.calibrate.fit import ensure_world
from recoworld.apps.calibrate.folds import CalibrationDataError
from recoworld.apps.calibrate.progress import Stages, torch_threads
from recoworld.apps.fidelity.evaluation import (RATIOS, evaluate, held_out_split, simulated_consumption,
                                               simulated_probabilities, source_data)
from recoworld.apps.fidelity.llm import check_sample_size, check_user_kinds
from recoworld.apps.fidelity.page import headline, write_report
from recoworld.apps.fidelity.ranking import AGENTS, RankingConfig, check_agents, policy_ranking
from recoworld.apps.fidelity.sessions import session_dynamics
from recoworld.apps.fidelity.sessions import targets as session_targets
from recoworld.apps.fidelity.splits import SPLIT_KINDS, evaluate_split, split_targets
from recoworld.data.cache import cache_dir
from recoworld.llm.errors import LOWER_MAX_TOKENS, RAISE_MAX_TOKENS, BudgetExceeded
from recoworld.llm.llama_cpp_backend import SHORTEN_PROMPT
from recoworld.logs import check_new_folder
from recoworld.simulators.calibrated import UnreadableWorld, is_world
from recoworld.simulators.llm_config import LLMUserConfig
from recoworld.simulators.llm_shared import FallbackShareExceeded

#: The targets of the splits section: AUC and F1 at 1:1 (at the validation-chosen
#: threshold) on the latest-ratings split, and the margin over both popularity baselines
#: on the time cut.
SPLIT_TARGETS = {"auc": 0.92, "f1": 0.80, "margin": 0.05}

__all__ = ["evaluate", "headline", "held_out_split", "main", "simulated_consumption", "simulated_probabilities",
           "write_report"]


def _settings(pairs: Sequence[str]) -> dict:
    """``["backend=openai", "max_concurrency=64"]`` as a mapping of checked
    :class:`~recoworld.llm.LLMConfig` fields, each value read as its field's type (a model
    or a key made of digits stays text); a malformed pair, an unknown field or a value the
    config refuses is a ``ValueError`` naming it."""
    from recoworld.llm import LLMConfig
    from recoworld.llm.factory import BACKENDS

    kinds = typing.get_type_hints(LLMConfig)
    out: dict = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--llm {pair!r}; give KEY=VALUE, e.g. --llm backend=openai")
        if key == "max_fallback_share":
            raise ValueError(f"--llm {pair!r}: max_fallback_share is the LLM users' setting, not their model's; "
                             f"give --max-fallback-share {value}")
        if key not in kinds:
            raise ValueError(f"--llm {pair!r}: LLMConfig has no field {key!r}; valid: {', '.join(sorted(kinds))}")
        if key in out:
            raise ValueError(f"--llm sets {key} twice ({key}={out[key]!r} and {pair!r}); give it once")
        kind = kinds[key]
        numbers = [t for t in (bool, int, float) if t is kind or t in typing.get_args(kind)]
        if value.lower() in ("none", "null") and type(None) in typing.get_args(kind):
            value = None
        elif numbers == [bool]:
            value = {"true": True, "false": False}.get(value.lower(), value)
        elif numbers:
            for number in numbers:
                try:
                    value = number(value)
                    break
                except ValueError:
                    pass
        out[key] = value
    if out.get("backend", BACKENDS[0]) not in BACKENDS:
        raise ValueError(f"--llm backend={out['backend']}; choose among {', '.join(BACKENDS)}")
    try:
        LLMConfig(**out)  # refuses a value out of its field's range, naming it
    except (TypeError, ValueError) as error:
        raise ValueError(f"--llm: {error}") from None
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recoworld fidelity", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("fidelity-report"), help="report folder")
    parser.add_argument("--world", type=Path, default=None, help="calibrated-world artifact written by `recoworld "
                        "calibrate --out DIR` (default: the cache's, calibrated first if missing)")
    parser.add_argument("--social", action="store_true", help="add the social-influence concentration section")
    parser.add_argument("--agents", default=",".join(AGENTS), help="agents (conf/agent/ names) of the policy "
                        "ranking, comma-separated; empty: no ranking (default: %(default)s)")
    parser.add_argument("--users", default="statistical", help="user kinds of the LLM section, comma-separated "
                        "among statistical, hybrid, llm (default: statistical only: no LLM section)")
    parser.add_argument("--llm-users", type=int, default=8, help="users sampled for the LLM section (default 8: "
                        "each user costs LLM calls, slow for the embedded model on a CPU)")
    parser.add_argument("--llm", action="append", default=[], metavar="KEY=VALUE",
                        help="a recoworld.llm.LLMConfig field of the LLM users' model, e.g. --llm backend=openai "
                        "--llm base_url=http://localhost:8000/v1 --llm model=NAME (default: the embedded model)")
    parser.add_argument("--max-fallback-share", type=float, default=None, metavar="SHARE",
                        help="the largest share of the LLM users' answers that may fall back to their statistical "
                        f"twin before the command stops (default {LLMUserConfig.max_fallback_share}; 1.0: any)")
    parser.add_argument("--splits", default=",".join(SPLIT_KINDS), help="splits of the splits-and-baselines "
                        "section, comma-separated among latest, time, users; empty: none (default: %(default)s)")
    parser.add_argument("--no-sessions", action="store_true", help="skip the session-dynamics section (it fits "
                        "the dynamics again without half of the users and simulates the others)")
    parser.add_argument("--data", type=Path, default=None, help="where the log the world was calibrated on "
                        "(recoworld calibrate --data) is now, if it moved; checked against the world's fingerprint")
    parser.add_argument("--items", type=Path, default=None, help="where that log's item table is now")
    parser.add_argument("--user-table", type=Path, default=None, help="where that log's user table is now")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``recoworld fidelity [--out DIR] [--world DIR [--data PATH [--items PATH] [--user-table PATH]]] [--social]
    [--no-sessions] [--agents A,B] [--users KINDS] [--llm-users N] [--llm KEY=VALUE ...] [--max-fallback-share SHARE]
    [--quiet]``; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    start = time.perf_counter()
    # Every flag is checked before the minutes of work, and the world and its data are read.
    try:
        check_new_folder(args.out)
        if args.seed < 0:  # NumPy's generators refuse it, minutes into the work
            raise ValueError(f"--seed {args.seed}; give an integer >= 0")
        agents = [a for a in args.agents.split(",") if a]
        if agents:
            check_agents(agents)
        kinds = [k for k in args.users.split(",") if k]
        with_users = kinds != ["statistical"] and bool(kinds)
        if with_users:
            check_user_kinds(kinds)
        if args.llm and not {"hybrid", "llm"} & set(kinds):
            raise ValueError(f"--llm {args.llm[0]!r} sets the model of the LLM and hybrid users, but --users "
                             f"{args.users!r} has none; add them, e.g. --users statistical,hybrid,llm")
        llm_settings = _settings(args.llm)
        _check_fallback_share(args.max_fallback_share, kinds, args.users)
        splits = [s for s in args.splits.split(",") if s]
        unknown = sorted(set(splits) - set(SPLIT_KINDS))
        if unknown:
            raise ValueError(f"--splits {unknown}; choose among {', '.join(SPLIT_KINDS)}")
        twice = sorted({kind for kind in splits if splits.count(kind) > 1})
        if twice:
            raise ValueError(f"--splits {args.splits} names {', '.join(twice)} more than once; name each split once")
        if args.world is not None and not is_world(args.world):
            raise ValueError(f"--world {args.world} holds no calibrated world (no world.json there); give the folder "
                             "that `recoworld calibrate --out DIR` wrote, or leave --world out for the cache's world")
        if (args.items is not None or args.user_table is not None) and args.data is None:
            raise ValueError("--items and --user-table say where the tables of the world's log are now; give --data "
                             "PATH too")
        world = _world(args.world, not args.quiet)
        source = _source(world, args.world, args.data, args.items, args.user_table)
        data, split = held_out_split(world, source, args.world)
        if with_users:
            check_sample_size(args.llm_users, split)
    except ValueError as error:
        parser.error(str(error))
    stages = Stages(5 + len(splits) + bool(agents) + with_users + args.social + (not args.no_sessions),
                    not args.quiet, "fidelity")
    try:
        with torch_threads(1):
            results = _sections(args, world, source, data, split, stages, splits, agents, kinds if with_users else [],
                                llm_settings)
        path = write_report(results, args.out, world)
    except KeyboardInterrupt:
        print(f"recoworld fidelity: stopped before the report was complete; nothing was written to {args.out}",
              file=sys.stderr)
        raise
    except (FallbackShareExceeded, BudgetExceeded) as error:
        # The LLM users' answers were mostly their twin's: no report may show them as the LLM's.
        # Or their model's budget (--llm max_calls=...) did its job, as in recoworld run. The
        # report is written whole at the end, so no part of one is left to mislead.
        fix = _fallback_message(error) if isinstance(error, FallbackShareExceeded) else _budget_message(error)
        print(f"recoworld fidelity: stopped before the report was complete, nothing was written to {args.out}: "
              f"{fix}", file=sys.stderr)
        return 1
    print("\n".join(headline(results)))
    print(f"report: {path} ({time.perf_counter() - start:.0f}s)")
    return 0


def _check_fallback_share(share: float | None, kinds: list[str], users: str) -> None:
    """Refuse a ``--max-fallback-share`` outside [0, 1], or one given without LLM users."""
    if share is None:
        return
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"--max-fallback-share {share}; give a share in [0, 1] (1.0 accepts every fallback)")
    if "llm" not in kinds:
        raise ValueError(f"--max-fallback-share {share} bounds the LLM users' fallbacks, but --users {users!r} has "
                         "none; add them, e.g. --users statistical,hybrid,llm")


#: A key of ``recoworld run``'s ``llm`` node in an LLM failure's fix (``llm.base_url``,
#: ``llm.timeout_s=60``, ``llm.*``), not one inside a URL or a host name.
_RUN_LLM_KEY = re.compile(r"(?<![\w./:-])llm\.(\*|\w+)(=?)")
#: The fixes in ``recoworld run``'s simulator and agent keys, or in its requests' limit, which
#: this command has no flag for, and what its user does instead. Its LLM users' reply limit is their default
#: (:attr:`~recoworld.simulators.llm_config.LLMUserConfig.max_tokens`: room for the longest
#: reply their schema allows), and each list starts them afresh: nothing remembered enters
#: the prompt.
_RUN_ONLY_FIXES = {
    RAISE_MAX_TOKENS: "the LLM users' limit fits the longest reply their schema allows, so the model wrote past "
                      "it: use a stronger model (--llm model=NAME) or constrained decoding (--llm "
                      "structured_mode=json_schema, with the openai and llama_cpp backends)",
    SHORTEN_PROMPT: "use a model with a longer context window (--llm model=NAME): the prompt holds one user's "
                    "persona and one list, with nothing remembered",
    LOWER_MAX_TOKENS: "generate faster, with a smaller model (--llm model=NAME) or on a GPU (llama_cpp: --llm "
                      "n_gpu_layers=-1; transformers takes one when present): the LLM users' limit fits the "
                      "longest reply their schema allows",
}


def _fallback_message(error: FallbackShareExceeded) -> str:
    """``error``'s message with this command's flags in its fix: ``--llm KEY=VALUE`` for
    the chat model's settings (the same fields as ``recoworld run``'s ``llm.KEY``), what to
    do instead of a ``recoworld run`` key that this command has no flag for
    (:data:`_RUN_ONLY_FIXES`), and ``--max-fallback-share`` to accept fallbacks."""
    def flag(key: re.Match) -> str:
        name, given = key.groups()
        return "--llm KEY=VALUE" if name == "*" else f"--llm {name}=" + ("" if given else "...")

    hint = error.failures[0].hint
    for run_fix, own in _RUN_ONLY_FIXES.items():
        hint = hint.replace(run_fix, own)
    return error.explained(setting="--max-fallback-share",
                           accept="raise --max-fallback-share (1.0 accepts every fallback; the report's LLM use "
                                  "line shows the share)",
                           hint=_RUN_LLM_KEY.sub(flag, hint))


def _budget_message(error: BudgetExceeded) -> str:
    """``error``'s message with this command's flag for its limit (``--llm max_calls=...``):
    the LLM users' model is the only one here with a budget, and their ``max_tokens`` has no
    flag (:data:`_RUN_ONLY_FIXES`)."""
    if error.limit is None:
        return str(error)
    return f"{error.reached}; raise --llm {error.limit}=... to continue"


def _world(path: Path | None, progress: bool):
    """The world at ``path`` (the cache's, calibrated first if missing); one this RecoWorld
    cannot read is a ``ValueError`` that says how to fit it again."""
    try:
        return ensure_world(path, progress=progress)
    except UnreadableWorld:
        raise  # its message gives the advice for the data the world was fitted on (a log's, say)
    except ValueError as error:
        where = f" --out {path}" if path is not None else ""
        raise ValueError(f"{error} (recoworld calibrate{where} --force)") from None


def _source(world, path: Path | None, data: Path | None = None, items: Path | None = None,
            users: Path | None = None):
    """The data ``world`` was calibrated on, read from where it was or, for a log that moved,
    from ``data`` (with ``items`` and ``users``, its tables; :func:`held_out_split` checks
    it against the world's fingerprint); gone or changed is a ``ValueError`` with the fix."""
    try:
        return source_data(world, data, items, users)
    except (FileNotFoundError, ValueError) as error:
        where = f" --out {path}" if path is not None else ""
        raise ValueError(f"the world's data cannot be read again ({error}); the report scores the world on the "
                         f"ratings it held out, so say where the log is now (--data PATH, with --items and "
                         f"--user-table if it had them), put the file back where it was, or fit the world again on "
                         f"it (recoworld calibrate --data PATH{where} --force)") from None


def _sections(args, world, source, data, split, stages, splits: list[str], agents: list[str], kinds: list[str],
              llm_settings: dict) -> dict:
    """The report's numbers, section by section (module docstring)."""
    results = evaluate(world, data=source, seed=args.seed, stages=stages)
    for kind in splits:
        with stages.stage(f"split {kind}: the calibrated user and the baselines"):
            scored = _unless_refused(partial(evaluate_split, world, source, kind, seed=args.seed), results,
                                     f"split {kind}", args.quiet)
            if scored is not None:
                results.setdefault("splits", {})[kind] = scored
    if results.get("splits"):
        results["split_targets"] = split_targets(results["splits"], **SPLIT_TARGETS)
    if not args.no_sessions:
        with stages.stage("session dynamics against held-out users"):
            results["sessions"] = _unless_refused(partial(session_dynamics, world, source, seed=args.seed), results,
                                                  "sessions", args.quiet)
            if results["sessions"] is not None:
                results["session_targets"] = session_targets(results["sessions"])
    if agents:
        with stages.stage("ranking agents in the simulator and on held-out logs"):
            results["policy_ranking"] = _unless_refused(
                partial(policy_ranking, world, split, RankingConfig(agents=agents, seed=args.seed)), results,
                "policy ranking", args.quiet)
    if kinds:
        from recoworld.apps.fidelity.llm import evaluate_users

        # The calls are cached outside the report folder (written whole at the end), so a
        # re-run, into any folder, replays them.
        llm = {"cache_dir": str(cache_dir() / "llm-cache"), **llm_settings}
        with stages.stage(f"LLM and hybrid users ({args.llm_users} users)"):
            share = LLMUserConfig.max_fallback_share if args.max_fallback_share is None else args.max_fallback_share
            results["user_kinds"] = evaluate_users(world, data, split, kinds, args.llm_users, llm, RATIOS, args.seed,
                                                   share)
    if args.social:
        from recoworld.apps.calibrate.concentration import concentration_experiment, describe

        with stages.stage("social influence over a long horizon"):
            series = pd.concat([
                concentration_experiment(world.catalog, world.config, world.population(), policy=policy,
                                         seed=args.seed).assign(policy=policy)
                for policy in ("random", "popular")])
            results["social"] = describe(series)
    return results


def _unless_refused(score, results: dict, section: str, quiet: bool):
    """``score()``, or ``None`` where the data cannot give the section (a
    :class:`~recoworld.apps.calibrate.folds.CalibrationDataError`): the reason goes into
    ``results["not_scored"][section]``, which the page prints in its place, and to stderr."""
    try:
        return score()
    except CalibrationDataError as error:
        results.setdefault("not_scored", {})[section] = str(error)
        if not quiet:
            print(f"recoworld fidelity: {section} not scored: {error}", file=sys.stderr)
        return None


if __name__ == "__main__":
    sys.exit(main())
