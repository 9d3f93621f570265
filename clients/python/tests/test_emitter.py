"""The Python emitter against real `sealog serve` processes: the same promises as the Rust
client's (crates/sealog/tests/suite/client_sdk.rs)."""

import fcntl
import os
import signal
import socket
import threading

import pytest

import sealog
from conftest import DEADLINE, event, eventually, example, examples
from fault_proxy import FaultProxy


def emitter(url, key, spool, **kw):
    kw.setdefault("request_timeout", 2.0)
    kw.setdefault("backoff_max", 0.5)
    return sealog.Emitter(url, key, spool_dir=str(spool), **kw)


def dead_url():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


def ids(sl):
    out = {}
    for r in sl.records():
        out.setdefault(r["id"], []).append(r["seq"])
    return out


def test_a_stalled_then_killed_server_blocks_no_emit_and_loses_no_event(sl, tmp_path):
    key = sl.writer_key()
    server = sl.serve()
    addr = server.addr
    e = emitter(server.url, key, tmp_path / "spool", queue_capacity=500, batch_max_events=200,
                spool_sync=False)
    threads, per_thread = 8, 1250
    stalled = threading.Event()
    emitted = [0] * threads

    def work(t):
        for i in range(per_thread):
            if i == per_thread // 3:
                stalled.wait()
            e.emit(event(f"t{t}-{i:05d}"))
            emitted[t] += 1

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    eventually("a third emitted", lambda: sum(emitted) >= threads * (per_thread // 3))
    # The server stops answering: connections are accepted by the kernel, never answered.
    server.signal(signal.SIGSTOP)
    stalled.set()
    for w in workers:
        w.join()  # every emit returns while the server is frozen
    assert e.stats()["emitted"] == threads * per_thread
    eventually("events reach the spool", lambda: e.stats()["spooled"] > 0)
    server.kill()
    server = sl.serve(addr)
    assert e.flush(DEADLINE), e.stats()
    s = e.close(DEADLINE)
    assert s["dropped"] == 0 and s["spool_pending"] == 0 and s["replayed"] > 0, s
    server.stop()
    seqs = ids(sl)
    assert len(seqs) == threads * per_thread
    for t in range(threads):
        last = -1
        for i in range(per_thread):
            got = seqs[f"t{t}-{i:05d}"]
            assert len(got) == 1
            assert got[0] > last, "an event overtook an older one of its thread"
            last = got[0]


@pytest.mark.parametrize("status", [500, 503, 429])
def test_server_errors_and_throttling_get_one_retry_then_the_spool(sl, tmp_path, status):
    key = sl.writer_key()
    server = sl.serve()
    proxy = FaultProxy(server.addr, answer=status)
    e = emitter(proxy.url, key, tmp_path / "spool", backoff_max=3600)
    for i in range(10):
        e.emit(event(f"r{status}-{i}"))
    eventually("the batch is spooled", lambda: e.stats()["spooled"] == 10)
    # The events wait in clear: the owner's alone.
    spool = tmp_path / "spool"
    assert spool.stat().st_mode & 0o777 == 0o700
    for f in spool.iterdir():
        if f.name.startswith("spool-") or f.name == "LOCK":
            assert f.stat().st_mode & 0o777 == 0o600, f.name
    s = e.stats()
    assert (s["retried"], s["failures"], s["acknowledged"]) == (10, 2, 0), s
    assert proxy.requests >= 2
    e.close(0.5)
    proxy.answer = None
    e = emitter(proxy.url, key, tmp_path / "spool")
    assert e.flush(DEADLINE)
    s = e.close(DEADLINE)
    assert (s["replayed"], s["appended"]) == (10, 10), s
    server.stop()
    assert sorted(ids(sl)) == sorted(f"r{status}-{i}" for i in range(10))
    proxy.close()


def test_c4_ac_a5_replay_mode_sends_nothing(sl, tmp_path):
    key = sl.writer_key()
    server = sl.serve()
    proxy = FaultProxy(server.addr)
    e = emitter(proxy.url, key, tmp_path / "spool", emit_traces=False)
    for i in range(100):
        e.emit(example("coordination.decision"))
        e.emit(event(f"replayed-{i}"))
    assert e.emit_durable(event("durable")) == {"status": "skipped"}
    s = e.close(DEADLINE)
    assert (s["skipped"], s["emitted"], s["sent"], s["requests"]) == (201, 0, 0, 0), s
    assert proxy.requests == 0
    server.stop()
    assert sl.records() == []
    proxy.close()


def test_emit_durable_fails_closed_and_verifies_what_it_wrote(sl, tmp_path):
    key = sl.writer_key()
    e = emitter(dead_url(), key, tmp_path / "down")
    with pytest.raises(sealog.Unavailable):
        e.emit_durable(event("must-not-pass"), timeout=DEADLINE)
    s = e.close(5)
    assert (s["durable_failed"], s["acknowledged"], s["spooled"]) == (1, 0, 0), s

    server = sl.serve()
    e = emitter(server.url, key, tmp_path / "up")
    e.emit(event("first"))
    ack = e.emit_durable(event("durable"), timeout=DEADLINE)
    assert ack["status"] == "appended", ack
    incomplete = example("decision-log.audit_decision_record")
    del incomplete["data"]["features"]["feature_snapshot_hash"]
    assert e.emit_durable(incomplete, timeout=DEADLINE)["status"] == "quarantined"
    with pytest.raises(sealog.Rejected):
        e.emit_durable({"type": "no envelope"}, timeout=DEADLINE)
    import requests
    vkey = requests.get(server.url + "/checkpoint/key", headers={"Authorization": f"Bearer {key}"}).text
    v = sealog.LogVerifier(server.url, key, vkey)
    record = v.verify_inclusion(ack["record_id"])
    assert (record["seq"], record["record_id"]) == (ack["seq"], ack["record_id"])
    r = requests.get(server.url + "/v1/proofs/inclusion?seq=0", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 403
    e.close(DEADLINE)
    server.stop()
    seqs = ids(sl)
    assert seqs["first"][0] < seqs["durable"][0]


def test_a_damaged_spool_frame_is_skipped_and_reported_and_the_rest_replayed(sl, tmp_path):
    key = sl.writer_key()
    spool = tmp_path / "spool"
    e = emitter(dead_url(), key, spool)
    for i in range(20):
        e.emit(event(f"d-{i:02d}"))
    s = e.close(1)
    assert s["spooled"] == 20, s
    [name] = [n for n in os.listdir(spool) if n.endswith(".sls")]
    data = bytearray((spool / name).read_bytes())
    starts = [i for i in range(len(data)) if data[i:i + 4] == b"SLS1"]
    assert len(starts) == 20
    data[starts[5] + 40] ^= 1
    (spool / name).write_bytes(bytes(data))
    server = sl.serve()
    e = emitter(server.url, key, spool)
    assert e.flush(DEADLINE)
    s = e.close(DEADLINE)
    assert (s["spool_damaged"], s["replayed"]) == (1, 19), s
    server.stop()
    seqs = ids(sl)
    assert len(seqs) == 19 and "d-05" not in seqs


def test_the_rust_clients_spool_is_replayed_in_order(sl, tmp_path):
    """One format for both clients: frames written by hand as the Rust client writes them,
    across two files whose ranges interleave, come out merged by emission number."""
    from sealog import _spool
    spool = tmp_path / "spool"
    spool.mkdir()
    import json
    frames = lambda ns: b"".join(_spool.frame(n, json.dumps(event(f"x-{n}")).encode()) for n in ns)
    (spool / ("spool-%020d.sls" % 10)).write_bytes(frames([10, 11, 60]))
    (spool / ("spool-%020d.sls" % 50)).write_bytes(frames([50, 51]))
    key = sl.writer_key()
    server = sl.serve()
    e = emitter(server.url, key, spool)
    e.emit(event("x-after"))
    assert e.flush(DEADLINE)
    e.close(DEADLINE)
    server.stop()
    order = [r["id"] for r in sl.records()]
    assert order == ["x-10", "x-11", "x-50", "x-51", "x-60", "x-after"]


def test_a_correction_spooled_with_its_target_never_overtakes_it(sl, tmp_path):
    import hashlib
    key = sl.writer_key()
    server = sl.serve()
    proxy = FaultProxy(server.addr, answer=503)
    e = emitter(proxy.url, key, tmp_path / "spool", queue_capacity=2, linger=0.05)
    chain, target = [], None
    for i in range(6):
        ev = event(f"v{i}", subject="one-subject")
        if target:
            ev["supersedes"] = target
        target = "sha256:" + hashlib.sha256(sealog_module().canonical_json(ev)).hexdigest()
        chain.append(target)
        e.emit(ev)
    eventually("all spooled", lambda: e.stats()["spooled"] == 6)
    proxy.answer = None
    assert e.flush(DEADLINE)
    s = e.close(DEADLINE)
    assert (s["appended"], s["quarantined"]) == (6, 0), s
    server.stop()
    assert [r["record_id"] for r in sl.records()] == chain
    proxy.close()


def sealog_module():
    return sealog


def test_cm_2_5_audit_failures_never_block_core_flows(tmp_path):
    """Customer-comms seed, CM-2.5 §9: "Audit failures never block core flows"."""
    from conftest import Sealog
    sl = Sealog(tmp_path / "data", accept_undeclared=False)
    key = sl.writer_key()
    server = sl.serve()
    proxy = FaultProxy(server.addr, answer=503)
    e = emitter(proxy.url, key, tmp_path / "spool")
    flow = [x for x in examples() if x["type"].startswith("conversation.")]
    linked = 0
    for x in flow:
        e.emit(x)
        linked += 1  # the core flow goes on
    assert linked == len(flow)
    eventually("the failure is counted", lambda: e.stats()["failures"] >= 2)
    proxy.answer = None
    assert e.flush(DEADLINE)
    assert e.close(DEADLINE)["appended"] == len(flow)
    server.stop()
    assert [r["type"] for r in sl.records()] == [x["type"] for x in flow]
    proxy.close()


def test_c4_ac_a6_audit_failure_is_non_blocking(tmp_path):
    """Coordination seed, C4 AC-A6: "Audit failure non-blocking"; the server is gone."""
    e = emitter(dead_url(), "k", tmp_path / "spool")
    decision = example("coordination.decision")
    for i in range(1000):
        e.emit(dict(decision, id=f"c4-{i}"))
    eventually("spooled", lambda: e.stats()["spooled"] == 1000 and e.stats()["failures"] >= 2)
    s = e.close(1)
    assert s["failure_rate"] > 0.01 and s["dropped"] == 0, s


def test_a_second_emitter_on_one_spool_is_refused(tmp_path):
    e = emitter(dead_url(), "k", tmp_path / "spool")
    with pytest.raises(OSError):
        emitter(dead_url(), "k", tmp_path / "spool")
    e.close(1)
    emitter(dead_url(), "k", tmp_path / "spool").close(1)


def test_a_spool_still_locked_a_moment_after_its_emitter_closed_it_opens_once_let_go(tmp_path):
    emitter(dead_url(), "k", tmp_path / "spool").close(1)
    # Another holder of the lock's open file (a forked child that has not exec'd yet).
    holder = os.open(tmp_path / "spool" / "LOCK", os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with pytest.raises(OSError, match="in use by another emitter"):
        emitter(dead_url(), "k", tmp_path / "spool")
    timer = threading.Timer(0.1, os.close, [holder])
    timer.start()
    emitter(dead_url(), "k", tmp_path / "spool").close(1)
    timer.join()
