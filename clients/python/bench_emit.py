"""The Python client's emit() latency and one emitter's throughput against a real server on
loopback, with the server's bulk ingest of the same events in the same run (one connection,
as the emitter's one sender). Benchmarks report; they never assert.

    python3 clients/python/bench_emit.py [--events N] [--batch B]   (SEALOG_BIN names the binary)
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import requests

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "tests"))
from conftest import BIN, Sealog  # noqa: E402

import sealog  # noqa: E402


def event(i):
    return {"specversion": "1.0", "id": f"c4-{i}", "source": "c4-coordinator",
            "type": "coordination.decision", "time": "2025-12-28T14:00:00.250Z",
            "tenant": "tenant-a", "actor": {"type": "service", "id": "coordination-manager"},
            "data": {"envelope_id": f"env-{i}", "envelope_class": "SAFETY", "decision": "PREEMPTED",
                     "reason": "higher-priority safety envelope",
                     "decision_timestamp": "2025-12-28T14:00:00.250Z",
                     "preempting_envelope_id": "env-990", "active_envelopes_count": 3,
                     "tenant_id": "tenant-a"}}


def pct(sorted_ns, p):
    return sorted_ns[round((len(sorted_ns) - 1) * p)] / 1000.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=1000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sl = Sealog(os.path.join(tmp, "data"), accept_undeclared=False)
        key = sl.writer_key()
        server = sl.serve()
        h = {"Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson"}
        s = requests.Session()
        begin = time.perf_counter()
        for start in range(0, a.events, a.batch):
            body = "\n".join(json.dumps(event(i)) for i in range(start, min(a.events, start + a.batch)))
            r = s.post(server.url + "/v1/events", data=body.encode(), headers=h)
            assert r.status_code == 200, r.text
        bulk = a.events / (time.perf_counter() - begin)

        e = sealog.Emitter(server.url, key, spool_dir=os.path.join(tmp, "spool"),
                           batch_max_events=a.batch, queue_capacity=a.events)
        evs = [event(a.events + i) for i in range(a.events)]
        lat = []
        clock = time.perf_counter_ns
        begin = time.perf_counter()
        for ev in evs:
            t = clock()
            e.emit(ev)
            lat.append(clock() - t)
        emitted_in = time.perf_counter() - begin
        assert e.flush(600)
        secs = time.perf_counter() - begin
        stats = e.close(10)
        lat.sort()
        server.stop()
    rate = a.events / secs
    print(json.dumps({"bench": "python.emit", "events": a.events, "batch": a.batch,
                      "python": sys.version.split()[0],
                      "emit_p50_us": pct(lat, 0.5), "emit_p99_us": pct(lat, 0.99),
                      "emit_p999_us": pct(lat, 0.999), "all_emitted_in_s": round(emitted_in, 3),
                      "events_per_s": round(rate), "server_bulk_http_1_client": round(bulk),
                      "share_of_server_bulk": round(rate / bulk, 2),
                      "acknowledged": stats["acknowledged"]}))


if __name__ == "__main__":
    main()
