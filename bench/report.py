#!/usr/bin/env python3
"""Turns the raw results of one `scripts/dev bench` run into the committed report.

Reads the JSON files the phases wrote into the run folder and writes <out>.json (everything,
combined), <out>.md (the summary: targets met or missed, ratios to the baselines, machine,
versions and settings) and three PNG plots beside it: latency over time, throughput over time
and the latency CDF, each with Logbook and the plain PostgreSQL baseline side by side.

With --summarise-profile RUN it only turns the profiles of the logbook phase (perf.data of the
logbook process, kafka.jfr of the broker) into profile-logbook.json and profile-kafka.json in
the run folder and deletes perf.data; that needs perf and jfr, not matplotlib.
"""
import argparse
import collections
import glob
import json
import math
import os
import re
import subprocess

import cpu_per_command
import partition_sweep as partitions

PARTS = {
    "environment": "environment.json",
    "logbook": "load-logbook.json",
    "logbook_capacity": "load-logbook-capacity.json",
    "plain_pg": "load-plain-pg.json",
    "cqrs_es": "load-cqrs-es.json",
    "produce_txn": "produce-txn.json",
    "produce_idempotent": "produce-idempotent.json",
    "produce_txn_1000": "produce-txn-1000.json",
    "copy": "copy.json",
    "backlog": "backlog.json",
    "produce_backlog": "produce-backlog.json",
    "failover_small": "failover-empty.json",
    "failover_backlog": "failover-backlog.json",
    "profile_logbook": "profile-logbook.json",
    "profile_kafka": "profile-kafka.json",
}
LOADS = (("logbook", "Logbook"), ("plain_pg", "plain PostgreSQL (FOR UPDATE)"),
         ("cqrs_es", "cqrs-es + postgres-es"))
# the HTTP load table and the throughput and CDF plots also show the capacity run
HTTP_LOADS = LOADS[:1] + (("logbook_capacity", "Logbook at capacity"),) + LOADS[1:]

PERF_HZ, PROFILE_SECONDS = 499, 10
# the first frame from the leaf that matches is what a sample is counted against
PERF_INTERESTING = re.compile(r"logbook_|rdkafka::|sqlx|jsonschema|jsonwebtoken|serde_json|hyper::"
                              r"|axum::|tower|sha2|metrics|tokio::")
PERF_OTHER = "other (libc/kernel/librdkafka C)"
PERF_HEADER = re.compile(r"^(\S.*?)\s+\d+(?:/\d+)?\s+(?:\[\d+\]\s+)?\d+\.\d+:\s+(\d+)\s")


def load_parts(run):
    parts = {}
    for key, name in PARTS.items():
        path = os.path.join(run, name)
        if os.path.exists(path):
            with open(path) as f:
                parts[key] = json.load(f)
    # the failover phase: failover-log-<events>-{nosnap,snap}.json, by (events, with snapshots)
    for path in glob.glob(os.path.join(run, "failover-log-*-*snap.json")):
        match = re.search(r"failover-log-(\d+)-(nosnap|snap)\.json$", path)
        if match:
            with open(path) as f:
                key = f"{int(match.group(1)):012d}-{match.group(2)}"
                parts.setdefault("failover_logs", {})[key] = json.load(f)
    # the sweep: load-logbook-sweep-<rate>.json, by offered rate
    for path in glob.glob(os.path.join(run, "load-logbook-sweep-*.json")):
        with open(path) as f:
            load = json.load(f)
        parts.setdefault("sweep", {})[float(load["rate"])] = load
    by_partitions = partitions.load(run)
    if by_partitions:
        parts["partitions"] = by_partitions
    return parts


def logbook_loads(p):
    """The loads on the measured `logbook all` instance by offered rate: the sweep's and the measured one."""
    loads = {float(load["rate"]): load for load in (p.get("sweep") or {}).values()}
    if "logbook" in p:
        loads[float(p["logbook"]["rate"])] = p["logbook"]
    return loads


def sweep_section(p, out):
    """Latency against offered load on one instance: the sweep's loads and the measured one."""
    if not p.get("sweep"):
        return
    loads = logbook_loads(p)
    procs = ("kafka", "logbook", "postgres", "generator")
    out += ["## Latency against load (same instance, after the measured load)", "",
            "Each row is an open-loop load of the same length on the `logbook all` instance of the "
            "measured load. Commands per transaction: commands decided over processor transactions "
            "committed (including the saga's commands). Freshness: answer → the account read back at "
            "the command's position. CPU in % of one core, of the 2 the machine has.", "",
            "| offered/s | ok/s | p50 | p90 | p99 | freshness p50 / p99 | transfer settled p50 / p99 | "
            "commands per transaction | "
            + " | ".join(f"CPU {name}" for name in procs) + " | CPU total |",
            "| --- " * (9 + len(procs)) + "|"]
    for rate in sorted(loads):
        r = loads[rate]
        lat, server = r["latency"], r.get("server") or {}
        txns = server.get("transactions_committed") or 0
        per_txn = fmt(server["commands"] / txns) if txns and server.get("commands") else "—"
        cpu = [r.get("procs", {}).get(name, {}).get("cpu_percent_mean") for name in procs]
        total = sum(c for c in cpu if c is not None)
        out.append(f"| {fmt(rate, 0)} | {fmt(r['throughput_ok_per_s'], 0)} | {fmt(lat['p50_ms'])} | "
                   f"{fmt(lat['p90_ms'])} | {fmt(lat['p99_ms'])} | {fresh(r)} | {settled(r)} | {per_txn} | "
                   + " | ".join("—" if c is None else fmt(c, 0) for c in cpu) + f" | {fmt(total, 0)} |")
    out.append("")
    phases_section(loads, out)


