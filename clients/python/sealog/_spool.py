"""The dead-letter spool, in the same format as the Rust client's (docs/clients.md, "The
spool"): files ``spool-<first n>.sls`` of checksummed frames, each event with its emission
number ``n``; replay merges the files by ``n``; ``cursor`` remembers what was replayed;
``LOCK`` keeps a second emitter out."""

import fcntl
import hashlib
import os
import struct
import time

MAGIC = b"SLS1"
HEADER = 24
PAYLOAD_MAX = 16 << 20
ROTATE = 16 << 20


def checksum(n, payload):
    return hashlib.sha256(struct.pack("<QI", n, len(payload)) + payload).digest()[:8]


def frame(n, payload):
    return MAGIC + struct.pack("<QI", n, len(payload)) + checksum(n, payload) + payload


class _File:
    def __init__(self, path, first, read_at):
        self.path = path
        self.first = first
        self.fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        self.size = os.fstat(self.fd).st_size
        self.read_at = min(read_at, self.size)
        self.last_n = first
        self.skips = {}

    def frame_at(self, at):
        if at + HEADER > self.size:
            return None
        h = os.pread(self.fd, HEADER, at)
        if len(h) != HEADER or h[:4] != MAGIC:
            return None
        n, length = struct.unpack("<QI", h[4:16])
        if length > PAYLOAD_MAX or at + HEADER + length > self.size:
            return None
        payload = os.pread(self.fd, length, at + HEADER)
        if len(payload) != length or checksum(n, payload) != h[16:24]:
            return None
        return n, payload, at + HEADER + length

    def read(self, at):
        """(kind, value, damaged): ('frame', (n, payload, end)), ('skip', next) or ('end', None)."""
        if at >= self.size:
            return "end", None, False
        if at in self.skips:
            return "skip", self.skips[at], False
        f = self.frame_at(at)
        if f is not None:
            return "frame", f, False
        nxt = self.resync(at + 1)
        self.skips[at] = nxt
        return "skip", nxt, True

    def resync(self, start):
        pos = start
        while pos < self.size:
            chunk = os.pread(self.fd, min(64 << 10, self.size - pos), pos)
            if not chunk:
                break
            i = chunk.find(MAGIC)
            while i >= 0:
                if self.frame_at(pos + i) is not None:
                    return pos + i
                i = chunk.find(MAGIC, i + 1)
            pos += max(1, len(chunk) - (len(MAGIC) - 1))
        return self.size


# How long opening a spool waits for its lock before calling it taken. The lock belongs to an
# open file, and a child process forked by any thread of this program holds a copy of every
# descriptor until it execs: a spool closed a moment ago can still look taken.
LOCK_WAIT = 2.0


def _lock_within(fd, wait):
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)


