//! Shared server state and the in-process handle other crates' tests use.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use axum::extract::State;

use crate::company::{Company, Truth};
use crate::config::{FaultConfig, FaultKind, Latency, SandboxConfig};
use crate::limits::Limiter;

/// Token lifetime in seconds.
pub const TOKEN_TTL: i64 = 86_400;

/// One logged request (admin requests are not logged).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// 1-based request number.
    pub seq: u64,
    /// HTTP method.
    pub method: String,
    /// Path, e.g. `/v1/company/employees`.
    pub path: String,
    /// Raw query string (empty if none). Credentials in `/v1/auth` query strings are masked.
    pub query: String,
    /// Status sent (0 when the connection was reset).
    pub status: u16,
    /// The injected fault, if any.
    pub fault: Option<FaultKind>,
}

/// Request traffic since the request log was last reset, for benchmarks: how many requests were served at
/// once, and when the first arrived and the last finished (admin requests not counted).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traffic {
    /// Requests being served now (a configured latency counts as serving).
    pub in_flight: u64,
    /// Most requests served at once.
    pub max_in_flight: u64,
    /// Unix time in milliseconds when the first request arrived (0: none yet).
    pub first_unix_ms: u64,
    /// Unix time in milliseconds when the last response was finished (0: none yet).
    pub last_unix_ms: u64,
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Counts one request in flight until dropped.
pub(crate) struct InFlight<'a>(&'a Shared);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut t = lock(&self.0.traffic);
        t.in_flight = t.in_flight.saturating_sub(1);
        t.last_unix_ms = unix_ms();
    }
}

/// Runtime switches (changeable through the admin API).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Options {
    /// Accepted client id.
    pub client_id: String,
    /// Accepted client secret (never logged).
    #[serde(skip_serializing)]
    pub client_secret: String,
    /// Enforce rate limits.
    pub rate_limits: bool,
    /// v1 attendances/projects retired (410).
    pub v1_retired: bool,
    /// Reject query-string credentials.
    pub reject_query_auth: bool,
    /// 401 instead of 403 for bad tokens.
    pub invalid_token_401: bool,
    /// Scopes of the credential.
    pub scopes: Vec<String>,
    /// v2 persons without whitelisted attributes (`{id, employments, _meta}` only).
    pub persons_without_attributes: bool,
}

#[derive(Debug)]
struct TokenInfo {
    issued_at: DateTime<Utc>,
    scopes: Vec<String>,
}

#[derive(Debug, Default)]
pub(crate) struct Tokens {
    valid: HashMap<String, TokenInfo>,
    by_client: HashMap<String, String>,
    epoch: u64,
}

/// Lazily rendered records of one kind at one data generation: each record is serialized the first time a
/// page needs it and reused by later pages (page cost stays proportional to the page).
#[derive(Debug)]
pub(crate) struct Rendered {
    generation: u64,
    items: Vec<OnceLock<Arc<str>>>,
}

impl Rendered {
    /// The record at `i`, rendered by `f` on first use.
    pub(crate) fn get_or(&self, i: usize, f: impl FnOnce() -> String) -> Arc<str> {
        match self.items.get(i) {
            Some(cell) => cell.get_or_init(|| Arc::from(f())).clone(),
            None => Arc::from(f()),
        }
    }
}

/// Write access to the company; when it ends, derived data that Personio keeps up to date on its own
/// (the custom reports' `data_refreshed_at`) follows the mutations made through it.
pub(crate) struct WorldWrite<'a>(RwLockWriteGuard<'a, Company>);

impl std::ops::Deref for WorldWrite<'_> {
    type Target = Company;
    fn deref(&self) -> &Company {
        &self.0
    }
}

impl std::ops::DerefMut for WorldWrite<'_> {
    fn deref_mut(&mut self) -> &mut Company {
        &mut self.0
    }
}

impl Drop for WorldWrite<'_> {
    fn drop(&mut self) {
        self.0.sync_reports();
    }
}

