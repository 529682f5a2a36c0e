#!/usr/bin/env python3
"""Turns the raw results of one `scripts/dev bench` run into the committed report.

Reads the JSON files the phases wrote into the run folder and writes <out>.json (everything,
combined), <out>.md (the summary: targets met or missed, ratios to the baselines, machine,
versions and settings) and three PNG plots beside it: latency over time, throughput over time
and the latency CDF, each with Logbook and the plain PostgreSQL baseline side by side.
"""
import argparse
import json
import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PARTS = {
    "environment": "environment.json",
    "logbook": "load-logbook.json",
    "plain_pg": "load-plain-pg.json",
    "cqrs_es": "load-cqrs-es.json",
    "produce_txn": "produce-txn.json",
    "produce_idempotent": "produce-idempotent.json",
    "produce_txn_1000": "produce-txn-1000.json",
    "copy": "copy.json",
    "backlog": "backlog.json",
    "produce_backlog": "produce-backlog.json",
}
LOADS = (("logbook", "Logbook"), ("plain_pg", "plain PostgreSQL (FOR UPDATE)"),
         ("cqrs_es", "cqrs-es + postgres-es"))


def load_parts(run):
    parts = {}
    for key, name in PARTS.items():
        path = os.path.join(run, name)
        if os.path.exists(path):
            with open(path) as f:
                parts[key] = json.load(f)
    return parts


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
    lb, plain = p.get("logbook"), p.get("plain_pg")
    if lb:
        tput, p99 = lb["throughput_ok_per_s"], lb["latency"]["p99_ms"]
        met = tput >= 10_000 and p99 <= 25
        verdict = "met" if met else (
            f"missed: {fmt(tput, 0)}/s is {fmt(100 * tput / 10_000, 0)}% of 10,000/s"
            f" (offered {fmt(lb['rate'], 0)}/s); p99 {fmt(p99)} ms vs 25 ms")
        base = plain and f"{fmt(ratio(tput, plain['throughput_ok_per_s']), 2)}x the plain-PG throughput at the same offered rate"
        rows.append(("commands through HTTP, sustained", ">= 10,000/s, p99 <= 25 ms",
                     f"{fmt(tput, 0)}/s, p50 {fmt(lb['latency']['p50_ms'])} ms, p99 {fmt(p99)} ms",
                     verdict, base or ""))
        fresh = lb["freshness"]["p99_ms"]
        rows.append(("freshness (answer -> visible in accounts)", "p99 <= 50 ms",
                     f"p50 {fmt(lb['freshness']['p50_ms'])} ms, p99 {fmt(fresh)} ms ({lb['freshness']['count']} probes, {lb['freshness_failures']} failed)",
                     "met" if lb["freshness"]["count"] and fresh <= 50 else f"missed by {fmt(fresh - 50)} ms",
                     plain and f"plain PG read after commit: p99 {fmt(plain['freshness']['p99_ms'])} ms" or ""))
    bl, cp = p.get("backlog"), p.get("copy")
    if bl:
        eps = bl["catchup_events_per_s"]
        rows.append(("projector on a backlog", ">= 50,000 events/s",
                     f"{fmt(eps, 0)} events/s ({fmt(bl['events'], 0)} events, ledger {fmt(bl['catchup_ledger_seconds'])} s, archive {fmt(bl['catchup_archive_seconds'])} s, from process start)",
                     "met" if eps >= 50_000 else f"missed: {fmt(100 * eps / 50_000, 0)}% of target",
                     cp and f"{fmt(ratio(eps, cp['events_per_s']), 2)}x raw COPY ({fmt(cp['events_per_s'], 0)} events/s)" or ""))
        per_million = bl["rebuild_ledger_seconds"] * 1_000_000 / bl["events"]
        rows.append(("full rebuild of 1M events", "<= 10 s",
                     f"ledger {fmt(bl['rebuild_ledger_seconds'])} s, archive {fmt(bl['rebuild_archive_seconds'])} s for {fmt(bl['events'], 0)} events",
                     "met" if per_million <= 10 else f"missed: {fmt(per_million)} s per 1M (ledger)",
                     cp and f"raw COPY of 1M events' rows would take {fmt(1e6 / cp['events_per_s'])} s" or ""))
        bpa = bl["processor_bytes_per_account"]
        rows.append(("processor memory per account", "<= 300 bytes",
                     f"{fmt(bpa, 0)} bytes ({fmt(bl['accounts'], 0)} accounts; RSS {fmt(bl['processor_rss_empty_kib'] / 1024)} -> {fmt(bl['processor_rss_restored_kib'] / 1024)} MiB)",
                     "met" if bpa <= 300 else f"missed: {fmt(bpa / 300, 1)}x the target", ""))
    return rows


