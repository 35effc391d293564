//! Thin binary: everything lives in the library (`strata::cli`).

fn main() -> std::process::ExitCode {
    strata::cli::run()
}
