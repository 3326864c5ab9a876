"""The project's commands started without importing torch each time: a server process that has imported torch,
Hydra, pandas and the commands' modules once forks a child per command, and the child becomes `python -m module
args` as a fresh interpreter would run it. A command's start and exit then cost ~0.1 s instead of ~2.5 s of CPU
(importing torch, and tearing its modules down at exit), which a few hundred commands in the suite paid.

    python tests/command_server.py SOCKET     # the server: started by `start`, not by hand

`start(...)` (support.start_cli and run_cli use it) starts one server per test process on first use; it ends with
that process. Each command is one connection to the Unix socket SOCKET: a JSON line {"module", "args", "cwd", "env",
"setsid"} sent with three file descriptors (the command's stdin, stdout, stderr); the server forks, answers the
child's pid, then its exit status (negative: the signal that ended it, as subprocess says) when it ends.

The child is the command as a fresh interpreter runs it: its working folder, its whole environment (PYTHONPATH's
folders on sys.path, OMP_NUM_THREADS as torch's thread count), its standard streams on the descriptors (buffered as
the interpreter buffers them), `runpy` running the module as __main__ with its sys.argv, and the interpreter's
exit as seen from outside (non-daemon threads joined, atexit functions, streams flushed, the exit status, the
traceback of an uncaught exception); it skips only the teardown of modules nothing can observe. What the server
imported saw the server's environment, so a command whose environment differs in a variable read at import gets a
fresh interpreter instead: one the imports read (the server records them, torch's compiler reads a few hundred), or
one of READ_AT_IMPORT's prefixes (read by C libraries, or by scanning the environment); so does every command under
HW_TEST_SPAWN=1. tests/test_command_server.py checks a child against a fresh interpreter.
"""

from __future__ import annotations

import atexit
import importlib
import io
import json
import os
import runpy
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

# What the commands import (their entry modules are run fresh, as __main__). torchvision (the data's reader) costs
# ~1.2 s of CPU to import, as much as torch: most commands read data.
PRELOAD = (
    "torch",
    "torchvision",
    "hydra",
    "pandas",
    "matplotlib",
    "hw_hparams.train.__main__",
    "hw_hparams.homework",
    "analysis",
)
ENTRY_MODULES = ("hw_hparams.train.__main__", "hw_hparams.homework")
# Prefixes of environment variables read at import where the server cannot see it (by the interpreter at its start,
# by C libraries, by a module scanning the environment: tqdm's TQDM_*), besides those it records (READ_FILE): a
# command whose value of one differs from the server's gets a fresh interpreter. PYTHONPATH and OMP_NUM_THREADS the
# child applies itself.
READ_AT_IMPORT = ("PYTHON", "TORCH", "PYTORCH", "OMP_", "MKL_", "KMP_", "MPL", "LC_", "LANG", "TQDM_")
APPLIED_BY_CHILD = ("PYTHONPATH", "OMP_NUM_THREADS", "PYTHONUNBUFFERED")
# Commands that start `python -m hw_hparams.train` themselves (the study's stages, the search benchmark): those are
# served too (`serve_children`).
LAUNCHERS = ("hw_hparams.homework", "hw_hparams.bench.search")
READ_FILE = "read_at_import.json"  # beside the socket: the variables PRELOAD's imports read, by name


# --- the server ---------------------------------------------------------------------------------------------------


def serve(path: str) -> tuple[dict, list[int]]:
    """Answer requests on the Unix socket `path` until the process that started the server is gone (then exit);
    returns only in a forked child: its request and descriptors."""
    parent = os.getppid()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path + ".new")  # bind makes the file, listen makes it answer: the path appears once both are done
    listener.listen(64)
    os.rename(path + ".new", path)
    children: dict[int, socket.socket] = {}  # pid -> the connection its exit status goes to
    while os.getppid() == parent:
        if select.select([listener], [], [], 0.05 if children else 1.0)[0]:
            conn, _ = listener.accept()
            msg, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
            while not msg.endswith(b"\n"):
                chunk = conn.recv(1 << 16)
                if not chunk:
                    break
                msg += chunk
            pid = os.fork()
            if pid == 0:
                listener.close()
                conn.close()
                for other in children.values():
                    other.close()
                return json.loads(msg), fds
            for fd in fds:
                os.close(fd)
            _send(conn, pid)
            children[pid] = conn
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            conn = children.pop(pid, None)
            if conn is not None:
                _send(conn, os.waitstatus_to_exitcode(status))
                conn.close()
    sys.exit(0)


