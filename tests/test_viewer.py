"""``recoworld view``: a self-contained page of a run's users, checked in a real headless browser."""

import json
import re
import shutil
from pathlib import Path

import pytest

from recoworld.apps.run.app import main as run_app
from recoworld.apps.view.app import PAGE_NAME, main as view_main
from recoworld.apps.view.data import run_catalog, viewer_payload
from recoworld.apps.view.page import render_page
from recoworld.logs import read_log

TINY = ["world=synthetic", "env.num_envs=6", "experiment.steps=20", "experiment.progress=false",
        "experiment.plots=false", "experiment.seeds=[0]", "agent=random"]


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
    payload = json.loads(re.search(r'<script id="payload" type="application/json">(.*?)</script>', html, re.S)[1])
    log = read_log(run_dir)
    assert sum(len(e["steps"]) for e in payload["episodes"]) == len(log)
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


def test_view_of_an_unfinished_run_says_it_shows_the_complete_parts_only(run_dir, tmp_path, capsys):
    cut = tmp_path / "cut"
    run_app([*TINY, "experiment.seeds=[0,1]", f"hydra.run.dir={cut}"])
    status = json.loads((cut / "status.json").read_text())
    lost = status["parts"]["complete"].pop()  # as if killed before its last part ended
    (cut / lost["file"]).unlink()
    status["state"] = "interrupted"
    (cut / "status.json").write_text(json.dumps(status))
    assert view_main([str(cut)]) == 0
    planned, done = status["parts"]["planned"], len(status["parts"]["complete"])
    assert (f"recoworld view: warning: the run in {cut} is interrupted: {done} of {planned} parts complete, and only "
            "those are read; rerun its command with experiment.resume=true to finish it") in capsys.readouterr().err
    assert view_main([str(run_dir)]) == 0 and "warning" not in capsys.readouterr().err


def test_each_step_of_the_page_holds_the_logged_values(run_dir):
    log = read_log(run_dir)
    payload = viewer_payload(log, run_catalog(run_dir), title="run")
    steps = {(e["agent"], e["seed"], e["user"], e["episode"], s["step"]): s for e in payload["episodes"]
             for s in e["steps"]}
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


def test_page_shows_a_users_sessions_in_a_real_browser(run_dir, page, tmp_path):
    browser_path = chromium()
    if browser_path is None:
        pytest.skip("no Chromium on PATH: install Debian's chromium (apt-get install -y chromium), as .ci/run does")
    from playwright.sync_api import sync_playwright

    log = read_log(run_dir)
    voiced = log[log["instruction_text"].notna()].iloc[0]  # a user who voiced an instruction
    episode = log[(log["user"] == voiced["user"]) & (log["episode"] == voiced["episode"])]
    users = log[["user", "episode"]].drop_duplicates().sort_values(["user", "episode"])
    option = users.reset_index(drop=True).index[(users["user"] == voiced["user"]).to_numpy()
                                                & (users["episode"] == voiced["episode"]).to_numpy()][0]
    catalog = run_catalog(run_dir)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        try:
            view = browser.new_page(viewport={"width": 1200, "height": 1000})
            errors = []
            view.on("pageerror", lambda error: errors.append(str(error)))
            view.on("request", lambda request: errors.append(request.url) if not request.url.startswith("file:")
                    else None)
            view.goto(page.as_uri())
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
        finally:
            browser.close()
    assert (tmp_path / "viewer.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


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
    steps = [s for e in payload["episodes"] for s in e["steps"]]
    assert payload["extra_columns"] == ["reasons", "mindset"]
    assert sorted(s["extra"]["mindset"] or "" for s in steps) == ["", "bored", "curious"]
    assert all(len(s["extra"]["reasons"]) == k for s in steps)
