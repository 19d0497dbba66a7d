//! A resumed Kafka producer sends nothing twice, against a real Kafka-protocol broker (tansu,
//! started by scripts/test.sh, address in TICKFLOW_KAFKA_BROKERS).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use tickflow_sinks::kafka::{ROW_HEADER, Start, TopicProducer, WRITER_HEADER};

/// The broker, or `None` (the test says SKIPPED).
fn brokers(test: &str) -> Option<String> {
    match std::env::var("TICKFLOW_KAFKA_BROKERS") {
        Ok(b) if !b.is_empty() => Some(b),
        _ => {
            eprintln!(
                "SKIPPED {test}: TICKFLOW_KAFKA_BROKERS is not set (scripts/test.sh sets it)"
            );
            None
        }
    }
}

/// A topic name no other test or run uses.
fn topic(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
}

/// Row `i`'s key (one of five instruments) and value.
fn row(i: u64) -> (String, String) {
    (format!("S{}", i % 5), format!("{{\"row\":{i}}}"))
}

/// Gives `producer` rows `range` (queued, not waited for).
fn give(producer: &mut TopicProducer, range: std::ops::Range<u64>) {
    for i in range {
        let (k, v) = row(i);
        producer.send(k.as_bytes(), v.as_bytes()).unwrap();
    }
    producer.poll();
}

/// The producer dies once what it sent has reached the brokers.
fn die(mut producer: TopicProducer) {
    producer.flush().unwrap();
}

/// Every message of `topic`: per key, the values in partition order, and the writers seen.
fn read_all(brokers: &str, topic: &str) -> (BTreeMap<String, Vec<String>>, Vec<String>) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{topic}-check"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for p in 0..3 {
        list.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&list).unwrap();
    let (mut by_key, mut writers) = (BTreeMap::<String, Vec<String>>::new(), Vec::new());
    let mut last = Instant::now();
    while last.elapsed() < Duration::from_secs(3) {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            last = Instant::now();
            let h = m.headers().expect("every message has headers");
            let writer = h.iter().find(|h| h.key == WRITER_HEADER).unwrap();
            let w = String::from_utf8(writer.value.unwrap().to_vec()).unwrap();
            if !writers.contains(&w) {
                writers.push(w);
            }
            assert!(
                h.iter()
                    .any(|h| h.key == ROW_HEADER && h.value.unwrap().len() == 8)
            );
            by_key
                .entry(String::from_utf8(m.key().unwrap().to_vec()).unwrap())
                .or_default()
                .push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
        }
    }
    (by_key, writers)
}

/// How many headers each message of one-partition `topic` has, in order.
fn headers_of(brokers: &str, topic: &str) -> Vec<usize> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{topic}-check"))
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&list).unwrap();
    let (mut out, mut last) = (Vec::new(), Instant::now());
    while last.elapsed() < Duration::from_secs(3) {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            last = Instant::now();
            out.push(m.unwrap().headers().map_or(0, |h| h.count()));
        }
    }
    out
}

/// Per key, the values of rows `0..n` in order.
fn expected(n: u64) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::<String, Vec<String>>::new();
    for i in 0..n {
        let (k, v) = row(i);
        out.entry(k).or_default().push(v);
    }
    out
}

#[test]
fn a_resumed_producer_leaves_out_what_the_one_before_had_sent_after_the_checkpoint() {
    let test = "a_resumed_producer_leaves_out_what_the_one_before_had_sent_after_the_checkpoint";
    let Some(brokers) = brokers(test) else {
        return;
    };
    let t = topic("resume");
    // A is given rows 0..100, noting its state at row 60 (a checkpoint), and dies at 100.
    let mut a = TopicProducer::new(&brokers, &t, 3, Start::Checkpointed).unwrap();
    give(&mut a, 0..60);
    let at_60 = a.state().unwrap();
    // (In several record batches: where B starts, the topic's end is past all of them.)
    for from in (60..100).step_by(10) {
        give(&mut a, from..from + 10);
        a.flush().unwrap();
    }
    die(a);
    // B resumes from the checkpoint at 60 and is given rows 60..130 (a checkpoint at 80,
    // while it is still leaving rows out), then dies.
    let mut b = TopicProducer::new(&brokers, &t, 3, Start::Resume(&at_60)).unwrap();
    assert_eq!(b.already_sent(), 40);
    give(&mut b, 60..80);
    let at_80 = b.state().unwrap();
    give(&mut b, 80..130);
    assert_eq!(b.skipped(), 40);
    die(b);
    // C resumes from B's checkpoint at 80: A's rows 80..100 and B's 100..130 are in the topic.
    let mut c = TopicProducer::new(&brokers, &t, 3, Start::Resume(&at_80)).unwrap();
    assert_eq!(c.already_sent(), 50);
    give(&mut c, 80..150);
    assert_eq!(c.finish().unwrap(), 20);
    // Each row is in the topic once, in order per key, all from one producer.
    let (got, writers) = read_all(&brokers, &t);
    assert_eq!(got, expected(150));
    assert_eq!(writers.len(), 1, "{writers:?}");

    // A producer started afresh is another producer: it sends every row it is given.
    let mut d = TopicProducer::new(&brokers, &t, 3, Start::Checkpointed).unwrap();
    give(&mut d, 0..10);
    assert_eq!(d.finish().unwrap(), 10);
    assert_eq!(read_all(&brokers, &t).1.len(), 2);

    // A producer of a job without checkpoints has no state and adds no headers.
    let plain_topic = topic("plain");
    let mut plain = TopicProducer::new(&brokers, &plain_topic, 1, Start::Plain).unwrap();
    assert!(plain.state().is_none());
    give(&mut plain, 0..3);
    assert_eq!(plain.finish().unwrap(), 3);
    assert_eq!(headers_of(&brokers, &plain_topic), vec![0, 0, 0]);
}

#[test]
fn a_damaged_producer_state_is_refused() {
    let Some(brokers) = brokers("a_damaged_producer_state_is_refused") else {
        return;
    };
    let damaged = Start::Resume(b"{\"writer\":");
    let Err(e) = TopicProducer::new(&brokers, &topic("damaged"), 1, damaged) else {
        panic!("a damaged state was taken");
    };
    assert!(e.to_string().contains("producer state is damaged"), "{e}");
}