/// The axum state extractor of every handler.
pub(crate) type St = State<Arc<Shared>>;

/// State shared by the server and the handle.
#[derive(Debug)]
pub struct Shared {
    pub(crate) world: RwLock<Company>,
    pub(crate) options: Mutex<Options>,
    pub(crate) faults: Mutex<(FaultConfig, ChaCha8Rng)>,
    pub(crate) latency: Mutex<(Latency, ChaCha8Rng)>,
    pub(crate) tokens: Mutex<Tokens>,
    pub(crate) limiter: Mutex<Limiter>,
    pub(crate) log: Mutex<Vec<RequestRecord>>,
    pub(crate) counter: AtomicU64,
    pub(crate) traffic: Mutex<Traffic>,
    pub(crate) base_url: RwLock<String>,
    pub(crate) seed: u64,
    /// Rendered v2 records per kind (see [`Rendered`]).
    pub(crate) renders: Mutex<HashMap<&'static str, Arc<Rendered>>>,
    /// Selection cache: (endpoint + filter query, generation) → selected indices.
    pub(crate) selections: Mutex<HashMap<String, (u64, Arc<Vec<u32>>)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub(crate) fn new(config: &SandboxConfig, company: Company) -> Self {
        Shared {
            world: RwLock::new(company),
            options: Mutex::new(Options {
                client_id: config.client_id.clone(),
                client_secret: config.client_secret.clone(),
                rate_limits: config.rate_limits,
                v1_retired: config.v1_retired,
                reject_query_auth: config.reject_query_auth,
                invalid_token_401: config.invalid_token_401,
                scopes: config.effective_scopes(),
                persons_without_attributes: config.persons_without_attributes,
            }),
            faults: Mutex::new((config.faults.clone(), ChaCha8Rng::seed_from_u64(config.faults.seed))),
            latency: Mutex::new((config.latency, ChaCha8Rng::seed_from_u64(config.latency.seed))),
            tokens: Mutex::new(Tokens::default()),
            limiter: Mutex::new(Limiter::new()),
            log: Mutex::new(Vec::new()),
            counter: AtomicU64::new(0),
            traffic: Mutex::new(Traffic::default()),
            base_url: RwLock::new(String::new()),
            seed: config.seed,
            selections: Mutex::new(HashMap::new()),
            renders: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Company> {
        self.world.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn write(&self) -> WorldWrite<'_> {
        WorldWrite(self.world.write().unwrap_or_else(|p| p.into_inner()))
    }

    pub(crate) fn options(&self) -> Options {
        lock(&self.options).clone()
    }

    pub(crate) fn base_url(&self) -> String {
        self.base_url.read().map(|s| s.clone()).unwrap_or_default()
    }

    pub(crate) fn limiter(&self) -> MutexGuard<'_, Limiter> {
        lock(&self.limiter)
    }

    /// Returns the cached selection for `key` at `generation`, computing it with `f` on a miss.
    pub(crate) fn selection(&self, key: String, generation: u64, f: impl FnOnce() -> Vec<u32>) -> Arc<Vec<u32>> {
        if let Some((g, v)) = lock(&self.selections).get(&key) {
            if *g == generation {
                return v.clone();
            }
        }
        let v = Arc::new(f());
        let mut c = lock(&self.selections);
        if c.len() > 256 {
            c.clear();
        }
        c.insert(key, (generation, v.clone()));
        v
    }

    /// The render cache of `kind` for `generation` with room for `len` records (a new one after a mutation).
    pub(crate) fn rendered(&self, kind: &'static str, generation: u64, len: usize) -> Arc<Rendered> {
        let mut m = lock(&self.renders);
        match m.get(kind) {
            Some(r) if r.generation == generation && r.items.len() == len => r.clone(),
            _ => {
                let r = Arc::new(Rendered { generation, items: (0..len).map(|_| OnceLock::new()).collect() });
                m.insert(kind, r.clone());
                r
            }
        }
    }

    /// Counts a request as being served until the returned guard is dropped.
    pub(crate) fn begin_request(&self) -> InFlight<'_> {
        let mut t = lock(&self.traffic);
        t.in_flight += 1;
        t.max_in_flight = t.max_in_flight.max(t.in_flight);
        if t.first_unix_ms == 0 {
            t.first_unix_ms = unix_ms();
        }
        InFlight(self)
    }

