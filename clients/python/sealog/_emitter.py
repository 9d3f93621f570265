"""The emitter: ``emit()`` only enqueues; a background thread batches, sends, retries once
and spools; ``emit_durable()`` waits for the server. The same semantics as the Rust client:
the oldest unanswered event is always sent first, whether it waits in the spool or in the
queue, so a correction never overtakes its target."""

import collections
import json
import logging
import threading
import time

import requests

from ._errors import Closed, Rejected, Unavailable
from ._spool import Spool

log = logging.getLogger("sealog")

_COUNTERS = (
    "emitted", "sent", "acknowledged", "appended", "duplicates", "quarantined", "rejected",
    "retried", "spooled", "replayed", "skipped", "dropped", "durable_failed", "requests",
    "failures", "spool_damaged", "spool_pending",
)


class _Durable:
    __slots__ = ("event", "value")

    def __init__(self):
        self.event = threading.Event()
        self.value = None

    def fill(self, value):
        if not self.event.is_set():
            self.value = value
            self.event.set()


class _Transient(Exception):
    pass


class _TooLarge(Exception):
    pass


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _to_bytes(event):
    if isinstance(event, (bytes, bytearray)):
        data = bytes(event)
    elif isinstance(event, str):
        data = event.encode("utf-8")
    else:
        return _ENCODER.encode(event).encode("utf-8")
    # A raw newline can only be whitespace in JSON: the event travels as one NDJSON line.
    return data.replace(b"\n", b" ").replace(b"\r", b" ")


def _is_text(value):
    return isinstance(value, str)


def _is_seq(value):
    # bool is an int to Python, never a seq to the server.
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_error(value):
    return isinstance(value, dict) and _is_text(value.get("code")) and _is_text(value.get("message"))


# What each status carries that the emitter reads or hands to the caller (docs/clients.md,
# PRODUCT.md §4): an answer without it is no answer.
_RESULT_FIELDS = {
    "appended": {"seq": _is_seq, "record_id": _is_text},
    "duplicate": {"seq": _is_seq, "record_id": _is_text},
    "quarantined": {"quarantine_id": _is_text, "reason_code": _is_text},
    "rejected": {"error": _is_error},
}


def _is_result(result):
    if not isinstance(result, dict):
        return False
    status = result.get("status")
    fields = _RESULT_FIELDS.get(status) if _is_text(status) else None
    return fields is not None and all(ok(result.get(k)) for k, ok in fields.items())


def _results(parsed, count):
    """The answer's results when it has one well-formed result per event, else None: a body
    that a proxy or a broken server made up is a failed request, not a verdict on the events."""
    results = parsed.get("results") if isinstance(parsed, dict) else None
    if isinstance(results, list) and len(results) == count and all(map(_is_result, results)):
        return results
    return None


def _error_message(parsed):
    err = parsed.get("error") if isinstance(parsed, dict) else None
    message = err.get("message") if isinstance(err, dict) else None
    return message if isinstance(message, str) else ""


def _ack(result):
    status = result.get("status")
    if status in ("appended", "duplicate", "quarantined"):
        return result
    err = result.get("error") or {}
    return Rejected(err.get("code", ""), err.get("message", str(result)))


