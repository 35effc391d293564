//! A loopback TCP relay in front of a real server, so that a test can make
//! a dependency unreachable and bring it back without touching the shared
//! server: stopped, nothing listens on its port (connection refused);
//! started, every connection is forwarded to the real server.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

pub struct Relay {
    pub port: u16,
    target: SocketAddr,
    running: Option<tokio::task::JoinHandle<()>>,
}

impl Relay {
    /// A relay on a free port, not yet listening.
    pub fn new(target: SocketAddr) -> Relay {
        Relay {
            port: super::free_port(),
            target,
            running: None,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub async fn start(&mut self) {
        self.listen(true).await;
    }

    /// A server that went silent (a network partition): connections are
    /// accepted and then never answered.
    pub async fn stall(&mut self) {
        self.listen(false).await;
    }

    async fn listen(&mut self, forward: bool) {
        assert!(self.running.is_none(), "relay already started");
        let listener = TcpListener::bind(self.addr())
            .await
            .expect("bind the relay port");
        let target = self.target;
        self.running = Some(tokio::spawn(async move {
            // Owning the connections here means aborting this task cuts them all.
            let mut connections = JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                connections.spawn(async move {
                    if !forward {
                        // Hold the connection open, read nothing, answer nothing.
                        std::future::pending::<()>().await;
                    }
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                while connections.try_join_next().is_some() {}
            }
        }));
    }

    /// Closes the port and cuts every open connection.
    pub async fn stop(&mut self) {
        if let Some(task) = self.running.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(task) = self.running.take() {
            task.abort();
        }
    }
}