    pub(crate) fn next_seq(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub(crate) fn push_log(&self, r: RequestRecord) {
        lock(&self.log).push(r);
    }

    /// Chooses the fault for request `seq` (exact numbers first, then the seeded probability for data requests).
    pub(crate) fn decide_fault(&self, seq: u64, is_data: bool) -> Option<FaultKind> {
        let mut g = lock(&self.faults);
        let (cfg, rng) = &mut *g;
        if let Some((_, k)) = cfg.at_requests.iter().find(|(n, _)| *n == seq) {
            return Some(*k);
        }
        if is_data && cfg.probability > 0.0 && rng.random_bool(cfg.probability.clamp(0.0, 1.0)) {
            let kinds = if cfg.kinds.is_empty() {
                vec![FaultKind::Status500, FaultKind::Status502, FaultKind::Status503, FaultKind::Status504]
            } else {
                cfg.kinds.clone()
            };
            return Some(kinds[rng.random_range(0..kinds.len())]);
        }
        None
    }

    /// Draws the delay of the next request (`None` when latency is off).
    pub(crate) fn draw_latency(&self) -> Option<std::time::Duration> {
        let mut g = lock(&self.latency);
        let (cfg, rng) = &mut *g;
        if !cfg.is_on() {
            return None;
        }
        // No tail configured (`tail_ms` 0): every request waits around the mean.
        let ms = if cfg.tail_ms > 0 && cfg.tail_share > 0.0 && rng.random_bool(cfg.tail_share.clamp(0.0, 1.0)) {
            cfg.tail_ms as f64
        } else {
            cfg.mean_ms as f64 * rng.random_range(0.5..1.5)
        };
        Some(std::time::Duration::from_micros((ms * 1000.0) as u64))
    }

    pub(crate) fn fault_params(&self) -> (u64, usize) {
        let g = lock(&self.faults);
        (g.0.slow_ms.unwrap_or(1500), g.0.insert_count.unwrap_or(3))
    }

    /// Issues (or re-issues) the stable token of a credential for a set of scopes; returns it and its remaining lifetime.
    pub(crate) fn issue_token(&self, client_id: &str, scopes: &[String]) -> (String, i64) {
        let now = self.read().now;
        let mut sorted: Vec<String> = scopes.to_vec();
        sorted.sort();
        sorted.dedup();
        let key = format!("{client_id} {}", sorted.join(" "));
        let mut t = lock(&self.tokens);
        if let Some(tok) = t.by_client.get(&key).cloned() {
            if let Some(info) = t.valid.get(&tok) {
                let left = TOKEN_TTL - (now - info.issued_at).num_seconds();
                if left > 0 {
                    return (tok, left);
                }
            }
        }
        t.epoch += 1;
        let ns = Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("personio-sandbox:{}", self.seed).as_bytes());
        let a = Uuid::new_v5(&ns, format!("{key}:{}", t.epoch).as_bytes());
        let b = Uuid::new_v5(&a, b"token");
        let tok = format!("papi-{}{}", a.simple(), b.simple());
        t.valid.insert(tok.clone(), TokenInfo { issued_at: now, scopes: sorted });
        t.by_client.insert(key, tok.clone());
        (tok, TOKEN_TTL)
    }

