//! Producing from the processor and saga threads without busy waiting.
//!
//! Both use a `ThreadedProducer`: librdkafka's delivery reports are served by the producer's own
//! polling thread, which sleeps in librdkafka until a report arrives. (rdkafka's
//! `BaseProducer::poll(t)` always runs until `t` has passed and turns a sub-millisecond
//! remainder into a zero timeout, so polling it in short slices spins a core; the profile in
//! `bench/results/` showed half of Logbook's CPU there.) Before `commit_transaction`, [`settle`]
//! waits for the last reports: rdkafka's commit first flushes, and its flush waits in 100 ms
//! slices when anything is still in flight. A record that was not delivered fails the commit.

use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

/// How long `send` sleeps while librdkafka's queue is full (the polling thread empties it).
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(1);

/// How often [`settle`] looks at librdkafka's out queue.
const SETTLE_PAUSE: Duration = Duration::from_micros(200);

/// Waits until nothing is in flight (every delivery report served by the polling thread).
pub(crate) fn settle<C: ProducerContext + 'static>(
    producer: &ThreadedProducer<C>,
    timeout: Duration,
) -> Result<(), KafkaError> {
    let deadline = Instant::now() + timeout;
    while producer.in_flight_count() > 0 {
        if Instant::now() >= deadline {
            return Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut));
        }
        std::thread::sleep(SETTLE_PAUSE);
    }
    Ok(())
}

/// Sends one record; while librdkafka's queue is full, waits for it to drain, up to `timeout`.
pub(crate) fn send<C, D>(
    producer: &ThreadedProducer<C>,
    mut record: BaseRecord<'_, String, Vec<u8>, D>,
    timeout: Duration,
) -> Result<(), KafkaError>
where
    C: ProducerContext<DeliveryOpaque = D> + 'static,
    D: rdkafka::util::IntoOpaque,
{
    let deadline = Instant::now() + timeout;
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                if Instant::now() < deadline =>
            {
                record = back;
                std::thread::sleep(QUEUE_FULL_PAUSE);
            }
            Err((error, _)) => return Err(error),
        }
    }
}
