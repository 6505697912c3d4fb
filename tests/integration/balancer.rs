//! The tests' own load balancer: a TCP proxy on 127.0.0.1 handing each new connection to
//! the next backend, round robin, skipping backends that refuse (a host killed) — what an
//! L4 balancer in front of several labelhost hosts does. Backends can be swapped while it
//! runs (a host restarted on a new port).

use std::{
    io::{Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

/// A running balancer; stops accepting when dropped.
pub(crate) struct Balancer {
    /// `http://127.0.0.1:PORT`
    pub(crate) url: String,
    backends: Arc<Mutex<Vec<Option<SocketAddr>>>>,
    stop: Arc<AtomicBool>,
}

/// The address of a server URL `http://127.0.0.1:PORT`.
pub(crate) fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .parse()
        .expect("a server URL of ip:port")
}

/// Copies one direction until either side ends, then closes the other side's writing.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 64 << 10];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Connects to the first backend that accepts, starting at the `turn`th.
fn connect(backends: &[Option<SocketAddr>], turn: usize) -> Option<TcpStream> {
    (0..backends.len())
        .filter_map(|i| backends[(turn + i) % backends.len()])
        .find_map(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok())
}

impl Balancer {
    /// Starts one in front of `backends`.
    pub(crate) fn start(backends: Vec<SocketAddr>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let backends = Arc::new(Mutex::new(
            backends.into_iter().map(Some).collect::<Vec<_>>(),
        ));
        let stop = Arc::new(AtomicBool::new(false));
        let (list, halt) = (backends.clone(), stop.clone());
        std::thread::spawn(move || {
            let turn = AtomicUsize::new(0);
            for client in listener.incoming() {
                if halt.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = client else { continue };
                let snapshot: Vec<Option<SocketAddr>> = list.lock().expect("backends").clone();
                let n = turn.fetch_add(1, Ordering::Relaxed);
                std::thread::spawn(move || {
                    // No backend answers: the client sees its connection closed.
                    let Some(server) = connect(&snapshot, n) else {
                        return;
                    };
                    let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                        return;
                    };
                    let back = std::thread::spawn(move || pipe(s2, c2));
                    pipe(client, server);
                    let _ = back.join();
                });
            }
        });
        Balancer {
            url,
            backends,
            stop,
        }
    }

    /// Replaces backend `i` (`None`: out of rotation).
    pub(crate) fn set(&self, i: usize, addr: Option<SocketAddr>) {
        self.backends.lock().expect("backends")[i] = addr;
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(addr_of(&self.url));
    }
}
