//! Private Kafka and PostgreSQL servers for the fault tests, which pause, kill and restart them:
//! each test starts its own with `scripts/dev services` in a folder of its own (so it never
//! disturbs the shared servers of the main suite) and stops them when dropped.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use logbook_events::KafkaSettings;
use logbook_events::Secret;

/// A broker and a database server of one test.
#[derive(Debug)]
pub struct PrivateServices {
    work: PathBuf,
    vars: HashMap<String, String>,
    /// Extra environment of every `scripts/dev` call (the topic prefix of a secure setup).
    script_env: Vec<(String, String)>,
    /// The arguments of `scripts/dev services` these servers were started with.
    args: Vec<String>,
}

impl PrivateServices {
    /// Starts them (blocking: about 15 s). The Kafka jars are shared with the main services.
    pub fn start(name: &str) -> PrivateServices {
        Self::start_with(name, &[], Vec::new())
    }

    /// Starts them in secure mode (`scripts/dev services --secure`: TLS, SCRAM users and ACLs
    /// for the topics of `topic_prefix`, PostgreSQL roles); each role's settings are in
    /// [`PrivateServices::role_vars`].
    pub fn start_secure(name: &str, topic_prefix: &str) -> PrivateServices {
        let env = vec![("LOGBOOK_TOPIC_PREFIX".to_string(), topic_prefix.to_string())];
        Self::start_with(name, &["--secure"], env)
    }

    /// Starts a three-node Kafka cluster (each node broker and controller; replication factor
    /// 3, `min.insync.replicas` 2) and PostgreSQL (`scripts/dev services --brokers 3`).
    pub fn start_cluster(name: &str) -> PrivateServices {
        Self::start_with(name, &["--brokers", "3"], Vec::new())
    }

    /// Starts them with one more Kafka listener on `listen_port` that advertises
    /// `advertised_port`, where the test's [`crate::relay::Relay`] forwards to it
    /// (`LOGBOOK_DEV_KAFKA_RELAY`): clients that bootstrap from the relay talk to the broker
    /// only through it.
    pub fn start_relayed(name: &str, listen_port: u16, advertised_port: u16) -> PrivateServices {
        let relay = format!("{listen_port}:{advertised_port}");
        Self::start_with(
            name,
            &[],
            vec![("LOGBOOK_DEV_KAFKA_RELAY".to_string(), relay)],
        )
    }

