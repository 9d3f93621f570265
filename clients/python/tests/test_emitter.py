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


# Answers no real server gives, each with one result per event, as a proxy might send them.
A_RECORD = "sha256:" + "0" * 64
MALFORMED = {
    "nulls": lambda n: {"results": [None] * n},
    "numbers": lambda n: {"results": list(range(1, n + 1))},
    "one good then nulls":
        lambda n: {"results": [{"status": "appended", "seq": 0, "record_id": A_RECORD}] + [None] * (n - 1)},
    "no status": lambda n: {"results": [{"seq": 0, "record_id": A_RECORD}] * n},
    "an unknown status": lambda n: {"results": [{"status": "stored"}] * n},
    "a status that is a list":
        lambda n: {"results": [{"status": ["appended"], "seq": 0, "record_id": A_RECORD}] * n},
    "appended without seq": lambda n: {"results": [{"status": "appended", "record_id": A_RECORD}] * n},
    "a seq that is text": lambda n: {"results": [{"status": "duplicate", "seq": "0", "record_id": A_RECORD}] * n},
    "a seq that is true": lambda n: {"results": [{"status": "appended", "seq": True, "record_id": A_RECORD}] * n},
    "a negative seq": lambda n: {"results": [{"status": "appended", "seq": -1, "record_id": A_RECORD}] * n},
    "no record_id": lambda n: {"results": [{"status": "appended", "seq": 0}] * n},
    "quarantined without id": lambda n: {"results": [{"status": "quarantined"}] * n},
    "rejected without error": lambda n: {"results": [{"status": "rejected", "error": "no"}] * n},
}


def settled_or_dead(e, want):
    """Waits until `want(stats)` or until the sender died: the assertions after it say which."""
    eventually("the emitter settles", lambda: want(e.stats()) or not e._thread.is_alive())
    return e.stats()


def taken(s):
    """A made-up answer was taken for the server's: no need to wait any longer to fail."""
    return s["acknowledged"] or s["rejected"]


@pytest.mark.parametrize("shape", sorted(MALFORMED))
def test_a_malformed_answer_is_a_failed_request_and_loses_no_event(sl, tmp_path, shape):
    key = sl.writer_key()
    server = sl.serve()
    proxy = FaultProxy(server.addr)
    proxy.bodies = [MALFORMED[shape]] * 2  # the request and its one retry
    # One batch of three: the third event wakes the sender out of its linger.
    e = emitter(proxy.url, key, tmp_path / "spool", batch_max_events=3, linger=DEADLINE)
    for i in range(3):
        e.emit(event(f"m-{i}"))
    s = settled_or_dead(e, lambda s: s["spooled"] == 3 or taken(s))
    assert e._thread.is_alive(), "the sender died"
    assert (s["spooled"], s["retried"], s["acknowledged"], s["rejected"]) == (3, 3, 0, 0), s
    assert s["failures"] == 2, s
    # The sender goes on: the spooled batch is replayed after the backoff, later events follow.
    eventually("the spool is replayed", lambda: e.stats()["appended"] == 3)
    for i in range(3, 5):
        e.emit(event(f"m-{i}"))
    assert e.flush(DEADLINE), e.stats()
    assert e._thread.is_alive()
    s = e.close(DEADLINE)
    assert (s["replayed"], s["appended"], s["failures"], s["spooled"]) == (3, 5, 2, 3), s
    assert (s["spool_pending"], s["dropped"], s["rejected"]) == (0, 0, 0), s
    server.stop()
    assert [r["id"] for r in sl.records()] == [f"m-{i}" for i in range(5)]
    proxy.close()


def test_a_malformed_answer_to_a_replay_leaves_the_spool_as_it_was(sl, tmp_path):
    key = sl.writer_key()
    server = sl.serve()
    proxy = FaultProxy(server.addr, answer=503)
    e = emitter(proxy.url, key, tmp_path / "spool")
    for i in range(4):
        e.emit(event(f"p-{i}"))
    eventually("the batch is spooled", lambda: e.stats()["spooled"] == 4)
    proxy.bodies = [MALFORMED["nulls"]]
    proxy.answer = None
    s = settled_or_dead(e, lambda s: s["appended"] == 4)
    assert e._thread.is_alive(), "the sender died"
    assert (s["appended"], s["replayed"], s["rejected"]) == (4, 4, 0), s
    # Two 503s (or more, while the test turns the proxy around), then the made-up answer.
    assert proxy.bodies == [] and s["failures"] >= 3, s
    e.emit(event("p-4"))
    assert e.flush(DEADLINE), e.stats()
    s = e.close(DEADLINE)
    assert (s["appended"], s["spool_pending"], s["dropped"]) == (5, 0, 0), s
    server.stop()
    assert [r["id"] for r in sl.records()] == [f"p-{i}" for i in range(5)]
    proxy.close()


