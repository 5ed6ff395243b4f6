//! The `argomap` binary: everything lives in the library; see `argomap::cli`.

fn main() -> std::process::ExitCode {
    argomap::cli::main()
}