PHASES = ("begin", "write", "send_offsets", "check", "commit")


def server_timings(loads):
    """(offered rate, the server's timed steps by key, measured seconds) of each load, by rate."""
    for rate in sorted(loads):
        r = loads[rate]
        yield rate, (r.get("server") or {}).get("phases") or {}, r.get("measured_seconds") or 0


def phases_section(loads, out):
    """Where a Kafka transaction's time goes, by offered load (`logbook_transaction_phase_seconds`)."""
    rows = []
    for rate, phases, seconds in server_timings(loads):
        for role in ("processor", "saga"):
            times = [phases.get(f"{role}/{name}") for name in PHASES]
            count = max((t["count"] for t in times if t), default=0)
            if not count or not seconds:
                continue
            means = [1000 * t["seconds"] / t["count"] if t and t["count"] else None for t in times]
            total = sum(m for m in means if m is not None)
            rows.append(f"| {fmt(rate, 0)} | {role} | {fmt(count / seconds, 0)} | "
                        + " | ".join("—" if m is None else fmt(m, 2) for m in means)
                        + f" | {fmt(total, 2)} |")
    if not rows:
        return
    out += ["### Where a transaction's time goes", "",
            "Mean time of each step of the Kafka transactions, in ms, from the server's "
            "`logbook_transaction_phase_seconds` over each load above. `write`: handing the records "
            "to librdkafka; `send_offsets`: adding the consumed offsets (a round trip to the "
            "transaction coordinator, then one to the group coordinator); `check`: waiting for every "
            "record's delivery report (registering the partitions with the transaction, then the "
            "produce requests, acks=all); `commit`: EndTxn.", "",
            "| offered/s | role | transactions/s | " + " | ".join(PHASES) + " | sum |",
            "| --- " * (4 + len(PHASES)) + "|"] + rows + [""]
    projector_batches(loads, out)


def projector_batches(loads, out):
    """Projector batches by offered load (`logbook_projection_batch_seconds`): what freshness waits for."""
    rows = []
    for rate, phases, seconds in server_timings(loads):
        for key in sorted(k for k in phases if k.startswith("projection/")):
            t = phases[key]
            if t["count"] and seconds:
                rows.append(f"| {fmt(rate, 0)} | {key.split('/', 1)[1]} | {fmt(t['count'] / seconds, 0)} | "
                            f"{fmt(1000 * t['seconds'] / t['count'], 2)} |")
    if rows:
        out += ["### Projector batches", "",
                "Each projection's batches committed per second and their mean time in ms (decoding, "
                "writing and committing one PostgreSQL transaction; `logbook_projection_batch_seconds`) "
                "over each load above. A command's freshness waits for its events to be committed "
                "in Kafka, the projector's linger (2 ms), one such batch and the notice to the API.", "",
                "| offered/s | projection | batches/s | mean ms |", "| --- | --- | --- | --- |"] + rows + [""]


def ratio(value, base):
    if value is None or not base:
        return None
    return value / base


def fmt(value, digits=1):
    if value is None:
        return "n/a"
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    return f"{value:,.{digits}f}"


