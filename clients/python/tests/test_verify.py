"""RFC 9162 verification written in Python, checked against the real server's proofs and
against a server that forks its log; the content ids agree with the Rust client's."""

import shutil
import subprocess

import pytest
import requests

import sealog
from conftest import BIN, Sealog, event
from sealog._verify import leaf_hash, node_hash, verify_consistency, verify_inclusion


def tree_root(leaves):
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(tree_root(leaves[:k]), tree_root(leaves[k:]))


def test_proofs_from_the_server_check_and_mutations_fail(sl):
    import base64
    sl.run("append", "-", stdin=b"\n".join(
        __import__("json").dumps(event(i)).encode() for i in range(13)))
    server = sl.serve()
    get = lambda p: requests.get(server.url + p).json()
    size = int(requests.get(server.url + "/checkpoint").text.split("\n")[1])
    for old in range(1, size + 1):
        a = get(f"/v1/proofs/consistency?from={old}&to={size}")
        hashes = [base64.b64decode(h) for h in a["hashes"]]
        o, n = base64.b64decode(a["from_root"]), base64.b64decode(a["to_root"])
        verify_consistency(old, size, o, n, hashes)
        if hashes:
            bad = list(hashes)
            bad[0] = bytes(32)
            with pytest.raises(sealog.InconsistentLog):
                verify_consistency(old, size, o, n, bad)
    for seq in range(size):
        a = get(f"/v1/proofs/inclusion?seq={seq}&size={size}")
        hashes = [base64.b64decode(h) for h in a["hashes"]]
        leaf, root = base64.b64decode(a["leaf_hash"]), base64.b64decode(a["root"])
        verify_inclusion(leaf, seq, size, root, hashes)
        for i in range(len(hashes)):
            bad = list(hashes)
            bad[i] = bytes(32)
            with pytest.raises(sealog.VerificationError):
                verify_inclusion(leaf, seq, size, root, bad)
        with pytest.raises(sealog.VerificationError):
            verify_inclusion(leaf, seq, size, root, hashes + [bytes(32)])
        with pytest.raises(sealog.VerificationError):
            verify_inclusion(leaf_hash(b"other"), seq, size, root, hashes)
    server.stop()


def test_a_server_that_forks_its_log_is_caught(tmp_path):
    a = Sealog(tmp_path / "a")
    key = a.writer_key()
    import json
    nd = lambda tag, n: b"\n".join(json.dumps(event(f"{tag}-{i}")).encode() for i in range(n))
    a.run("append", "-", stdin=nd("common", 5))
    shutil.copytree(a.data, str(tmp_path / "b"), symlinks=True)
    b = Sealog(tmp_path / "b")
    a.run("append", "-", stdin=nd("a", 3))
    b.run("append", "-", stdin=nd("b", 3))
    sa, sb = a.serve(), b.serve()
    h = {"Authorization": f"Bearer {key}"}
    vkey = requests.get(sa.url + "/checkpoint/key", headers=h).text
    assert vkey == requests.get(sb.url + "/checkpoint/key", headers=h).text
    state = str(tmp_path / "trusted")
    va = sealog.LogVerifier(sa.url, key, vkey, state_path=state)
    trusted = va.refresh()
    with pytest.raises(sealog.InconsistentLog):
        va.accept(requests.get(sb.url + "/checkpoint", headers=h).text)
    sb.stop()
    b.run("append", "-", stdin=nd("b-more", 2))
    sb = b.serve()
    vb = sealog.LogVerifier(sb.url, key, vkey, state_path=state)
    assert vb.trusted == trusted
    with pytest.raises(sealog.InconsistentLog):
        vb.refresh()
    assert vb.trusted == trusted
    sa.stop()
    a.run("append", "-", stdin=nd("a-more", 2))
    sa = a.serve()
    assert sealog.LogVerifier(sa.url, key, vkey, state_path=state).refresh().size == trusted.size + 2
    sa.stop()
    sb.stop()


def test_a_forged_signature_is_refused(sl):
    server = sl.serve()
    key = requests.get(server.url + "/checkpoint/key").text
    note = requests.get(server.url + "/checkpoint").text
    lines = note.split("\n")
    lines[1] = str(int(lines[1]) + 1)
    forged = "\n".join(lines)
    v = sealog.LogVerifier(server.url, None, key)
    with pytest.raises(sealog.VerificationError):
        v.accept(forged)
    server.stop()


def test_canonical_json_follows_rfc_8785():
    # RFC 8785 §3.2.2.3 and Appendix B number forms, and §3.2.3 member order.
    cases = {0.0: "0", -0.0: "0", 1.0: "1", 1e21: "1e+21", 1e20: "100000000000000000000",
             1e-7: "1e-7", 0.000001: "0.000001", 123.456: "123.456", -1.5e-10: "-1.5e-10",
             5e-324: "5e-324", 1.7976931348623157e308: "1.7976931348623157e+308",
             333333333.33333329: "333333333.3333333", 4.5: "4.5", 2e-3: "0.002"}
    for x, want in cases.items():
        assert sealog.canonical_json(x) == want.encode(), x
    assert sealog.canonical_json({"\u20ac": 1, "\r": 2, "1": 3, "\U0001f600": 4, "\ufb33": 5}) == \
        '{"\\r":2,"1":3,"\u20ac":1,"\U0001f600":4,"\ufb33":5}'.encode()
    assert sealog.canonical_json("a\u001fb\"\\\n") == b'"a\\u001fb\\"\\\\\\n"'


def test_content_ids_agree_with_the_rust_client():
    # The same vector is pinned in crates/sealog-client/src/content_id.rs.
    e = {"type": "t", "data": {"n": 1.5, "s": "\u00e9"}, "id": "ignored"}
    assert sealog.content_id("sealog-test", e) == RUST_VECTOR
    assert sealog.content_id("sealog-test", dict(e, id="other")) == RUST_VECTOR
    assert sealog.content_id("other", e) != RUST_VECTOR


RUST_VECTOR = "83c21163-ce43-8694-95e8-04abcbb605e1"
