"""``recoworld view``: a self-contained page of a run's users, checked in a real headless browser."""

import json
import re
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

from recoworld.apps.run.app import main as run_app
from recoworld.apps.view.app import PAGE_NAME, main as view_main
from recoworld.apps.view.data import run_catalog, viewer_payload
from recoworld.apps.view.page import render_page
from recoworld.logs import read_log

TINY = ["world=synthetic", "env.num_envs=6", "experiment.steps=20", "experiment.progress=false",
        "experiment.plots=false", "experiment.seeds=[0]", "agent=random"]


def steps_of(episode: dict, payload: dict) -> list[dict]:
    """An episode of the payload as one record per step, as the page's script rebuilds it."""
    columns, booleans, extra = episode["columns"], set(payload["booleans"]), payload["extra_columns"]

    def value(name, i):
        v = columns[name][i]
        return v if name not in booleans else [x == 1 for x in v] if isinstance(v, list) else v == 1

    return [{**{name: value(name, i) for name in columns if name not in extra},
             "extra": {name: columns[name][i] for name in extra}} for i in range(len(columns["step"]))]


def page_payload(html: str) -> dict:
    return json.loads(re.search(r'<script id="payload" type="application/json">(.*?)</script>', html, re.S)[1])


def chromium() -> str | None:
    """The system's Chromium (Debian's `chromium` package; .ci/run installs it)."""
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    run_app([*TINY, f"hydra.run.dir={out}"])
    return out


@pytest.fixture(scope="module")
def page(run_dir) -> Path:
    assert view_main([str(run_dir)]) == 0
    return run_dir / PAGE_NAME


def test_page_is_self_contained_and_holds_every_logged_step(run_dir, page):
    html = page.read_text()
    # No request leaves the page: no external source, and a policy that forbids them.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "default-src 'none'" in html
    payload = page_payload(html)
    log = read_log(run_dir)
    assert sum(len(steps_of(e, payload)) for e in payload["episodes"]) == len(log)
    catalog = run_catalog(run_dir)
    first = log.iloc[0]
    assert payload["items"][str(first["slate"][0])]["title"] == catalog.titles[first["slate"][0]]
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]


def test_item_text_is_escaped_so_a_title_cannot_end_the_script(run_dir):
    catalog = run_catalog(run_dir)
    catalog.titles = list(catalog.titles)
    evil = '</script><script>alert(1)</script><!--'
    log = read_log(run_dir)
    catalog.titles[int(log["slate"].iloc[0][0])] = evil
    html = render_page(viewer_payload(log, catalog, title="<b>run</b>"))
    assert evil not in html and "<b>run</b>" not in html
    payload = json.loads(re.search(r'type="application/json">(.*?)</script>', html, re.S)[1])
    assert evil in [item["title"] for item in payload["items"].values()] and payload["title"] == "<b>run</b>"


def test_view_of_a_directory_without_a_run_names_it(tmp_path, capsys):
    assert view_main([str(tmp_path)]) == 2
    assert (f"recoworld view: {tmp_path / '.hydra' / 'config.yaml'} does not exist: give the directory of a "
            "`recoworld run`") in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def unfinished(run_dir: Path, folder: Path, **status_fields) -> Path:
    """A copy of ``run_dir`` whose last rollout is lost (as if cut before its end), with
    ``status_fields`` set in its status.json."""
    shutil.copytree(run_dir, folder)
    status = json.loads((folder / "status.json").read_text())
    lost = status["parts"]["complete"].pop()
    (folder / lost["file"]).unlink()
    (folder / PAGE_NAME).unlink(missing_ok=True)
    status.update(status_fields)
    (folder / "status.json").write_text(json.dumps(status))
    return folder


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("two_seeds")
    run_app([*TINY, "experiment.seeds=[0,1]", f"hydra.run.dir={out}"])
    return out


