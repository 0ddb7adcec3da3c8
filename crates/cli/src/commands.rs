//! The subcommands: flags → checked settings → library calls.

use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use clap::{Args, Subcommand};
use personio_client::{ClientConfig, PersonioClient};
use personio_source::{PersonioSource, SourceOptions};
use pipeline_destinations::duckdb::DuckDbConfig;
use pipeline_destinations::filesystem::{FileFormat, FilesystemConfig, S3Credentials, TableFormat};
use pipeline_destinations::postgres::PostgresConfig;
use pipeline_engine::extract::Source;
use pipeline_engine::load::Destination;
use pipeline_engine::pipeline::{Pipeline, PipelineConfig, RunOptions};

use crate::config::{init_config_toml, init_secrets_toml, ConfigResolver};
use crate::settings;

/// A usage or configuration error (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Global settings of one invocation.
#[derive(Debug)]
pub struct Env {
    pub project_dir: PathBuf,
    pub pipelines_dir: PathBuf,
    pub json: bool,
}

/// `~/.personio-pipeline/pipelines`.
pub fn default_pipelines_dir() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".")).join(".personio-pipeline").join("pipelines")
}

/// Flags of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Resources to load (comma-separated); default: every resource that works against today's API.
    #[arg(long, value_delimiter = ',')]
    resources: Vec<String>,
    /// Destination: `duckdb` (`<pipeline_name>.duckdb`, or `destination.duckdb.credentials`),
    /// `postgres` (`destination.postgres.credentials`) or `filesystem` (`destination.filesystem.bucket_url`:
    /// a local path or s3://bucket/prefix); see docs/destinations.md.
    #[arg(long, value_enum, default_value_t = DestinationKind::Duckdb)]
    destination: DestinationKind,
    /// Dataset name (a DuckDB schema) [default: personio_data].
    #[arg(long)]
    dataset: Option<String>,
    /// Pipeline name (working directory, `<name>.duckdb`, state key) [default: personio; with --demo:
    /// personio_demo].
    #[arg(long)]
    pipeline_name: Option<String>,
    /// Drop the selected resources' tables and state first, then load everything again.
    #[arg(long)]
    full_refresh: bool,
    /// First day of attendances (YYYY-MM-DD).
    #[arg(long)]
    start_date: Option<NaiveDate>,
    /// Last day of attendances (YYYY-MM-DD; default today, UTC).
    #[arg(long)]
    end_date: Option<NaiveDate>,
    /// Start an in-process sandbox and load it (no credentials needed) into its own pipeline
    /// `personio_demo` and `personio_demo.duckdb`, never into the real dataset.
    #[arg(long)]
    demo: bool,
    /// Allow the v1 attendances/projects endpoints Personio retired on 2026-08-30.
    #[arg(long)]
    allow_retired_v1: bool,
    /// Fetch every employee's balance, not only new or changed employees'.
    #[arg(long)]
    refresh_all_balances: bool,
    /// Fetch every custom report's rows, not only those of reports Personio refreshed since the last load.
    #[arg(long)]
    refresh_all_reports: bool,
    /// Concurrent transformer calls (balances, reports, employments) and pages per listing, 1 to 256.
    /// Default: `[sources.personio] max_concurrency` (32); the client's limiter still holds every
    /// rate limit and adapts the requests in flight.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: Option<u16>,
    /// Reconcile now: every selected resource whose records can disappear fetches its full key set and
    /// rows gone from Personio are deleted (or marked, `deletes = "soft"`), whatever its `reconcile`
    /// schedule (docs/deletions.md).
    #[arg(long)]
    reconcile: bool,
}

/// `pipeline <name> ...` actions.
#[derive(Debug, Subcommand)]
pub enum PipelineAction {
    /// Working directory, state and pending packages.
    Info,
    /// Serve the pipeline's dashboard on 127.0.0.1 and open it in the browser (docs/dashboard.md);
    /// with --no-browser or --json: print tables with row counts, the last loads and the schema.
    Show {
        /// Dataset name.
        #[arg(long, default_value = "personio_data")]
        dataset: String,
        /// Where the dataset is.
        #[arg(long, value_enum, default_value_t = DestinationKind::Duckdb)]
        destination: DestinationKind,
        /// Port of the dashboard (default: a free one).
        #[arg(long)]
        port: Option<u16>,
        /// Print the text summary instead of serving the dashboard.
        #[arg(long)]
        no_browser: bool,
    },
    /// The last run's trace.
    Trace,
    /// Drop the tables and state of chosen resources (all when none named).
    Drop {
        /// Resources to drop.
        #[arg(long, value_delimiter = ',')]
        resources: Vec<String>,
        /// Dataset name.
        #[arg(long, default_value = "personio_data")]
        dataset: String,
        /// Where the dataset is.
        #[arg(long, value_enum, default_value_t = DestinationKind::Duckdb)]
        destination: DestinationKind,
    },
}

