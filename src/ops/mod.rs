//! Operating-system glue: systemd notification, logging, metrics, stopping and panics.

pub mod logging;
pub mod metrics;
pub mod panic;
pub mod shutdown;
pub mod systemd;