def _send(conn: socket.socket, number: int) -> None:
    try:
        conn.sendall(f"{number}\n".encode())
    except OSError:  # the test stopped waiting
        pass


def become(request: dict, fds: list[int]) -> None:
    """In the forked child: turn this process into `python -m module args` run in `cwd` with `env`, and run it."""
    for fd, std in zip(fds, (0, 1, 2), strict=True):
        os.dup2(fd, std)
    for fd in set(fds) - {0, 1, 2}:
        os.close(fd)
    if request["setsid"]:
        os.setsid()
    os.chdir(request["cwd"])
    env, server_path = request["env"], set(filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep)))
    os.environ.clear()
    os.environ.update(env)
    unbuffered = bool(env.get("PYTHONUNBUFFERED"))

    def stream(fd: int, like: io.TextIOWrapper, line_buffered: bool) -> io.TextIOWrapper:
        """A standard stream on `fd`, as the interpreter makes it (`python -u`: writes unbuffered)."""
        raw = io.FileIO(fd, "rb" if fd == 0 else "wb", closefd=False)
        buffered = io.BufferedReader(raw) if fd == 0 else raw if unbuffered else io.BufferedWriter(raw)
        return io.TextIOWrapper(
            buffered, like.encoding, like.errors, line_buffering=line_buffered, write_through=unbuffered and fd > 0
        )

    sys.stdin = sys.__stdin__ = stream(0, sys.__stdin__, False)
    sys.stdout = sys.__stdout__ = stream(1, sys.__stdout__, os.isatty(1))
    sys.stderr = sys.__stderr__ = stream(2, sys.__stderr__, True)
    if "OMP_NUM_THREADS" in env:
        import torch

        torch.set_num_threads(int(env["OMP_NUM_THREADS"]))
    added = [os.path.abspath(p) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:] = [os.getcwd(), *added, *(p for p in sys.path[1:] if p not in server_path)]
    importlib.invalidate_caches()
    if request.get("children"):
        serve_children()
    sys.argv = ["-m", *request["args"]]
    sys.orig_argv = [sys.executable, "-m", request["module"], *request["args"]]
    try:
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as stop:  # as the interpreter reads sys.exit's argument
        code = stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 1
        if not isinstance(stop.code, int | None):
            print(stop.code, file=sys.stderr)
    except KeyboardInterrupt:  # the interpreter's exit: killed by SIGINT, after its traceback
        sys.excepthook(*sys.exc_info())
        code = -signal.SIGINT
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    exit_as_interpreter(code)


def serve_children() -> None:
    """In a command that starts `python -m` commands itself: serve those as the server serves the tests' (a fresh
    interpreter where `_server_for` says so), from a copy of this process forked now, before the command runs, so
    still as the server left it, and in the command's session and process group, so that a signal to the group
    reaches it and what it starts, as it reaches a command's own children. subprocess.Popen sends them to it."""
    folder = tempfile.mkdtemp(prefix="hw-commands-")
    path = os.path.join(folder, "socket")
    pid = os.fork()
    if pid == 0:
        null = os.open(os.devnull, os.O_RDWR)
        for std in (0, 1, 2):  # each command gets its streams with its request
            os.dup2(null, std)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is for the command and what it starts
        try:
            request, fds = serve(path)
        except SystemExit:  # the command has ended
            os._exit(0)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        become(request, fds)
    atexit.register(shutil.rmtree, folder, True)
    _await_socket(path, lambda: os.waitpid(pid, os.WNOHANG)[0] != 0, lambda: "the children's server did not start")
    _server["path"] = path
    subprocess.Popen = _ServingPopen


