//! `strata migrate [--plan]` (filled in by the schema work)

use crate::boot::exit;
use crate::config::Config;

pub async fn run(_config: Config, _plan: bool) -> u8 {
    eprintln!("strata: migrate is not implemented yet");
    exit::FAILURE
}
