"""The ``recoworld`` command dispatches to its subcommands and stays light to import."""

import subprocess
import sys

from recoworld.apps import cli


def test_help_lists_the_subcommands(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: recoworld <command>" in out
    for name in ("run", "data"):
        assert f"\n  {name} " in out


def test_no_command_prints_usage_and_fails(capsys):
    assert cli.main([]) == 2
    assert "usage: recoworld" in capsys.readouterr().out


def test_unknown_command_is_named_with_the_known_ones(capsys):
    assert cli.main(["rnu"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'rnu'" in err and "run, data" in err


def test_data_is_passed_to_the_data_tool(capsys):
    # An unknown data set is refused before any download: this exercises the dispatch only.
    assert cli.main(["data", "fetch", "movielens-1b", "--quiet"]) == 1
    assert "unknown data set 'movielens-1b'" in capsys.readouterr().err


def test_importing_the_cli_loads_no_experiment_machinery():
    code = ("import sys; from recoworld.apps.cli import main; status = main(['--help']); "
            "print(sorted(m for m in ('hydra', 'matplotlib', 'scipy', 'recoworld.apps.run.runner') "
            "if m in sys.modules)); sys.exit(status)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("[]")


def test_a_calibration_stopped_by_ctrl_c_says_that_nothing_was_written(capsys, monkeypatch):
    def interrupted(argv):
        raise KeyboardInterrupt

    monkeypatch.setattr("recoworld.apps.calibrate.fit.main", interrupted)
    assert cli.main(["calibrate", "--data", "log.csv", "--out", "world"]) == 130
    assert capsys.readouterr().err == (
        "recoworld calibrate: stopped before the fit ended; nothing was written (a world already at --out is as it "
        "was): run it again\nrecoworld calibrate: interrupted\n")
