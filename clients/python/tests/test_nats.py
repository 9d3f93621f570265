"""Sealog consuming NATS JetStream, fed by a client library that is not Sealog's own: the
`nats-py` package publishes structured and binary-mode CloudEvents to a real
`nats-server -js`; each lands in the log once, and a message that is not an event is
recorded as NOT_AN_EVENT and terminated."""

import asyncio
import json
import os
import shutil
import socket
import subprocess

import pytest
import requests

from conftest import eventually, event

NATS_SERVER = shutil.which("nats-server")


@pytest.fixture
def nats_url(tmp_path):
    if NATS_SERVER is None:
        message = "nats-server is missing (apt-get install -y nats-server, or run scripts/test)"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {message}")
        print(f"\n*** SKIPPING: {message} ***\n")
        pytest.skip(message)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path / "nats.log", "wb")
    proc = subprocess.Popen([NATS_SERVER, "-js", "-a", "127.0.0.1", "-p", str(port),
                             "-sd", str(tmp_path / "nats-store")], stdout=log, stderr=log)

    def listening():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    eventually("nats-server to listen", listening)
    yield f"nats://127.0.0.1:{port}"
    proc.kill()
    proc.wait()


def readyz(server):
    return requests.get(server.url + "/readyz", timeout=10).json()["nats"]


async def publish(url, messages):
    import nats

    nc = await nats.connect(url)
    js = nc.jetstream()
    for subject, headers, body in messages:
        await js.publish(subject, body, headers=headers)
    await nc.close()


def test_events_published_with_nats_py_are_appended_once(sl, nats_url):
    server = sl.serve("127.0.0.1:0", "--nats", nats_url)
    eventually("the consumer to consume", lambda: readyz(server)["state"] == "consuming")
    structured = [event(i) for i in range(50)]
    binary = event("binary-1")
    headers = {f"ce-{k}": v for k, v in binary.items() if isinstance(v, str)}
    headers.update({"ce-actortype": "human", "ce-actorid": "u1",
                    "Content-Type": "application/json"})
    messages = [("audit.orders", None, json.dumps(e).encode()) for e in structured]
    messages += [("audit.orders", None, json.dumps(e).encode()) for e in structured[:10]]
    messages.append(("audit.orders", headers, json.dumps(binary["data"]).encode()))
    poison = b"\x00 not an event"
    messages.append(("audit.orders", None, poison))
    asyncio.run(publish(nats_url, messages))

    def settled():
        b = readyz(server)
        return b["acknowledged"] + b["terminated"] >= len(messages)

    eventually("every message to be settled", settled)
    b = readyz(server)
    assert b["terminated"] == 1, b
    records = sl.records()
    ids = sorted(r["id"] for r in records)
    assert ids == sorted([str(i) for i in range(50)] + ["binary-1"])
    # The binary-mode message and the same event posted over HTTP are one record.
    r = requests.post(server.url + "/v1/events", json=binary, timeout=10).json()
    assert r["results"][0]["status"] == "duplicate", r
    q = [json.loads(l) for l in sl.run("quarantine", "--reason", "NOT_AN_EVENT").splitlines()]
    assert len(q) == 1 and q[0]["data"]["delivery"]["payload_bytes"] == len(poison), q
    server.stop()