def targets(p):
    """Rows of (figure, target, measured, verdict, baseline ratio)."""
    rows = []
    lb, plain, raw = p.get("logbook"), p.get("plain_pg"), p.get("produce_txn")
    if lb:
        p50, p99 = lb["latency"]["p50_ms"], lb["latency"]["p99_ms"]
        raw_p50 = raw and raw["batch_latency"]["p50_ms"]
        ok = p50 <= 10 and p99 <= 25 and (not raw_p50 or p50 <= 2.5 * raw_p50)
        verdict = "met" if ok else (f"missed: p50 {fmt(p50)} ms vs 10 ms, p99 {fmt(p99)} ms vs 25 ms"
                                    + (f", p50 {fmt(p50 / raw_p50)}x raw (<= 2.5x)" if raw_p50 else ""))
        base = raw_p50 and (f"raw transactional produce of the same batch ({raw['batch']} events): "
                            f"p50 {fmt(raw_p50)} ms")
        rows.append((f"commands at {fmt(lb['rate'], 0)}/s offered", "p50 <= 10 ms, p99 <= 25 ms; p50 <= 2.5x raw "
                     "transactional produce of the same batch",
                     f"{fmt(lb['throughput_ok_per_s'], 0)}/s served, p50 {fmt(p50)} ms, p99 {fmt(p99)} ms",
                     verdict, base or ""))
        # capacity: the highest offered rate of the sweep and the measured load served with p99 <= 100 ms
        loads = list(p.get("sweep", {}).values()) + [lb]
        within = [r for r in loads if r["latency"]["p99_ms"] <= 100 and r["throughput_ok_per_s"] >= 0.99 * r["rate"]]
        best = max(within, key=lambda r: r["rate"], default=None)
        tried = ", ".join(f"{fmt(r['rate'], 0)}/s: p99 {fmt(r['latency']['p99_ms'])} ms"
                          for r in sorted(loads, key=lambda r: r["rate"]))
        rows.append(("capacity (p99 <= 100 ms)", ">= 8,000/s",
                     (f"{fmt(best['rate'], 0)}/s" if best else "below the lowest rate tried") + f" ({tried})",
                     "met" if best and best["rate"] >= 8_000 else "missed", ""))
    cap = p.get("logbook_capacity")
    if cap:
        served, offered = cap["throughput_ok_per_s"], cap["rate"]
        rows.append(("most commands served, whatever the latency", "(capacity above)",
                     f"{fmt(served, 0)}/s served of {fmt(offered, 0)}/s offered ({fmt(100 * served / offered, 0)}%, "
                     f"{cap['clients']} clients, {cap['errors']} errors), p50 {fmt(cap['latency']['p50_ms'])} ms, "
                     f"p99 {fmt(cap['latency']['p99_ms'])} ms", "", ""))
    if lb:
        fresh = lb["freshness"]["p99_ms"]
        rows.append(("freshness (answer -> visible in accounts)", "p99 <= 25 ms",
                     f"p50 {fmt(lb['freshness']['p50_ms'])} ms, p99 {fmt(fresh)} ms ({lb['freshness']['count']} probes, {lb['freshness_failures']} failed)",
                     "met" if lb["freshness"]["count"] and fresh <= 25 else f"missed by {fmt(fresh - 25)} ms",
                     plain and f"plain PG read after commit: p99 {fmt(plain['freshness']['p99_ms'])} ms" or ""))
        settle = lb.get("transfer_settle")
        if settle and settle["count"]:
            rows.append(("transfer settled (202 answer -> completed or failed visible)", "(no target)",
                         f"p50 {fmt(settle['p50_ms'])} ms, p99 {fmt(settle['p99_ms'])} ms ({settle['count']} probes, "
                         f"{lb['transfer_settle_unsettled']} still pending after 10 s; read every 10 ms)", "",
                         "the baselines settle a transfer before answering"))
    bl, cp = p.get("backlog"), p.get("copy")
    if bl:
        eps = bl["catchup_events_per_s"]
        versus_copy = cp and ratio(eps, cp["events_per_s"])
        rows.append(("projector on a backlog", ">= 1.0x the raw COPY baseline (c)",
                     f"{fmt(eps, 0)} events/s ({fmt(bl['events'], 0)} events, ledger {fmt(bl['catchup_ledger_seconds'])} s, archive {fmt(bl['catchup_archive_seconds'])} s, from process start)",
                     "n/a (copy phase skipped)" if not cp else
                     "met" if versus_copy >= 1.0 else f"missed: {fmt(versus_copy, 2)}x raw COPY",
                     cp and f"{fmt(versus_copy, 2)}x raw COPY ({fmt(cp['events_per_s'], 0)} events/s)" or ""))
        alone = f"ledger {fmt(bl['rebuild_ledger_seconds'])} s, archive {fmt(bl['rebuild_archive_seconds'])} s"
        if "rebuild_all_seconds" in bl:
            per_million = bl["rebuild_all_seconds"] * 1_000_000 / bl["events"]
            measured = (f"every projection (`rebuild all`, side by side) {fmt(bl['rebuild_all_seconds'])} s; "
                        f"one at a time: {alone}; {fmt(bl['events'], 0)} events")
            which = "all projections"
        else:
            per_million = bl["rebuild_ledger_seconds"] * 1_000_000 / bl["events"]
            measured, which = f"{alone} for {fmt(bl['events'], 0)} events", "ledger"
        rows.append(("full rebuild of 1M events", "<= 8 s", measured,
                     "met" if per_million <= 8 else f"missed: {fmt(per_million)} s per 1M ({which})",
                     cp and f"raw COPY of 1M events' rows would take {fmt(1e6 / cp['events_per_s'])} s" or ""))
        rows.append(memory_row(bl))
    rows.extend(failover_rows(p))
    return rows