/// `schema ...` actions.
#[derive(Debug, Subcommand)]
pub enum SchemaAction {
    /// Print the pipeline's schema.
    Export {
        /// Pipeline name.
        #[arg(long, default_value = "personio")]
        pipeline_name: String,
        /// Output format.
        #[arg(long, default_value = "yaml", value_parser = ["yaml", "json"])]
        format: String,
    },
}

/// `init`: write `.dlt/config.toml` and `.dlt/secrets.toml` (mode 0600).
pub fn init(env: &Env, destination: &str, force: bool) -> Result<()> {
    let dir = env.project_dir.join(".dlt");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let files = [("config.toml", init_config_toml(destination)), ("secrets.toml", init_secrets_toml(destination))];
    for (name, text) in files {
        let path = dir.join(name);
        if path.exists() && !force {
            return Err(UsageError(format!("{} exists; pass --force to overwrite it", path.display())).into());
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        #[cfg(unix)]
        if name == "secrets.toml" {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    let gitignore = env.project_dir.join(".gitignore");
    let has_entry = std::fs::read_to_string(&gitignore).map(|t| t.lines().any(|l| l.trim() == ".dlt/secrets.toml")).unwrap_or(false);
    if !has_entry {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&gitignore)?;
        writeln!(f, ".dlt/secrets.toml")?;
    }
    if env.json {
        println!("{}", serde_json::json!({"created": [dir.join("config.toml"), dir.join("secrets.toml")]}));
    } else {
        println!("Created {}/config.toml and {}/secrets.toml (mode 0600) for destination {destination}.", dir.display(), dir.display());
        println!("Put your Personio client_id and client_secret in .dlt/secrets.toml, then run: personio-pipeline run");
    }
    Ok(())
}

/// The DuckDB destination's settings: `[destination.duckdb]` `credentials` (a `.duckdb` path),
/// `memory_limit` (`"none"` keeps DuckDB's 80% of RAM), `temp_directory`, `merge_chunk_rows`,
/// `load_during_extract`, `early_load_memory_mib` (`"none"`: no bound) and `insert_memory_limit`
/// (`"none"`: `memory_limit` throughout).
/// The demo pipeline ignores `credentials`: it always writes `personio_demo.duckdb`.
fn duckdb_config(env: &Env, resolver: &ConfigResolver, pipeline_name: &str, dataset: &str) -> Result<DuckDbConfig> {
    duckdb_config_for(env, resolver, pipeline_name, dataset, pipeline_name == settings::DEMO_PIPELINE)
}

/// [`duckdb_config`]; `demo`: never the configured `credentials` file (that is the real data).
fn duckdb_config_for(env: &Env, resolver: &ConfigResolver, pipeline_name: &str, dataset: &str, demo: bool) -> Result<DuckDbConfig> {
    let section = ["destination", "duckdb"];
    let configured = if demo { None } else { resolver.get(&section, "credentials", false) };
    let mut config = match configured {
        Some(path) if !path.is_empty() && path.ends_with(".duckdb") => DuckDbConfig::at(env.project_dir.join(path), dataset),
        _ => DuckDbConfig::for_pipeline(&env.project_dir, pipeline_name, dataset),
    };
    if let Some(limit) = resolver.get(&section, "memory_limit", false) {
        config.memory_limit = (!limit.eq_ignore_ascii_case("none")).then_some(limit);
    }
    if let Some(dir) = resolver.get(&section, "temp_directory", false) {
        config.temp_directory = Some(env.project_dir.join(dir));
    }
    config.merge_chunk_rows = resolver.integer(&section, "merge_chunk_rows", config.merge_chunk_rows, 1, 1_000_000_000)?;
    config.load_during_extract = resolver.boolean(&section, "load_during_extract", config.load_during_extract)?;
    if let Some(limit) = resolver.get(&section, "insert_memory_limit", false) {
        config.insert_memory_limit = (!limit.eq_ignore_ascii_case("none")).then_some(limit);
    }
    if let Some(mib) = resolver.get(&section, "early_load_memory_mib", false) {
        config.early_load_memory_mib = if mib.eq_ignore_ascii_case("none") {
            None
        } else {
            Some(resolver.integer(&section, "early_load_memory_mib", 0, 0, 1 << 20)?)
        };
    }
    config.validate().map_err(|e| UsageError(format!("[destination.duckdb]: {e}")))?;
    Ok(config)
}

/// The destinations `--destination` accepts: a variant here, its config in [`DestinationConfig`]
/// (resolved in [`DestinationConfig::resolve`]) and a `build` arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DestinationKind {
    /// DuckDB, embedded: `<pipeline_name>.duckdb` in the project directory.
    Duckdb,
    /// PostgreSQL: `destination.postgres.credentials`.
    Postgres,
    /// Files on a local disk or S3 (`destination.filesystem.bucket_url`), Delta tables for merge.
    Filesystem,
}

/// A destination's checked settings, resolved dlt-style and validated before any I/O.
#[derive(Debug, Clone)]
pub enum DestinationConfig {
    /// DuckDB.
    Duckdb(DuckDbConfig),
    /// PostgreSQL (its `Debug` hides the password).
    Postgres(PostgresConfig),
    /// Filesystem (its `Debug` hides the secret key).
    Filesystem(FilesystemConfig),
}

impl DestinationConfig {
    /// Resolve and validate the settings of `kind` (no file is opened, nothing connects).
    fn resolve(kind: DestinationKind, env: &Env, resolver: &ConfigResolver, pipeline_name: &str, dataset: &str, demo: bool) -> Result<Self> {
        Ok(match kind {
            DestinationKind::Duckdb => DestinationConfig::Duckdb(duckdb_config_for(env, resolver, pipeline_name, dataset, demo)?),
            DestinationKind::Postgres => DestinationConfig::Postgres(postgres_config(resolver, dataset)?),
            DestinationKind::Filesystem => DestinationConfig::Filesystem(filesystem_config(env, resolver, dataset)?),
        })
    }

    /// The destination (connects on first use).
    fn build(&self) -> Result<Box<dyn Destination>> {
        Ok(match self {
            DestinationConfig::Duckdb(c) => Box::new(c.build()?),
            DestinationConfig::Postgres(c) => Box::new(c.build()?),
            DestinationConfig::Filesystem(c) => Box::new(c.build()?),
        })
    }

    /// Where the data goes, without secrets: a file path, `postgresql://user:***@host:port/db` or the
    /// bucket URL.
    fn location(&self) -> String {
        match self {
            DestinationConfig::Duckdb(c) => c.path.display().to_string(),
            DestinationConfig::Postgres(c) => c.redacted(),
            DestinationConfig::Filesystem(c) => c.display_url(),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            DestinationConfig::Duckdb(_) => "duckdb",
            DestinationConfig::Postgres(_) => "postgres",
            DestinationConfig::Filesystem(_) => "filesystem",
        }
    }
}

/// The PostgreSQL destination's settings, as dlt reads them: `destination.postgres.credentials` is a
/// connection string (`DESTINATION__POSTGRES__CREDENTIALS=postgresql://user:password@host:5432/db`) or a
/// table `[destination.postgres.credentials]` with `host`, `port`, `database`, `username`, `password`,
/// `sslmode` and `connect_timeout`. Secrets are read from the environment and `secrets.toml` only, and
/// never printed.
fn postgres_config(resolver: &ConfigResolver, dataset: &str) -> Result<PostgresConfig> {
    let section = ["destination", "postgres"];
    let creds = ["destination", "postgres", "credentials"];
    let config = match resolver.get_with_origin(&section, "credentials", true) {
        Some((text, origin)) if text.trim_start().starts_with("postgres") => PostgresConfig::from_connection_string(&text, dataset)
            .map_err(|e| UsageError(format!("{origin}: {}", e.message)))?,
        _ => {
            let host = resolver.get(&creds, "host", false).filter(|h| !h.trim().is_empty()).ok_or_else(|| {
                UsageError(
                    "no PostgreSQL credentials: set DESTINATION__POSTGRES__CREDENTIALS=postgresql://user:password@host:5432/database, \
                     or host, port, database, username and password under [destination.postgres.credentials] in .dlt/secrets.toml"
                        .into(),
                )
            })?;
            let database = resolver.get(&creds, "database", false).unwrap_or_default();
            let username = resolver.get(&creds, "username", false).unwrap_or_else(|| "postgres".into());
            let mut c = PostgresConfig::new(&host, &database, &username, dataset);
            c.password = resolver.get(&creds, "password", true).filter(|p| !p.is_empty());
            c.port = u16::try_from(resolver.integer(&creds, "port", 5432, 1, 65535)?).unwrap_or(5432);
            if let Some(mode) = resolver.get(&creds, "sslmode", false) {
                c.tls = mode.parse().map_err(|e: String| UsageError(format!("[destination.postgres.credentials]: {e}")))?;
            }
            c.connect_timeout = std::time::Duration::from_secs(resolver.integer(&creds, "connect_timeout", 15, 1, 3600)?);
            c
        }
    };
    config.validate().map_err(|e| UsageError(format!("[destination.postgres]: {}", e.message)))?;
    Ok(config)
}

/// The filesystem destination's settings, as dlt reads them: `[destination.filesystem]` `bucket_url`
/// (`DESTINATION__FILESYSTEM__BUCKET_URL`: a local path, relative to the project directory,
/// `file:///abs/dir` or `s3://bucket/prefix`), `loader_file_format` (`parquet` or `jsonl`, for plain
/// tables) and `table_format` (`delta`: every table a Delta table; default: merge and replace tables), and
/// `[destination.filesystem.credentials]` `aws_access_key_id`, `aws_secret_access_key`,
/// `aws_session_token`, `region_name`, `endpoint_url`. Secrets come from the environment and
/// `secrets.toml` only, and are never printed.
fn filesystem_config(env: &Env, resolver: &ConfigResolver, dataset: &str) -> Result<FilesystemConfig> {
    let section = ["destination", "filesystem"];
    let creds = ["destination", "filesystem", "credentials"];
    let mut c = FilesystemConfig::new(resolver.get(&section, "bucket_url", false).unwrap_or_default(), dataset);
    c.base_dir = env.project_dir.clone();
    let value = |key: &str, secret: bool| resolver.get(&creds, key, secret).filter(|v| !v.trim().is_empty());
    c.credentials = S3Credentials {
        aws_access_key_id: value("aws_access_key_id", false),
        aws_secret_access_key: value("aws_secret_access_key", true),
        aws_session_token: value("aws_session_token", true),
        region_name: value("region_name", false),
        endpoint_url: value("endpoint_url", false),
    };
    c.loader_file_format = match resolver.choice(&section, "loader_file_format", "parquet", &["parquet", "jsonl"])? {
        "jsonl" => FileFormat::Jsonl,
        _ => FileFormat::Parquet,
    };
    c.table_format = match resolver.choice(&section, "table_format", "auto", &["auto", "delta"])? {
        "delta" => TableFormat::Delta,
        _ => TableFormat::Auto,
    };
    c.validate().map_err(|e| UsageError(format!("[destination.filesystem]: {}", e.message)))?;
    Ok(c)
}

/// `run`. Every setting is checked before the sandbox, the client or the destination starts.
pub async fn run(env: &Env, args: RunArgs) -> Result<()> {
    let resolver = ConfigResolver::load(&env.project_dir)?;
    let (pipeline_name, dataset) = settings::run_names(args.pipeline_name.as_deref(), args.dataset.as_deref(), args.demo);
    settings::check_names(&pipeline_name, &dataset)?;
    let endpoint = if args.demo {
        // Replaced by the sandbox's address once it runs.
        settings::Endpoint {
            base_url: "http://127.0.0.1".into(),
            client_id: personio_sandbox::DEFAULT_CLIENT_ID.to_string(),
            client_secret: personio_sandbox::DEFAULT_CLIENT_SECRET.to_string(),
        }
    } else {
        settings::endpoint(&resolver)?
    };
    let mut client_config = settings::client_config(&resolver, endpoint)?;
    let items_per_page = settings::items_per_page(&resolver)?;
    let resource_names: Vec<String> = personio_source::resources::RESOURCES.iter().map(|r| r.name.to_string()).collect();
    let merge = settings::resource_merge(&resolver, &resource_names)?;
    let reconcile = settings::reconcile_policies(&resolver, &personio_source::resource_specs())?;
    let dd = DestinationConfig::resolve(args.destination, env, &resolver, &pipeline_name, &dataset, args.demo)?;

    let mut sandbox = None;
    if args.demo {
        let running = personio_sandbox::Sandbox::start(personio_sandbox::SandboxConfig::default(), "127.0.0.1:0")
            .await
            .context("starting the demo sandbox")?;
        client_config.base_url = running.base_url();
        if !env.json {
            eprintln!(
                "Demo: loading the Personio sandbox at {} (no credentials needed) into pipeline {pipeline_name}, {}",
                client_config.base_url,
                dd.location()
            );
        }
        sandbox = Some(running);
    }
    let concurrency = args.concurrency.map_or(client_config.concurrency.max, usize::from);
    let client = PersonioClient::new(client_config).context("building the Personio client")?;

    let progress = crate::progress::Progress::new(env.json);
    let options = SourceOptions {
        items_per_page,
        start_date: args.start_date.unwrap_or_else(|| SourceOptions::default().start_date),
        end_date: args.end_date,
        allow_retired_v1: args.allow_retired_v1,
        refresh_all_balances: args.refresh_all_balances,
        refresh_all_reports: args.refresh_all_reports,
        transformer_concurrency: concurrency,
        progress: Some(progress.callback()),
    };
    let source = PersonioSource::new(client, options);

    let mut destination = dd.build()?;
    let mut pipeline_config = PipelineConfig::new(&pipeline_name, &dataset, &env.pipelines_dir);
    pipeline_config.merge = merge;
    let pipeline = Pipeline::open(pipeline_config)?;
    let selected: Vec<String> = args.resources.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    // A full refresh drops and reloads in the load transaction, only once the new extract succeeded.
    // Which config value was found where goes into trace.json (secrets without their value).
    let run_options = RunOptions {
        full_refresh: args.full_refresh,
        reconcile,
        force_reconcile: args.reconcile,
        config_values: resolver.resolved_values(),
        ..RunOptions::default()
    };
    let report = pipeline.run_with(&source, Some(&selected), destination.as_mut(), run_options).await;
    progress.finish();
    drop(sandbox);
    let report = report?;
    let mut look = format!("personio-pipeline pipeline {pipeline_name} show{}", if dataset == settings::DEFAULT_DATASET { String::new() } else { format!(" --dataset {dataset}") });
    match args.destination {
        DestinationKind::Duckdb => {}
        DestinationKind::Postgres => look.push_str(" --destination postgres"),
        DestinationKind::Filesystem => look.push_str(" --destination filesystem"),
    }
    if env.json {
        let mut out = serde_json::to_value(&report)?;
        if let Some(obj) = out.as_object_mut() {
            obj.insert("pipeline_name".into(), pipeline_name.clone().into());
            obj.insert("dataset_name".into(), dataset.clone().into());
            obj.insert("database".into(), dd.location().into());
            obj.insert("working_dir".into(), env.pipelines_dir.join(&pipeline_name).display().to_string().into());
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{report}");
        println!("The {} destination used {} to store data (pipeline {pipeline_name}, dataset {dataset})", dd.kind(), dd.location());
        println!("Look at it: {look}");
    }
    Ok(())
}

/// An existing dataset's destination (a DuckDB file must exist already).
fn open_destination(env: &Env, kind: DestinationKind, pipeline_name: &str, dataset: &str) -> Result<(DestinationConfig, Box<dyn Destination>)> {
    let resolver = ConfigResolver::load(&env.project_dir)?;
    let config = match kind {
        DestinationKind::Duckdb => DestinationConfig::Duckdb(duckdb_config(env, &resolver, pipeline_name, dataset)?),
        other => DestinationConfig::resolve(other, env, &resolver, pipeline_name, dataset, false)?,
    };
    if let DestinationConfig::Duckdb(dd) = &config {
        if !dd.path.exists() {
            return Err(UsageError(format!("no database at {}: run `personio-pipeline run --pipeline-name {pipeline_name}` first", dd.path.display())).into());
        }
    }
    let destination = config.build()?;
    Ok((config, destination))
}

/// Opens the dataset of `config` read-only, once per dashboard request. Every destination that
/// `--destination` accepts has an arm here. Fails with a usage error when there is nothing to show yet.
async fn reader_factory(config: DestinationConfig, pipeline_name: &str, dataset: &str) -> Result<pipeline_dashboard::ReaderFactory> {
    use pipeline_destinations::filesystem::FilesystemReaders;
    use pipeline_destinations::read::{DatasetReader, DuckDbReader, PostgresReader};
    let run = format!(
        "personio-pipeline run --pipeline-name {pipeline_name}{}",
        if dataset == settings::DEFAULT_DATASET { String::new() } else { format!(" --dataset {dataset}") }
    );
    Ok(match config {
        DestinationConfig::Duckdb(dd) => {
            if !dd.path.exists() {
                return Err(UsageError(format!("no database at {}: run `{run}` first", dd.path.display())).into());
            }
            std::sync::Arc::new(move || DuckDbReader::open(&dd).map(|r| Box::new(r) as Box<dyn DatasetReader>))
        }
        DestinationConfig::Postgres(pc) => std::sync::Arc::new(move || PostgresReader::open(&pc).map(|r| Box::new(r) as Box<dyn DatasetReader>)),
        // Parquet/Delta files, read into an in-memory DuckDB snapshot that is kept between requests until
        // the dataset's files change.
        DestinationConfig::Filesystem(fc) => {
            let readers = std::sync::Arc::new(FilesystemReaders::new(&fc)?);
            let check = readers.clone();
            let exists = tokio::task::spawn_blocking(move || check.dataset_exists()).await.context("reading the bucket")??;
            if !exists {
                return Err(UsageError(format!("no dataset {dataset} in {}: run `{run} --destination filesystem` first", fc.display_url())).into());
            }
            std::sync::Arc::new(move || readers.open().map(|r| Box::new(r) as Box<dyn DatasetReader>))
        }
    })
}

/// `pipeline <name> show` without --no-browser/--json: serve the dashboard until Ctrl-C.
pub async fn dashboard(env: &Env, name: &str, dataset: &str, port: Option<u16>, destination: DestinationKind) -> Result<()> {
    settings::check_names(name, dataset)?;
    let resolver = ConfigResolver::load(&env.project_dir)?;
    let config = match destination {
        DestinationKind::Duckdb => DestinationConfig::Duckdb(duckdb_config(env, &resolver, name, dataset)?),
        other => DestinationConfig::resolve(other, env, &resolver, name, dataset, false)?,
    };
    let location = config.location();
    let reader = reader_factory(config, name, dataset).await?;
    // A server or a bucket: connect once before serving, so wrong credentials or a server that is down
    // fail here, not on every page (for a bucket, this also reads the first snapshot). (A DuckDB file
    // being written by a run is shown as such on the pages instead.)
    if destination != DestinationKind::Duckdb {
        let probe = reader.clone();
        tokio::task::spawn_blocking(move || probe().map(drop))
            .await
            .context("opening the dataset")?
            .with_context(|| format!("the dashboard cannot read dataset {dataset} in {location}"))?;
    }
    let config = pipeline_dashboard::DashboardConfig::new(name, dataset, &env.pipelines_dir);
    let running = pipeline_dashboard::start(config, reader, port).await.map_err(|e| UsageError(e.to_string()))?;
    let url = running.url();
    let opened = pipeline_dashboard::open_browser(&url);
    println!("Dashboard of pipeline {name}: {url}{} (Ctrl-C to stop)", if opened { " (opened in the browser)" } else { "" });
    running.serve_until_ctrl_c().await?;
    Ok(())
}

/// `pipeline <name> ...`.
pub async fn pipeline(env: &Env, name: &str, action: PipelineAction) -> Result<()> {
    pipeline_engine::pipeline::validate_name("pipeline", name)?;
    if let PipelineAction::Show { dataset, .. } | PipelineAction::Drop { dataset, .. } = &action {
        pipeline_engine::pipeline::validate_name("dataset", dataset)?;
    }
    let workdir = env.pipelines_dir.join(name);
    match action {
        PipelineAction::Info => {
            let p = Pipeline::open(PipelineConfig::new(name, "", &env.pipelines_dir))?;
            let state = p.local_state()?;
            let pending = pipeline_engine::package::pending_packages(&workdir.join("load"))?;
            let info = serde_json::json!({
                "pipeline_name": name,
                "working_dir": workdir,
                "state": state.as_ref().map(|s| serde_json::Value::Object(s.doc().clone())),
                "pending_packages": pending.iter().map(|p| p.load_id().to_string()).collect::<Vec<_>>(),
            });
            if env.json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                println!("Pipeline {name}\nWorking directory: {}", workdir.display());
                println!("Pending packages: {}", pending.len());
                match state {
                    Some(s) => println!("State (version {}):\n{}", s.version(), serde_json::to_string_pretty(&serde_json::Value::Object(s.doc().clone()))?),
                    None => println!("No local state (it is restored from the destination on the next run)."),
                }
            }
        }
        PipelineAction::Show { dataset, destination, .. } => {
            let (config, mut d) = open_destination(env, destination, name, &dataset)?;
            let tables = d.tables().await;
            let loads = d.recent_loads(10).await;
            d.disconnect().await;
            let (tables, loads) = (tables?, loads?);
            let schema = Pipeline::open(PipelineConfig::new(name, &dataset, &env.pipelines_dir))?.local_schema("personio")?;
            if env.json {
                println!("{}", serde_json::to_string_pretty(&serde_json::json!({"tables": tables, "loads": loads, "schema": schema.map(|s| s.to_dlt_json())}))?);
            } else {
                println!("Dataset {dataset} in {}", config.location());
                println!("{:<48} {:>12}", "table", "rows");
                for t in &tables {
                    println!("{:<48} {:>12}", t.name, t.rows);
                }
                println!("\nLast loads:");
                for l in &loads {
                    println!("  {}  status {}  {}", l.load_id, l.status, l.inserted_at);
                }
                if let Some(s) = schema {
                    println!("\nSchema {} version {} ({} tables)", s.name, s.version, s.tables.len());
                    for t in s.tables.values() {
                        let cols: Vec<String> = t.columns.values().map(|c| format!("{} {}", c.name, c.data_type)).collect();
                        println!("  {} [{}]: {}", t.name, t.write_disposition.map(|w| w.to_string()).unwrap_or_else(|| "child".into()), cols.join(", "));
                    }
                }
            }
        }
        PipelineAction::Trace => {
            let p = Pipeline::open(PipelineConfig::new(name, "", &env.pipelines_dir))?;
            match p.last_trace() {
                Some(t) => println!("{}", serde_json::to_string_pretty(&t)?),
                None => return Err(UsageError(format!("pipeline {name} has no trace yet: run it first")).into()),
            }
        }
        PipelineAction::Drop { resources, dataset, destination } => {
            let p = Pipeline::open(PipelineConfig::new(name, &dataset, &env.pipelines_dir))?;
            let (_, mut d) = open_destination(env, destination, name, &dataset)?;
            let source = PersonioSource::new(
                PersonioClient::new(ClientConfig::new("unused", "unused")).context("building a client")?,
                SourceOptions::default(),
            );
            let names = if resources.is_empty() { source.resources().into_iter().map(|r| r.name).collect() } else { resources };
            let dropped = p.drop_resources(source.name(), &names, d.as_mut()).await?;
            if env.json {
                println!("{}", serde_json::json!({"dropped_tables": dropped}));
            } else {
                println!("Dropped tables {dropped:?} and the state of {names:?}");
            }
        }
    }
    Ok(())
}

/// `schema export`.
pub fn schema(env: &Env, action: SchemaAction) -> Result<()> {
    match action {
        SchemaAction::Export { pipeline_name, format } => {
            pipeline_engine::pipeline::validate_name("pipeline", &pipeline_name)?;
            let p = Pipeline::open(PipelineConfig::new(&pipeline_name, "", &env.pipelines_dir))?;
            let schema = p
                .local_schema("personio")?
                .ok_or_else(|| UsageError(format!("pipeline {pipeline_name} has no schema yet: run it first")))?;
            if format == "json" {
                println!("{}", serde_json::to_string_pretty(&schema.to_dlt_json())?);
            } else {
                print!("{}", schema.to_yaml());
            }
        }
    }
    Ok(())
}
