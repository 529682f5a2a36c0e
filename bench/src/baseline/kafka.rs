//! Baselines (a) and (b): raw rdkafka produce of same-size envelopes in batches, inside
//! Kafka transactions (the ceiling of the processor's write path) or without them (so the
//! difference is the cost of exactly-once). The producer options are the processor's.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use logbook_events::{KafkaSettings, codec};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde::Serialize;

use crate::summary::{self, Percentiles};
use crate::synth::{Synth, SynthError, SynthEvent};

const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Args)]
pub struct ProduceArgs {
    #[arg(long, env = "LOGBOOK_KAFKA_BROKERS")]
    pub brokers: String,
    /// Topic to append to (an events topic made by `logbook topics`).
    #[arg(long)]
    pub topic: String,
    #[arg(long, default_value_t = 200_000)]
    pub events: u64,
    #[arg(long, default_value_t = 10_000)]
    pub accounts: usize,
    /// Records per transaction (or per flush without transactions).
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Idempotent producer, one flush per batch, no transactions.
    #[arg(long)]
    pub no_transactions: bool,
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("events: {0}")]
    Synth(#[from] SynthError),
    #[error("cannot write the result: {0}")]
    Write(#[from] std::io::Error),
    #[error("cannot encode the result: {0}")]
    Encode(#[from] serde_json::Error),
}

#[derive(Debug, Serialize)]
struct ProduceResult {
    mode: &'static str,
    topic: String,
    events: u64,
    accounts: usize,
    batch: usize,
    bytes_mean: f64,
    encode_seconds: f64,
    produce_seconds: f64,
    events_per_s: f64,
    batch_latency: Percentiles,
}

fn producer(args: &ProduceArgs) -> Result<BaseProducer, KafkaError> {
    let mut config = KafkaSettings::plaintext(&args.brokers, "bench").client_config();
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "1")
        .set("retry.backoff.ms", "5")
        .set("retry.backoff.max.ms", "50")
        .set("queue.buffering.max.messages", "200000")
        .set("partitioner", "murmur2_random");
    if !args.no_transactions {
        config
            .set(
                "transactional.id",
                format!("logbook-bench-{}", uuid::Uuid::now_v7()),
            )
            .set("transaction.timeout.ms", "60000");
    }
    let producer: BaseProducer = config.create()?;
    if !args.no_transactions {
        producer.init_transactions(TIMEOUT)?;
    }
    Ok(producer)
}

/// Produces the events; blocking (run it on its own thread).
pub fn run(args: ProduceArgs) -> Result<(), ProduceError> {
    let producer = producer(&args)?;
    let mut synth = Synth::new(args.accounts)?;
    let mut latency = summary::histogram();
    let (mut encode, mut produce, mut bytes) = (Duration::ZERO, Duration::ZERO, 0u64);
    let mut left = args.events;
    while left > 0 {
        let size = left.min(args.batch.max(1) as u64);
        left -= size;
        let started = Instant::now();
        let batch: Vec<SynthEvent> = (0..size).map(|_| synth.next_event()).collect();
        bytes += batch.iter().map(|e| e.bytes.len() as u64).sum::<u64>();
        let sending = Instant::now();
        encode += sending - started;
        send_batch(&producer, &args, &batch)?;
        let took = sending.elapsed();
        produce += took;
        summary::record(&mut latency, took.as_micros() as u64);
    }
    let result = ProduceResult {
        mode: if args.no_transactions {
            "idempotent, no transactions"
        } else {
            "transactional"
        },
        topic: args.topic.clone(),
        events: args.events,
        accounts: args.accounts,
        batch: args.batch,
        bytes_mean: bytes as f64 / args.events.max(1) as f64,
        encode_seconds: encode.as_secs_f64(),
        produce_seconds: produce.as_secs_f64(),
        events_per_s: args.events as f64 / produce.as_secs_f64().max(1e-9),
        batch_latency: Percentiles::of(&latency),
    };
    std::fs::write(&args.out, serde_json::to_vec_pretty(&result)?)?;
    tracing::info!(
        mode = result.mode,
        events_per_s = result.events_per_s,
        "produce baseline written"
    );
    Ok(())
}

fn send_batch(
    producer: &BaseProducer,
    args: &ProduceArgs,
    batch: &[SynthEvent],
) -> Result<(), ProduceError> {
    if !args.no_transactions {
        producer.begin_transaction()?;
    }
    for event in batch {
        let key = event.envelope.aggregate_id.to_string();
        let mut headers = OwnedHeaders::new();
        for (name, value) in codec::event_headers(&event.envelope) {
            headers = headers.insert(Header {
                key: name,
                value: Some(value.as_str()),
            });
        }
        let mut record = BaseRecord::to(&args.topic)
            .key(key.as_str())
            .payload(event.bytes.as_slice())
            .headers(headers);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    producer.poll(Duration::from_millis(5));
                    record = back;
                }
                Err((error, _)) => return Err(error.into()),
            }
        }
        producer.poll(Duration::ZERO);
    }
    wait_for_acks(producer)?;
    if !args.no_transactions {
        producer.commit_transaction(TIMEOUT)?;
    }
    Ok(())
}

/// Serves delivery reports until every record is acknowledged. rdkafka's `flush` (also called
/// by `commit_transaction`) waits in 100 ms slices, which would cap every batch at ~10/s; the
/// processor avoids it the same way, so the baseline does too.
fn wait_for_acks(producer: &BaseProducer) -> Result<(), KafkaError> {
    let deadline = Instant::now() + TIMEOUT;
    while producer.in_flight_count() > 0 {
        if Instant::now() >= deadline {
            return Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut));
        }
        producer.poll(Duration::from_millis(1));
    }
    Ok(())
}
