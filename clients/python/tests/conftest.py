"""The real `sealog` binary for the tests: each test starts its own server on 127.0.0.1 and
stops it. SEALOG_BIN names the binary (scripts/test builds it and sets it); without it the
repository's target/debug/sealog is used."""

import json
import os
import signal
import subprocess
import threading
import time

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BIN = os.environ.get("SEALOG_BIN") or os.path.join(REPO, "target", "debug", "sealog")
EXAMPLES = os.path.join(REPO, "examples", "events.ndjson")
DEADLINE = 120.0


def pytest_configure(config):
    if not os.path.exists(BIN):
        message = f"the sealog binary {BIN} is missing: build it (cargo build -p sealog) or set SEALOG_BIN"
        if os.environ.get("CI"):
            raise pytest.UsageError(message)
        print(f"\n*** SKIPPING the Python client's tests: {message} ***\n")


def pytest_collection_modifyitems(config, items):
    if not os.path.exists(BIN):
        skip = pytest.mark.skip(reason=f"no sealog binary at {BIN}")
        for item in items:
            item.add_marker(skip)


def eventually(what, f, deadline=DEADLINE):
    end = time.monotonic() + deadline
    while not f():
        if time.monotonic() > end:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.01)


class Sealog:
    """A data directory and the binary run on it."""

    def __init__(self, data, accept_undeclared=True):
        self.data = str(data)
        self.env = {k: v for k, v in os.environ.items() if k not in ("SEALOG_URL", "SEALOG_KEY")}
        if accept_undeclared:
            self.env["SEALOG_ACCEPT_UNDECLARED_TYPES"] = "1"
        else:
            self.env.pop("SEALOG_ACCEPT_UNDECLARED_TYPES", None)

    def run(self, *args, stdin=b""):
        p = subprocess.run([BIN, "--data", self.data, *args], input=stdin, capture_output=True,
                           env=self.env, timeout=600)
        assert p.returncode == 0, f"sealog {args}: {p.stderr.decode()}"
        return p.stdout.decode()

    def writer_key(self):
        return json.loads(self.run("keys", "create", "--role", "writer"))["key"]

    def records(self):
        """Every producer record (not Sealog's own audit.*)."""
        rs, after = [], None
        while True:
            args = ["query", "--sealed", "--limit", "10000"]
            if after is not None:
                args += ["--after", str(after)]
            page = [json.loads(l) for l in self.run(*args).splitlines() if l.strip()]
            rs += page
            if len(page) < 10000:
                break
            after = page[-1]["seq"]
        return [r for r in rs if not r["type"].startswith("audit.")]

    def serve(self, listen="127.0.0.1:0", *extra):
        return Server(self, listen, extra)


class Server:
    def __init__(self, sealog, listen, extra=()):
        self.log = open(sealog.data + f".log-{time.monotonic_ns()}", "wb")
        self.proc = subprocess.Popen([BIN, "--data", sealog.data, "serve", "--listen", listen, *extra],
                                     stdout=subprocess.PIPE, stderr=self.log, env=sealog.env)
        line = []
        t = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()), daemon=True)
        t.start()
        t.join(DEADLINE)
        if not line or not line[0]:
            self.proc.kill()
            raise AssertionError("sealog serve printed no address")
        self.addr = line[0].decode().strip().rsplit("://", 1)[-1]
        self.url = f"http://{self.addr}"

    def signal(self, sig):
        self.proc.send_signal(sig)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(DEADLINE)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(DEADLINE) == 0

    def __del__(self):
        if self.proc.poll() is None:
            self.proc.kill()


@pytest.fixture
def sl(tmp_path):
    return Sealog(tmp_path / "data")


def example(kind):
    with open(EXAMPLES) as f:
        for line in f:
            if line.strip():
                e = json.loads(line)
                if e["type"] == kind:
                    return e
    raise KeyError(kind)


def examples():
    with open(EXAMPLES) as f:
        return [json.loads(l) for l in f if l.strip()]


def event(i, subject=None):
    return {"specversion": "1.0", "id": str(i), "source": "test", "type": "test.sdk",
            "time": "2026-01-03T12:34:56.123Z", "subject": subject or f"s-{i}",
            "actor": {"type": "human", "id": "u1"}, "data": {"n": str(i)}}
