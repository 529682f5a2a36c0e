"""The report's "CPU per command" table: CPU milliseconds per answered command, by process.

Each HTTP load samples the CPU of every process from /proc (`procs`, mean % of one core over the
measured window). Divided by the commands answered per second, that is what one command costs
each process. The system's own processes (for Logbook the broker, `logbook all` and PostgreSQL)
summed give the CPU one command costs the system (the load generator is shown apart: it shares
the machine but is not part of the system). Against the machine's cores it says how far a
throughput target is from what the CPU can carry: 8,000 commands/s on 2 cores leaves 0.25 ms of
CPU per command for everything.
"""

# the processes that make up each system of the HTTP loads (the broker idles during the baselines)
SYSTEMS = {
    "logbook": ("kafka", "logbook", "postgres"),
    "plain_pg": ("plain-pg", "postgres"),
    "cqrs_es": ("cqrs-es", "postgres"),
}
COLUMNS = ("kafka", "logbook", "plain-pg", "cqrs-es", "postgres")


def per_command(load, procs):
    """CPU ms per answered command of each process in `procs` (None where not sampled)."""
    ok = load.get("throughput_ok_per_s") or 0
    sampled = load.get("procs") or {}
    costs = {}
    for name in procs:
        cpu = (sampled.get(name) or {}).get("cpu_percent_mean")
        costs[name] = None if cpu is None or not ok else cpu * 10 / ok
    return costs


def row(label, load, system, fmt):
    """One table row for a load of `system`, or None without CPU samples."""
    costs = per_command(load, SYSTEMS[system] + ("generator",))
    own = [costs[name] for name in SYSTEMS[system] if costs[name] is not None]
    if not own:
        return None
    total = sum(own)
    cells = [fmt(costs[name], 2) if costs.get(name) is not None else "—" for name in COLUMNS]
    generator = costs.get("generator")
    return (f"| {label} | {fmt(load.get('rate'), 0)} | {fmt(load.get('throughput_ok_per_s'), 0)} | "
            + " | ".join(cells)
            + f" | {fmt(total, 2)} | {'—' if generator is None else fmt(generator, 2)} |")


def section(p, loads, names, fmt):
    """The table's lines: Logbook at each offered rate of `loads`, then the capacity load and the
    baselines; [] without samples."""
    cores = (((p.get("environment") or {}).get("machine") or {}).get("cores")) or 0
    budget = fmt(1000 * cores, 0) if cores else "n/a"
    rows = []
    for rate in sorted(loads):
        rows.append(row(names["logbook"], loads[rate], "logbook", fmt))
    if "logbook_capacity" in p:
        rows.append(row(names["logbook_capacity"], p["logbook_capacity"], "logbook", fmt))
    for key in ("plain_pg", "cqrs_es"):
        if key in p:
            rows.append(row(names[key], p[key], key, fmt))
    rows = [r for r in rows if r]
    if not rows:
        return []
    return ["## CPU per command", "",
            "CPU milliseconds each process spends per answered command: its mean CPU over the "
            "measured window (% of one core, sampled from `/proc`) over the commands answered per "
            "second. `system`: the system's own processes summed (the broker idles during the "
            "baselines and is not counted for them). The cost falls as the load grows because "
            "transactions and fetches carry more commands each. This machine has "
            f"{cores or 'n/a'} cores: {budget} ms of CPU a second for every process, so a throughput "
            f"of N commands/s leaves {budget}/N ms of CPU per command.", "",
            "| system | offered/s | ok/s | " + " | ".join(COLUMNS) + " | system | generator |",
            "| --- " * (5 + len(COLUMNS)) + "|"] + rows + [""]