class Emitter:
    """Emits events to a Sealog server without ever blocking or failing its caller.

    ``emit`` puts the event in a bounded queue (or, when the queue is full, in the spool) and
    returns. A background thread sends batches; a failed request (no answer, 408, 429, 5xx,
    a refused key) is retried once after ``retry_delay``, then its events go to the spool in
    ``spool_dir``, which is replayed in emission order, before any newer event, once the
    server answers again. Ingest is idempotent: an event sent twice is answered duplicate.
    """

    def __init__(self, url, key=None, spool_dir="sealog-spool", emit_traces=True,
                 queue_capacity=10_000, batch_max_events=1_000, batch_max_bytes=4 << 20,
                 linger=0.005, retry_delay=0.1, request_timeout=10.0, backoff_max=5.0,
                 spool_cap_bytes=1 << 30, spool_sync=True):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"{url!r}: the server's URL, http://host:port")
        self.url = url.rstrip("/")
        self.emit_traces = emit_traces
        self.queue_capacity = queue_capacity
        self.batch_max_events = max(1, batch_max_events)
        self.batch_max_bytes = batch_max_bytes
        self.linger = linger
        self.retry_delay = retry_delay
        self.request_timeout = request_timeout
        self.backoff_max = backoff_max
        self.spool_dir = spool_dir
        self._session = requests.Session()
        self._headers = {"Content-Type": "application/x-ndjson"}
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        self._spool = Spool(spool_dir, spool_cap_bytes, spool_sync)
        self._c = dict.fromkeys(_COUNTERS, 0)
        self._c["spool_pending"] = self._spool.pending
        self._c["spool_damaged"] = self._spool.damage_found
        self._spool.damage_found = 0
        self._count_lock = threading.Lock()
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._progress = threading.Condition(self._lock)
        self._spool_lock = threading.Lock()
        self._queue = collections.deque()
        self._next_n = self._spool.next_n
        self._flushing = 0
        self._closing = False
        self._settled_below = 0
        self._inflight = []
        self._inflight_from = None
        self._abandoned = False
        if self._spool.pending:
            log.info("replaying %d events from the audit spool %s", self._spool.pending, spool_dir)
        self._thread = threading.Thread(target=self._run, name="sealog-emitter", daemon=True)
        self._thread.start()

    # -- the caller's side --------------------------------------------------------------

    def _add(self, name, n=1):
        with self._count_lock:
            self._c[name] += n

    def emit(self, event):
        """Hands an event (a dict, or JSON text) to the sender and returns at once; never
        raises. In replay mode (``emit_traces=False``) it only counts the call."""
        if not self.emit_traces:
            self._add("skipped")
            return
        try:
            data = _to_bytes(event)
        except (TypeError, ValueError) as e:
            # Not JSON at all: nothing the server could take; counted and logged, not raised.
            self._add("rejected")
            log.error("an audit event that is not JSON was not emitted: %s", e)
            return
        self._add("emitted")
        with self._lock:
            n = self._next_n
            self._next_n += 1
            if len(self._queue) < self.queue_capacity and not self._closing:
                wake = not self._queue or (len(self._queue) + 1) % self.batch_max_events == 0
                self._queue.append((n, data, None))
                if wake:
                    self._work.notify()
                return
            # The queue is full (or closed): the spool keeps it, under the queue's lock so
            # spooled events stay in order.
            self._spool_items([(n, data)])
            self._work.notify()

    def emit_durable(self, event, timeout=None):
        """The fail-closed path: returns the server's durable answer for this event (a dict:
        status appended / duplicate / quarantined), or raises ``Unavailable`` (nothing was
        appended that the caller may count on; the event is not spooled), ``Rejected``,
        ``Closed`` or ``TimeoutError``. It is sent after everything emitted before it."""
        if not self.emit_traces:
            self._add("skipped")
            return {"status": "skipped"}
        data = _to_bytes(event)
        self._add("emitted")
        slot = _Durable()
        with self._lock:
            if self._closing:
                self._add("durable_failed")
                raise Closed("the emitter is closed")
            n = self._next_n
            self._next_n += 1
            self._queue.append((n, data, slot))
            self._work.notify()
        if not slot.event.wait(timeout):
            raise TimeoutError("no answer before the deadline")
        if isinstance(slot.value, Exception):
            raise slot.value
        return slot.value

    def flush(self, timeout=None):
        """Waits until every event emitted before this call has been answered by the server
        (True), or ``timeout`` seconds pass (False: the rest stays queued or spooled)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            target = self._next_n
            self._flushing += 1
            self._work.notify()
            try:
                while self._settled_below < target:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    self._progress.wait(left)
                return True
            finally:
                self._flushing -= 1

    def close(self, timeout=None):
        """Flushes for up to ``timeout`` seconds, then stops the sender: whatever is still
        unanswered stays in the spool for the next emitter on this directory. Returns the
        final stats."""
        start = time.monotonic()
        self.flush(timeout)
        with self._lock:
            self._closing = True
            self._work.notify_all()
        left = None if timeout is None else max(0.2, timeout - (time.monotonic() - start))
        self._thread.join(left if left is not None else self.request_timeout * 2 + 1)
        if self._thread.is_alive():
            # Stuck in a request: spool what it carries (a duplicate, if it lands, is harmless).
            with self._lock:
                self._abandoned = True
                rest = list(self._queue)
                self._queue.clear()
                keep = sorted(self._inflight + [(n, d) for n, d, s in rest if s is None])
                self._spool_items(keep)
                self._fail_durables(rest, Closed("the emitter is closed"))
            log.warning("the audit sender did not stop in time: its events were spooled")
        else:
            with self._spool_lock:
                self._spool.close()
        return self.stats()

    def stats(self):
        """The counters so far, and ``failure_rate`` (failed requests over requests)."""
        with self._count_lock:
            s = dict(self._c)
        s["failure_rate"] = s["failures"] / s["requests"] if s["requests"] else 0.0
        return s

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close(5.0)

    # -- the sender's side --------------------------------------------------------------

    def _spool_items(self, items):
        if not items:
            return
        with self._spool_lock:
            try:
                written = self._spool.append(items)
            except OSError as e:
                self._add("dropped", len(items))
                log.error("the audit spool could not be written: %d events dropped: %s", len(items), e)
                return
        self._add("spooled", written)
        self._add("spool_pending", written)
        lost = len(items) - written
        if lost:
            self._add("dropped", lost)
            log.error("the audit spool is full: %d events dropped", lost)

    def _spool_head(self):
        with self._spool_lock:
            return self._spool.head_n()

    def _settle_mark(self):
        low = self._next_n
        if self._queue:
            low = min(low, self._queue[0][0])
        if self._inflight_from is not None:
            low = min(low, self._inflight_from)
        h = self._spool_head()
        if h is not None:
            low = min(low, h)
        self._settled_below = low
        self._progress.notify_all()

    def _park(self, items):
        self._spool_items([(n, d) for n, d, s in items if s is None])

    def _fail_durables(self, items, err):
        for _, _, s in items:
            if s is not None:
                self._add("durable_failed")
                s.fill(err)

    def _run(self):
        first_backoff = max(self.retry_delay, 0.1) * 2
        backoff = first_backoff
        down_until = None
        while True:
            with self._lock:
                if self._abandoned:
                    return
                self._settle_mark()
                if self._closing:
                    rest = list(self._queue)
                    self._queue.clear()
                    self._park(rest)
                    self._fail_durables(rest, Closed("the emitter is closing"))
                    self._settle_mark()
                    return
                spool_head = self._spool_head()
                queue_head = self._queue[0][0] if self._queue else None
                durable_waiting = any(s is not None for _, _, s in self._queue)
                if down_until is not None and time.monotonic() < down_until and not durable_waiting:
                    if len(self._queue) >= self.batch_max_events or self._flushing:
                        rest = list(self._queue)
                        self._queue.clear()
                        self._park(rest)
                        self._settle_mark()
                    self._work.wait(max(0.0, down_until - time.monotonic()))
                    continue
                replay_first = spool_head is not None and (queue_head is None or spool_head < queue_head)
                if not replay_first:
                    if queue_head is None:
                        self._work.wait(1.0)
                        continue
                    if len(self._queue) < self.batch_max_events and not self._flushing and not durable_waiting:
                        self._work.wait(self.linger)
                        if self._closing or self._abandoned:
                            continue
                    items = self._take(spool_head)
                    self._inflight = [(n, d) for n, d, s in items if s is None]
                    self._inflight_from = items[0][0] if items else None
            if replay_first:
                failure = None
                try:
                    self._replay(queue_head)
                except _Transient as e:
                    log.warning("the audit server is away (%s); events wait in the spool", e)
                    failure = e
                except Exception as e:
                    # The frames are consumed only after their answers are counted: they are
                    # still in the spool, to be replayed again after the backoff.
                    failure = self._fault("replaying the spool", e)
                if failure is None:
                    down_until, backoff = None, first_backoff
                else:
                    down_until = time.monotonic() + backoff
                    backoff = min(backoff * 2, self.backoff_max)
                    with self._lock:
                        rest = list(self._queue)
                        self._queue.clear()
                        self._park(rest)
                        self._fail_durables(rest, Unavailable(str(failure)))
                        self._settle_mark()
                continue
            try:
                results = self._deliver([(n, d) for n, d, _ in items], retry=True)
                failure = None
            except _Transient as e:
                results, failure = None, e
            except Exception as e:
                results, failure = None, self._fault("sending", e)
            with self._lock:
                self._inflight = []
                self._inflight_from = None
                if results is not None:
                    settled, failure = self._settle(items, results)
                    items = items[settled:]
                if self._abandoned:
                    # close() spooled what was in flight: only durable callers still wait.
                    if failure is not None:
                        self._fail_durables(items, Unavailable(str(failure)))
                    return
                if failure is None:
                    down_until, backoff = None, first_backoff
                else:
                    log.warning("%d audit events could not be sent (%s); spooled", len(items), failure)
                    down_until = time.monotonic() + backoff
                    backoff = min(backoff * 2, self.backoff_max)
                    self._park(items)
                    self._fail_durables(items, Unavailable(str(failure)))
                self._settle_mark()

    def _take(self, spool_head):
        out, size = [], 0
        while self._queue:
            n, d, s = self._queue[0]
            if len(out) >= self.batch_max_events or (spool_head is not None and n >= spool_head) \
                    or (out and size + len(d) > self.batch_max_bytes):
                break
            size += len(d) + 1
            out.append(self._queue.popleft())
        return out

    def _count(self, result, replayed):
        a = _ack(result)
        if replayed:
            self._add("replayed")
        if isinstance(a, Exception):
            self._add("rejected")
            log.error("the audit server refused an event: %s", a)
            return a
        self._add("acknowledged")
        status = a["status"]
        if status == "appended":
            self._add("appended")
        elif status == "duplicate":
            self._add("duplicates")
        else:
            self._add("quarantined")
            log.warning("an audit event was quarantined: %s", a.get("reason_code"))
        return a

    def _settle(self, items, results):
        """Returns how many of ``items`` were settled, and the fault that stopped it short (the
        rest were not: they are the caller's to keep), or None."""
        for i, ((_, _, slot), r) in enumerate(zip(items, results)):
            try:
                a = self._count(r, False)
            except Exception as e:
                return i, self._fault("reading the server's answer", e)
            if slot is not None:
                if isinstance(a, Exception):
                    self._add("durable_failed")
                slot.fill(a)
        return len(items), None

    def _fault(self, doing, e):
        """A fault of this client's own, not the server's: counted and logged as a failure and
        handled like one, so that the sender lives on and no event is lost to it."""
        self._add("failures")
        log.error("the audit sender failed while %s: %r", doing, e, exc_info=e)
        return _Transient(f"{doing}: {e!r}")

    def _replay(self, below):
        with self._spool_lock:
            frames = self._spool.read_batch(below, self.batch_max_events, self.batch_max_bytes)
            self._report_damage()
        if not frames:
            return
        results = self._deliver([(n, p) for n, p, _, _ in frames], retry=False)
        for r in results:
            self._count(r, True)
        with self._count_lock:
            self._c["spool_pending"] = max(0, self._c["spool_pending"] - len(frames))
        with self._spool_lock:
            try:
                self._spool.consume(frames)
            except OSError as e:
                log.warning("the spool's cursor could not be written (%s); events may be sent again", e)
            self._report_damage()

    def _report_damage(self):
        if self._spool.damage_found:
            self._add("spool_damaged", self._spool.damage_found)
            log.error("%d damaged regions of the audit spool %s were skipped", self._spool.damage_found, self.spool_dir)
            self._spool.damage_found = 0

    def _deliver(self, events, retry):
        try:
            return self._post(events)
        except _TooLarge:
            return self._split(events, retry)
        except _Transient as first:
            if not retry:
                raise
            time.sleep(self.retry_delay)
            self._add("retried", len(events))
            try:
                return self._post(events)
            except _TooLarge:
                return self._split(events, False)
            except _Transient as again:
                raise _Transient(f"{first}; then, retried: {again}")

    def _split(self, events, retry):
        if len(events) == 1:
            return [{"status": "rejected", "error": {"code": "TOO_LARGE",
                                                     "message": "the event alone is over the server's body limit"}}]
        half = len(events) // 2
        return self._deliver(events[:half], retry) + self._deliver(events[half:], retry)

    def _post(self, events):
        body = b"".join(d + b"\n" for _, d in events)
        self._add("requests")
        self._add("sent", len(events))
        try:
            r = self._session.post(self.url + "/v1/events", data=body, headers=self._headers,
                                   timeout=self.request_timeout)
        except requests.RequestException as e:
            self._add("failures")
            raise _Transient(f"no answer: {e}")
        try:
            parsed = r.json()
        except ValueError:
            parsed = None
        results = _results(parsed, len(events))
        if results is not None and r.status_code in (200, 403, 413, 422):
            return results
        if r.status_code == 413:
            raise _TooLarge()
        message = _error_message(parsed)
        if r.status_code == 200:
            message = message or "not one well-formed result per event"
        if r.status_code in (401, 403):
            log.error("the audit server refuses this emitter's key (%d): %s", r.status_code, message)
        self._add("failures")
        raise _Transient(f"the server answered {r.status_code}: {message}")
