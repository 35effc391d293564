//! Operating-system glue: systemd notification and logging.

pub mod logging;
pub mod systemd;
