"""``kill`` (SIGTERM) stops every ``recoworld`` command as Ctrl-C does: the command's own
"stopped" message and clean-up run, and the CLI exits 130 saying it was interrupted, where a
default SIGTERM ended the process at once, with no word and its temporaries left."""

import signal
import subprocess
import sys
import textwrap

import pytest

from recoworld.apps import cli


def test_every_command_runs_with_sigterm_taken_as_ctrl_c_and_the_handler_is_restored(monkeypatch):
    during = []
    monkeypatch.setitem(cli.COMMANDS, "fidelity", ("the report", lambda argv: during.append(
        signal.getsignal(signal.SIGTERM)) or 0))
    before = signal.getsignal(signal.SIGTERM)
    assert cli.main(["fidelity"]) == 0
    assert during[0] not in (signal.SIG_DFL, signal.SIG_IGN, None)  # a handler that raises KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        during[0](signal.SIGTERM, None)
    assert signal.getsignal(signal.SIGTERM) == before


def test_sigterm_to_a_calibration_leaves_its_message_and_status_130(tmp_path):
    """A real process: the calibration's Ctrl-C path says nothing was written."""
    script = textwrap.dedent("""
        import os, signal, sys
        import recoworld.apps.calibrate.fit as fit
        from recoworld.apps import cli

        def calibrate(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGTERM)
            signal.pause()

        fit.calibrate = calibrate
        sys.exit(cli.main(["calibrate", "--out", sys.argv[1], "--quiet"]))
    """)
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "world")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 130, done.stderr
    assert done.stderr == ("recoworld calibrate: stopped before the fit ended; nothing was written (a world already "
                           "at --out is as it was): run it again\nrecoworld calibrate: interrupted\n")
    assert not (tmp_path / "world").exists()
