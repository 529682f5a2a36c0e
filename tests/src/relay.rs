//! A TCP relay between Kafka clients and a broker's relayed listener
//! ([`crate::services::PrivateServices::start_relayed`]), for network faults the test controls:
//! it can stop passing the broker's answers on while the requests still reach the broker (an
//! acknowledgement lost on the way), and cut every connection and refuse new ones (a partition
//! between those clients and the broker), then heal.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

const PASS: u8 = 0;
const DROP_ANSWERS: u8 = 1;
const CUT: u8 = 2;

/// The relay: a listener on a port of its own, and the connections it carries.
#[derive(Debug, Clone)]
pub struct Relay {
    port: u16,
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    mode: AtomicU8,
    /// Both ends of every connection carried, to cut them.
    streams: Mutex<Vec<TcpStream>>,
}

impl Relay {
    /// Listens on a free loopback port; [`Relay::forward_to`] starts relaying.
    pub fn bind() -> (Relay, TcpListener) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("relay port");
        let port = listener.local_addr().expect("relay address").port();
        let relay = Relay {
            port,
            shared: Arc::default(),
        };
        (relay, listener)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Accepts connections on `listener` and relays each to `target`, on threads of its own.
    pub fn forward_to(&self, listener: TcpListener, target: SocketAddr) {
        let shared = Arc::clone(&self.shared);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if shared.mode.load(Ordering::SeqCst) == CUT {
                    drop(client);
                    continue;
                }
                let Ok(broker) = TcpStream::connect(target) else {
                    continue;
                };
                relay_connection(&shared, client, broker);
            }
        });
    }

    /// From now on the broker's answers are dropped; the clients' requests still reach it.
    pub fn drop_answers(&self) {
        self.shared.mode.store(DROP_ANSWERS, Ordering::SeqCst);
    }

    /// Closes every connection and refuses new ones until [`Relay::heal`].
    pub fn cut(&self) {
        self.shared.mode.store(CUT, Ordering::SeqCst);
        if let Ok(mut streams) = self.shared.streams.lock() {
            for stream in streams.drain(..) {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }

    /// Relays everything again.
    pub fn heal(&self) {
        self.shared.mode.store(PASS, Ordering::SeqCst);
    }
}

fn relay_connection(shared: &Arc<Shared>, client: TcpStream, broker: TcpStream) {
    let clones = (client.try_clone(), broker.try_clone());
    let (Ok(client_reader), Ok(broker_reader)) = clones else {
        return;
    };
    if let Ok(mut streams) = shared.streams.lock() {
        streams.extend(
            [client.try_clone(), broker.try_clone()]
                .into_iter()
                .flatten(),
        );
    }
    let requests = Arc::clone(shared);
    std::thread::spawn(move || pump(client_reader, broker, &requests, false));
    let answers = Arc::clone(shared);
    std::thread::spawn(move || pump(broker_reader, client, &answers, true));
}

/// Copies `from` to `to` until either closes; answers are dropped while the relay says so.
fn pump(mut from: TcpStream, mut to: TcpStream, shared: &Shared, answers: bool) {
    let mut buffer = [0u8; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        match shared.mode.load(Ordering::SeqCst) {
            CUT => break,
            DROP_ANSWERS if answers => continue,
            _ => {}
        }
        if to.write_all(&buffer[..read]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
