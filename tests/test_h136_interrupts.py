"""``kill_stops_like_ctrl_c`` off the main thread (a notebook's background thread, a service
calling ``cli.main``) sets no handler, and leaves the errors of what it wraps unchained."""

from __future__ import annotations

import signal
import threading

from recoworld.apps import cli
from recoworld.apps.interrupts import kill_stops_like_ctrl_c


def _on_a_thread(work):
    caught = []

    def target():
        try:
            work()
        except BaseException as error:  # noqa: BLE001 - handed to the test
            caught.append(error)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    return caught


def test_an_error_inside_the_block_on_a_thread_is_not_chained_to_the_signal_refusal():
    handler = signal.getsignal(signal.SIGTERM)

    def work():
        with kill_stops_like_ctrl_c():
            assert signal.getsignal(signal.SIGTERM) == handler  # none can be set here
            raise ZeroDivisionError("division by zero")

    (error,) = _on_a_thread(work)
    assert isinstance(error, ZeroDivisionError)
    assert error.__context__ is None and error.__cause__ is None
    assert signal.getsignal(signal.SIGTERM) == handler


def test_a_command_that_raises_on_a_thread_gives_its_own_error_alone(monkeypatch):
    monkeypatch.setitem(cli.COMMANDS, "fidelity", ("the report", lambda argv: 1 / 0))
    (error,) = _on_a_thread(lambda: cli.main(["fidelity"]))
    assert isinstance(error, ZeroDivisionError) and error.__context__ is None
