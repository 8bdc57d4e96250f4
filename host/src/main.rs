//! The `dohost` binary.

fn main() -> std::process::ExitCode {
    dohost::cli::run()
}
