//! `dohost-failpoints`: `dohost` with the `failpoints` feature, for the crash
//! tests. Built in its own cargo invocation so the shipped `dohost` binary never
//! contains failpoints.

fn main() -> std::process::ExitCode {
    dohost::cli::run()
}