def test_view_of_an_unfinished_run_says_so_first_and_on_the_page(two_seeds, run_dir, tmp_path, capsys):
    cut = unfinished(two_seeds, tmp_path / "cut", state="interrupted")
    assert view_main([str(cut)]) == 0
    note = (f"the run in {cut} was interrupted: 1 of 2 rollouts are complete, and only those are read; rerun its "
            f"command with experiment.resume=true hydra.run.dir={cut} to finish it")
    assert capsys.readouterr().err == f"recoworld view: warning: {note}\n"
    payload = page_payload((cut / PAGE_NAME).read_text())
    assert payload["note"] == note and payload["seeds"] == [0]  # a page kept beside the run says it
    assert view_main([str(run_dir)]) == 0 and "warning" not in capsys.readouterr().err
    assert page_payload((run_dir / PAGE_NAME).read_text())["note"] is None


def test_view_reads_the_runs_status_once_for_its_warning_and_its_page(two_seeds, tmp_path, capsys, monkeypatch):
    """Read twice, a run that moves on between the reads would get a warning of one state
    and a page of another."""
    from recoworld.apps.run import run_log

    cut = unfinished(two_seeds, tmp_path / "cut", state="interrupted")
    read, reads = run_log.read_status, []
    monkeypatch.setattr(run_log, "read_status", lambda path: reads.append(Path(path)) or read(path))
    assert view_main([str(cut)]) == 0
    assert reads == [cut]
    warning = capsys.readouterr().err
    assert warning == f"recoworld view: warning: {page_payload((cut / PAGE_NAME).read_text())['note']}\n"


def test_the_note_on_a_run_in_flight_tells_a_live_one_from_a_killed_one(two_seeds, tmp_path, capsys):
    import socket

    from test_h75_run_lifecycle import holding

    live = unfinished(two_seeds, tmp_path / "live", state="running", host=socket.gethostname())
    writer = holding(live)  # a live run holds its folder's lock
    try:
        status = json.loads((live / "status.json").read_text())
        (live / "status.json").write_text(json.dumps({**status, "pid": writer.pid}))
        assert view_main([str(live)]) == 0
        assert (f"the run in {live} is still running (pid {writer.pid}): 1 of 2 rollouts are complete, and only "
                "those are read; look again when it has ended") in capsys.readouterr().err
    finally:
        writer.kill()
        writer.wait()
    killed = unfinished(two_seeds, tmp_path / "killed", state="running", pid=writer.pid, host=socket.gethostname())
    assert view_main([str(killed)]) == 0
    assert (f"the run in {killed} was killed (its status.json says running, but process {writer.pid} has ended): 1 "
            "of 2 rollouts are complete, and only those are read; rerun its command with experiment.resume=true "
            f"hydra.run.dir={killed} to finish it") in capsys.readouterr().err
    failed = unfinished(two_seeds, tmp_path / "failed", state="failed", error="agent exploded", error_type="KeyError")
    assert view_main([str(failed)]) == 0
    assert f"the run in {failed} failed (KeyError: agent exploded): 1 of 2" in capsys.readouterr().err
    status = json.loads((failed / "status.json").read_text())
    (failed / status["parts"]["complete"].pop()["file"]).unlink()
    (failed / "status.json").write_text(json.dumps(status))
    (failed / PAGE_NAME).unlink()
    assert view_main([str(failed)]) == 2
    assert capsys.readouterr().err == (
        f"recoworld view: the run in {failed} failed (KeyError: agent exploded), and none of its 2 rollouts is "
        "complete: there is no log to read; fix that, then rerun its command with experiment.resume=true "
        f"hydra.run.dir={failed} to finish it\n")
    assert not (failed / PAGE_NAME).exists()


@pytest.mark.parametrize("damage, problem", [
    (lambda part: part.unlink(), "{file} is missing"),
    (lambda part: part.write_bytes(part.read_bytes()[:200]), "{file} is not whole Parquet"),
])
def test_a_rollout_listed_complete_but_not_whole_on_disk_is_refused(run_dir, tmp_path, capsys, damage, problem):
    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    (broken / PAGE_NAME).unlink(missing_ok=True)
    file = json.loads((broken / "status.json").read_text())["parts"]["complete"][0]["file"]
    damage(broken / file)
    assert view_main([str(broken)]) == 2
    assert capsys.readouterr().err == (
        f"recoworld view: {broken / 'status.json'} lists 1 rollout(s) as complete that are not whole on disk "
        f"({problem.format(file=file)}): rerun its command with experiment.resume=true hydra.run.dir={broken} to "
        "run them again (it keeps the rollouts that are whole)\n")
    assert not (broken / PAGE_NAME).exists()


