//! Results routing: each gateway reads only its reply partition of the results topic, and the
//! processor writes every result of a gateway's commands there, so N gateways do not each read
//! every result.

use logbook_api::auth::Role;
use logbook_cli::roles::Roles;
use logbook_commands::envelope::CommandResult;
use logbook_tests::TestEnv;
use serde_json::{Value, json};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_gateway_reads_only_the_results_of_its_reply_partition() {
    let env = TestEnv::new().await;
    let processor = env
        .spawn(Roles {
            processor: true,
            ..Roles::NONE
        })
        .await;
    // two gateways, each a process of its own (their metrics are their own)
    let gateways = [
        env.serve_child("routing-1", &[]).await,
        env.serve_child("routing-2", &[]).await,
    ];
    let token = env.token(Role::Service, "svc");
    let client = reqwest::Client::new();
    let mut sent: Vec<Vec<Uuid>> = vec![Vec::new(), Vec::new()];
    for round in 0..30 {
        for (index, gateway) in gateways.iter().enumerate() {
            let answer: Value = client
                .post(gateway.url("/v1/accounts"))
                .bearer_auth(&token)
                .json(&json!({"owner_id": format!("o{round}"), "currency": "EUR"}))
                .send()
                .await
                .expect("request")
                .json()
                .await
                .expect("json");
            let command_id = answer["command_id"].as_str().expect("command id");
            sent[index].push(command_id.parse().expect("uuid"));
        }
    }
    let kafka = env.kafka.clone();
    let results = tokio::task::spawn_blocking(move || {
        logbook_tests::log::read_committed(&kafka, &kafka.topics().results)
    })
    .await
    .expect("read results");
    let partition_of = |command_id: &Uuid| {
        results
            .iter()
            .find(|r| {
                CommandResult::decode(&r.payload)
                    .is_ok_and(|result| result.command_id == *command_id)
            })
            .map(|r| r.partition)
    };
    let mut reads = Vec::new();
    for (index, gateway) in gateways.iter().enumerate() {
        let reply = gateway
            .metric("logbook_gateway_reply_partition")
            .await
            .expect("reply partition") as i32;
        for command_id in &sent[index] {
            assert_eq!(partition_of(command_id), Some(reply), "gateway {index}");
        }
        let in_partition = results.iter().filter(|r| r.partition == reply).count();
        let read = gateway
            .metric("logbook_gateway_results_read_total")
            .await
            .unwrap_or(0.0) as usize;
        // it read its partition (which another gateway may share) and nothing else
        assert!(
            read >= sent[index].len() && read <= in_partition,
            "gateway {index}: read {read}, partition {reply} holds {in_partition}"
        );
        reads.push((reply, read));
    }
    tracing::info!(?reads, total = results.len(), "results read per gateway");
    processor.stop().await.expect("stops");
}
