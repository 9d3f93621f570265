"""Seed 004 (C4 coordination audit): `emit_audit_record` as the seed specifies it, emitting
through Sealog's Python client instead of inserting into a table.

- It never blocks coordination and never raises (C4 AC-A6): a failed write is retried once
  after 100 ms, then kept in the dead-letter spool and replayed later; failures are counted
  as `coordination_audit_failures`, with an alert over a 1% failure rate (seed 004 §8).
- It respects `emit_traces` (C4 AC-A5, L-007): in replay mode nothing is emitted.
- The seed's emitter sets a random `uuid4` audit id, which would make a replayed decision a
  second record. Here the id is derived from the decision's content, and the timestamp is the
  decision's own, so the same decision always gives the same event: re-emitting it is answered
  `duplicate`, never appended twice.

Run against a server:  SEALOG_URL=http://127.0.0.1:7700 SEALOG_KEY=… python3 examples/c4_coordination_audit.py
"""

import os
from dataclasses import dataclass
from typing import Optional

import sealog

NAMESPACE = "c4-coordination-audit"


@dataclass
class Envelope:
    id: str
    envelope_class: str  # SAFETY | RELIABILITY | COST | PERFORMANCE
    tenant_id: Optional[str] = None


@dataclass
class CoordinationDecision:
    decision_type: str  # APPLIED | REJECTED | PREEMPTED
    reason: str
    timestamp: str  # RFC 3339, when the decision was taken
    conflicting_id: Optional[str] = None
    preempting_id: Optional[str] = None


def audit_event(envelope, decision, active_count):
    """The coordination pack's event for one decision: seed 004's columns under `data`."""
    data = {
        "envelope_id": envelope.id,
        "envelope_class": envelope.envelope_class,
        "decision": decision.decision_type,
        "reason": decision.reason,
        "decision_timestamp": decision.timestamp,
        "active_envelopes_count": active_count,
    }
    if decision.conflicting_id is not None:
        data["conflicting_envelope_id"] = decision.conflicting_id
    if decision.preempting_id is not None:
        data["preempting_envelope_id"] = decision.preempting_id
    if envelope.tenant_id is not None:
        data["tenant_id"] = envelope.tenant_id
    event = {
        "specversion": "1.0",
        "source": "c4-coordinator",
        "type": "coordination.decision",
        "time": decision.timestamp,
        "actor": {"type": "service", "id": "coordination-manager"},
        "data": data,
    }
    if envelope.tenant_id is not None:
        event["tenant"] = envelope.tenant_id
    event["id"] = sealog.content_id(NAMESPACE, event)
    return event


def emit_audit_record(emitter, envelope, decision, active_count, emit_traces=True):
    """Persists a coordination audit record without ever blocking or failing the decision."""
    if not emit_traces:
        return  # replay: no audit records (AC-A5)
    emitter.emit(audit_event(envelope, decision, active_count))


def audit_health(emitter):
    """Seed 004 §8's metric and alert."""
    s = emitter.stats()
    return {
        "coordination_audit_failures": s["failures"],
        "failure_rate": s["failure_rate"],
        "alert": s["failure_rate"] > 0.01,
    }


def main():
    emitter = sealog.Emitter(os.environ.get("SEALOG_URL", "http://127.0.0.1:7700"),
                             os.environ.get("SEALOG_KEY"),
                             spool_dir=os.environ.get("SEALOG_SPOOL", "c4-audit-spool"))
    decisions = [
        (Envelope("env-991", "SAFETY", "tenant-a"),
         CoordinationDecision("PREEMPTED", "higher-priority safety envelope",
                              "2025-12-28T14:00:00.250Z", preempting_id="env-990"), 3),
        (Envelope("env-992", "COST", "tenant-a"),
         CoordinationDecision("REJECTED", "same-parameter envelope already active",
                              "2025-12-28T14:00:01.010Z", conflicting_id="env-980"), 4),
        (Envelope("env-993", "PERFORMANCE", "tenant-a"),
         CoordinationDecision("APPLIED", "no conflict", "2025-12-28T14:00:02.000Z"), 4),
    ]
    for envelope, decision, active in decisions:
        emit_audit_record(emitter, envelope, decision, active)
    emitter.close(10.0)
    print(audit_health(emitter), emitter.stats())


if __name__ == "__main__":
    main()