def write_ratios(p, out):
    lb = p.get("logbook")
    txn, idem, txn1k = p.get("produce_txn"), p.get("produce_idempotent"), p.get("produce_txn_1000")
    lines = ["| figure | value | baseline | ratio |", "| --- | --- | --- | --- |"]
    if lb and lb.get("server") and lb["server"]["commands"]:
        s = lb["server"]
        events_per_cmd = s["events"] / s["commands"]
        lb_events = lb["throughput_ok_per_s"] * events_per_cmd
        lines.append(f"| commands per processor transaction | {fmt(s['commands'] / max(1, s['transactions_committed']))} | | |")
        if txn:
            lines.append(f"| Logbook events/s vs raw transactional produce (batch {txn['batch']}) | {fmt(lb_events, 0)} | {fmt(txn['events_per_s'], 0)} | {fmt(ratio(lb_events, txn['events_per_s']), 3)} |")
    if txn and idem:
        lines.append(f"| raw produce: transactions vs none (cost of exactly-once), batch {txn['batch']} | {fmt(txn['events_per_s'], 0)}/s | {fmt(idem['events_per_s'], 0)}/s | {fmt(ratio(txn['events_per_s'], idem['events_per_s']), 3)} |")
    if txn and txn1k:
        lines.append(f"| raw transactional produce: batch {txn['batch']} vs batch 1000 | {fmt(txn['events_per_s'], 0)}/s | {fmt(txn1k['events_per_s'], 0)}/s | {fmt(ratio(txn['events_per_s'], txn1k['events_per_s']), 3)} |")
    plain = p.get("plain_pg")
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


def load_table(p, out):
    out += ["| system | offered/s | ok/s | errors | p50 | p90 | p99 | p99.9 | max | service p99 | freshness p99 |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for key, name in LOADS:
        r = p.get(key)
        if not r:
            continue
        lat = r["latency"]
        out.append(f"| {name} | {fmt(r['rate'], 0)} | {fmt(r['throughput_ok_per_s'], 0)} | {r['errors']} {r['statuses']} | "
                   f"{fmt(lat['p50_ms'])} | {fmt(lat['p90_ms'])} | {fmt(lat['p99_ms'])} | {fmt(lat['p999_ms'])} | {fmt(lat['max_ms'])} | "
                   f"{fmt(r['service_time']['p99_ms'])} | {fmt(r['freshness']['p99_ms'])} |")
    out.append("")
    out += ["| system | process | CPU mean (% of one core) | RSS max (MiB) |", "| --- | --- | --- | --- |"]
    for key, name in LOADS:
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


def plot(p, base):
    name = os.path.basename(base)
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
    fig.tight_layout()
    fig.savefig(f"{base}-latency.png", dpi=90)
    made.append(f"{name}-latency.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for key, label in LOADS:
        r = p.get(key)
        if r:
            t = [row["t"] for row in r["timeline"]]
            ax.plot(t, [row["ok"] for row in r["timeline"]], label=f"{label} ok/s")
            ax.plot(t, [row["errors"] for row in r["timeline"]], linestyle="--", label=f"{label} errors/s")
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
    fig.tight_layout()
    fig.savefig(f"{base}-throughput.png", dpi=90)
    made.append(f"{name}-throughput.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for key, label in LOADS:
        r = p.get(key)
        if r and r["cdf"]:
            xs = [-math.log10(max(1e-5, 1 - q)) for q, _ in r["cdf"]]
            ax.plot(xs, [ms for _, ms in r["cdf"]], label=label)
    ticks = [0, 1, 2, 3, 4, 5]
    ax.set_xticks(ticks, ["0", "90", "99", "99.9", "99.99", "max"])
    ax.set(xlabel="percentile", ylabel="latency (ms)", yscale="log", title="Latency CDF (measured window)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(f"{base}-cdf.png", dpi=90)
    made.append(f"{name}-cdf.png")
    plt.close(fig)
    return made


def markdown(p, images):
    env = p.get("environment", {})
    out = [f"# Logbook benchmark {env.get('stamp', '')}", "",
           f"Command: `{env.get('command', 'scripts/dev bench')}`", "",
           "## Targets (issue 8)", "",
           "| figure | target | measured | verdict | against the baseline |", "| --- | --- | --- | --- | --- |"]
    for row in targets(p):
        out.append("| " + " | ".join(str(c) for c in row) + " |")
    out += ["", "## Ratios to the baselines (same machine, same run)", ""]
    write_ratios(p, out)
    out += ["", "## HTTP load (open loop; latency from the scheduled send time)", ""]
    load_table(p, out)
    out += ["", "## Baselines", ""]
    baseline_table(p, out)
    if "cqrs_es" not in p:
        out += ["", "(e) cqrs-es + postgres-es: not run.", ""]
    out += ["## Plots", ""] + [f"![{i}]({i})" for i in images]
    out += ["", "## Machine, versions and settings", "", "```json",
            json.dumps({k: env.get(k) for k in ("machine", "versions", "settings")}, indent=2), "```", ""]
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", required=True, help="folder with the phases' JSON results")
    parser.add_argument("--out", required=True, help="output path without extension")
    args = parser.parse_args()
    parts = load_parts(args.run)
    images = plot(parts, args.out)
    with open(f"{args.out}.json", "w") as f:
        json.dump(parts, f, indent=1)
    with open(f"{args.out}.md", "w") as f:
        f.write(markdown(parts, images))
    print(f"{args.out}.md")


if __name__ == "__main__":
    main()