class _ServingPopen(subprocess.Popen):
    """subprocess.Popen in a command whose children are served: `[sys.executable, "-m", module, *args]` with
    at most env, cwd, stdout, stderr and start_new_session is a ServedProcess where `start` serves it."""

    def __new__(cls, args, *more, **kwargs):
        plain = not more and set(kwargs) <= {"env", "cwd", "stdout", "stderr", "start_new_session"}
        if plain and isinstance(args, list | tuple) and len(args) > 2 and list(args[:2]) == [sys.executable, "-m"]:
            env = dict(os.environ if kwargs.get("env") is None else kwargs["env"])
            cwd = kwargs.get("cwd") or os.getcwd()
            streams = {k: kwargs.get(k) for k in ("stdout", "stderr", "start_new_session") if k in kwargs}
            served = start(args[2], list(args[3:]), cwd, env, **{"stdout": None, "stderr": None, **streams})
            if served is not None:
                return served
        return super().__new__(cls)


def exit_as_interpreter(code: int) -> None:
    """End as the interpreter ends a program, in what can be seen from outside: wait for its non-daemon threads, run
    its atexit functions, flush stdout and stderr, exit with `code` (-N: by signal N). Then, unlike the interpreter,
    skip tearing down its modules (torch's, pandas', matplotlib's: ~0.6 s of CPU that nothing can observe)."""
    threading._shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    os._exit(code & 0xFF)


def preload() -> list[str]:
    """Import PRELOAD; the names of the environment variables read meanwhile by name (os.environ[k], .get, getenv:
    one scanned in a loop over the environment is not counted; READ_AT_IMPORT covers those)."""
    environ = type(os.environ)
    getitem, read = environ.__getitem__, set()

    def recording(self, key):
        if sys._getframe(1).f_code.co_name != "__iter__":  # items(), values(): a scan, not a read by name
            read.add(key)
        return getitem(self, key)

    environ.__getitem__ = recording
    try:
        for name in PRELOAD:
            importlib.import_module(name)
    finally:
        environ.__getitem__ = getitem
    return sorted(read)


def main(path: str) -> None:
    env = dict(os.environ)  # the client's, before the imports add theirs (torch: TORCHINDUCTOR_CACHE_DIR)
    read = preload()
    with open(os.path.join(os.path.dirname(path), READ_FILE), "w") as f:  # before the socket, which says "ready"
        json.dump(read, f)
    _server.update(env=env, read=set(read))  # what `serve_children` compares the commands it is asked for with
    for name in ENTRY_MODULES:  # run fresh by each command, as `python -m` runs them: not imported beforehand
        del sys.modules[name]
        parent, _, leaf = name.rpartition(".")
        if hasattr(sys.modules[parent], leaf):
            delattr(sys.modules[parent], leaf)
    request, fds = serve(path)
    become(request, fds)


# --- the client ---------------------------------------------------------------------------------------------------

_lock = threading.Lock()
_server: dict = {}


def _stop(proc: subprocess.Popen, folder: str) -> None:
    """At the test process's exit: the server, then its folder (socket and log)."""
    proc.kill()
    proc.wait()
    shutil.rmtree(folder, ignore_errors=True)


def _await_socket(path: str, ended, why) -> None:
    """Wait until a server listens on its socket `path`; AssertionError(why()) once `ended()` says it has ended
    first, or after 300 s."""
    deadline = time.monotonic() + 300
    while not os.path.exists(path):
        if ended() or time.monotonic() > deadline:
            raise AssertionError(why())
        time.sleep(0.01)


def _server_for(env: dict) -> dict | None:
    """This process's server (started on first use), or None when `env` needs a fresh interpreter."""
    if os.environ.get("HW_TEST_SPAWN") == "1":
        return None
    with _lock:
        if not _server:
            folder = tempfile.mkdtemp(prefix="hw-commands-")
            path = os.path.join(folder, "socket")
            log = open(os.path.join(folder, "server.log"), "wb")  # noqa: SIM115 (the server's, for its life)
            proc = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), path], stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
            atexit.register(_stop, proc, folder)
            try:
                _await_socket(
                    path,
                    lambda: proc.poll() is not None,
                    lambda: f"the command server did not start: {open(log.name).read()[-3000:]}",
                )
            except AssertionError:
                proc.kill()
                raise
            with open(os.path.join(folder, READ_FILE)) as f:
                read = set(json.load(f))
            _server.update(path=path, env=dict(os.environ), proc=proc, read=read)
    started, read = _server["env"], _server["read"]
    for key in set(env) | set(started):
        if (
            (key in read or key.startswith(READ_AT_IMPORT))
            and key not in APPLIED_BY_CHILD
            and env.get(key) != started.get(key)
        ):
            return None
    if "OMP_NUM_THREADS" in started and "OMP_NUM_THREADS" not in env:
        return None  # torch's default thread count, which only a fresh interpreter knows
    return _server


