//! What a passing test leaves behind is removed when its [`crate::TestEnv`] (the last clone of
//! it) is dropped: its database and its four topics. A failing test keeps them, to be looked at
//! (`scripts/dev test` drops old test databases before it starts); so does any test while
//! `LOGBOOK_KEEP_TEST_DATA` is set. Errors are ignored and every call is bounded: cleaning up
//! never fails or hangs a test.

use std::time::Duration;

use logbook_events::KafkaSettings;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use sqlx::postgres::PgConnectOptions;

const BOUND: Duration = Duration::from_secs(10);

/// Removes a test's database and topics when dropped (after a passing test).
#[derive(Debug)]
pub(crate) struct Cleanup {
    pub(crate) kafka: KafkaSettings,
    /// Connection options of the server's maintenance database (not the test's own).
    pub(crate) server: PgConnectOptions,
    pub(crate) database: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("LOGBOOK_KEEP_TEST_DATA").is_some() {
            return;
        }
        let (kafka, server) = (self.kafka.clone(), self.server.clone());
        let database = std::mem::take(&mut self.database);
        // its own thread and runtime: a drop may run inside the test's runtime
        let worker = std::thread::spawn(move || {
            delete_topics(&kafka);
            drop_database(server, &database);
        });
        let _ = worker.join();
    }
}

fn delete_topics(kafka: &KafkaSettings) {
    let Ok(admin) = kafka
        .client_config()
        .create::<AdminClient<DefaultClientContext>>()
    else {
        return;
    };
    let topics = kafka.topics();
    let names = topics.all();
    let options = AdminOptions::new()
        .operation_timeout(Some(BOUND))
        .request_timeout(Some(BOUND));
    let _ = futures::executor::block_on(admin.delete_topics(&names, &options));
}

fn drop_database(server: PgConnectOptions, database: &str) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    runtime.block_on(async {
        let pool = logbook_projections::db::pool(server, 1);
        let statement = format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)");
        let _ = tokio::time::timeout(BOUND, sqlx::query(&statement).execute(&pool)).await;
        pool.close().await;
    });
}
