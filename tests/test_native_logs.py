"""MindSpore's own log lines go to run.log; the console keeps ddag's lines and real errors."""

import subprocess
import sys
import textwrap

import pytest

from tests.test_run_cli import ROOT, run_cli

ROUTED = textwrap.dedent(
    """
    import logging, os, sys, time
    sys.path.insert(0, {root!r})
    from ddag.utils.native_logs import NativeLogRouter
    router = NativeLogRouter().start()
    os.write(2, b"[WARNING] ME(1,2,python):t [a.cc:1] f] before attaching\\n")
    os.write(2, b"plain text of another library\\n")
    os.write(2, b"[ERROR] ME(1,2,python):t [a.cc:2] f] a real error\\n")
    sys.stderr.write("a Python warning\\n")
    time.sleep(0.3)
    if sys.argv[1] != "-":
        handler = logging.FileHandler(sys.argv[1])
        handler.setFormatter(logging.Formatter("%(name)s|%(levelname)s|%(message)s"))
        router.attach([handler])
    os.write(2, b"[INFO] PRE_ACT(1,2,python):t [a.cc:3] f] after attaching\\n")
    print("stdout is left alone", flush=True)
    raise SystemExit(3)
    """
)


def _routed(log_file: str):
    code = ROUTED.format(root=str(ROOT))
    return subprocess.run(
        [sys.executable, "-c", code, log_file], capture_output=True, text=True, timeout=60
    )


def test_mindspore_lines_go_to_the_log_file_and_errors_stay_on_the_console(tmp_path):
    log_file = tmp_path / "run.log"
    result = _routed(str(log_file))
    assert result.returncode == 3 and result.stdout == "stdout is left alone\n"
    assert result.stderr.splitlines() == [
        "plain text of another library",
        "[ERROR] ME(1,2,python):t [a.cc:2] f] a real error",
        "a Python warning",
    ]
    assert log_file.read_text().splitlines() == [
        "mindspore|WARNING|[WARNING] ME(1,2,python):t [a.cc:1] f] before attaching",
        "mindspore|ERROR|[ERROR] ME(1,2,python):t [a.cc:2] f] a real error",
        "mindspore|INFO|[INFO] PRE_ACT(1,2,python):t [a.cc:3] f] after attaching",
    ]


def test_lines_never_attached_reach_the_console_at_exit():
    result = _routed("-")
    lines = result.stderr.splitlines()
    assert "[WARNING] ME(1,2,python):t [a.cc:1] f] before attaching" in lines
    assert "[INFO] PRE_ACT(1,2,python):t [a.cc:3] f] after attaching" in lines
    assert lines.count("[ERROR] ME(1,2,python):t [a.cc:2] f] a real error") == 1


@pytest.mark.slow
def test_compiler_warnings_of_a_run_are_in_run_log_not_on_the_console(tmp_path):
    result = run_cli("+debug=fast", "runtime.log_level=warning", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "| v2t | FC_att |" in output  # ddag's own lines are still on the console
    assert "expander_fallback" not in output and "[WARNING]" not in output
    log = (tmp_path / "run.log").read_text()
    assert "[mindspore][WARNING] - [WARNING]" in log and "expander_fallback" in log


DYING = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {root!r})
    from ddag.utils.native_logs import NativeLogRouter
    NativeLogRouter().start()
    os.write(2, b"native last words\\n")
    sys.stderr.write("python last words\\n")
    sys.stderr.flush()
    {death}
    """
)


@pytest.mark.parametrize(
    "death", ["os._exit(3)", "os.abort()", "os.kill(os.getpid(), signal.SIGKILL)"]
)
def test_the_last_words_of_a_process_that_dies_at_once_reach_the_console(death):
    code = DYING.format(root=str(ROOT), death=death)
    for _ in range(5):  # a thread in the dying process lost them in 18-20 of 20 runs
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
        assert result.returncode != 0
        # (faulthandler writes an abort's report straight to the console, before or after them)
        assert b"native last words\npython last words\n" in result.stderr, result.stderr


def test_without_a_process_for_the_drain_lines_stay_on_the_console():
    code = textwrap.dedent(
        f"""
        import os, subprocess, sys
        sys.path.insert(0, {str(ROOT)!r})
        def refuse(*args, **kwargs):
            raise OSError("no more processes")
        subprocess.Popen = refuse
        from ddag.utils.native_logs import NativeLogRouter
        router = NativeLogRouter().start()
        assert not router.active
        os.write(2, b"[WARNING] ME(1,2,python):t [a.cc:1] f] still shown\\\\n")
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert b"still shown" in result.stderr
