//! The `triggerfish` command line, built inside the test crate so the
//! end-to-end tests run it with the same dependency features as themselves
//! (`CARGO_BIN_EXE_triggerfish-under-test`): the same entry point as the
//! real binary.

fn main() -> std::process::ExitCode {
    triggerfish::cli::main()
}
