//! Invariant checks over a test's event log: gapless sequences, intact hash chains, no command
//! applied twice, every event valid against its JSON Schema.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use logbook_events::{ChainVerifier, EventEnvelope};
use serde_json::Value;
use uuid::Uuid;

use crate::log::Record;

/// Panics unless every aggregate's sequence is 1..n in log order, every hash chain verifies
/// and no command id caused events twice. Returns the events per aggregate.
pub fn assert_log_invariants(
    events: &[(Record, EventEnvelope)],
) -> HashMap<Uuid, Vec<EventEnvelope>> {
    let mut verifier = ChainVerifier::new();
    let mut by_aggregate: HashMap<Uuid, Vec<EventEnvelope>> = HashMap::new();
    let mut commands: HashMap<Uuid, (Uuid, u64)> = HashMap::new();
    let mut ordered: Vec<&(Record, EventEnvelope)> = events.iter().collect();
    ordered.sort_by_key(|(record, _)| (record.partition, record.offset));
    let mut partitions: HashMap<Uuid, i32> = HashMap::new();
    for (record, envelope) in ordered {
        if let Err(broken) = verifier.check(envelope) {
            panic!("hash chain broken: {broken:?}");
        }
        let partition = *partitions
            .entry(envelope.aggregate_id)
            .or_insert(record.partition);
        assert_eq!(
            partition, record.partition,
            "aggregate {} on two partitions",
            envelope.aggregate_id
        );
        if let Some((other, sequence)) = commands.insert(
            envelope.command_id,
            (envelope.aggregate_id, envelope.sequence),
        ) {
            // one command may cause several events of one aggregate, never a second batch
            assert!(
                other == envelope.aggregate_id && sequence + 1 == envelope.sequence,
                "command {} applied twice",
                envelope.command_id
            );
        }
        let list = by_aggregate.entry(envelope.aggregate_id).or_default();
        assert_eq!(
            envelope.sequence,
            list.len() as u64 + 1,
            "sequence gap or duplicate for {}",
            envelope.aggregate_id
        );
        list.push(envelope.clone());
    }
    by_aggregate
}

/// Panics unless every envelope validates against `schemas/events/envelope.json` and its data
/// against `schemas/events/<event_type>.json`.
pub fn assert_schema_valid(events: &[(Record, EventEnvelope)]) {
    let envelope_schema = validator("envelope");
    let mut data_schemas: HashMap<String, jsonschema::Validator> = HashMap::new();
    let mut seen = HashSet::new();
    for (_, envelope) in events {
        let json = serde_json::to_value(envelope).expect("envelope to json");
        report(&envelope_schema, &json, "envelope");
        let name = logbook_events::schema_name(&envelope.event_type, envelope.schema_version);
        let schema = data_schemas
            .entry(name.clone())
            .or_insert_with(|| validator(&name));
        report(schema, &envelope.data, &envelope.event_type);
        seen.insert(envelope.event_type.clone());
    }
    assert!(!seen.is_empty(), "no events to validate");
}

fn validator(name: &str) -> jsonschema::Validator {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../schemas/events/{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("schema compiles")
}

fn report(validator: &jsonschema::Validator, instance: &Value, what: &str) {
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} does not match its schema: {instance} -> {errors:?}"
    );
}
