//! Shared server state and the in-process handle other crates' tests use.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::company::Company;
use crate::config::{FaultConfig, FaultKind, SandboxConfig};

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
}

#[derive(Debug)]
struct TokenInfo {
    issued_at: DateTime<Utc>,
}

#[derive(Debug, Default)]
pub(crate) struct Tokens {
    valid: HashMap<String, TokenInfo>,
    by_client: HashMap<String, String>,
    epoch: u64,
}

#[derive(Debug)]
struct Bucket {
    cap: f64,
    per_sec: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(cap: f64, per_sec: f64) -> Self {
        Bucket { cap, per_sec, tokens: cap, last: Instant::now() }
    }
    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.per_sec).min(self.cap);
        self.last = now;
    }
    fn wait(&self) -> f64 {
        if self.tokens >= 1.0 { 0.0 } else { (1.0 - self.tokens) / self.per_sec }
    }
}

/// A rate-limit rejection.
#[derive(Debug, Clone, Copy)]
pub struct Limited {
    /// Seconds to wait (`Retry-After`).
    pub retry_after: u64,
    /// Replenish rate per second of the bucket that refused.
    pub replenish: f64,
    /// Capacity of that bucket.
    pub burst: f64,
    /// Tokens left.
    pub remaining: u64,
}

#[derive(Debug)]
pub(crate) struct Limiter {
    global: Bucket,
    employees_min: Bucket,
    employees_sec: Bucket,
    auth: Bucket,
    auth_locked_until: Option<Instant>,
}

impl Limiter {
    fn new() -> Self {
        Limiter {
            global: Bucket::new(2000.0, 2000.0 / 60.0),
            employees_min: Bucket::new(300.0, 5.0),
            employees_sec: Bucket::new(15.0, 15.0),
            auth: Bucket::new(60.0, 1.0),
            auth_locked_until: None,
        }
    }

    /// Takes a token for a v1 path or reports how long to wait.
    pub(crate) fn check(&mut self, path: &str) -> Result<u64, Limited> {
        let now = Instant::now();
        if path == "/v1/auth" {
            if let Some(until) = self.auth_locked_until {
                if now < until {
                    let s = until.duration_since(now).as_secs_f64().ceil() as u64;
                    return Err(Limited { retry_after: s.max(1), replenish: 1.0, burst: 60.0, remaining: 0 });
                }
                self.auth_locked_until = None;
                self.auth = Bucket::new(60.0, 1.0);
            }
            self.auth.refill(now);
            if self.auth.tokens < 1.0 {
                self.auth_locked_until = Some(now + std::time::Duration::from_secs(60));
                return Err(Limited { retry_after: 60, replenish: 1.0, burst: 60.0, remaining: 0 });
            }
            self.auth.tokens -= 1.0;
            return Ok(self.auth.tokens as u64);
        }
        if !path.starts_with("/v1/") {
            return Ok(u64::MAX);
        }
        self.global.refill(now);
        let emp = path.starts_with("/v1/company/employees");
        if emp {
            self.employees_min.refill(now);
            self.employees_sec.refill(now);
        }
        let mut worst: Option<(f64, f64, f64)> = None;
        let mut buckets: Vec<&Bucket> = vec![&self.global];
        if emp {
            buckets.push(&self.employees_min);
            buckets.push(&self.employees_sec);
        }
        for bucket in buckets {
            let w = bucket.wait();
            if w > 0.0 && worst.is_none_or(|(x, _, _)| w > x) {
                worst = Some((w, bucket.per_sec, bucket.cap));
            }
        }
        if let Some((w, per_sec, cap)) = worst {
            return Err(Limited { retry_after: (w.ceil() as u64).max(1), replenish: per_sec, burst: cap, remaining: 0 });
        }
        self.global.tokens -= 1.0;
        let mut remaining = self.global.tokens;
        if emp {
            self.employees_min.tokens -= 1.0;
            self.employees_sec.tokens -= 1.0;
            remaining = remaining.min(self.employees_min.tokens).min(self.employees_sec.tokens);
        }
        Ok(remaining.max(0.0) as u64)
    }
}

