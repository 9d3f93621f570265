"""Seed 000 (customer-comms, CM-2.5): the conversation-to-customer linking flow emitting its
audit trail through Sealog's Python client.

"Failure to record an audit event must not block ingestion or UI" (§2) and "audit failures
never block core flows" (§9): every `link` / `relink` / `unlink` returns at once whatever the
audit server does; events the server could not take wait in the spool and are replayed in
order, so a relink never arrives before the link it corrects. Linking decisions whose audit
record must exist before the UI confirms them can use `emit_durable` instead.

Run against a server:  SEALOG_URL=http://127.0.0.1:7700 SEALOG_KEY=… python3 examples/cm25_linking_flow.py
"""

import os

import sealog

NAMESPACE = "cm25-linking"


class LinkingAudit:
    def __init__(self, emitter, instructor_id, channel="whatsapp"):
        self.emitter = emitter
        self.instructor_id = instructor_id
        self.channel = channel

    def _event(self, kind, conversation_id, at, actor, data, reason=None):
        event = {
            "specversion": "1.0",
            "source": "crm-linker",
            "type": f"conversation.{kind}",
            "time": at,
            "tenant": self.instructor_id,
            "subject": conversation_id,
            "actor": actor,
            "data": dict({"conversation_id": conversation_id, "instructor_id": self.instructor_id,
                          "context": {"channel": self.channel}}, **data),
        }
        if reason is not None:
            event["reason"] = reason
        event["id"] = sealog.content_id(NAMESPACE, event)
        return event

    def resolved(self, conversation_id, customer_id, rule, at):
        """The system matched a customer (CM-2.1)."""
        e = self._event("customer_resolved", conversation_id, at, {"type": "system"},
                        {"new_customer_id": customer_id})
        e["data"]["context"]["rule"] = rule
        e["id"] = sealog.content_id(NAMESPACE, e)
        self.emitter.emit(e)

    def link(self, conversation_id, customer_id, at):
        """The instructor confirms the link."""
        self.emitter.emit(self._event("customer_linked", conversation_id, at,
                                      {"type": "human", "id": self.instructor_id},
                                      {"new_customer_id": customer_id}))

    def relink(self, conversation_id, previous_customer_id, customer_id, reason, at):
        """An explicit, traceable overwrite (§8): the previous link is named."""
        self.emitter.emit(self._event("customer_relinked", conversation_id, at,
                                      {"type": "human", "id": self.instructor_id},
                                      {"previous_customer_id": previous_customer_id,
                                       "new_customer_id": customer_id}, reason=reason))

    def unlink(self, conversation_id, previous_customer_id, reason, at):
        self.emitter.emit(self._event("customer_unlinked", conversation_id, at,
                                      {"type": "human", "id": self.instructor_id},
                                      {"previous_customer_id": previous_customer_id}, reason=reason))


def run_flow(audit):
    """One conversation's linking history."""
    audit.resolved("conv-881", "cust-17", "CM-2.1 exact phone match", "2026-02-01T09:00:00Z")
    audit.link("conv-881", "cust-17", "2026-02-01T09:00:05Z")
    audit.relink("conv-881", "cust-17", "cust-23", "Customer used a second phone number", "2026-02-02T10:15:00Z")
    audit.unlink("conv-881", "cust-23", "Wrong customer", "2026-02-03T08:00:00Z")


def main():
    emitter = sealog.Emitter(os.environ.get("SEALOG_URL", "http://127.0.0.1:7700"),
                             os.environ.get("SEALOG_KEY"),
                             spool_dir=os.environ.get("SEALOG_SPOOL", "cm25-audit-spool"))
    run_flow(LinkingAudit(emitter, "instructor-42"))
    emitter.close(10.0)
    print(emitter.stats())


if __name__ == "__main__":
    main()