    fn start_with(name: &str, args: &[&str], script_env: Vec<(String, String)>) -> Self {
        let main_work = main_work_dir();
        let work = main_work.join("faults").join(format!(
            "{name}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ));
        std::fs::create_dir_all(&work).expect("work folder");
        let mut services = PrivateServices {
            work,
            vars: HashMap::new(),
            script_env,
            args: args.iter().map(|a| (*a).to_string()).collect(),
        };
        services.services();
        services.vars = read_env(&services.work.join("env"));
        services
    }

    /// The settings file of one role of a secure setup (`admin`, `gateway`, `processor`, `saga`,
    /// `projector`, `tools`).
    pub fn role_vars(&self, role: &str) -> HashMap<String, String> {
        read_env(&self.work.join(format!("env.{role}")))
    }

    /// `LOGBOOK_*` settings of these servers (as `.logbook/env` holds them).
    pub fn vars(&self) -> &HashMap<String, String> {
        &self.vars
    }

    /// Stops the broker with SIGSTOP (it keeps its sockets but answers nothing).
    pub fn pause_broker(&self) {
        signal("STOP", self.broker_pid());
    }

    pub fn resume_broker(&self) {
        signal("CONT", self.broker_pid());
    }

    /// Kills the broker with SIGKILL.
    pub fn kill_broker(&self) {
        kill_and_wait(self.broker_pid());
    }

    /// Starts whatever is not running (a killed broker or node comes back on its port).
    pub fn start_again(&self) {
        self.services();
    }

    fn services(&self) {
        let mut command = vec!["services"];
        command.extend(self.args.iter().map(String::as_str));
        self.dev(&command);
    }

    /// The process of node `id` (1, 2, 3) of a cluster (its Kafka `node.id`).
    pub fn node_pid(&self, id: i32) -> i32 {
        pid_from(&self.work.join(format!("kafka-cluster/node{id}/pid")))
    }

    /// Kills node `id` of a cluster with SIGKILL and waits until it is gone.
    pub fn kill_node(&self, id: i32) {
        kill_and_wait(self.node_pid(id));
    }

    /// Restarts PostgreSQL (fast shutdown, then start on the same port).
    pub fn restart_postgres(&self) {
        let pid = self.postgres_pid();
        signal("INT", pid);
        while Path::new(&format!("/proc/{pid}")).exists() {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        self.services();
    }

    pub fn broker_pid(&self) -> i32 {
        pid_from(&self.work.join("kafka/pid"))
    }

    pub fn postgres_pid(&self) -> i32 {
        pid_from(&self.work.join("pg/data/postmaster.pid"))
    }

    fn dev(&self, command: &[&str]) {
        let script = repository().join("scripts/dev");
        let output = Command::new(&script)
            .args(command)
            .envs(self.script_env.iter().map(|(k, v)| (k, v)))
            .env("LOGBOOK_WORK_DIR", &self.work)
            .env("LOGBOOK_KAFKA_LIBS", main_work_dir().join("kafka-libs"))
            .env("LOGBOOK_KAFKA_HEAP", "384m")
            .output()
            .expect("scripts/dev runs");
        assert!(
            output.status.success(),
            "scripts/dev {command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for PrivateServices {
    fn drop(&mut self) {
        // a paused broker (or node) would not stop
        let pids = [
            "kafka/pid",
            "kafka-cluster/node1/pid",
            "kafka-cluster/node2/pid",
            "kafka-cluster/node3/pid",
        ];
        for file in pids {
            if let Ok(pid) = std::fs::read_to_string(self.work.join(file)) {
                let _ = Command::new("kill").args(["-CONT", pid.trim()]).status();
            }
        }
        self.dev(&["down"]);
        if std::thread::panicking() {
            keep_for_inspection(&self.work);
        }
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

/// A failed test's servers (Kafka's logs and data, PostgreSQL's) are copied to the temporary
/// directory, which outlives a CI checkout, so that the failure can be examined afterwards.
fn keep_for_inspection(work: &Path) {
    let Some(name) = work.file_name() else { return };
    let kept = std::env::temp_dir().join(format!("logbook-failed-{}", name.to_string_lossy()));
    let copied = Command::new("cp")
        .arg("-a")
        .arg("--sparse=always")
        .arg(work)
        .arg(&kept)
        .status()
        .is_ok_and(|status| status.success());
    if copied {
        eprintln!("the failed test's servers are kept in {}", kept.display());
    }
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn main_work_dir() -> PathBuf {
    std::env::var("LOGBOOK_WORK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repository().join(".logbook"))
}

/// The Kafka settings of a settings file's variables (security included), for `topic_prefix`.
pub fn kafka_settings(vars: &HashMap<String, String>, topic_prefix: &str) -> KafkaSettings {
    let brokers = vars
        .get("LOGBOOK_KAFKA_BROKERS")
        .expect("LOGBOOK_KAFKA_BROKERS (run scripts/dev services)");
    let mut kafka = KafkaSettings::plaintext(brokers.clone(), topic_prefix);
    let var = |name: &str| vars.get(name).cloned();
    kafka.security_protocol = var("LOGBOOK_KAFKA_SECURITY_PROTOCOL");
    kafka.sasl_mechanism = var("LOGBOOK_KAFKA_SASL_MECHANISM");
    kafka.sasl_username = var("LOGBOOK_KAFKA_SASL_USERNAME");
    kafka.sasl_password = var("LOGBOOK_KAFKA_SASL_PASSWORD_FILE").map(|file| {
        let password = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
        Secret::new(password.trim_end())
    });
    kafka.ssl_ca_location = var("LOGBOOK_KAFKA_SSL_CA_LOCATION");
    kafka
}

fn read_env(path: &Path) -> HashMap<String, String> {
    let text = std::fs::read_to_string(path).expect("services wrote their settings");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn pid_from(path: &Path) -> i32 {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pid in {}", path.display()))
}

/// SIGKILL, then waits until the process is gone (or a zombie).
fn kill_and_wait(pid: i32) {
    signal("KILL", pid);
    while Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| !stat.contains(") Z"))
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Sends a signal by name (`STOP`, `CONT`, `KILL`, `INT`) to a process.
pub fn signal(name: &str, pid: i32) {
    let status = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{name} {pid}");
}
