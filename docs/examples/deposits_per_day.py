#!/usr/bin/env python3
"""Total the deposits per day (UTC) and currency from Logbook's events topic.

Reads `<prefix>.events` from the beginning to its current end with the confluent-kafka
client, `isolation.level=read_committed` (records of aborted transactions are never
counted), and prints one JSON object: {"YYYY-MM-DD": {"EUR": minor_units, ...}, ...}.

    python deposits_per_day.py --brokers 127.0.0.1:9092 --topic logbook.events

The record key is the account id; the `event_type` header lets a reader skip records without
parsing them. `FundsDeposited` carries no currency: it is the account's, learnt from its
`AccountOpened` (always earlier in the same partition, since one account = one partition).
"""

import argparse
import json
import sys
import uuid
from collections import defaultdict

from confluent_kafka import Consumer, KafkaError, TopicPartition

WANTED = {b"AccountOpened", b"FundsDeposited"}


def header(message, name):
    for key, value in message.headers() or []:
        if key == name:
            return value
    return None


def read_log(brokers, topic):
    """Yields every committed record of the topic up to the end seen at the start."""
    consumer = Consumer({
        "bootstrap.servers": brokers,
        "group.id": f"deposits-per-day-{uuid.uuid4()}",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "enable.partition.eof": True,
    })
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = sorted(metadata.topics[topic].partitions)
        assignment, open_partitions = [], set()
        for partition in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            if high > low:
                assignment.append(TopicPartition(topic, partition, low))
                open_partitions.add(partition)
        if not assignment:
            return
        consumer.assign(assignment)
        while open_partitions:
            message = consumer.poll(1.0)
            if message is None:
                continue
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:
                    open_partitions.discard(message.partition())
                    continue
                raise RuntimeError(message.error())
            yield message
    finally:
        consumer.close()


def totals(messages):
    currency_of = {}
    per_day = defaultdict(lambda: defaultdict(int))
    for message in messages:
        event_type = header(message, "event_type")
        if event_type is not None and event_type not in WANTED:
            continue
        envelope = json.loads(message.value())
        if envelope["event_type"] == "AccountOpened":
            currency_of[envelope["aggregate_id"]] = envelope["data"]["currency"]
        elif envelope["event_type"] == "FundsDeposited":
            day = envelope["occurred_at"][:10]
            currency = currency_of.get(envelope["aggregate_id"], "???")
            per_day[day][currency] += envelope["data"]["amount"]
    return {day: dict(sorted(by_currency.items())) for day, by_currency in sorted(per_day.items())}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brokers", required=True, help="bootstrap servers, host:port[,…]")
    parser.add_argument("--topic", default="logbook.events", help="the events topic")
    args = parser.parse_args()
    json.dump(totals(read_log(args.brokers, args.topic)), sys.stdout, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
