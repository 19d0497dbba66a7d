#!/usr/bin/env python3
"""The baseline of the Kafka benchmark: confluent-kafka (librdkafka 2.16) consuming every
message of a topic, raw, as fast as it can; prints messages and seconds.

    python3 benches/kafka_consume.py BROKERS TOPIC COUNT
"""
import sys
import time

from confluent_kafka import Consumer, TopicPartition

brokers, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = Consumer({"bootstrap.servers": brokers, "group.id": f"bench-raw-{time.time()}",
              "enable.auto.commit": False})
parts = c.list_topics(topic, timeout=10).topics[topic].partitions
started = time.perf_counter()
c.assign([TopicPartition(topic, p, 0) for p in sorted(parts)])
got = 0
while got < count:
    for m in c.consume(num_messages=10000, timeout=1.0):
        if m.error() is None:
            got += 1
    if time.perf_counter() - started > 600:
        sys.exit(f"only {got} of {count} messages")
secs = time.perf_counter() - started
c.close()
print(f"{got} {secs:.3f}")