def test_a_damaged_status_or_config_is_named_not_a_traceback(run_dir, tmp_path, capsys):
    status, config = tmp_path / "status", tmp_path / "config"
    for folder in (status, config):
        shutil.copytree(run_dir, folder)
        (folder / PAGE_NAME).unlink(missing_ok=True)
    (status / "status.json").write_text("{cut sho")
    assert view_main([str(status)]) == 2
    assert capsys.readouterr().err == (
        f"recoworld view: {status / 'status.json'} is damaged or was edited, so which rollouts of the run are "
        f"complete is unknown: restore it, or read the log's parts yourself with "
        f"recoworld.logs.read_log({str(status)!r})\n")
    (config / ".hydra" / "config.yaml").write_text("world: [")
    # Read where the status keeps no config (a run of an earlier release): else the status's is the run's.
    saved = json.loads((config / "status.json").read_text())
    del saved["config"]
    (config / "status.json").write_text(json.dumps(saved))
    assert view_main([str(config)]) == 2
    assert capsys.readouterr().err.startswith(f"recoworld view: {config / '.hydra' / 'config.yaml'} is damaged or "
                                              "was edited (ParserError: ")
    assert view_main([str(status / "metrics.json")]) == 2
    assert (f"recoworld view: {status / 'metrics.json'} is a file: give the directory of a `recoworld run`"
            in capsys.readouterr().err)
    assert not (status / PAGE_NAME).exists() and not (config / PAGE_NAME).exists()


def test_out_replaces_only_an_earlier_page_and_refuses_anything_else_untouched(run_dir, page, tmp_path, capsys):
    metrics = run_dir / "metrics.json"
    kept = metrics.read_bytes()
    folder = tmp_path / "folder"
    folder.mkdir()
    (tmp_path / "notes.txt").write_text("mine")
    refusals = {
        str(metrics): f"--out {metrics}: give a file name ending in .html, e.g. --out {metrics.with_suffix('.html')}",
        str(folder): f"--out {folder} is a folder: give the page's file, e.g. --out {folder / PAGE_NAME}",
        str(tmp_path / "notes.txt" / "page.html"): f"--out {tmp_path / 'notes.txt' / 'page.html'}: "
                                                   f"{tmp_path / 'notes.txt'} is a file, not a folder",
    }
    mine = tmp_path / "mine.html"
    mine.write_text("<html>my own page</html>")
    refusals[str(mine)] = (f"--out {mine} exists and is not a page of recoworld view, so it is left as it is: give "
                           "another --out, or move the file away first")
    for out, message in refusals.items():
        assert view_main([str(run_dir), "--out", out]) == 2
        assert capsys.readouterr().err.startswith(f"recoworld view: {message}")
    assert metrics.read_bytes() == kept and mine.read_text() == "<html>my own page</html>"
    assert list(folder.iterdir()) == [] and not [p for p in tmp_path.rglob("*.tmp")]
    copy = tmp_path / "copy.html"  # an earlier page is replaced, by the same page: the output is deterministic
    shutil.copy(page, copy)
    assert view_main([str(run_dir), "--out", str(copy)]) == 0
    assert f"session viewer: {copy} (" in capsys.readouterr().out
    assert copy.read_bytes() == page.read_bytes()


def test_page_holds_a_step_in_under_260_bytes(run_dir, page):
    """Column by column, booleans as 0 and 1: a record per step naming its fields took 650."""
    episodes = json.dumps(page_payload(page.read_text())["episodes"], separators=(",", ":"), ensure_ascii=False)
    assert len(episodes) / len(read_log(run_dir)) < 260  # every step is there: see the test above


