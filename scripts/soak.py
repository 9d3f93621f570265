#!/usr/bin/env python3
"""Soak of the real `sealog serve`: single-event appends at about half of its measured
capacity for a while, sampling the server's resident memory and open file descriptors.

    scripts/soak.py --bin target/release/sealog [--seconds 3600] [--burst-seconds 15]
                    [--clients 8] [--sample-seconds 5]

1. Starts `sealog --data DIR serve --listen 127.0.0.1:0` on a fresh data directory.
2. Capacity: `--clients` keep-alive connections append as fast as the server answers for
   `--burst-seconds`; capacity is the acknowledged appends per second of that burst (the
   capacity as this generator sees it: the generator shares the machine with the server).
3. Soak: the same clients append at half of that rate, paced, for `--seconds`, while the
   server's VmRSS (/proc/PID/status) and open descriptors (/proc/PID/fd) are sampled every
   `--sample-seconds`.
4. Stops the server with SIGTERM (it must exit 0), reads back with `sealog query` a sample
   of the acknowledged appends (1%, at most 50) and the one with the highest seq, each at its
   seq with its record id, and runs `sealog verify`.

The warm-up is the first tenth of the soak, or longer: until the store's in-memory table has
filled three times (memory rises until then: the table, the one being written out beside it,
and the allocator's pages settling). It compares the tenth after the warm-up (the baseline)
with the last: the lowest anonymous memory (RssAnon: the process's own, not the pages of files it
maps) in each, and the median of open descriptors other than the index's runs and the tree's
levels (one a file, O(log n) files by design); it fails when that memory grew more than 1.5x,
or those descriptors more than +16, or more than 8 compressed segments were ever open at
once, or in the last tenth a removed file was still open or a file open more than twice, or
any append was refused, or any check failed. A soak too short for a baseline after its
warm-up says so loudly and judges no growth.
Prints one `soak:` summary line; exit 0 on success, 1 on failure.
"""

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

RSS_GROWTH_MAX = 1.5
FD_GROWTH_MAX = 16
# Compressed segments a process keeps open at once (`sealog_store::handles::OPEN_MAX`).
SEGMENTS_OPEN_MAX = 8
# The store's in-memory table holds this many records before it is written out (the default
# of `memtable_records_max`); the warm-up lasts until it has filled WARMUP_FILLS times.
MEMTABLE_RECORDS = 131_072
WARMUP_FILLS = 3


def event(cid, i):
    return json.dumps(
        {
            "specversion": "1.0",
            "id": f"soak-{cid}-{i}",
            "source": "soak",
            "type": "soak.append",
            "time": "2026-12-02T12:00:00Z",
            "tenant": "t",
            "subject": f"s{i % 97}",
            "actor": {"type": "agent", "id": f"agent-{cid}"},
            "data": {"i": i, "note": "x" * 200},
        }
    ).encode()


class Client(threading.Thread):
    """Appends single events on one keep-alive connection, at `interval` seconds apart
    (0: as fast as answered), until `stop` is set."""

    def __init__(self, cid, addr, stop, interval=0.0, start_i=0):
        super().__init__(daemon=True)
        self.cid, self.addr, self.stop, self.interval = cid, addr, stop, interval
        self.i = start_i
        self.acked = 0
        self.failures = []
        # (seq, record_id) of a sample of the acknowledged appends.
        self.sample = []
        # The acknowledged append with the highest seq.
        self.last = (-1, None)
        self.rng = random.Random(cid)

    def run(self):
        host, port = self.addr.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        next_at = time.monotonic()
        while not self.stop.is_set():
            if self.interval:
                now = time.monotonic()
                if next_at > now:
                    # Pacing the load, not waiting for anything.
                    time.sleep(next_at - now)
                next_at = max(next_at + self.interval, time.monotonic() - 1.0)
            body = event(self.cid, self.i)
            self.i += 1
            try:
                conn.request(
                    "POST", "/v1/events", body, {"Content-Type": "application/json"}
                )
                r = conn.getresponse()
                data = r.read()
            except (OSError, http.client.HTTPException) as e:
                if self.stop.is_set():
                    return
                self.failures.append(f"request: {e!r}")
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=60)
                continue
            if r.status != 200:
                self.failures.append(f"{r.status} {data[:200]!r}")
                continue
            res = json.loads(data)["results"][0]
            self.acked += 1
            self.last = max(self.last, (res["seq"], res["record_id"]))
            if self.rng.random() < 0.01:
                self.sample.append((res["seq"], res["record_id"]))
        conn.close()


