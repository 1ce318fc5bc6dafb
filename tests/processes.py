"""The `companion` command in child processes, for tests and benchmarks: port, env, health, children."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

COMPANION = str(Path(sys.executable).with_name("companion"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_for(instance: str | Path, **extra: str) -> dict:
    """This environment without any COMPANION_ setting, then the instance folder and `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPANION_")}
    env.update(COMPANION_INSTANCE_PATH=str(instance), **extra)
    return env


def wait_for_health(port: int, proc: subprocess.Popen | None = None, timeout: float = 30) -> None:
    """Wait until GET /healthz answers 200; fail at once if `proc` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError("the server did not become healthy")


def children(pid: int) -> dict[int, str]:
    """The child processes of `pid`: their ids and command lines."""
    out = subprocess.run(
        ["ps", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True, text=True
    )
    return {int(line.split(None, 1)[0]): line.split(None, 1)[1] for line in out.stdout.splitlines()}
