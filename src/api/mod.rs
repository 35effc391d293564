//! HTTP: the data API and the admin API, each on its own listener.
//! Handlers are thin: they read shared state and hand work to the core.

// `Problem` (the APIs' error) is ~200 bytes; it is only ever built on
// the way out of a request, where its size costs nothing worth boxing for.
#![allow(clippy::result_large_err)]

pub mod admin;
pub mod auth;
pub mod billing;
pub mod data;
pub mod problem;
pub mod request_id;

use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::boot::BootError;

/// Binds a listener, naming what it is for when that fails.
pub async fn bind(what: &'static str, address: SocketAddr) -> Result<TcpListener, BootError> {
    TcpListener::bind(address)
        .await
        .map_err(|e| BootError::Listen {
            what,
            address: address.to_string(),
            reason: e.to_string(),
        })
}
