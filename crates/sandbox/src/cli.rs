//! Command-line entry point (`personio-pipeline sandbox`).

use clap::Args;

use crate::config::{FaultConfig, FaultKind, Latency, Preset, SandboxConfig, ALL_SCOPES, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use crate::{Sandbox, SandboxError};

/// Flags of `personio-pipeline sandbox`.
#[derive(Args, Debug, Clone)]
pub struct SandboxArgs {
    /// Port to listen on (0 = a free port).
    #[arg(long, default_value_t = 18080)]
    pub port: u16,
    /// Address to bind (loopback by default; anything else exposes the fake API to the network).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Seed of the generated company (same seed, same data).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Company size preset.
    #[arg(long, value_enum, default_value_t = Preset::Small)]
    pub preset: Preset,
    /// Number of employees (overrides the preset).
    #[arg(long)]
    pub employees: Option<usize>,
    /// Years of absence/attendance history (overrides the preset).
    #[arg(long)]
    pub years: Option<u32>,
    /// Share of employees tracking attendances, 0–1 (overrides the preset).
    #[arg(long)]
    pub attendance_share: Option<f64>,
    /// Accepted client id.
    #[arg(long, default_value = DEFAULT_CLIENT_ID)]
    pub client_id: String,
    /// Accepted client secret.
    #[arg(long, default_value = DEFAULT_CLIENT_SECRET)]
    pub client_secret: String,
    /// Enforce Personio's rate limits (429 with Retry-After).
    #[arg(long)]
    pub rate_limits: bool,
    /// Answer v1 attendances and projects with 410 Gone, as after their retirement.
    #[arg(long)]
    pub v1_retired: bool,
    /// Reject credentials in the query string of POST /v1/auth with 403.
    #[arg(long)]
    pub reject_query_auth: bool,
    /// Probability (0–1) of a fault on each data request.
    #[arg(long, default_value_t = 0.0)]
    pub fault_probability: f64,
    /// Fault kinds drawn from (repeatable; default: 500/502/503/504).
    #[arg(long = "fault-kind", value_enum)]
    pub fault_kinds: Vec<FaultKind>,
    /// Fault at an exact request number, `N:kind` (repeatable), e.g. `3:status503`.
    #[arg(long = "fault-at", value_parser = parse_fault_at)]
    pub fault_at: Vec<(u64, FaultKind)>,
    /// Seed of the fault RNG.
    #[arg(long, default_value_t = 0)]
    pub fault_seed: u64,
    /// Delay of the `slow` fault in milliseconds.
    #[arg(long, default_value_t = 1500)]
    pub fault_slow_ms: u64,
    /// Scopes of the credential (repeatable or space/comma separated; default: all). A data endpoint
    /// outside them answers 403, e.g. `--scope personio:persons:read`.
    #[arg(long = "scope", value_delimiter = ',')]
    pub scopes: Vec<String>,
    /// The credential has no whitelisted attributes: v2 persons are only `{id, employments, _meta}`.
    #[arg(long)]
    pub persons_without_attributes: bool,
    /// Typical per-request latency in milliseconds (± 50 %), to model a real network on loopback.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Latency of the slow tail in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_tail_ms: u64,
    /// Share (0–1) of requests with the tail latency.
    #[arg(long, default_value_t = 0.05)]
    pub latency_tail_share: f64,
}

fn parse_fault_at(s: &str) -> Result<(u64, FaultKind), String> {
    let (n, k) = s.split_once(':').ok_or("expected N:kind")?;
    let n = n.trim().parse::<u64>().map_err(|e| e.to_string())?;
    let k = <FaultKind as clap::ValueEnum>::from_str(k.trim(), true)?;
    Ok((n, k))
}

impl SandboxArgs {
    /// The configuration these flags describe.
    pub fn config(&self) -> SandboxConfig {
        let mut sizes = self.preset.sizes();
        if let Some(n) = self.employees {
            sizes.employees = n;
        }
        if let Some(y) = self.years {
            sizes.years = y;
        }
        if let Some(s) = self.attendance_share {
            sizes.attendance_share = s.clamp(0.0, 1.0);
        }
        SandboxConfig {
            seed: self.seed,
            sizes,
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            rate_limits: self.rate_limits,
            v1_retired: self.v1_retired,
            reject_query_auth: self.reject_query_auth,
            faults: FaultConfig {
                seed: self.fault_seed,
                probability: self.fault_probability.clamp(0.0, 1.0),
                kinds: self.fault_kinds.clone(),
                at_requests: self.fault_at.clone(),
                slow_ms: Some(self.fault_slow_ms),
                insert_count: None,
            },
            scopes: if self.scopes.is_empty() {
                None
            } else {
                Some(self.scopes.iter().flat_map(|s| s.split_whitespace()).map(String::from).collect())
            },
            persons_without_attributes: self.persons_without_attributes,
            latency: Latency {
                mean_ms: self.latency_ms,
                tail_ms: self.latency_tail_ms,
                tail_share: self.latency_tail_share.clamp(0.0, 1.0),
                seed: self.fault_seed,
            },
            ..Default::default()
        }
    }
}

/// Starts the sandbox, prints its base URL and demo credentials, and serves until Ctrl-C.
pub async fn run_cli(args: SandboxArgs) -> Result<(), SandboxError> {
    let config = args.config();
    if let Some(unknown) = config.scopes.iter().flatten().find(|s| !ALL_SCOPES.contains(&s.as_str())) {
        return Err(SandboxError::Config(format!("unknown scope {unknown:?}; known scopes: {}", ALL_SCOPES.join(", "))));
    }
    let addr = format!("{}:{}", args.host, args.port);
    let running = Sandbox::start(config.clone(), &addr).await?;
    let base = running.base_url();
    let stats = running.handle().with_company(|c| (c.employees.len(), c.absences.len(), c.attendances.len()));
    println!("Personio sandbox listening on {base}");
    println!("  v1: {base}/v1   v2: {base}/v2   admin: {base}/_sandbox/");
    println!("  client_id:     {}", config.client_id);
    if config.client_secret == DEFAULT_CLIENT_SECRET {
        println!("  client_secret: {}", config.client_secret);
    } else {
        println!("  client_secret: (as given)");
    }
    println!("  company: seed {}, {} employees, {} absences, {} attendances", config.seed, stats.0, stats.1, stats.2);
    println!("  point the pipeline at it: SOURCES__PERSONIO__BASE_URL={base}");
    println!("Press Ctrl-C to stop.");
    let _ = tokio::signal::ctrl_c().await;
    running.shutdown().await;
    Ok(())
}
