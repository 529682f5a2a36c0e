//! Logbook roles as OS processes of their own: a free port, waiting until a server is live or
//! ready, and [`ChildServer`], a `logbook serve` whose metrics belong to it alone (the apps a
//! test starts in its own process share one metrics registry with every other test).

use std::process::Child;
use std::time::{Duration, Instant};

use crate::TestEnv;
use crate::client::metric_value;

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Waits (at most 60 s) until the server at `url` answers `/health/live` with 200.
pub async fn wait_live(url: &str) {
    wait_health(url, "live", Duration::from_secs(60)).await;
}

/// Waits (at most 90 s) until the server at `url` answers `/health/ready` with 200.
pub async fn wait_ready(url: &str) {
    wait_health(url, "ready", Duration::from_secs(90)).await;
}

async fn wait_health(url: &str, which: &str, within: Duration) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + within;
    let mut last = None;
    while Instant::now() < deadline {
        if let Ok(response) = client.get(format!("{url}/health/{which}")).send().await {
            if response.status() == 200 {
                return;
            }
            last = response.text().await.ok();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{url} never answered /health/{which} with 200: {last:?}");
}

/// A `logbook` role running as a child process, killed (SIGKILL) and reaped when dropped, so a
/// test that fails half-way leaves no process behind to disturb the tests after it.
#[derive(Debug)]
pub struct RoleProcess(pub Child);

impl std::ops::Deref for RoleProcess {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for RoleProcess {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for RoleProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `logbook serve` running as a child process; killed when dropped.
#[derive(Debug)]
pub struct ChildServer {
    process: RoleProcess,
    /// `http://127.0.0.1:port`.
    pub url: String,
}

impl TestEnv {
    /// Starts `logbook serve` with this environment's settings and `vars` on a free port, and
    /// waits until it is ready.
    pub async fn serve_child(&self, name: &str, vars: &[(&str, String)]) -> ChildServer {
        let port = free_port();
        let mut all = vec![("LOGBOOK_HTTP_ADDR", format!("127.0.0.1:{port}"))];
        all.extend_from_slice(vars);
        let server = ChildServer {
            process: self.spawn_child_with("serve", name, &all),
            url: format!("http://127.0.0.1:{port}"),
        };
        wait_ready(&server.url).await;
        server
    }
}

impl ChildServer {
    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// The value of a metric of this process (the sum over its labels), if it has one.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = reqwest::get(self.url("/metrics"))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        metric_value(&text, name)
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}
