//! Operating-system glue: systemd notification, logging, stopping and panics.

pub mod logging;
pub mod panic;
pub mod shutdown;
pub mod systemd;
