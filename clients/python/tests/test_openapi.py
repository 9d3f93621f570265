"""schemathesis against the real server: every operation of the served OpenAPI document
with every check (`--checks all`), positive and negative, stateful through the document's
links, from a fixed seed so a run repeats. It passes only when the server takes every request
the document allows, refuses every request it does not, answers only the statuses and media
types it lists with bodies of its schemas, and never fails with a server error.
`schemathesis.toml` beside this file lists the few parameter combinations a document cannot
state."""

import json
import os
import sys
import subprocess
import urllib.request

HERE = os.path.dirname(__file__)
SEED = "20261203"


def admin_key(url):
    req = urllib.request.Request(url + "/v1/keys", method="POST",
                                 data=json.dumps({"roles": ["admin"], "label": "schemathesis"}).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())["key"]


def test_schemathesis_finds_nothing(sl, tmp_path):
    # A stream request waits this long for its predecessor; generated streams rarely have one.
    server = sl.serve("127.0.0.1:0", "--stream-wait-s", "1")
    try:
        key = admin_key(server.url)
        schemathesis = os.path.join(os.path.dirname(sys.executable), "schemathesis")
        run = subprocess.run(
            [schemathesis, "--no-color", "--config-file", os.path.join(HERE, "schemathesis.toml"),
             "run", server.url + "/openapi.json", "--checks", "all", "--seed", SEED,
             "--max-examples", "25", "--workers", "1", "--suppress-health-check", "too_slow",
             "--header", f"Authorization: Bearer {key}"],
            capture_output=True, timeout=1800, cwd=tmp_path)
        out = run.stdout.decode(errors="replace")
        assert run.returncode == 0, out[-30000:]
        assert "No issues found" in out or " passed" in out, out[-5000:]
    finally:
        server.stop()
