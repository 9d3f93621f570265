"""Sealog's Python client.

- ``Emitter``: ``emit()`` never blocks and never raises (a bounded queue, batches sent by
  a background thread, one retry after 100 ms, then a dead-letter spool on disk that is
  replayed in emission order once the server answers again); ``emit_traces=False`` makes
  it a counted no-op (replay mode); ``emit_durable()`` is the fail-closed path.
- ``LogVerifier``: keeps the last checkpoint it verified and checks every newer one against
  it with a consistency proof (RFC 9162), so a server that rewrites history, or shows
  different clients different logs, is caught; checks records against it.
- ``content_id()``: an event id derived from the content, so a replayed run's events are
  duplicates, not new records (the same id the Rust client computes).
"""

from ._errors import (
    SealogError,
    Unavailable,
    Rejected,
    Closed,
    VerificationError,
    InconsistentLog,
)
from ._ids import content_id, canonical_json
from ._emitter import Emitter
from ._verify import LogVerifier, Trusted, verify_inclusion, verify_consistency

__all__ = [
    "Emitter",
    "LogVerifier",
    "Trusted",
    "content_id",
    "canonical_json",
    "verify_inclusion",
    "verify_consistency",
    "SealogError",
    "Unavailable",
    "Rejected",
    "Closed",
    "VerificationError",
    "InconsistentLog",
]
