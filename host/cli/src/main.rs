//! The `triggerfish` binary: see [`triggerfish::cli`].

fn main() -> std::process::ExitCode {
    triggerfish::cli::main()
}