def failover_rows(p):
    """SIGKILL of one of two processors: how long until the last of its partitions decides
    again, per log length, without and with snapshots, with the restores the survivor ran for
    the partitions it took over (the restore target: <= 2 s with snapshots, flat in log length)."""
    rows = []
    events = (p.get("backlog") or {}).get("events")
    runs = [(p.get("failover_small"), "a log of a few hundred events"),
            (p.get("failover_backlog"), f"{fmt(events, 0)} events" if events else "the backlog")]
    # keys "<events, 12 digits>-nosnap" / "-snap": by length, without snapshots first
    runs += [(f, f"{fmt(int(k.split('-')[0]), 0)} events")
             for k, f in sorted(p.get("failover_logs", {}).items())]
    for f, log in runs:
        if not f or f.get("failover_s") is None:
            continue
        snapshots = f.get("snapshot_every_events", 0) > 0
        restores = f.get("takeover_restores") or []
        slowest = max((r.get("ms", 0) for r in restores), default=0) / 1000
        sources = sorted({r.get("source", "log").strip('"') for r in restores})
        restored = (f"; the survivor restored {len(restores)} partitions ({'/'.join(sources)}) folding "
                    f"{fmt(sum(r.get('folded', r.get('events', 0)) for r in restores), 0)} of "
                    f"{fmt(sum(r.get('events', 0) for r in restores), 0)} events in "
                    f"{fmt(slowest)} s (slowest)") if restores else ""
        mode = (f"snapshots every {fmt(f['snapshot_every_events'], 0)} events" if snapshots
                else "no snapshots")
        measured = (f"{fmt(f['failover_s'])} s until the last of {f['accounts']} probe commands was decided "
                    f"({len(f.get('killed_partitions', []))} partitions taken over; {log}; first answer "
                    f"{fmt(f['first_answer_s'])} s, median {fmt(f['median_answer_s'])} s){restored}")
        verdict = (f"measured (bounded by session timeout {f['session_timeout_s']} s + transaction timeout "
                   f"{f['transaction_timeout_s']} s + restore)")
        target = "measured, with the log length"
        # judged where a snapshot is due: the partitions held more events than its interval
        if snapshots and restores and max(r.get("events", 0) for r in restores) > f["snapshot_every_events"]:
            target += "; restore <= 2 s with snapshots"
            verdict += "; restore " + ("met" if slowest <= 2 and sources == ["snapshot"]
                                       else f"missed: {fmt(slowest)} s from {'/'.join(sources)}")
        rows.append((f"failover: processor SIGKILLed -> its partitions decide again ({log}, {mode})",
                     target, measured, verdict, ""))
    return rows


def memory_row(bl):
    """The processor memory per account: the account state alone (a window of one remembered
    command id per partition) against the target, and what the default window adds."""
    total = bl["processor_bytes_per_account"]
    mib = {k: fmt(bl[f"processor_rss_{k}_kib"] / 1024) for k in ("empty", "restored", "state_only")
           if f"processor_rss_{k}_kib" in bl}
    if "processor_bytes_per_account_state" not in bl:
        return ("processor memory per account", "<= 300 bytes",
                f"{fmt(total, 0)} bytes ({fmt(bl['accounts'], 0)} accounts; RSS {mib['empty']} -> {mib['restored']} MiB)",
                "met" if total <= 300 else f"missed: {fmt(total / 300, 1)}x the target", "")
    state, per_id = bl["processor_bytes_per_account_state"], bl["processor_bytes_per_remembered_command"]
    measured = (f"{fmt(state, 0)} bytes of account state ({fmt(bl['accounts'], 0)} accounts; RSS {mib['empty']} -> "
                f"{mib['state_only']} MiB remembering 100 command ids per partition); "
                f"plus {fmt(per_id, 0)} bytes per remembered command id: {fmt(total, 0)} bytes per account in all "
                f"with the default window ({fmt(bl['events'], 0)} events, RSS {mib['restored']} MiB); "
                "RSS of `logbook process` with one malloc arena, after restoring every partition")
    worst = state
    heap = bl.get("processor_heap_bytes_per_account_state")
    if heap:
        measured += (f"; allocator heap in use: {fmt(heap, 0)} bytes of account state per account, "
                     f"{fmt(bl['processor_heap_bytes_per_remembered_command'], 0)} bytes per remembered "
                     "command id")
        worst = max(state, heap)
    return ("processor memory per account", "<= 250 bytes (heap and RSS)", measured,
            "met (state alone)" if worst <= 250 else f"missed: {fmt(worst / 250, 1)}x the target", "")


