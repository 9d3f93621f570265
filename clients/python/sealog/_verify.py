"""Client-side verification, written here from the specifications (RFC 9162 for the tree and
its proofs, C2SP signed-note and tlog-checkpoint for the signed heads), so that it trusts
nothing of the server's but what it proves: the pinned verifier key and this client's own
memory of the last checkpoint it verified."""

import base64
import binascii
import hashlib
import json
import os

import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ._errors import InconsistentLog, SealogError, VerificationError
from ._ids import canonical_json

SERVER_FIELDS = ("ingested_at", "record_id", "seq")


def leaf_hash(data):
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(leaf, index, size, root, proof):
    """RFC 9162 §2.1.3.2: ``proof`` shows ``leaf`` at ``index`` in the tree of ``size``
    leaves whose root is ``root``."""
    if index >= size:
        raise VerificationError(f"leaf {index} is not in a tree of {size}")
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            raise VerificationError("the inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0 or r != root:
        raise VerificationError(f"leaf {index} is not in the tree of {size} with that root")


def verify_consistency(old, new, old_root, new_root, proof):
    """RFC 9162 §2.1.4.2: ``proof`` shows the tree of ``old`` leaves to be a prefix of the
    tree of ``new`` leaves."""
    if old > new:
        raise InconsistentLog(f"the tree shrank from {old} to {new}")
    if old == new:
        if proof or old_root != new_root:
            raise InconsistentLog(f"two trees of size {old} with different roots")
        return
    if old == 0:
        return
    if not proof:
        raise InconsistentLog("an empty consistency proof")
    path = list(proof)
    if old & (old - 1) == 0:  # old is a power of two: its root starts the path
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise InconsistentLog("the consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0 or fr != old_root or sr != new_root:
        raise InconsistentLog(f"the tree of size {new} does not extend the verified tree of size {old}")


class _Verifier:
    """A C2SP note verifier key: ``<name>+<hex key id>+<base64(0x01 || Ed25519 key)>``."""

    def __init__(self, vkey):
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3:
            raise ValueError("a verifier key is name+keyid+key")
        self.name, key_id, material = parts
        raw = base64.b64decode(material, validate=True)
        if len(raw) != 33 or raw[0] != 0x01:
            raise ValueError("only Ed25519 verifier keys are supported")
        self.key = Ed25519PublicKey.from_public_bytes(raw[1:])
        self.key_id = bytes.fromhex(key_id)
        computed = hashlib.sha256(self.name.encode() + b"\n" + raw).digest()[:4]
        if computed != self.key_id:
            raise ValueError("the key id does not match the key")

    def open(self, note):
        """The note's text, once a signature by this key checks."""
        if not note.endswith("\n"):
            raise VerificationError("the note does not end in a newline")
        split = note.rfind("\n\n")
        if split < 0:
            raise VerificationError("the note has no signatures")
        text = note[: split + 1]
        for line in note[split + 2 : -1].split("\n"):
            if not line.startswith("\u2014 "):
                raise VerificationError("a malformed signature line")
            name, _, b64 = line[2:].partition(" ")
            try:
                blob = base64.b64decode(b64, validate=True)
            except binascii.Error:
                raise VerificationError("a signature that is not base64")
            if name != self.name or blob[:4] != self.key_id:
                continue  # another key's signature (a witness's): not ours to check
            try:
                self.key.verify(blob[4:], text.encode())
            except InvalidSignature:
                raise VerificationError(f"the signature by {name} does not verify")
            return text
        raise VerificationError("the note is not signed by the pinned key")


def _checkpoint(text):
    lines = text[:-1].split("\n")
    if len(lines) < 3 or not lines[1].isdigit():
        raise VerificationError("a malformed checkpoint body")
    root = base64.b64decode(lines[2], validate=True)
    if len(root) != 32:
        raise VerificationError("a checkpoint root that is not 32 bytes")
    return int(lines[1]), root


class Trusted:
    """A checkpoint this client verified: signed by the pinned key and consistent with every
    checkpoint it verified before."""

    def __init__(self, size, root, note):
        self.size, self.root, self.note = size, root, note

    def __eq__(self, other):
        return isinstance(other, Trusted) and (self.size, self.root) == (other.size, other.root)

    def __repr__(self):
        return f"Trusted(size={self.size}, root={base64.b64encode(self.root).decode()})"


class LogVerifier:
    """Follows one log's checkpoints. ``verifier_key`` is pinned; with ``state_path`` the
    last verified checkpoint survives restarts (checked with the key when read back)."""

    def __init__(self, url, key, verifier_key, state_path=None, timeout=30.0):
        self.url = url.rstrip("/")
        self._verifier = _Verifier(verifier_key)
        self._session = requests.Session()
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._timeout = timeout
        self._state = state_path
        self._last = None
        if state_path and os.path.exists(state_path):
            with open(state_path, encoding="utf-8") as f:
                note = f.read()
            size, root = _checkpoint(self._verifier.open(note))
            self._last = Trusted(size, root, note)

    def _get(self, path):
        r = self._session.get(self.url + path, headers=self._headers, timeout=self._timeout)
        if r.status_code != 200:
            try:
                message = r.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = r.text
            raise SealogError(f"GET {path}: the server answered {r.status_code}: {message}")
        return r

    @property
    def trusted(self):
        return self._last

    def refresh(self):
        """Fetches the server's checkpoint, checks its signature, and proves it an extension
        of the last one verified; remembers it. Raises ``InconsistentLog`` otherwise."""
        return self.accept(self._get("/checkpoint").text)

    def accept(self, note):
        """Checks a checkpoint note obtained elsewhere (another client's, a witness's) against
        the last one verified, and remembers it when it is newer."""
        size, root = _checkpoint(self._verifier.open(note))
        old = self._last
        if old is not None:
            if size < old.size:
                self._prove(size, root, old.size, old.root)
                return old
            if size == old.size:
                if root != old.root:
                    raise InconsistentLog(f"two signed trees of size {size} with different roots")
                return old
            self._prove(old.size, old.root, size, root)
        t = Trusted(size, root, note)
        if self._state:
            tmp = self._state + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(note)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._state)
        self._last = t
        return t

    def _prove(self, old, old_root, new, new_root):
        if old == 0:
            return
        a = self._get(f"/v1/proofs/consistency?from={old}&to={new}").json()
        verify_consistency(old, new, old_root, new_root, [base64.b64decode(h) for h in a["hashes"]])

    def verify_inclusion(self, record_id):
        """Shows the record named ``record_id`` to be in the log: refreshes the checkpoint,
        fetches the record as stored with its inclusion proof, checks that the bytes are the
        record named (canonical form, ``record_id`` the hash of its event) and that they hash
        to a leaf of the verified tree. Returns the record (a dict)."""
        t = self.refresh()
        a = self._get(f"/v1/proofs/inclusion?record_id={requests.utils.quote(record_id, safe='')}&size={t.size}").json()
        raw = base64.b64decode(a.get("record") or "")
        record = json.loads(raw)
        if canonical_json(record) != raw:
            raise VerificationError("the record served is not in canonical form")
        event = {k: v for k, v in record.items() if k not in SERVER_FIELDS}
        computed = "sha256:" + hashlib.sha256(canonical_json(event)).hexdigest()
        if record.get("record_id") != record_id or computed != record_id:
            raise VerificationError(f"asked for {record_id}, served {record.get('record_id')} (content {computed})")
        if record.get("seq") != a["leaf_index"] or a["tree_size"] != t.size:
            raise VerificationError("the proof is not for this record in the verified tree")
        proof = [base64.b64decode(h) for h in a["hashes"]]
        verify_inclusion(leaf_hash(raw), record["seq"], t.size, t.root, proof)
        return record