class Spool:
    def __init__(self, directory, cap, sync):
        # The events wait here as sent, personal values in clear: the owner's alone.
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self.dir = directory
        self.cap = cap
        self.sync = sync
        self.damage_found = 0
        self.closed = False
        self._lock = os.open(os.path.join(directory, "LOCK"), os.O_RDWR | os.O_CREAT, 0o600)
        if not _lock_within(self._lock, LOCK_WAIT):
            os.close(self._lock)
            raise OSError(f"the spool {directory} is in use by another emitter")
        cursor = {}
        try:
            with open(os.path.join(directory, "cursor")) as f:
                for line in f:
                    a, _, b = line.strip().partition(" ")
                    if a.isdigit() and b.isdigit():
                        cursor[int(a)] = int(b)
        except FileNotFoundError:
            pass
        self.files = {}
        for name in os.listdir(directory):
            if name.startswith("spool-") and name.endswith(".sls") and name[6:-4].isdigit():
                first = int(name[6:-4])
                self.files[first] = _File(os.path.join(directory, name), first, cursor.get(first, 0))
        self.tail = None
        self.bytes = sum(f.size for f in self.files.values())
        self.next_n = 0
        self.pending = 0
        for first in sorted(self.files):
            f = self.files[first]
            self.next_n = max(self.next_n, first + 1)
            at = 0
            while True:
                kind, value, damaged = f.read(at)
                if damaged and at >= f.read_at:
                    self.damage_found += 1
                if kind == "frame":
                    n, _, end = value
                    f.last_n = max(f.last_n, n)
                    self.next_n = max(self.next_n, n + 1)
                    if at >= f.read_at:
                        self.pending += 1
                    at = end
                elif kind == "skip":
                    at = value
                else:
                    break
        self._drop_consumed()

    def close(self):
        self.closed = True
        for f in self.files.values():
            os.close(f.fd)
        self.files = {}
        os.close(self._lock)

    def append(self, items):
        """Appends (n, payload) pairs in increasing n; returns how many fit under the cap."""
        if self.closed:
            raise OSError("the spool is closed")
        written = 0
        touched = set()
        created = False
        for n, payload in items:
            data = frame(n, payload)
            if self.bytes + len(data) > self.cap:
                continue
            t = self.files.get(self.tail) if self.tail is not None else None
            if t is None or n <= t.last_n or t.size >= ROTATE:
                t = _File(os.path.join(self.dir, "spool-%020d.sls" % n), n, 0)
                self.files[n] = t
                self.tail = n
                created = True
            os.write(t.fd, data)
            t.size += len(data)
            t.last_n = n
            self.bytes += len(data)
            written += 1
            touched.add(t)
        if self.sync:
            for t in touched:
                os.fdatasync(t.fd)
            if created:
                d = os.open(self.dir, os.O_RDONLY)
                try:
                    os.fsync(d)
                finally:
                    os.close(d)
        return written

    def _frame_from(self, first, at):
        """The first good frame of a file at or after ``at``: (n, payload, end), or None.
        Damage on the way is stepped over (counted once); damage with nothing unreplayed
        before it is passed for good."""
        f = self.files[first]
        while True:
            kind, value, damaged = f.read(at)
            if damaged:
                self.damage_found += 1
            if kind == "skip":
                if f.read_at == at:
                    f.read_at = value
                at = value
            elif kind == "frame":
                return value
            else:
                return None

    def head_n(self):
        self._drop_consumed()
        heads = [self._frame_from(k, f.read_at) for k, f in list(self.files.items())]
        return min((h[0] for h in heads if h is not None), default=None)

    def read_batch(self, below, max_events, max_bytes):
        """The oldest events with n below ``below``: a list of (n, payload, file, end); the
        files' next frames merged, each file read again only when its frame was taken."""
        heads = {}
        for k, f in list(self.files.items()):
            h = self._frame_from(k, f.read_at)
            if h is not None:
                heads[k] = h
        out = []
        size = 0
        while len(out) < max_events and heads:
            first = min(heads, key=lambda k: heads[k][0])
            n, payload, end = heads.pop(first)
            if (below is not None and n >= below) or (out and size + len(payload) > max_bytes):
                break
            size += len(payload) + 1
            nxt = self._frame_from(first, end)
            if nxt is not None:
                heads[first] = nxt
            out.append((n, payload, first, end))
        return out

    def consume(self, frames):
        for _, _, first, end in frames:
            f = self.files.get(first)
            if f is not None:
                f.read_at = max(f.read_at, end)
        for f in self.files.values():
            while f.read_at in f.skips:
                f.read_at = f.skips[f.read_at]
        self._drop_consumed()
        tmp = os.path.join(self.dir, "cursor.tmp")
        with open(tmp, "w") as out:
            for first, f in sorted(self.files.items()):
                out.write(f"{first} {f.read_at}\n")
        os.replace(tmp, os.path.join(self.dir, "cursor"))

    def _drop_consumed(self):
        for first in [k for k, f in self.files.items() if f.read_at >= f.size]:
            f = self.files.pop(first)
            self.bytes -= f.size
            os.close(f.fd)
            try:
                os.unlink(f.path)
            except FileNotFoundError:
                pass
            if self.tail == first:
                self.tail = None
