"""Failover probe of `scripts/dev bench` (backlog phase).

`warm`: opens the accounts of the id file (one command per account, all at once) and waits for
every answer, so each commands partition has been restored by its owner.
`after-kill`: sends the same opens again (each now answers 409 account_exists, a decision like
any other) right after a processor was killed, and records for each account how long after the
kill its answer came. The partitions the killed processor owned answer only once another
processor has taken them over, restored them and decided: the slowest answer is the failover.
"""

import argparse
import concurrent.futures
import json
import time
import urllib.error
import urllib.request


def open_account(url, token, account_id, timeout):
    body = json.dumps({"owner_id": "bench", "currency": "EUR", "account_id": account_id}).encode()
    request = urllib.request.Request(
        f"{url}/v1/accounts",
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["warm", "after-kill"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--token-file", required=True)
    parser.add_argument("--ids", required=True)
    parser.add_argument("--killed-at", type=float, default=0.0)
    parser.add_argument("--out")
    args = parser.parse_args()
    token = open(args.token_file).read().strip()
    ids = open(args.ids).read().split()
    started = time.time()

    def one(account_id):
        status = open_account(args.url, token, account_id, 180)
        return account_id, status, time.time()

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(ids)) as pool:
        answers = list(pool.map(one, ids))
    decided = [a for a in answers if a[1] in (201, 409)]
    if args.mode == "warm":
        if len(decided) != len(ids):
            raise SystemExit(f"warm-up: {len(ids) - len(decided)} opens were not decided: {answers}")
        return
    since_kill = sorted(at - args.killed_at for _, status, at in decided)
    result = {
        "accounts": len(ids),
        "decided": len(decided),
        "statuses": sorted({status for _, status, _ in answers}),
        "probe_sent_after_kill_s": started - args.killed_at,
        "first_answer_s": since_kill[0] if since_kill else None,
        "median_answer_s": since_kill[len(since_kill) // 2] if since_kill else None,
        "failover_s": since_kill[-1] if since_kill else None,
    }
    json.dump(result, open(args.out, "w"), indent=2)


if __name__ == "__main__":
    main()
