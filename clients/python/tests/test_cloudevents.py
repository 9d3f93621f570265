"""The CNCF CloudEvents Python SDK against the real server, in every HTTP mode: structured
(`application/cloudevents+json`), binary (`ce-*` headers, the body is the data) and batched
(`application/cloudevents-batch+json`, each event as the SDK writes it). The same event in
any mode is the same record: the first send appends it, every other answers `duplicate`
with its seq and record id, exactly as posting it as plain JSON does. Binary data goes as
`data_base64` (structured) or raw bytes (binary mode) and is stored once."""

import datetime
import json
import urllib.request

from cloudevents.core.bindings import http as ce_http
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent


TIME = datetime.datetime(2026, 1, 3, 12, 34, 56, 123000, tzinfo=datetime.timezone.utc)


def post(url, body, headers):
    req = urllib.request.Request(url + "/v1/events", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def sdk_event(i, data, content_type="application/json"):
    return CloudEvent(
        attributes={"type": "test.sdk", "source": "test", "id": f"ce-{i}", "subject": f"s-{i}",
                    "time": TIME, "datacontenttype": content_type},
        data=data,
    )


def structured(e):
    m = ce_http.to_structured_event(e)
    return m.body, dict(m.headers)


def binary(e):
    m = ce_http.to_binary_event(e)
    return m.body, dict(m.headers)


def batch(events):
    body = b"[" + b",".join(JSONFormat().write(e) for e in events) + b"]"
    return body, {"content-type": "application/cloudevents-batch+json"}


def results(answer):
    status, body = answer
    assert status == 200, body
    return [(r["status"], r.get("seq"), r.get("record_id")) for r in body["results"]]


def test_every_mode_of_the_sdk_gives_the_same_record(sl):
    server = sl.serve()
    try:
        e = sdk_event(1, {"n": "1", "nested": {"ok": True}})
        first = results(post(server.url, *structured(e)))
        assert first[0][0] == "appended", first
        seq, rid = first[0][1], first[0][2]
        same = ("duplicate", seq, rid)
        assert results(post(server.url, *binary(e))) == [same]
        assert results(post(server.url, *batch([e]))) == [same]
        plain = json.loads(JSONFormat().write(e))
        assert results(post(server.url, json.dumps(plain).encode(),
                            {"content-type": "application/json"})) == [same]

        # A batch of new events and one already sent: one result each, in order.
        others = [sdk_event(i, {"n": str(i)}) for i in range(2, 5)]
        got = results(post(server.url, *batch(others + [e])))
        assert [g[0] for g in got] == ["appended"] * 3 + ["duplicate"], got
        assert got[3] == same
        for o, g in zip(others, got):
            assert results(post(server.url, *binary(o))) == [("duplicate", g[1], g[2])]
    finally:
        server.stop()
    records = {r["id"]: r for r in sl.records()}
    assert set(records) == {"ce-1", "ce-2", "ce-3", "ce-4"}
    assert records["ce-1"]["data"] == {"n": "1", "nested": {"ok": True}}


def test_binary_data_is_one_record_as_data_base64_or_raw_bytes(sl):
    server = sl.serve()
    try:
        raw = bytes(range(256))
        e = sdk_event(9, raw, "application/octet-stream")
        body, headers = structured(e)
        assert "data_base64" in json.loads(body)
        first = results(post(server.url, body, headers))
        assert first[0][0] == "appended", first
        body, headers = binary(e)
        assert body == raw
        assert results(post(server.url, body, headers)) == [("duplicate", first[0][1], first[0][2])]
    finally:
        server.stop()
    [r] = [r for r in sl.records() if r["id"] == "ce-9"]
    assert r["datacontenttype"] == "application/octet-stream"
    assert "data_base64" in r or "data" in r, r