    /// The scopes of a token valid at the fake clock (`None`: unknown, revoked or expired).
    pub(crate) fn token_scopes(&self, tok: &str) -> Option<Vec<String>> {
        let now = self.read().now;
        let t = lock(&self.tokens);
        t.valid.get(tok).filter(|i| (now - i.issued_at).num_seconds() < TOKEN_TTL).map(|i| i.scopes.clone())
    }

    /// Revokes one token; false if it was not known.
    pub(crate) fn revoke_token(&self, tok: &str) -> bool {
        let mut t = lock(&self.tokens);
        let known = t.valid.remove(tok).is_some();
        t.by_client.retain(|_, v| v != tok);
        known
    }

    pub(crate) fn revoke_tokens(&self) {
        let mut t = lock(&self.tokens);
        t.valid.clear();
        t.by_client.clear();
    }
}

/// In-process access to a running sandbox: mutate the company, read the truth and the request log.
#[derive(Clone, Debug)]
pub struct SandboxHandle {
    pub(crate) shared: Arc<Shared>,
}

impl SandboxHandle {
    /// The fake clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.shared.read().now
    }

    /// Advances the fake clock; returns the new time.
    pub fn advance_clock(&self, by: Duration) -> DateTime<Utc> {
        let mut w = self.shared.write();
        w.now += by;
        w.now
    }

    /// Updates `n` employees (position or city); their `last_modified_at` becomes the clock. Returns their ids.
    pub fn update_employees(&self, n: usize) -> Vec<i64> {
        self.shared.write().update_employees(n)
    }

    /// Adds `n` employees created at the clock; returns their ids.
    pub fn add_employees(&self, n: usize) -> Vec<i64> {
        self.shared.write().add_employees(n)
    }

    /// Adds an approved absence of `days` working days; `None` for an unknown employee or type.
    pub fn add_absence(&self, employee_id: i64, start: NaiveDate, days: u32, time_off_type_id: Option<i64>) -> Option<i64> {
        self.shared.write().add_absence(employee_id, start, days, time_off_type_id)
    }

    /// Updates an absence (`updated_at` = clock); false if unknown.
    pub fn update_absence(&self, id: i64) -> bool {
        self.shared.write().update_absence(id)
    }

    /// Deletes an absence; false if unknown.
    pub fn delete_absence(&self, id: i64) -> bool {
        self.shared.write().delete_absence(id)
    }

    /// Adds a confirmed attendance; `None` for an unknown employee.
    pub fn add_attendance(&self, employee_id: i64, date: NaiveDate) -> Option<i64> {
        self.shared.write().add_attendance(employee_id, date)
    }

    /// Updates an attendance (`updated_at` = clock); false if unknown.
    pub fn update_attendance(&self, id: i64) -> bool {
        self.shared.write().update_attendance(id)
    }

    /// Deletes an attendance; false if unknown.
    pub fn delete_attendance(&self, id: i64) -> bool {
        self.shared.write().delete_attendance(id)
    }

    /// Erases an employee with their absences and attendances (and so their balances, person,
    /// employment and report rows); false if unknown.
    pub fn erase_employee(&self, id: i64) -> bool {
        self.shared.write().erase_employee(id)
    }

    /// Moves an employee to the next department at the clock; the new department's (id, name), `None`
    /// for an unknown id.
    pub fn move_to_next_department(&self, id: i64) -> Option<(i64, String)> {
        self.shared.write().move_to_next_department(id)
    }

    /// Adds a custom attribute to every employee; returns its `dynamic_*` key.
    pub fn add_custom_attribute(&self, label: &str, ty: &str) -> String {
        self.shared.write().add_custom_attribute(label, ty)
    }

    /// Changes an attribute's type; false for an unknown key.
    pub fn change_attribute_type(&self, key: &str, ty: &str) -> bool {
        self.shared.write().change_attribute_type(key, ty)
    }

    /// Deletes all time-off types.
    pub fn delete_all_time_off_types(&self) {
        self.shared.write().delete_all_time_off_types()
    }

    /// Every entity as the API would serve it.
    pub fn truth(&self) -> Truth {
        let base = self.shared.base_url();
        let bare = self.shared.options().persons_without_attributes;
        self.shared.read().truth(&base, bare)
    }

    /// The request log, in request order.
    pub fn request_log(&self) -> Vec<RequestRecord> {
        let mut v = lock(&self.shared.log).clone();
        v.sort_by_key(|r| r.seq);
        v
    }

    /// Requests per path.
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        for r in lock(&self.shared.log).iter() {
            *m.entry(r.path.clone()).or_insert(0) += 1;
        }
        m
    }

    /// Clears the request log and the [`Traffic`] figures and restarts request numbering at 1.
    pub fn reset_request_log(&self) {
        lock(&self.shared.log).clear();
        self.shared.counter.store(0, Ordering::SeqCst);
        let mut t = lock(&self.shared.traffic);
        *t = Traffic { in_flight: t.in_flight, ..Traffic::default() };
    }

    /// Renders every v2 list record now (persons, absence periods, attendance periods) instead of on the
    /// first page that needs it, so that a benchmark measures serving, not first rendering. Returns the
    /// number of records rendered; a mutation afterwards makes them render lazily again.
    pub fn warm(&self) -> usize {
        crate::v2::warm(&self.shared)
    }

    /// Concurrency and timing of the requests since the log was last reset.
    pub fn traffic(&self) -> Traffic {
        lock(&self.shared.traffic).clone()
    }

    /// Changes a share (0–1) of employees, absences and attendances at the clock (see
    /// [`Company::mutate_share`]); returns how many of each changed.
    pub fn mutate_share(&self, share: f64) -> (usize, usize, usize) {
        self.shared.write().mutate_share(share)
    }

    /// Replaces the fault configuration (and reseeds the fault RNG).
    pub fn set_faults(&self, faults: FaultConfig) {
        let rng = ChaCha8Rng::seed_from_u64(faults.seed);
        *lock(&self.shared.faults) = (faults, rng);
    }

    /// Current fault configuration.
    pub fn faults(&self) -> FaultConfig {
        lock(&self.shared.faults).0.clone()
    }

    /// Turns rate limits on or off (resets the buckets).
    pub fn set_rate_limits(&self, on: bool) {
        lock(&self.shared.options).rate_limits = on;
        *lock(&self.shared.limiter) = Limiter::new();
    }

    /// Replaces the latency configuration (and reseeds its RNG).
    pub fn set_latency(&self, latency: Latency) {
        *lock(&self.shared.latency) = (latency, ChaCha8Rng::seed_from_u64(latency.seed));
    }

    /// Current latency configuration.
    pub fn latency(&self) -> Latency {
        lock(&self.shared.latency).0
    }

    /// Turns the retired-v1 mode on or off.
    pub fn set_v1_retired(&self, on: bool) {
        lock(&self.shared.options).v1_retired = on;
    }

    /// Turns rejection of query-string credentials on or off.
    pub fn set_reject_query_auth(&self, on: bool) {
        lock(&self.shared.options).reject_query_auth = on;
    }

    /// Replaces the credential's scopes and revokes every token (the next token carries the new scopes).
    pub fn set_scopes(&self, scopes: Vec<String>) {
        lock(&self.shared.options).scopes = scopes;
        self.shared.revoke_tokens();
    }

    /// Turns the persons-without-whitelisted-attributes mode on or off.
    pub fn set_persons_without_attributes(&self, on: bool) {
        lock(&self.shared.options).persons_without_attributes = on;
    }

    /// Revokes every token.
    pub fn revoke_tokens(&self) {
        self.shared.revoke_tokens()
    }

    /// The data generation counter (bumped by every mutation).
    pub fn generation(&self) -> u64 {
        self.shared.read().generation
    }

    /// Runs a closure with read access to the company.
    pub fn with_company<R>(&self, f: impl FnOnce(&Company) -> R) -> R {
        f(&self.shared.read())
    }
}