def test_a_segment_of_the_run_is_viewed_with_segment(run_dir, tmp_path, capsys):
    """A run with experiment.segments (a calibrated world) has a log per segment; here one
    made by hand, from the run's own part."""
    from urllib.parse import quote

    segmented = tmp_path / "segmented"
    shutil.copytree(run_dir, segmented)
    (segmented / PAGE_NAME).unlink(missing_ok=True)
    status = json.loads((segmented / "status.json").read_text())
    part = dict(status["parts"]["complete"][0], segment="young & curious")
    part["file"] = f"segments/{quote(part['segment'], safe='')}/{part['file']}"
    (segmented / part["file"]).parent.mkdir(parents=True)
    shutil.copy(segmented / status["parts"]["complete"][0]["file"], segmented / part["file"])
    status["parts"]["complete"].append(part)
    status["config"]["experiment"]["segments"] = {"young & curious": {"age": [0, 24]}}
    (segmented / "status.json").write_text(json.dumps(status))
    assert view_main([str(segmented)]) == 0
    assert ("the run's segments (young & curious) have users of their own: view them with --segment NAME"
            in capsys.readouterr().out)
    out = tmp_path / "segment.html"
    assert view_main([str(segmented), "--segment", "young & curious", "--out", str(out)]) == 0
    payload = page_payload(out.read_text())
    assert payload["title"] == "RecoWorld run segmented, segment young & curious"
    assert sum(len(e["columns"]["step"]) for e in payload["episodes"]) == part["rows"]
    assert view_main([str(segmented), "--segment", "old"]) == 2
    assert ("recoworld view: segment 'old' is not one of the run's segments in "
            f"{segmented} (young & curious)") in capsys.readouterr().err


def test_each_step_of_the_page_holds_the_logged_values(run_dir):
    log = read_log(run_dir)
    payload = viewer_payload(log, run_catalog(run_dir), title="run")
    steps = {(e["agent"], e["seed"], e["user"], e["episode"], s["step"]): s for e in payload["episodes"]
             for s in steps_of(e, payload)}
    assert len(steps) == len(log)
    for row in log.itertuples():
        step = steps[row.agent, row.seed, row.user, row.episode, row.step]
        assert step["slate"] == list(row.slate) and step["clicked"] == list(row.clicked)
        assert step["rating"] == list(row.rating) and step["watch_fraction"] == [round(float(w), 4) for w in
                                                                                  row.watch_fraction]
        assert (step["reward"], step["satisfaction"]) == (round(float(row.reward), 4), round(float(row.satisfaction), 4))
        assert step["compliance"] == (None if row.compliance != row.compliance else round(float(row.compliance), 4))
        assert (step["session"], step["left_session"], step["instruction_in_force"]) == \
            (row.session, row.left_session, row.instruction_in_force)
        assert step["return_gap"] == ("inf" if row.return_gap == float("inf") else round(float(row.return_gap), 4))


@contextmanager
def in_browser(page_path: Path):
    """``page_path`` open in a headless Chromium, and the list that collects its script errors
    and any request it makes off the local disk (the page must load nothing)."""
    browser_path = chromium()
    if browser_path is None:
        pytest.skip("no Chromium on PATH: install Debian's chromium (apt-get install -y chromium), as .ci/run does")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        try:
            view = browser.new_page(viewport={"width": 1200, "height": 1000})
            errors = []
            view.on("pageerror", lambda error: errors.append(str(error)))
            view.on("request", lambda request: errors.append(request.url) if not request.url.startswith("file:")
                    else None)
            view.goto(page_path.as_uri())
            yield view, errors
        finally:
            browser.close()


