"""What the benches that start servers share: a free local port, and waiting until a
server answers (failing at once, with its exit code, if it dies first)."""
import socket
import time

import requests


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url, proc, seconds=180, path="/info/", every=0.5, log=None):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}" + (f"; see {log}" if log else ""))
        try:
            if requests.get(url + path, timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(every)
    raise SystemExit(f"server at {url} did not start in {seconds} s")
