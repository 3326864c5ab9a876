"""A command run by the command server (tests/command_server.py) is the command a fresh interpreter runs: the same
output, files and exit status, for a probe module and for the training command, with the interpreter as reference."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import command_server
import pytest
from support import ONE_THREAD, finish, read_rows, small_data_overrides, wait_until, without_timing

# A module that reports what a command can see of its interpreter, and ends in the way its first argument names.
PROBE = textwrap.dedent(
    """
    import atexit, json, os, sys, threading, time
    import torch
    import helper  # on PYTHONPATH only

    def late():
        time.sleep(0.3)
        print("thread done", flush=True)

    atexit.register(lambda: open("atexit.txt", "w").write("ran"))
    print(json.dumps({
        "name": __name__, "argv": sys.argv, "cwd": os.getcwd(), "path0": sys.path[0], "helper": helper.VALUE,
        "env": os.environ.get("PROBE_VALUE"), "threads": torch.get_num_threads(), "stdin_tty": sys.stdin.isatty(),
        "stdout_tty": sys.stdout.isatty(), "line_buffering": sys.stdout.line_buffering,
    }))
    sys.stderr.write("to stderr\\r\\nand on\\n")
    print("unflushed", end="")  # flushed by the exit
    how = sys.argv[1]
    if how == "thread":
        threading.Thread(target=late).start()  # not a daemon: the exit waits for it
    elif how == "exit3":
        sys.exit(3)
    elif how == "message":
        sys.exit("a message")
    elif how == "raise":
        raise ValueError("boom")
    elif how == "sigint":
        raise KeyboardInterrupt
    elif how == "wait":
        open("started", "w").close()
        time.sleep(600)
    elif how == "launch":  # a command of its own, as the study starts its stages
        import subprocess
        child = subprocess.Popen([sys.executable, "-m", "probe_mod", sys.argv[2]])
        with open("child.pid.new", "w") as f:
            f.write(str(child.pid))
        os.replace("child.pid.new", "child.pid")  # whole when it appears: the test reads it as soon as it exists
        print("child exited", child.wait(), flush=True)
    """
)


@pytest.fixture
def probe(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "probe_mod.py").write_text(PROBE)
    (lib / "helper.py").write_text("VALUE = 42\n")
    env = {**os.environ, **ONE_THREAD, "PROBE_VALUE": "seen", "PYTHONPATH": str(lib)}
    return tmp_path, env


def _start(kind: str, module: str, args: list[str], cwd, env: dict):
    """`python -m module args` run by the server ("served") or as a fresh interpreter ("fresh"), output piped."""
    if kind == "fresh":
        cmd = [sys.executable, "-m", module, *args]
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc = command_server.start(module, args, cwd, env)
    assert proc is not None, "the server should run this command"
    return proc


def _both(probe, how: str) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    """The probe run by the server and by a fresh interpreter, each in a folder of its own (same name)."""
    tmp, env = probe
    results = []
    for kind in ("served", "fresh"):
        cwd = tmp / kind / "work"
        cwd.mkdir(parents=True)
        proc = _start(kind, "probe_mod", [how], cwd, env)
        results.append(finish(proc, f"the probe ({kind}, {how})", 300))
    return results[0], results[1]


def _same_but_folder(served: str, fresh: str, tmp) -> None:
    assert served.replace(str(tmp / "served"), "X").replace(str(tmp / "fresh"), "X") == fresh.replace(
        str(tmp / "fresh"), "X"
    )


@pytest.mark.parametrize("how", ["plain", "thread", "exit3", "message", "raise", "sigint"])
def test_a_served_command_prints_writes_and_exits_as_a_fresh_interpreter(probe, how):
    served, fresh = _both(probe, how)
    tmp, _ = probe
    assert served.returncode == fresh.returncode == {"exit3": 3, "message": 1, "raise": 1, "sigint": -2}.get(how, 0)
    _same_but_folder(served.stdout, fresh.stdout, tmp)
    report = json.loads(served.stdout.splitlines()[0])
    assert report["name"] == "__main__" and report["helper"] == 42 and report["env"] == "seen"
    assert report["threads"] == 1 and report["argv"][1:] == [how] and report["argv"][0].endswith("probe_mod.py")
    assert served.stdout.endswith("unflushed" + ("thread done\n" if how == "thread" else ""))
    last = {"message": "a message\n", "raise": "ValueError: boom\n", "sigint": "KeyboardInterrupt\n"}
    assert served.stderr.startswith("to stderr\nand on\n") and served.stderr.endswith(last.get(how, "\n"))
    if how not in ("raise", "sigint"):  # a traceback's frames differ (the server's own are below runpy's)
        _same_but_folder(served.stderr, fresh.stderr, tmp)
    assert (tmp / "served" / "work" / "atexit.txt").read_text() == "ran"
    assert (tmp / "fresh" / "work" / "atexit.txt").read_text() == "ran"


def test_a_served_command_is_a_process_of_its_own_that_signals_reach(probe):
    tmp, env = probe
    proc = command_server.start("probe_mod", ["wait"], tmp, env, start_new_session=True)
    wait_until(lambda: (tmp / "started").exists(), "the probe to start", alive=proc)
    assert proc.poll() is None and os.getsid(proc.pid) == proc.pid  # a session of its own, as asked
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(timeout=0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


def test_what_a_launcher_starts_with_python_m_is_served_and_signals_to_its_group_reach_it(probe, monkeypatch):
    tmp, env = probe
    monkeypatch.setattr(command_server, "LAUNCHERS", ("probe_mod",))
    work = tmp / "work"
    work.mkdir()
    done = finish(command_server.start("probe_mod", ["launch", "exit3"], work, env), "a probe starting another")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count('"name": "__main__"') == 2 and "child exited 3" in done.stdout  # its output, its status
    proc = command_server.start("probe_mod", ["launch", "wait"], work, env, start_new_session=True)
    wait_until(lambda: (work / "started").exists() and (work / "child.pid").exists(), "the child", alive=proc)
    child = int((work / "child.pid").read_text())
    assert _cmdline(child)[1].endswith("command_server.py")  # forked from the server's copy, not a fresh interpreter
    assert os.getpgid(child) == proc.pid  # in the command's process group, as its own child would be
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    wait_until(lambda: not _alive(child), "the child to die with its group")


def _alive(pid: int) -> bool:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return text[text.rfind(")") + 2 :].split()[0] != "Z"  # a zombie has ended


def test_a_variable_read_at_import_gets_a_fresh_interpreter(probe):
    tmp, env = probe
    assert command_server.start("probe_mod", ["plain"], tmp, {**env, "PYTHONHASHSEED": "123"}) is None
    assert command_server.start("probe_mod", ["plain"], tmp, {**env, "TORCH_LOGS": "+dynamo"}) is None
    # read by name while the server imported (Inductor's config, pandas), under no prefix: recorded by the server
    for name, value in (("CXX", "clang++"), ("PANDAS_COPY_ON_WRITE", "1")):
        assert command_server.start("probe_mod", ["plain"], tmp, {**env, name: value}) is None, name
    served = command_server.start("probe_mod", ["plain"], tmp, {**env, "HW_NOBODY_READS_THIS": "1"}, stdout=None)
    assert served is not None and served.wait(timeout=60) == 0
    without = {k: v for k, v in env.items() if k != "OMP_NUM_THREADS"}
    if "OMP_NUM_THREADS" in os.environ:  # the server's threads came from it: only a fresh interpreter knows torch's own
        assert command_server.start("probe_mod", ["plain"], tmp, without) is None


def test_the_training_command_served_and_fresh_writes_the_same_run(small_root, tmp_path):
    args = [*small_data_overrides(small_root), "model=tiny", "epochs=2", "batch_size=50"]
    args += ["trainer.progress=false", "hydra.run.dir=run"]
    env = {**os.environ, **ONE_THREAD}
    runs = {}
    for kind in ("served", "fresh"):
        cwd = tmp_path / kind
        cwd.mkdir()
        result = finish(_start(kind, "hw_hparams.train", args, cwd, env), f"a tiny run ({kind})")
        assert result.returncode == 0, result.stderr[-3000:]
        runs[kind] = cwd / "run"
    assert without_timing(read_rows(runs["served"] / "history.csv")) == without_timing(
        read_rows(runs["fresh"] / "history.csv")
    )
    assert sorted(p.name for p in runs["served"].iterdir()) == sorted(p.name for p in runs["fresh"].iterdir())


def test_the_socket_appears_only_once_the_server_listens(tmp_path):
    # CI once connected between bind (which makes the file) and listen: "Connection refused". A slow listen here.
    path = str(tmp_path / "socket")
    slow = "import socket, time, command_server\n"
    slow += "listen = socket.socket.listen\n"
    slow += "socket.socket.listen = lambda self, n: (time.sleep(1), listen(self, n))[1]\n"
    slow += f"command_server.serve({path!r})\n"
    env = {**os.environ, "PYTHONPATH": str(Path(command_server.__file__).parent)}
    server = subprocess.Popen([sys.executable, "-c", slow], cwd=tmp_path, env=env)
    try:
        command_server._await_socket(path, lambda: server.poll() is not None, lambda: "the server ended")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(path)
    finally:
        server.kill()
        server.wait()