def start(
    module: str,
    args: list[str],
    cwd,
    env: dict,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    start_new_session: bool = False,
) -> ServedProcess | None:
    """`python -m module args` in `cwd` with exactly `env` (stdout, stderr: PIPE, DEVNULL, None or a file, as
    subprocess.Popen takes them, PIPE read as text), run by the server; None when the command needs a fresh
    interpreter (see `_server_for`)."""
    server = _server_for(env)
    return None if server is None else ServedProcess(server, module, args, cwd, env, stdout, stderr, start_new_session)


class ServedProcess:
    """A command the server runs, with what the tests use of subprocess.Popen (text mode): pid, args, returncode,
    stdout and stderr (text files where PIPE), poll(), wait(), communicate(), send_signal(), kill(), terminate()."""

    def __init__(self, server, module, args, cwd, env, stdout, stderr, start_new_session):
        self.args, self.returncode = [sys.executable, "-m", module, *args], None
        sent, theirs, self._pipes = [0], [], {}
        for std, want in ((1, stdout), (2, stderr)):
            if want == subprocess.PIPE:
                mine, fd = os.pipe()
                self._pipes[std] = mine
                theirs.append(fd)
            elif want == subprocess.DEVNULL:
                fd = os.open(os.devnull, os.O_WRONLY)
                theirs.append(fd)
            else:
                fd = std if want is None else want if isinstance(want, int) else want.fileno()
            sent.append(fd)
        self.stdout, self.stderr = (open(self._pipes[s]) if s in self._pipes else None for s in (1, 2))  # noqa: SIM115
        self._output, self._closed = {fd: bytearray() for fd in self._pipes.values()}, set()
        self._conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._conn.connect(server["path"])
        request = {
            "module": module,
            "args": list(args),
            "cwd": os.fspath(cwd),
            "env": env,
            "setsid": start_new_session,
            "children": module in LAUNCHERS,
        }
        socket.send_fds(self._conn, [json.dumps(request).encode() + b"\n"], sent)
        for fd in theirs:
            os.close(fd)
        self._answers = bytearray()
        self.pid = self._answer(0, None)

    def _answer(self, n: int, timeout: float | None) -> int | None:
        """The server's n-th answer (0: the pid, 1: the exit status), waiting up to `timeout` s (None: for ever)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._answers.count(b"\n") <= n:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([self._conn], [], [], left)[0]:
                return None
            chunk = self._conn.recv(64)
            if not chunk:
                raise AssertionError(f"the command server stopped while running {self.args}")
            self._answers += chunk
        return int(self._answers.split(b"\n")[n])

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._answer(1, 0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self.returncode = self._answer(1, timeout)
            if self.returncode is None:
                raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode

    def communicate(self, input=None, timeout: float | None = None) -> tuple[str | None, str | None]:  # noqa: A002
        """Everything the command writes to its PIPEs until it ends, as text (no `input`: its stdin is the caller's);
        subprocess.TimeoutExpired after `timeout` s (what was read is kept for the next call)."""
        assert input is None, "a served command reads the caller's stdin"
        deadline = None if timeout is None else time.monotonic() + timeout
        while open_fds := [fd for fd in self._output if fd not in self._closed]:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired(self.args, timeout)
            for fd in select.select(open_fds, [], [], left)[0]:
                chunk = os.read(fd, 1 << 16)
                if chunk:
                    self._output[fd] += chunk
                else:
                    self._closed.add(fd)
        self.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return tuple(_text(bytes(self._output[self._pipes[s]])) if s in self._pipes else None for s in (1, 2))

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:  # as subprocess.Popen's: close its pipes, wait for it
        for stream in (self.stdout, self.stderr):
            if stream is not None:
                stream.close()
        self.wait()

    def __del__(self):
        self._conn.close()


def _text(data: bytes) -> str:
    """Bytes as subprocess's text mode decodes them (the locale's encoding, universal newlines)."""
    return io.TextIOWrapper(io.BytesIO(data)).read()


if __name__ == "__main__":
    main(sys.argv[1])
