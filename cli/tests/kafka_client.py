#!/usr/bin/env python3
"""A third-party Kafka client (confluent-kafka, librdkafka 2.16) for the Kafka tests.

    python3 kafka_client.py consume BROKERS TOPIC COUNT [TIMEOUT_S]
        reads COUNT messages (0: until none comes for 3 s) of every partition from the
        beginning and prints one JSON line
        per message: {"key", "partition", "offset", "value"} (value parsed as JSON; text
        when it is not JSON)
    python3 kafka_client.py produce BROKERS TOPIC PARTITIONS
        creates the topic when missing and sends one message per stdin line "KEY<TAB>VALUE"
        (VALUE "hex:..." is sent as those bytes)
    python3 kafka_client.py committed BROKERS TOPIC GROUP
        prints the sum over the topic's partitions of the group's committed offsets
"""
import json
import sys
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def consume(brokers, topic, count, timeout):
    c = Consumer({
        "bootstrap.servers": brokers,
        "group.id": f"third-party-{topic}",
        "enable.auto.commit": False,
    })
    meta = c.list_topics(topic, timeout=10)
    t = meta.topics.get(topic)
    if t is None or t.error is not None:
        sys.exit(f"topic {topic}: {t.error if t else 'missing'}")
    c.assign([TopicPartition(topic, p, 0) for p in sorted(t.partitions)])
    got = 0
    deadline = time.time() + timeout
    last = time.time()
    while (count == 0 or got < count) and time.time() < deadline:
        m = c.poll(0.2)
        if m is None:
            if count == 0 and time.time() - last > 3:
                break
            continue
        last = time.time()
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                continue
            sys.exit(f"consume error: {m.error()}")
        got += 1
        try:
            value = json.loads(m.value())
        except ValueError:
            value = m.value().decode(errors="replace")
        print(json.dumps({
            "key": m.key().decode() if m.key() is not None else None,
            "partition": m.partition(),
            "offset": m.offset(),
            "value": value,
        }))
    c.close()
    if count and got < count:
        sys.exit(f"only {got} of {count} messages within {timeout} s")


def produce(brokers, topic, partitions):
    admin = AdminClient({"bootstrap.servers": brokers})
    if topic not in admin.list_topics(timeout=10).topics:
        for f in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
            f.result()
    p = Producer({"bootstrap.servers": brokers, "enable.idempotence": True})
    sent = 0
    for line in sys.stdin:
        key, _, value = line.rstrip("\n").partition("\t")
        raw = bytes.fromhex(value[4:]) if value.startswith("hex:") else value.encode()
        p.produce(topic, key=key.encode(), value=raw)
        sent += 1
    if p.flush(30) != 0:
        sys.exit("messages left undelivered")
    print(sent)


def committed(brokers, topic, group):
    c = Consumer({"bootstrap.servers": brokers, "group.id": group,
                  "enable.auto.commit": False})
    meta = c.list_topics(topic, timeout=10)
    parts = sorted(meta.topics[topic].partitions)
    offsets = c.committed([TopicPartition(topic, p) for p in parts], timeout=10)
    print(sum(max(tp.offset, 0) for tp in offsets))
    c.close()


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "consume":
        consume(sys.argv[2], sys.argv[3], int(sys.argv[4]),
                float(sys.argv[5]) if len(sys.argv) > 5 else 60.0)
    elif cmd == "produce":
        produce(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif cmd == "committed":
        committed(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(f"unknown command {cmd}")
