//! The HTTP edge under abuse: clients that drip their headers or sit idle are cut off while
//! others are served, and readiness probes do not multiply with the request rate.

use std::time::{Duration, Instant};

use logbook_cli::roles::Roles;
use logbook_tests::TestEnv;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Whether the server closed `socket` within `within` (EOF or an error on read).
async fn closed_within(socket: &mut TcpStream, within: Duration) -> bool {
    let mut buffer = [0u8; 1024];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, socket.read(&mut buffer)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // a response (e.g. 408) before the close
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_and_idle_connections_are_cut_off_while_others_are_served() {
    let env = TestEnv::new().await;
    let mut settings = env.settings();
    logbook_tests::http(&mut settings)
        .limits
        .server
        .header_timeout = Duration::from_secs(1);
    let app = env.spawn_with(settings, Roles::SERVE).await;
    let address = app.address.expect("address");

    // slowloris: many sockets that send part of their headers and then drip
    let mut drippers = Vec::new();
    for _ in 0..200 {
        let mut socket = TcpStream::connect(address).await.expect("connect");
        socket
            .write_all(b"GET /health/live HTTP/1.1\r\nHost: logbook\r\n")
            .await
            .expect("write");
        drippers.push(socket);
    }
    for socket in drippers.iter_mut().take(20) {
        let _ = socket.write_all(b"X-Drip: 1\r\n").await;
    }
    // a normal client is served meanwhile
    let answer = reqwest::Client::new()
        .get(app.url("/health/live"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("served while 200 sockets drip");
    assert_eq!(answer.status(), 200);
    for socket in &mut drippers {
        assert!(
            closed_within(socket, Duration::from_secs(10)).await,
            "a dripping connection was kept open"
        );
    }

    // an idle keep-alive connection is closed too
    let mut idle = TcpStream::connect(address).await.expect("connect");
    idle.write_all(b"GET /health/live HTTP/1.1\r\nHost: logbook\r\n\r\n")
        .await
        .expect("write");
    let mut response = [0u8; 512];
    let read = idle.read(&mut response).await.expect("response");
    assert!(String::from_utf8_lossy(&response[..read]).starts_with("HTTP/1.1 200"));
    assert!(
        closed_within(&mut idle, Duration::from_secs(10)).await,
        "an idle connection was kept open"
    );
    app.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readiness_is_probed_at_most_about_once_a_second() {
    let env = TestEnv::new().await;
    // a process of its own: the probe counter must count this server's probes only
    let server = env.serve_child("edge-readiness", &[]).await;
    let before = server
        .metric("logbook_readiness_probes_total")
        .await
        .unwrap_or(0.0);
    // past the probe that readiness already cached, so at least one probe must happen
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let started = Instant::now();
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for _ in 0..300 {
        let (client, url) = (client.clone(), server.url("/health/ready"));
        tasks.push(tokio::spawn(async move {
            client.get(url).send().await.map(|r| r.status().as_u16())
        }));
    }
    for task in tasks {
        assert_eq!(task.await.expect("join").expect("answer"), 200);
    }
    let seconds = started.elapsed().as_secs_f64();
    let probes = server
        .metric("logbook_readiness_probes_total")
        .await
        .unwrap_or(0.0)
        - before;
    assert!(
        probes >= 1.0 && probes <= seconds.ceil() + 1.0,
        "{probes} probes for 300 requests in {seconds:.1} s"
    );
}