def write_ratios(p, out):
    lb = p.get("logbook")
    txn, idem, txn1k = p.get("produce_txn"), p.get("produce_idempotent"), p.get("produce_txn_1000")
    lines = ["| figure | value | baseline | ratio |", "| --- | --- | --- | --- |"]
    if lb and lb.get("server") and lb["server"]["commands"]:
        s = lb["server"]
        events_per_cmd = s["events"] / s["commands"]
        lb_events = lb["throughput_ok_per_s"] * events_per_cmd
        lines.append(f"| commands per processor transaction | {fmt(s['commands'] / max(1, s['transactions_committed']))} | | |")
    cap = p.get("logbook_capacity")
    if cap and cap.get("server") and cap["server"]["commands"]:
        s = cap["server"]
        lines.append(f"| commands per processor transaction, at capacity | {fmt(s['commands'] / max(1, s['transactions_committed']))} | | |")
        if txn:
            lines.append(f"| Logbook events/s vs raw transactional produce (batch {txn['batch']}) | {fmt(lb_events, 0)} | {fmt(txn['events_per_s'], 0)} | {fmt(ratio(lb_events, txn['events_per_s']), 3)} |")
    if txn and idem:
        lines.append(f"| raw produce: transactions vs none (cost of exactly-once), batch {txn['batch']} | {fmt(txn['events_per_s'], 0)}/s | {fmt(idem['events_per_s'], 0)}/s | {fmt(ratio(txn['events_per_s'], idem['events_per_s']), 3)} |")
    if txn and txn1k:
        lines.append(f"| raw transactional produce: batch {txn['batch']} vs batch 1000 | {fmt(txn['events_per_s'], 0)}/s | {fmt(txn1k['events_per_s'], 0)}/s | {fmt(ratio(txn['events_per_s'], txn1k['events_per_s']), 3)} |")
    for other, title in (("plain_pg", "plain PostgreSQL"), ("cqrs_es", "cqrs-es")):
        base = p.get(other)
        if not (lb and base):
            continue
        lines.append(f"| throughput: Logbook vs {title} | {fmt(lb['throughput_ok_per_s'], 0)}/s | {fmt(base['throughput_ok_per_s'], 0)}/s | {fmt(ratio(lb['throughput_ok_per_s'], base['throughput_ok_per_s']), 2)} |")
        for key, name in (("p50_ms", "p50"), ("p99_ms", "p99")):
            lines.append(f"| latency {name}: Logbook vs {title} | {fmt(lb['latency'][key])} ms | {fmt(base['latency'][key])} ms | {fmt(ratio(lb['latency'][key], base['latency'][key]), 2)} |")
    bl, cp = p.get("backlog"), p.get("copy")
    if bl and cp:
        lines.append(f"| projector catch-up vs raw COPY of the same rows | {fmt(bl['catchup_events_per_s'], 0)}/s | {fmt(cp['events_per_s'], 0)}/s | {fmt(ratio(bl['catchup_events_per_s'], cp['events_per_s']), 3)} |")
    out.extend(lines)


def settled(r, keys=("p50_ms", "p99_ms"), missing="—"):
    """The transfer-settle percentiles of load `r` ("p50 / p99" by default), or `missing`."""
    settle = r.get("transfer_settle")
    return " / ".join(fmt(settle[k]) for k in keys) if settle and settle["count"] else missing


def fresh(r, missing="—"):
    """The freshness p50 / p99 of load `r` (answer → read back at its position), or `missing`."""
    freshness = r.get("freshness")
    if not freshness or not freshness.get("count"):
        return missing
    return f"{fmt(freshness['p50_ms'])} / {fmt(freshness['p99_ms'])}"


