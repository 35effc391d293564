//! The test-only fault hook: `STRATA_TEST_FAULT=POINT` makes the code at
//! POINT fail as if the next store had refused; `POINT:kill` aborts the
//! process on the spot, as a crash would. Honoured only in builds with
//! debug assertions (the test and dev profiles): a release build has no
//! such switch. The points are the split pattern's write steps
//! (`content::Step`) and the tenant purge's (`jobs::purge`).

/// The environment variable of the hook.
pub const ENV: &str = "STRATA_TEST_FAULT";

/// Whether the hook asks the code at `point` to fail. With `:kill` it
/// does not return: the process aborts here.
pub fn at(point: &str) -> bool {
    #[cfg(debug_assertions)]
    if let Ok(spec) = std::env::var(ENV) {
        let (at, mode) = spec.split_once(':').unwrap_or((spec.as_str(), "fail"));
        if at == point {
            if mode == "kill" {
                tracing::error!(point, "{ENV}: aborting the process");
                std::process::abort();
            }
            return true;
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = point;
    false
}
