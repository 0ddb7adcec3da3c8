//! Serves the sandbox with the flags of `personio-pipeline sandbox`, without building the CLI (and DuckDB).
//!
//! `cargo run -p personio-sandbox --example serve -- --preset small --port 0` prints the base URL on its first
//! line and serves until Ctrl-C. The contract check (`contract/run.sh`) uses it when no CLI binary is built.

use clap::Parser;
use personio_sandbox::{run_cli, SandboxArgs};

/// `serve [sandbox flags]`.
#[derive(Parser, Debug)]
#[command(name = "serve", about = "Serve the Personio sandbox until Ctrl-C")]
struct Cli {
    #[command(flatten)]
    args: SandboxArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run_cli(cli.args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