/// Ground truth: every entity as the API serves it, without paging.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Truth {
    /// v1 employee records (`{"type":"Employee","attributes":{…}}`), by id.
    pub employees: Vec<Value>,
    /// v1 `company/employees/attributes` entries.
    pub employee_attributes: Vec<Value>,
    /// v1 time-off records (`/company/time-offs`), by id.
    pub absences: Vec<Value>,
    /// v1 attendance records of every status (as with `includePending=true`), by id.
    pub attendances: Vec<Value>,
    /// v1 time-off types.
    pub time_off_types: Vec<Value>,
    /// v1 projects.
    pub projects: Vec<Value>,
    /// v1 document categories.
    pub document_categories: Vec<Value>,
    /// v1 balance rows per employee id.
    pub balances: BTreeMap<i64, Vec<Value>>,
    /// v1 custom report list records.
    pub custom_reports: Vec<Value>,
    /// v1 custom report items per report id.
    pub custom_report_items: BTreeMap<String, Vec<Value>>,
    /// v2 persons.
    pub persons: Vec<Value>,
    /// v2 employments per person id.
    pub employments: BTreeMap<String, Vec<Value>>,
    /// v2 absence periods.
    pub absence_periods: Vec<Value>,
    /// v2 absence types.
    pub absence_types: Vec<Value>,
    /// v2 attendance periods.
    pub attendance_periods: Vec<Value>,
    /// v2 projects.
    pub projects_v2: Vec<Value>,
}

/// State shared by the server and the handle.
#[derive(Debug)]
pub struct Shared {
    pub(crate) world: RwLock<Company>,
    pub(crate) options: Mutex<Options>,
    pub(crate) faults: Mutex<(FaultConfig, ChaCha8Rng)>,
    pub(crate) tokens: Mutex<Tokens>,
    pub(crate) limiter: Mutex<Limiter>,
    pub(crate) log: Mutex<Vec<RequestRecord>>,
    pub(crate) counter: AtomicU64,
    pub(crate) base_url: RwLock<String>,
    pub(crate) seed: u64,
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
            }),
            faults: Mutex::new((config.faults.clone(), ChaCha8Rng::seed_from_u64(config.faults.seed))),
            tokens: Mutex::new(Tokens::default()),
            limiter: Mutex::new(Limiter::new()),
            log: Mutex::new(Vec::new()),
            counter: AtomicU64::new(0),
            base_url: RwLock::new(String::new()),
            seed: config.seed,
            selections: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Company> {
        self.world.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Company> {
        self.world.write().unwrap_or_else(|p| p.into_inner())
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

    pub(crate) fn fault_params(&self) -> (u64, usize) {
        let g = lock(&self.faults);
        (g.0.slow_ms.unwrap_or(1500), g.0.insert_count.unwrap_or(3))
    }

    /// Issues (or re-issues) the stable token of a credential; returns it and its remaining lifetime.
    pub(crate) fn issue_token(&self, client_id: &str) -> (String, i64) {
        let now = self.read().now;
        let mut t = lock(&self.tokens);
        if let Some(tok) = t.by_client.get(client_id).cloned() {
            if let Some(info) = t.valid.get(&tok) {
                let left = TOKEN_TTL - (now - info.issued_at).num_seconds();
                if left > 0 {
                    return (tok, left);
                }
            }
        }
        t.epoch += 1;
        let ns = Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("personio-sandbox:{}", self.seed).as_bytes());
        let a = Uuid::new_v5(&ns, format!("{client_id}:{}", t.epoch).as_bytes());
        let b = Uuid::new_v5(&a, b"token");
        let tok = format!("papi-{}{}", a.simple(), b.simple());
        t.valid.insert(tok.clone(), TokenInfo { issued_at: now });
        t.by_client.insert(client_id.to_string(), tok.clone());
        (tok, TOKEN_TTL)
    }

    /// Is this token valid at the fake clock?
    pub(crate) fn token_valid(&self, tok: &str) -> bool {
        let now = self.read().now;
        let t = lock(&self.tokens);
        t.valid.get(tok).is_some_and(|i| (now - i.issued_at).num_seconds() < TOKEN_TTL)
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
        crate::server::truth(&self.shared.read())
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

    /// Clears the request log and restarts request numbering at 1.
    pub fn reset_request_log(&self) {
        lock(&self.shared.log).clear();
        self.shared.counter.store(0, Ordering::SeqCst);
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

    /// Turns the retired-v1 mode on or off.
    pub fn set_v1_retired(&self, on: bool) {
        lock(&self.shared.options).v1_retired = on;
    }

    /// Turns rejection of query-string credentials on or off.
    pub fn set_reject_query_auth(&self, on: bool) {
        lock(&self.shared.options).reject_query_auth = on;
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