def descriptors(pid):
    """The server's open descriptors by kind: {"all", "segments" (compressed sealed
    segments), "log_n" (index runs and tree levels: one a file, O(log n) of them by design),
    "removed" (files deleted since they were opened), "twice" (a file open more than twice),
    "other" (the rest: sockets, pipes, the log being written, ...)}."""
    counts = {"all": 0, "segments": 0, "log_n": 0, "removed": 0, "twice": 0, "other": 0}
    per_path = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed while listed
        counts["all"] += 1
        name = os.path.basename(target)
        if target.endswith(" (deleted)"):
            counts["removed"] += 1
        elif name.endswith(".zseg"):
            counts["segments"] += 1
        elif name.startswith("run-") or name.startswith("level-"):
            counts["log_n"] += 1
        else:
            counts["other"] += 1
        if target.startswith("/"):
            per_path[target] = per_path.get(target, 0) + 1
    # The segment being appended to is open to write and to read.
    counts["twice"] = sum(1 for n in per_path.values() if n > 2)
    return counts


def sample(pid):
    """(VmRSS, RssAnon, RssFile) in KiB and open descriptors by kind."""
    kib = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "RssAnon", "RssFile"):
                kib[name] = int(rest.split()[0])
    return (kib["VmRSS"], kib["RssAnon"], kib["RssFile"]), descriptors(pid)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--seconds", type=float, default=3600)
    ap.add_argument("--burst-seconds", type=float, default=15)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--sample-seconds", type=float, default=5)
    ap.add_argument("--keep", action="store_true", help="keep the data directory")
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="sealog-soak-")
    data = os.path.join(tmp, "data")
    env = dict(os.environ, SEALOG_ACCEPT_UNDECLARED_TYPES="1")
    for k in ("SEALOG_URL", "SEALOG_KEY", "SEALOG_DATA", "SEALOG_STATE"):
        env.pop(k, None)
    log = open(os.path.join(tmp, "serve.log"), "wb")
    srv = subprocess.Popen(
        [a.bin, "--data", data, "serve", "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=log,
        env=env,
    )
    failures = []
    try:
        line = srv.stdout.readline().decode().strip()
        addr = line.rsplit("://", 1)[-1]
        print(f"soak: serve pid {srv.pid} at {addr}, data {data}", flush=True)

        # Capacity.
        stop = threading.Event()
        burst = [Client(c, addr, stop, start_i=0) for c in range(a.clients)]
        t0 = time.monotonic()
        for c in burst:
            c.start()
        time.sleep(a.burst_seconds)  # the burst's length, not a wait for anything
        stop.set()
        for c in burst:
            c.join()
        elapsed = time.monotonic() - t0
        burst_acked = sum(c.acked for c in burst)
        capacity = burst_acked / elapsed
        for c in burst:
            failures += [f"burst client {c.cid}: {f}" for f in c.failures]
        rate = capacity / 2
        print(
            f"soak: capacity {capacity:.0f} appends/s ({burst_acked} in {elapsed:.1f} s, "
            f"{a.clients} clients); soaking at {rate:.0f}/s for {a.seconds:.0f} s",
            flush=True,
        )

        # Soak.
        stop = threading.Event()
        interval = a.clients / rate if rate > 0 else 1.0
        soakers = [
            Client(c, addr, stop, interval=interval, start_i=10**9)
            for c in range(a.clients)
        ]
        samples = []  # (t, (rss, anon, file) KiB, fds, acked)
        t0 = time.monotonic()
        for c in soakers:
            c.start()
        next_sample = t0
        while True:
            now = time.monotonic()
            if now - t0 >= a.seconds:
                break
            if now >= next_sample:
                rss, fds = sample(srv.pid)
                acked = sum(c.acked for c in soakers)
                samples.append((now - t0, rss, fds, acked))
                if len(samples) % max(1, int(60 / a.sample_seconds)) == 0:
                    print(
                        f"soak: t={now - t0:.0f}s rss={rss[0]} KiB (anonymous {rss[1]}, "
                        f"mapped files {rss[2]}) fds={fds['all']} (compressed segments "
                        f"{fds['segments']}, runs and tree levels {fds['log_n']}, removed "
                        f"{fds['removed']}, other {fds['other']}) acked={acked}",
                        flush=True,
                    )
                next_sample += a.sample_seconds
            if srv.poll() is not None:
                failures.append(f"serve exited during the soak: {srv.returncode}")
                break
            time.sleep(min(0.5, max(0.0, next_sample - time.monotonic())))
        stop.set()
        for c in soakers:
            c.join()
        soak_acked = sum(c.acked for c in soakers)
        for c in soakers:
            failures += [f"soak client {c.cid}: {f}" for f in c.failures[:5]]
        achieved = soak_acked / max(1e-9, samples[-1][0] if samples else 1)

        # Growth, after the warm-up.
        n = len(samples)
        tenth = max(1, n // 10)
        warm = WARMUP_FILLS * MEMTABLE_RECORDS
        warmup = next(
            (i for i, s in enumerate(samples) if burst_acked + s[3] >= warm), n
        )
        warmup = max(tenth, warmup)
        base = samples[warmup : warmup + tenth]
        last = samples[n - tenth :]
        judged = n >= 10 and warmup + tenth <= n - tenth
        if n < 10:
            failures.append(f"only {n} samples: run longer")
        if not judged:
            print(
                f"soak: MEMORY GROWTH NOT JUDGED: the warm-up ({WARMUP_FILLS} fills of the "
                f"store's in-memory table, {warm} appends) leaves no baseline before the last "
                f"tenth; run longer",
                flush=True,
            )
            base, last = samples[:1], samples[-1:]
        # Memory is a sawtooth (the index's in-memory table fills, then is written out), so a
        # median depends on where in a tooth a tenth falls: each tenth's floor is compared.
        def floor(rows, i):
            return min(s[1][i] for s in rows)

        rss0, rss1 = floor(base, 0), floor(last, 0)
        anon0, anon1 = floor(base, 1), floor(last, 1)
        file0, file1 = floor(base, 2), floor(last, 2)
        def median_fds(rows, kind):
            return statistics.median(s[2][kind] for s in rows)

        fd0, fd1 = median_fds(base, "all"), median_fds(last, "all")
        other0, other1 = median_fds(base, "other"), median_fds(last, "other")
        segments_max = max(s[2]["segments"] for s in samples)
        # The process's own memory is what must stay flat. Pages of the index files it maps
        # count in RSS too, but they are the kernel's page cache: shared, dropped under
        # memory pressure, and bounded by the files' size on disk, which grows with the log.
        if judged and anon1 > RSS_GROWTH_MAX * anon0:
            failures.append(f"anonymous memory grew from {anon0} KiB to {anon1} KiB")
        # Descriptors: the index's runs and the tree's levels are one a file, O(log n) files
        # by design; what must not grow is the rest, nor a file held after its removal or
        # opened again and again, nor the compressed segments past the store's limit.
        if other1 > other0 + FD_GROWTH_MAX:
            failures.append(f"open descriptors other than the index's and tree's grew from {other0} to {other1}")
        if segments_max > SEGMENTS_OPEN_MAX:
            failures.append(f"{segments_max} compressed segments open at once (at most {SEGMENTS_OPEN_MAX})")
        for kind, what in (("removed", "files removed since they were opened"), ("twice", "files open more than twice")):
            if median_fds(last, kind) > 0:
                failures.append(f"{median_fds(last, kind)} {what} (median of the last tenth)")

        # Stop, then check what was acknowledged.
        srv.send_signal(signal.SIGTERM)
        code = srv.wait(timeout=300)
        if code != 0:
            failures.append(f"serve exited {code} after SIGTERM")
        total_acked = burst_acked + soak_acked
        picks = [s for c in burst + soakers for s in c.sample]
        random.Random(7).shuffle(picks)
        picks = picks[:50] + [max(c.last for c in burst + soakers)]
        for seq, rid in picks:
            q = subprocess.run(
                [a.bin, "--data", data, "query", "--after", str(seq - 1), "--limit", "1"]
                if seq > 0
                else [a.bin, "--data", data, "query", "--limit", "1"],
                env=env,
                capture_output=True,
                text=True,
            )
            got = json.loads(q.stdout.splitlines()[0]) if q.stdout.strip() else {}
            if got.get("record_id") != rid or got.get("seq") != seq:
                failures.append(f"acknowledged seq {seq} ({rid}) reads back as {got}")
        v = subprocess.run([a.bin, "--data", data, "verify"], env=env, capture_output=True, text=True)
        if v.returncode != 0:
            failures.append(f"verify failed: {v.stdout[-500:]} {v.stderr[-500:]}")

        print(
            f"soak: {a.seconds:.0f} s at {achieved:.0f} appends/s (capacity {capacity:.0f}/s), "
            f"{n} samples, warm-up {samples[min(warmup, n - 1)][0]:.0f} s; RSS floor "
            f"{rss0:.0f} -> {rss1:.0f} KiB: anonymous {anon0:.0f} -> {anon1:.0f} KiB "
            f"({f'limit x{RSS_GROWTH_MAX}' if judged else 'NOT JUDGED: too short'}), "
            f"mapped files {file0:.0f} -> {file1:.0f} KiB; "
            f"fds {fd0:.0f} -> {fd1:.0f}: other than runs and tree levels {other0:.0f} -> "
            f"{other1:.0f} (limit +{FD_GROWTH_MAX}), compressed segments at most {segments_max} "
            f"(limit {SEGMENTS_OPEN_MAX}); {total_acked} acknowledged, "
            f"{len(picks)} read back (the last one included); failures: {len(failures)}",
            flush=True,
        )
        with open(os.path.join(tmp, "samples.tsv"), "w") as f:
            f.write("t_s\trss_kib\tanon_kib\tfile_kib\tfds\tfds_segments\tfds_log_n\tfds_removed\tfds_other\tacked\n")
            for s in samples:
                d = s[2]
                f.write(
                    f"{s[0]:.1f}\t{s[1][0]}\t{s[1][1]}\t{s[1][2]}\t{d['all']}\t{d['segments']}\t"
                    f"{d['log_n']}\t{d['removed']}\t{d['other']}\t{s[3]}\n"
                )
        print(f"soak: samples in {tmp}/samples.tsv", flush=True)
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()
    for f in failures:
        print(f"soak: FAILURE: {f}", file=sys.stderr)
    if not a.keep and not failures:
        shutil.rmtree(data, ignore_errors=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
