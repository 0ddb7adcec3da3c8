//! `personio-pipeline`: load Personio into DuckDB, incrementally. A thin layer over the library crates:
//! flags become a checked [`commands::RunSettings`] before anything runs, and every error maps to a
//! stable exit code in [`exit_code`].

mod commands;
mod config;
mod progress;
mod settings;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc instead of the system allocator: the normalizer allocates and frees every parsed record's
/// strings (docs/performance.md, profile findings). The `system-alloc` feature keeps the system
/// allocator, for heap profilers that hook `malloc` (heaptrack); it rebuilds this crate only.
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Load a company's HR data from the Personio API into DuckDB (a drop-in for dlt's personio source).
#[derive(Debug, Parser)]
#[command(name = "personio-pipeline", version, about)]
struct Cli {
    /// Machine-readable JSON output on stdout.
    #[arg(long, global = true)]
    json: bool,
    /// Project directory holding `.dlt/` (default: the current directory).
    #[arg(long, global = true, value_name = "DIR")]
    project_dir: Option<std::path::PathBuf>,
    /// Folder of pipelines' working directories (default: ~/.personio-pipeline/pipelines).
    #[arg(long, global = true, env = "PERSONIO_PIPELINES_DIR", value_name = "DIR")]
    pipelines_dir: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Scaffold `.dlt/config.toml` and `.dlt/secrets.toml` in dlt's format.
    Init {
        /// Destination to configure.
        #[arg(default_value = "duckdb", value_parser = ["duckdb", "postgres", "filesystem"])]
        destination: String,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Extract, normalize and load.
    Run(commands::RunArgs),
    /// Inspect or reset a pipeline.
    Pipeline {
        /// Pipeline name.
        name: String,
        #[command(subcommand)]
        action: commands::PipelineAction,
    },
    /// Schema commands.
    Schema {
        #[command(subcommand)]
        action: commands::SchemaAction,
    },
    /// Serve the Personio sandbox (a fake Personio API) until Ctrl-C.
    Sandbox(personio_sandbox::SandboxArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("PERSONIO_LOG").unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_line(&e));
            ExitCode::from(exit_code(&e))
        }
    }
}

/// The error and its causes on one line, each cause only when its text is not already part of the
/// line (most of our errors' messages embed their cause; `{e:#}` would print it twice).
fn error_line(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !text.is_empty() && !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let project_dir = match cli.project_dir {
        Some(d) => d,
        None => std::env::current_dir()?,
    };
    let pipelines_dir = cli.pipelines_dir.unwrap_or_else(commands::default_pipelines_dir);
    let env = commands::Env { project_dir, pipelines_dir, json: cli.json };
    match cli.command {
        Command::Init { destination, force } => commands::init(&env, &destination, force),
        Command::Run(args) => commands::run(&env, args).await,
        Command::Pipeline { name, action: commands::PipelineAction::Show { dataset, port, no_browser: false, destination } } if !env.json => {
            commands::dashboard(&env, &name, &dataset, port, destination).await
        }
        Command::Pipeline { name, action } => commands::pipeline(&env, &name, action).await,
        Command::Schema { action } => commands::schema(&env, action),
        Command::Sandbox(args) => personio_sandbox::run_cli(args).await.map_err(Into::into),
    }
}

/// Stable exit codes (docs/errors.md): 0 ok, 1 internal, 2 usage or configuration, 3 Personio
/// authentication, 4 Personio API or extraction, 5 destination or load (the package is kept and the next
/// run completes it), 6 the pipeline is locked by another process.
fn exit_code(e: &anyhow::Error) -> u8 {
    use pipeline_engine::pipeline::PipelineError;
    for cause in e.chain() {
        if cause.downcast_ref::<commands::UsageError>().is_some() || cause.downcast_ref::<config::ConfigError>().is_some() {
            return 2;
        }
        if let Some(personio_client::ClientError::Config(_)) = cause.downcast_ref::<personio_client::ClientError>() {
            return 2;
        }
        if let Some(p) = cause.downcast_ref::<PipelineError>() {
            return match p {
                PipelineError::Locked { .. } => 6,
                PipelineError::UnknownResource { .. } | PipelineError::InvalidName { .. } => 2,
                // The destination cannot load what was selected: a usage problem, found before extracting.
                PipelineError::Unsupported(_) => 2,
                PipelineError::MergeConfig(_) | PipelineError::MergeStrategyChanged { .. } => 2,
                PipelineError::Load(d) if d.locked => 6,
                PipelineError::Load(_) => 5,
                PipelineError::Extract(inner) => extract_code(inner.as_ref()),
                PipelineError::Incremental(_) => 4,
                // Records the source served that do not fit a table (a missing key, colliding nested
                // names): a problem of the API's data, like an extraction error.
                PipelineError::Normalize(_) => 4,
                _ => 1,
            };
        }
        if let Some(d) = cause.downcast_ref::<pipeline_engine::load::DestinationError>() {
            return if d.locked { 6 } else { 5 };
        }
    }
    1
}

fn extract_code(e: &(dyn std::error::Error + 'static)) -> u8 {
    use personio_source::PersonioSourceError;
    match e.downcast_ref::<PersonioSourceError>() {
        Some(PersonioSourceError::Retired { .. }) => 2,
        Some(PersonioSourceError::Api { source: personio_client::ClientError::Auth { .. }, .. }) => 3,
        Some(PersonioSourceError::MissingScope { .. }) => 3,
        _ => 4,
    }
}