def load_table(p, out):
    out += ["| system | offered/s | clients | ok/s | errors | p50 | p90 | p99 | p99.9 | max | service p99 | freshness p99 | transfer settled p99 |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for key, name in HTTP_LOADS:
        r = p.get(key)
        if not r:
            continue
        lat = r["latency"]
        out.append(f"| {name} | {fmt(r['rate'], 0)} | {r['clients']} | {fmt(r['throughput_ok_per_s'], 0)} | {r['errors']} {r['statuses']} | "
                   f"{fmt(lat['p50_ms'])} | {fmt(lat['p90_ms'])} | {fmt(lat['p99_ms'])} | {fmt(lat['p999_ms'])} | {fmt(lat['max_ms'])} | "
                   f"{fmt(r['service_time']['p99_ms'])} | {fmt(r['freshness']['p99_ms'])} | {settled(r, ('p99_ms',), '-')} |")
    out.append("")
    out += ["| system | process | CPU mean (% of one core) | RSS max (MiB) |", "| --- | --- | --- | --- |"]
    for key, name in HTTP_LOADS:
        r = p.get(key)
        for proc, usage in (r or {}).get("procs", {}).items():
            out.append(f"| {name} | {proc} | {fmt(usage['cpu_percent_mean'], 0)} | {fmt(usage['rss_mib_max'], 0)} |")


def baseline_table(p, out):
    out += ["| baseline | events | batch | events/s | batch p50 | batch p99 | mean event bytes |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for key, name in (("produce_txn", "(a) raw transactional produce"),
                      ("produce_idempotent", "(b) raw produce, no transactions"),
                      ("produce_txn_1000", "(a') raw transactional produce, batch 1000"),
                      ("produce_backlog", "backlog writer (transactional, batch 5000)")):
        r = p.get(key)
        if r:
            out.append(f"| {name} | {fmt(r['events'], 0)} | {r['batch']} | {fmt(r['events_per_s'], 0)} | "
                       f"{fmt(r['batch_latency']['p50_ms'])} ms | {fmt(r['batch_latency']['p99_ms'])} ms | {fmt(r['bytes_mean'], 0)} |")
    cp = p.get("copy")
    if cp:
        out.append(f"| (c) raw COPY (ledger line + archive row per event) | {fmt(cp['events'], 0)} | {cp['batch']} | "
                   f"{fmt(cp['events_per_s'], 0)} | {fmt(cp['batch_latency']['p50_ms'])} ms | {fmt(cp['batch_latency']['p99_ms'])} ms | |")


def save(plt, fig, base, suffix):
    """Writes one figure as <base>-<suffix>.png, closes it and returns the file's name."""
    fig.tight_layout()
    fig.savefig(f"{base}-{suffix}.png", dpi=90)
    plt.close(fig)
    return f"{os.path.basename(base)}-{suffix}.png"


def plot(p, base):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for key, label in LOADS:
        r = p.get(key)
        if r:
            t = [row["t"] for row in r["timeline"]]
            ax.plot(t, [row["p50_ms"] for row in r["timeline"]], label=f"{label} p50")
            ax.plot(t, [row["p99_ms"] for row in r["timeline"]], label=f"{label} p99")
    ax.set(xlabel="seconds since load start (warm-up included)", ylabel="latency from scheduled send (ms)",
           title="Latency over time (per second of completion)", yscale="log")
    ax.axhline(25, color="grey", linestyle=":", label="target p99 25 ms")
    ax.legend(fontsize=8)
    made.append(save(plt, fig, base, "latency"))

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for key, label in HTTP_LOADS:
        r = p.get(key)
        if r:
            t = [row["t"] for row in r["timeline"]]
            line, = ax.plot(t, [row["ok"] for row in r["timeline"]], label=f"{label} ok/s")
            if any(row["errors"] for row in r["timeline"]):
                ax.plot(t, [row["errors"] for row in r["timeline"]], linestyle="--", color=line.get_color(),
                        label=f"{label} errors/s")
    lb = p.get("logbook")
    if lb and any(row["lag"] is not None for row in lb["timeline"]):
        ax2 = ax.twinx()
        ax2.plot([row["t"] for row in lb["timeline"]], [row["lag"] or 0 for row in lb["timeline"]],
                 color="black", alpha=0.4, label="Logbook projector lag (events)")
        ax2.set_ylabel("projector lag (events)")
        ax2.legend(loc="lower right", fontsize=8)
    ax.set(xlabel="seconds since load start (warm-up included)", ylabel="commands per second",
           title="Throughput over time")
    ax.legend(loc="upper left", fontsize=8)
    made.append(save(plt, fig, base, "throughput"))

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for key, label in HTTP_LOADS:
        r = p.get(key)
        if r and r["cdf"]:
            xs = [-math.log10(max(1e-5, 1 - q)) for q, _ in r["cdf"]]
            ax.plot(xs, [ms for _, ms in r["cdf"]], label=label)
    ticks = [0, 1, 2, 3, 4, 5]
    ax.set_xticks(ticks, ["0", "90", "99", "99.9", "99.99", "max"])
    ax.set(xlabel="percentile", ylabel="latency (ms)", yscale="log", title="Latency CDF (measured window)")
    ax.legend(fontsize=8)
    made.append(save(plt, fig, base, "cdf"))
    return made


def top(counter, total, n, name):
    return [{name: key, "samples": count, "percent": 100 * count / total} for key, count in counter.most_common(n)]


def profile_note(run, what):
    """Why a profile is missing: the line profile.log has about it, if any."""
    try:
        with open(os.path.join(run, "profile.log"), errors="replace") as f:
            lines = [line.strip() for line in f if what in line]
        return lines[-1] if lines else "not recorded"
    except OSError:
        return "not recorded"


def profile_delay(run):
    """Seconds into the profiled load at which the profiles started (bench.sh notes it)."""
    try:
        with open(os.path.join(run, "profile.log"), errors="replace") as f:
            found = re.search(r"profile window: from (\d+) s", f.read())
        return int(found.group(1)) if found else None
    except OSError:
        return None


def summarise_perf(run, leaves=25):
    """`perf script` of perf.data: share of samples per thread (comm) and per first interesting
    frame from the leaf (PERF_INTERESTING), plus the leaves of the samples without one."""
    data = os.path.join(run, "perf.data")
    if not os.path.exists(data) or os.path.getsize(data) == 0:
        return {"recorded": False, "note": profile_note(run, "logbook profile")}
    threads, frames, others = collections.Counter(), collections.Counter(), collections.Counter()
    frame_threads = collections.defaultdict(collections.Counter)
    period_ns = 0
    sample = None

    def flush():
        if sample is None:
            return
        comm, stack = sample
        threads[comm] += 1
        key = next((f for f in stack if PERF_INTERESTING.search(f)), None)
        if key is None:
            key = PERF_OTHER
            others[stack[0] if stack else "[unknown]"] += 1
        frames[key] += 1
        frame_threads[key][comm] += 1

    # --no-inline: symbols only (resolving inlined frames takes minutes, for the same leaves)
    with subprocess.Popen(["perf", "script", "--no-inline", "-i", data], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True, errors="replace") as perf:
        for line in perf.stdout:
            if not line.strip():
                flush()
                sample = None
            elif not line[0].isspace():
                flush()
                header = PERF_HEADER.match(line)
                sample = (header.group(1) if header else line.split()[0], [])
                period_ns += int(header.group(2)) if header else 0
            elif sample is not None:
                parts = line.strip().split(" ", 1)
                if len(parts) > 1:
                    symbol = parts[1].rsplit(" (", 1)[0] if parts[1].endswith(")") else parts[1]
                    sample[1].append(re.sub(r"\+0x[0-9a-f]+$", "", symbol))
        flush()
    if perf.returncode != 0 or not threads:
        return {"recorded": False, "note": f"perf script failed (exit {perf.returncode}, {sum(threads.values())} samples)"}
    total = sum(threads.values())
    cpu = period_ns / 1e9 if period_ns else total / PERF_HZ
    top_frames = top(frames, total, leaves, "frame")
    for row in top_frames:
        comm, count = frame_threads[row["frame"]].most_common(1)[0]
        row["thread"], row["thread_percent"] = comm, 100 * count / row["samples"]
    return {"recorded": True, "tool": f"perf record -F {PERF_HZ} --call-graph dwarf,16384 -p <logbook all>",
            "seconds": PROFILE_SECONDS, "from_s": profile_delay(run), "samples": total, "cpu_seconds": cpu,
            "threads": top(threads, total, 30, "thread"), "frames": top_frames,
            "other_leaves": top(others, total, 10, "frame")}


def summarise_jfr(run, leaves=20):
    """`jfr print` of kafka.jfr: share of execution samples per thread (trailing numbers
    dropped) and per leaf frame (class.method)."""
    data = os.path.join(run, "kafka.jfr")
    if not os.path.exists(data) or os.path.getsize(data) == 0:
        return {"recorded": False, "note": profile_note(run, "Kafka profile")}
    printed = subprocess.run(["jfr", "print", "--json", "--events", "jdk.ExecutionSample", "--stack-depth", "1", data],
                             capture_output=True, text=True, errors="replace", timeout=300)
    if printed.returncode != 0:
        return {"recorded": False, "note": f"jfr print failed: {printed.stderr.strip()[:300]}"}
    threads, frames = collections.Counter(), collections.Counter()
    for event in json.loads(printed.stdout)["recording"]["events"]:
        values = event["values"]
        thread = values.get("sampledThread") or {}
        name = thread.get("javaName") or thread.get("osName") or "?"
        threads[re.sub(r"[-\d]+$", "", name) or name] += 1
        stack = (values.get("stackTrace") or {}).get("frames") or []
        if stack:
            method = stack[0]["method"]
            frames[f"{method['type']['name'].replace('/', '.')}.{method['name']}"] += 1
        else:
            frames["(no stack)"] += 1
    total = sum(threads.values())
    if not total:
        return {"recorded": False, "note": "the JFR recording has no execution samples"}
    return {"recorded": True, "tool": "jcmd <broker> JFR.start duration=10s settings=profile (jdk.ExecutionSample)",
            "seconds": PROFILE_SECONDS, "from_s": profile_delay(run), "samples": total,
            "threads": top(threads, total, 20, "thread"), "frames": top(frames, total, leaves, "frame")}


def summarise_profile(run, only_new=False):
    """Writes profile-logbook.json and profile-kafka.json; deletes perf.data once summarised.
    only_new: just the profiles whose recording is there and whose summary is not."""
    for summarise, source, target in ((summarise_perf, "perf.data", "profile-logbook.json"),
                                      (summarise_jfr, "kafka.jfr", "profile-kafka.json")):
        path = os.path.join(run, target)
        if only_new and (os.path.exists(path) or not os.path.exists(os.path.join(run, source))):
            continue
        try:
            summary = summarise(run)
        except Exception as error:  # a profile never fails the run
            summary = {"recorded": False, "note": f"summary failed: {error!r}"}
        with open(path, "w") as f:
            json.dump(summary, f, indent=1)
        if source == "perf.data" and summary.get("recorded"):
            os.remove(os.path.join(run, source))
        print(f"{path}: {'recorded' if summary.get('recorded') else summary.get('note')}")


def cell(text, width=140):
    """A frame or thread name as a table cell: code, no pipes, not too long."""
    text = text if len(text) <= width else text[:width - 1] + "…"
    return "`" + text.replace("`", "'").replace("|", "\\|") + "`"


def profile_section(p, out):
    env = p.get("environment", {})
    load = env.get("settings", {}).get("load", {})
    out += ["## Profile (logbook phase, 10 s)", ""]
    if env.get("settings", {}).get("profile") is False:
        out += ["Not recorded (--no-profile).", ""]
        return
    lb, kafka = p.get("profile_logbook") or {}, p.get("profile_kafka") or {}
    rate = f" at {fmt(load['rate'], 0)}/s" if "rate" in load else ""
    start = next((r["from_s"] for r in (lb, kafka) if r.get("from_s") is not None), None)
    start = f"from {start} s in" if start is not None else "from about 8 s in"
    out += [f"10 s of a third load{rate} on the same instance, after the measured ones ({start}; JFR starts about 1 s before perf). "
            "It is kept apart because starting JFR and perf stalls the broker and the process for a moment; its latency figures are not used. "
            "A sample counts against the first frame from "
            f"the leaf that belongs to Logbook or one of these libraries: `{PERF_INTERESTING.pattern}`; "
            f"samples without one are \"{PERF_OTHER}\".", ""]
    if lb.get("recorded"):
        out += [f"**Logbook** (`{lb['tool']}`): {fmt(lb['samples'], 0)} samples, {fmt(lb['cpu_seconds'])} CPU seconds "
                f"in {lb['seconds']} s ({fmt(lb['cpu_seconds'] / lb['seconds'], 2)} cores).", "",
                "| thread | samples |", "| --- | --- |"]
        out += [f"| {cell(r['thread'])} | {fmt(r['percent'])}% |" for r in lb["threads"]]
        out += ["", "| samples | first Logbook or library frame from the leaf | mostly on thread |", "| --- | --- | --- |"]
        out += [f"| {fmt(r['percent'])}% | {cell(r['frame'])} | {cell(r['thread'])} ({fmt(r['thread_percent'], 0)}%) |"
                for r in lb["frames"]]
        if lb.get("other_leaves"):
            out += ["", f"Leaf frames of the \"{PERF_OTHER}\" samples:", "", "| samples | leaf frame |", "| --- | --- |"]
            out += [f"| {fmt(r['percent'])}% | {cell(r['frame'])} |" for r in lb["other_leaves"]]
    else:
        out += [f"**Logbook**: not recorded ({lb.get('note', 'no perf.data')})."]
    out.append("")
    if kafka.get("recorded"):
        out += [f"**Kafka broker** (`{kafka['tool']}`): {fmt(kafka['samples'], 0)} samples.", "",
                "| thread | samples |", "| --- | --- |"]
        out += [f"| {cell(r['thread'])} | {fmt(r['percent'])}% |" for r in kafka["threads"]]
        out += ["", "| samples | leaf frame |", "| --- | --- |"]
        out += [f"| {fmt(r['percent'])}% | {cell(r['frame'])} |" for r in kafka["frames"]]
    else:
        out += [f"**Kafka broker**: not recorded ({kafka.get('note', 'no kafka.jfr')})."]
    out.append("")


def markdown(p, images):
    env = p.get("environment", {})
    out = [f"# Logbook benchmark {env.get('stamp', '')}", "",
           f"Command: `{env.get('command', 'scripts/dev bench')}`", "",
           "## Targets (issue 19)", "",
           "| figure | target | measured | verdict | against the baseline |", "| --- | --- | --- | --- | --- |"]
    for row in targets(p):
        out.append("| " + " | ".join(str(c) for c in row) + " |")
    out += ["", "## Ratios to the baselines (same machine, same run)", ""]
    write_ratios(p, out)
    out += ["", "## HTTP load (open loop; latency from the scheduled send time)", ""]
    load_table(p, out)
    out += [""]
    sweep_section(p, out)
    out += cpu_per_command.section(p, logbook_loads(p), dict(HTTP_LOADS), fmt)
    partitions.section(p.get("partitions", {}), out)
    out += ["## Baselines", ""]
    baseline_table(p, out)
    if "cqrs_es" not in p:
        out += ["", "(e) cqrs-es + postgres-es: not run.", ""]
    out += [""]
    profile_section(p, out)
    tried = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tried.md")
    if os.path.exists(tried):
        with open(tried) as f:
            out += [f.read().rstrip(), ""]
    out += ["## Plots", ""] + [f"![{i}]({i})" for i in images]
    out += ["", "## Machine, versions and settings", "", "```json",
            json.dumps({k: env.get(k) for k in ("machine", "versions", "settings")}, indent=2), "```", ""]
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="folder with the phases' JSON results")
    parser.add_argument("--out", help="output path without extension")
    parser.add_argument("--summarise-profile", metavar="RUN",
                        help="only summarise the profiles in run folder RUN (perf.data, kafka.jfr)")
    args = parser.parse_args()
    if args.summarise_profile:
        summarise_profile(args.summarise_profile)
        return
    if not (args.run and args.out):
        parser.error("--run and --out are required")
    summarise_profile(args.run, only_new=True)
    parts = load_parts(args.run)
    images = plot(parts, args.out)
    with open(f"{args.out}.json", "w") as f:
        json.dump(parts, f, indent=1)
    with open(f"{args.out}.md", "w") as f:
        f.write(markdown(parts, images))
    print(f"{args.out}.md")


if __name__ == "__main__":
    main()