def test_page_shows_a_users_sessions_in_a_real_browser(run_dir, page, tmp_path):
    log = read_log(run_dir)
    voiced = log[log["instruction_text"].notna()].iloc[0]  # a user who voiced an instruction
    episode = log[(log["user"] == voiced["user"]) & (log["episode"] == voiced["episode"])]
    users = log[["user", "episode"]].drop_duplicates().sort_values(["user", "episode"])
    option = users.reset_index(drop=True).index[(users["user"] == voiced["user"]).to_numpy()
                                                & (users["episode"] == voiced["episode"]).to_numpy()][0]
    catalog = run_catalog(run_dir)
    with in_browser(page) as (view, errors):
        view.select_option("#user", index=int(option))
        for _ in range(int(voiced["step"])):
            view.click("#next")
        assert view.text_content("#position") == f"step {voiced['step'] + 1} of {len(episode)}"
        titles = view.locator("#slate tbody td.title").all_text_contents()
        assert titles == [catalog.titles[i] for i in voiced["slate"]]
        assert voiced["instruction_text"] in view.text_content("#instruction")
        assert view.locator("#mindset-chart polyline.satisfaction-curve").count() == 1
        assert view.locator("#mindset-chart circle.instruction-mark").count() == \
            int(episode["instruction_text"].notna().sum())
        view.screenshot(path=str(tmp_path / "viewer.png"), full_page=True)
        assert errors == []
    assert (tmp_path / "viewer.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_page_of_an_unfinished_run_shows_its_note_and_arrow_keys_step_once(two_seeds, tmp_path):
    cut = unfinished(two_seeds, tmp_path / "cut", state="interrupted")
    assert view_main([str(cut)]) == 0
    note = page_payload((cut / PAGE_NAME).read_text())["note"]
    with in_browser(cut / PAGE_NAME) as (view, errors):
        assert view.is_visible("#note") and view.text_content("#note") == f"This page shows part of the run: {note}."
        steps = int(view.text_content("#position").split(" of ")[1])
        assert steps >= 3
        view.focus("#stepper")  # the slider moves by itself: one step, not two
        view.keyboard.press("ArrowRight")
        assert view.text_content("#position") == f"step 2 of {steps}"
        view.click("h1")
        view.keyboard.press("ArrowRight")
        assert view.text_content("#position") == f"step 3 of {steps}"
        assert errors == []


def test_ansi_render_frames_the_users_state_and_last_slate():
    import gymnasium as gym
    import numpy as np

    env = gym.make("RecoWorld/Slate-v0", render_mode="ansi", slate_size=4, num_candidates=12, max_steps=60)
    assert "ansi" in env.metadata["render_modes"] and env.render_mode == "ansi"
    catalog = env.unwrapped.catalog
    obs, info = env.reset(seed=5)
    frame = env.render()
    assert frame.startswith(f"RecoWorld/Slate-v0 · user seed {info['episode_seed']} · session 1 · step 0")
    assert "no slate shown yet" in frame and catalog.titles[int(obs["candidate_ids"][0])] in frame
    voiced = None
    for step in range(1, 61):
        obs, reward, terminated, truncated, info = env.step(np.arange(4))
        frame = env.render()
        assert f"step {step} " in frame and f"satisfaction {info['satisfaction']:.2f}" in frame
        assert all(catalog.titles[int(item)][:28] in frame for item in info["slate"])
        assert frame.count("clicked, watched") == int(info["clicked"].sum())
        voiced = voiced or info["instruction_text"]
        if info["instruction_text"]:
            assert f'the user said: "{info["instruction_text"]}"' in frame
        if terminated or truncated:
            break
    assert voiced, "no instruction in 60 steps: pick another seed"
    assert ("the user churned" in frame) == terminated


@pytest.mark.filterwarnings("ignore:.*not in the possible render_modes")  # Gymnasium's note before the error
def test_render_mode_is_checked_and_none_renders_nothing():
    import gymnasium as gym

    with pytest.raises(ValueError, match=r"render_mode='rgb_array'; SlateEnv renders \['ansi'\]"):
        gym.make("RecoWorld/Slate-v0", render_mode="rgb_array")
    env = gym.make("RecoWorld/Slate-v0")
    env.reset(seed=0)
    assert env.render() is None


def test_columns_beyond_the_ones_the_page_places_are_shown_per_item_or_per_step(run_dir):
    log = read_log(run_dir).head(3).copy()
    k = len(log["slate"].iat[0])
    log["reasons"] = [[f"<i>reason {i}.{j}</i>" for j in range(k)] for i in range(3)]
    log["mindset"] = ["bored", "curious", None]
    payload = viewer_payload(log, run_catalog(run_dir), title="run")
    steps = [s for e in payload["episodes"] for s in steps_of(e, payload)]
    assert payload["extra_columns"] == ["reasons", "mindset"]
    assert sorted(s["extra"]["mindset"] or "" for s in steps) == ["", "bored", "curious"]
    assert all(len(s["extra"]["reasons"]) == k for s in steps)
