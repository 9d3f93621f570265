"""The examples in examples/ against a real server with the built-in packs: every event is
valid for its pack, a replayed run appends nothing new, replay mode sends nothing."""

import importlib.util
import os

from conftest import DEADLINE, REPO, Sealog
from fault_proxy import FaultProxy


def load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "examples", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_seed_004_emit_audit_record(tmp_path):
    import sealog
    c4 = load("c4_coordination_audit")
    sl = Sealog(tmp_path / "data", accept_undeclared=False)
    key = sl.writer_key()
    server = sl.serve()
    proxy = FaultProxy(server.addr, answer=503)
    e = sealog.Emitter(proxy.url, key, spool_dir=str(tmp_path / "spool"), backoff_max=0.5)
    env = c4.Envelope("env-1", "SAFETY", "tenant-a")
    decisions = [c4.CoordinationDecision("APPLIED", "no conflict", f"2026-01-0{i}T10:00:00Z") for i in range(1, 4)]
    for d in decisions:  # the audit server fails: coordination goes on (AC-A6)
        c4.emit_audit_record(e, env, d, 1)
    from conftest import eventually
    eventually("failures counted", lambda: c4.audit_health(e)["coordination_audit_failures"] >= 2)
    assert c4.audit_health(e)["alert"]
    proxy.answer = None
    for d in decisions:  # a replayed run with traces on: the same events, duplicates
        c4.emit_audit_record(e, env, d, 1)
    for d in decisions:  # replay mode: nothing (AC-A5)
        c4.emit_audit_record(e, env, d, 1, emit_traces=False)
    assert e.flush(DEADLINE)
    s = e.close(DEADLINE)
    assert (s["appended"], s["duplicates"], s["quarantined"], s["rejected"]) == (3, 3, 0, 0), s
    server.stop()
    assert [r["data"]["decision_timestamp"] for r in sl.records()] == [d.timestamp for d in decisions]
    proxy.close()


def test_seed_000_linking_flow(tmp_path):
    import sealog
    cm = load("cm25_linking_flow")
    sl = Sealog(tmp_path / "data", accept_undeclared=False)
    key = sl.writer_key()
    server = sl.serve()
    e = sealog.Emitter(server.url, key, spool_dir=str(tmp_path / "spool"))
    cm.run_flow(cm.LinkingAudit(e, "instructor-42"))
    cm.run_flow(cm.LinkingAudit(e, "instructor-42"))  # run again: nothing new
    assert e.flush(DEADLINE)
    s = e.close(DEADLINE)
    assert (s["appended"], s["duplicates"], s["quarantined"], s["rejected"]) == (4, 4, 0, 0), s
    server.stop()
    assert [r["type"] for r in sl.records()] == [
        "conversation.customer_resolved", "conversation.customer_linked",
        "conversation.customer_relinked", "conversation.customer_unlinked"]
