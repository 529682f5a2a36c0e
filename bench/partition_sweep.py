"""The partitions phase of a bench run: the load on topics of several partition counts, with the
Kafka broker's requests per second by type (two JmxTool readings inside each measured window).

librdkafka sends one produce request per partition, and a broker that verifies transactional
produce requests (KIP-890 part 1) asks its transaction coordinator once per partition and
transaction: a transaction costs the broker about two requests for each partition it touches.
"""

import glob
import json
import os
import re

# Kafka counts each consumer fetch twice: as Fetch and as FetchConsumer (FetchFollower likewise)
SUBCOUNTS = {"FetchConsumer", "FetchFollower"}
TXN_CONTROL = ("AddPartitionsToTxn", "AddOffsetsToTxn", "TxnOffsetCommit", "EndTxn", "WriteTxnMarkers")
SHOWN = ("Produce", "AddPartitionsToTxnVerification", "Fetch")


def reading(path):
    """(time in s, {request type: count summed over versions}) of one JmxTool tsv reading."""
    stamp, counts = None, {}
    with open(path) as f:
        for line in f:
            key, _, value = line.rstrip("\n").partition("\t")
            if key == "time":
                stamp = float(value) / 1000
                continue
            match = re.search(r"request=(\w+)", key)
            if match and value:
                counts[match.group(1)] = counts.get(match.group(1), 0) + float(value)
    return stamp, counts


def rates(first, second):
    """Requests per second by type between two readings, or None when either is unusable."""
    (t0, a), (t1, b) = reading(first), reading(second)
    if t0 is None or t1 is None or t1 <= t0 or not b:
        return None
    return {name: (count - a.get(name, 0)) / (t1 - t0) for name, count in b.items()}


def load(run):
    """{partition count: {"load": the load's JSON, "requests": rates or None}}."""
    found = {}
    for path in glob.glob(os.path.join(run, "load-partitions-*.json")):
        match = re.search(r"load-partitions-(\d+)\.json$", path)
        if not match:
            continue
        n = int(match.group(1))
        with open(path) as f:
            entry = {"load": json.load(f), "requests": None}
        first, second = (os.path.join(run, f"requests-p{n}-{x}.tsv") for x in "ab")
        if os.path.exists(first) and os.path.exists(second):
            entry["requests"] = rates(first, second)
        found[n] = entry
    return found


def _fmt(value, digits=0):
    return "—" if value is None else f"{value:,.{digits}f}"


def section(by_partitions, out):
    """Markdown: latency, transactions and the broker's requests by partition count."""
    if not by_partitions:
        return
    rate = next(iter(by_partitions.values()))["load"].get("rate", 0)
    out += [f"## Partition count at {rate:,.0f} commands/s (broker requests by type)", "",
            "Each row is the same open-loop load on a fresh `logbook all` whose topics have that many "
            "partitions (the product's default is 12). Requests per second come from two readings of "
            "the broker's `kafka.network:RequestMetrics` inside the measured window (JmxTool, a JVM "
            "started for each reading, so these loads are a little slower than the measured one: "
            "compare the rows with each other). `verification`: AddPartitionsToTxnVerification, the "
            "broker asking its transaction coordinator about a partition's first produce request in a "
            "transaction. `txn control`: " + ", ".join(TXN_CONTROL) + ". Fetch counts each consumer "
            "fetch once.", "",
            "| partitions | ok/s | p50 | p99 | processor txn/s | commands per txn | broker requests/s | "
            "per command | Produce | verification | Fetch | txn control | CPU kafka | CPU logbook |",
            "| --- " * 14 + "|"]
    for n in sorted(by_partitions):
        entry = by_partitions[n]
        r, req = entry["load"], entry["requests"] or {}
        server, seconds = r.get("server") or {}, r.get("measured_seconds") or 0
        phases = server.get("phases") or {}
        txns = (phases.get("processor/commit") or {}).get("count")
        per_txn = server["commands"] / server["transactions_committed"] \
            if server.get("transactions_committed") and server.get("commands") else None
        total = sum(v for k, v in req.items() if k not in SUBCOUNTS) if req else None
        served = r.get("throughput_ok_per_s") or 0
        cpu = [r.get("procs", {}).get(name, {}).get("cpu_percent_mean") for name in ("kafka", "logbook")]
        out.append(
            f"| {n} | {_fmt(served)} | {_fmt(r['latency']['p50_ms'], 1)} | {_fmt(r['latency']['p99_ms'], 1)} | "
            f"{_fmt(txns / seconds if txns and seconds else None)} | {_fmt(per_txn, 1)} | {_fmt(total)} | "
            f"{_fmt(total / served if total and served else None, 2)} | "
            + " | ".join(_fmt(req.get(name) if req else None) for name in SHOWN)
            + f" | {_fmt(sum(req.get(k, 0) for k in TXN_CONTROL) if req else None)} | "
            + " | ".join(_fmt(c) for c in cpu) + " |")
    out.append("")