def test_emit_durable_answered_with_a_malformed_answer_is_unavailable(sl, tmp_path):
    key = sl.writer_key()
    server = sl.serve()
    proxy = FaultProxy(server.addr)
    proxy.bodies = [MALFORMED["numbers"]] * 2
    e = emitter(proxy.url, key, tmp_path / "spool")
    with pytest.raises(sealog.Unavailable):
        e.emit_durable(event("q-0"), timeout=DEADLINE)
    assert e.emit_durable(event("q-1"), timeout=DEADLINE)["status"] == "appended"
    s = e.close(DEADLINE)
    assert (s["durable_failed"], s["failures"], s["spooled"], s["appended"]) == (1, 2, 0, 1), s
    server.stop()
    assert [r["id"] for r in sl.records()] == ["q-1"]
    proxy.close()


def test_close_leaves_events_answered_only_with_malformed_answers_in_the_spool(sl, tmp_path):
    key = sl.writer_key()
    server = sl.serve()
    proxy = FaultProxy(server.addr)
    proxy.bodies = [MALFORMED["no status"]] * 1000
    e = emitter(proxy.url, key, tmp_path / "spool")
    for i in range(6):
        e.emit(event(f"c-{i}"))
    settled_or_dead(e, lambda s: s["spooled"] == 6 or taken(s))
    s = e.close(0.5)
    assert (s["spooled"], s["spool_pending"], s["acknowledged"], s["dropped"]) == (6, 6, 0, 0), s
    assert s["failures"] >= 2, s
    e = emitter(server.url, key, tmp_path / "spool")
    assert e.flush(DEADLINE)
    s = e.close(DEADLINE)
    assert (s["replayed"], s["appended"]) == (6, 6), s
    server.stop()
    assert [r["id"] for r in sl.records()] == [f"c-{i}" for i in range(6)]
    proxy.close()


def ack_that_fails_once(monkeypatch):
    """Makes reading the first answer fail as a fault of the client's own would."""
    from sealog import _emitter
    real, calls = _emitter._ack, []

    def ack(result):
        calls.append(result)
        if len(calls) == 1:
            raise RuntimeError("a fault while reading an answer")
        return real(result)
    monkeypatch.setattr(_emitter, "_ack", ack)


def test_a_fault_while_settling_keeps_the_events_and_the_sender(sl, tmp_path, monkeypatch, caplog):
    key = sl.writer_key()
    server = sl.serve()
    ack_that_fails_once(monkeypatch)
    e = emitter(server.url, key, tmp_path / "spool", batch_max_events=3, linger=DEADLINE)
    for i in range(3):
        e.emit(event(f"f-{i}"))
    # The server took the batch, the emitter could not read its answer: it is sent again.
    s = settled_or_dead(e, lambda s: s["duplicates"] == 3)
    assert e._thread.is_alive(), "the sender died"
    assert (s["spooled"], s["replayed"], s["duplicates"], s["appended"], s["failures"]) == (3, 3, 3, 0, 1), s
    assert any("the audit sender failed while reading" in r.getMessage() for r in caplog.records
               if r.levelname == "ERROR")
    e.emit(event("f-3"))
    assert e.flush(DEADLINE), e.stats()
    s = e.close(DEADLINE)
    assert (s["appended"], s["spool_pending"], s["dropped"]) == (1, 0, 0), s
    server.stop()
    assert [r["id"] for r in sl.records()] == [f"f-{i}" for i in range(4)]


def test_a_fault_while_replaying_leaves_the_spool_and_the_sender(sl, tmp_path, monkeypatch, caplog):
    key = sl.writer_key()
    server = sl.serve()
    proxy = FaultProxy(server.addr, answer=503)
    e = emitter(proxy.url, key, tmp_path / "spool")
    for i in range(4):
        e.emit(event(f"g-{i}"))
    eventually("the batch is spooled", lambda: e.stats()["spooled"] == 4)
    ack_that_fails_once(monkeypatch)
    proxy.answer = None
    s = settled_or_dead(e, lambda s: s["duplicates"] == 4)
    assert e._thread.is_alive(), "the sender died"
    assert (s["replayed"], s["duplicates"], s["appended"]) == (4, 4, 0) and s["failures"] >= 3, s
    assert any("the audit sender failed while replaying" in r.getMessage() for r in caplog.records
               if r.levelname == "ERROR")
    e.emit(event("g-4"))
    assert e.flush(DEADLINE), e.stats()
    s = e.close(DEADLINE)
    assert (s["appended"], s["spool_pending"], s["dropped"]) == (1, 0, 0), s
    server.stop()
    assert [r["id"] for r in sl.records()] == [f"g-{i}" for i in range(5)]
    proxy.close()
