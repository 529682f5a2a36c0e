"""Report of a `scripts/dev chaos` run: the timeline written by the chaos test
(tests/tests/fault_stage/chaos.rs) as a plot of definite answers and retried (ambiguous) answers
per second with the nemesis' faults marked, and a markdown summary beside it."""

import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def per_second(samples, keep):
    counts = {}
    for at, status, definite in samples:
        if keep(status, definite):
            counts[int(at)] = counts.get(int(at), 0) + 1
    end = int(max((s[0] for s in samples), default=0)) + 1
    return list(range(end)), [counts.get(second, 0) for second in range(end)]


def main():
    path, status = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0
    run = json.load(open(path))
    stem = os.path.splitext(path)[0]
    samples = run["timeline"]
    seconds, ok = per_second(samples, lambda s, d: d)
    _, retried = per_second(samples, lambda s, d: not d)
    fig, ax = plt.subplots(figsize=(12, 4.5))
    ax.plot(seconds, ok, label="definite answers/s", color="tab:blue")
    ax.plot(seconds, retried, label="ambiguous answers/s (retried with the same key)", color="tab:red")
    for at, what in run["faults"]:
        ax.axvline(at, color="grey", linestyle=":", linewidth=1)
        ax.text(at, ax.get_ylim()[1] * 0.98, what, rotation=90, fontsize=6, va="top", ha="right")
    ax.set_xlabel("seconds since the bank opened")
    ax.set_ylabel("answers per second")
    ax.set_title(f"Chaos: {run['rounds']} rounds, {run['brokers']} brokers, "
                 f"{run['instances_per_role']} instances per role, {run['clients']} clients")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(stem + ".png", dpi=110)

    answers = ", ".join(f"{k}: {v}" for k, v in sorted(run["answers"].items()))
    ambiguous = sum(1 for _, _, d in samples if not d)
    lines = [
        f"# Chaos run {os.path.basename(stem)}",
        "",
        f"Command: `scripts/dev chaos --rounds {run['rounds']}`. A three-node Kafka cluster of the test's own "
        f"(replication factor 3, `min.insync.replicas` 2), {run['partitions']} partitions, two instances of "
        f"every role as processes, {run['clients']} clients moving money between {run['accounts']} accounts "
        "through both gateways and retrying every ambiguous answer with the same Idempotency-Key.",
        "",
        f"**Verdict: {'every invariant held' if status == 0 else 'FAILED (see the run log)'}**: money conserved "
        "over the definite answers, no command applied twice, gapless sequences and intact hash chains, every "
        "transfer settled, `logbook verify` intact, read models equal to a fresh fold.",
        "",
        f"- definite answers by status: {answers}",
        f"- ambiguous answers retried: {ambiguous} (5xx, timeouts, refused connections); commands answered "
        f"`command_expired`: {run['expired']}",
        "",
        "## Faults",
        "",
        "| at (s) | fault |",
        "| --- | --- |",
    ]
    lines += [f"| {at:.1f} | {what} |" for at, what in run["faults"]]
    lines += ["", f"![timeline]({os.path.basename(stem)}.png)", ""]
    open(stem + ".md", "w").write("\n".join(lines))
    print(stem + ".md")


if __name__ == "__main__":
    main()
