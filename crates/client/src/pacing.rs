//! Client-side pacing: one limiter for every request of a client (all clones share it).
//!
//! A request is *admitted* when three things hold at the same moment:
//!
//! 1. no server-announced pause covers it (a `Retry-After` on a 429, or `x-ratelimit-remaining: 0`
//!    on any response, pauses the requests of that scope until the bucket has refilled);
//! 2. a concurrency permit is free ([`Concurrency`], the adaptive in-flight limit);
//! 3. every token bucket of its class has a token (per-endpoint and global, checked and taken together,
//!    so a token is never spent on a request that then waits for another bucket).
//!
//! A request waiting on a bucket or a pause holds no permit, so a slow bucket (employees, 5/s) never
//! blocks requests to other endpoints. Tokens are taken immediately before the request is sent.
//!
//! Why not `governor` (used before): its limiters take a token one limiter at a time, so a request that
//! passes the employees bucket and then finds the global bucket empty has already spent an employees
//! token; two buckets checked and taken *together*, pauses announced by the server and the in-flight limit
//! under one admission need the small token bucket here (tested in this module).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{ConcurrencyConfig, PacingConfig};

/// Which buckets and pauses a request must pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// v1 token endpoint (`/v1/auth`).
    Auth,
    /// v2 token endpoint (`/v2/auth/token`).
    V2Auth,
    /// v1 paths under `company/employees`.
    Employees,
    /// `company/employees/{id}/absences/balance`: the employees bucket only when configured so.
    Balance,
    /// Any other v1 data path.
    Other,
    /// A v2 data path.
    V2,
}

impl Class {
    fn index(self) -> usize {
        self as usize
    }
    /// Whether the request takes a concurrency permit (token requests do not: they are rare, and a data
    /// request fetches its token before it asks for a permit).
    fn uses_permit(self) -> bool {
        !matches!(self, Class::Auth | Class::V2Auth)
    }
}

const CLASSES: usize = 6;

/// Scopes a server can pause with its rate-limit headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    /// Every v1 data request (Personio's 2,000/min per IP).
    V1,
    /// v1 `company/employees*` (300/min, burst 15).
    Employees,
    /// v2 data requests.
    V2,
    /// `/v1/auth`.
    Auth,
    /// `/v2/auth/token`.
    V2Auth,
}

const SCOPES: usize = 5;

/// A token bucket: refills `per_sec` tokens a second up to `cap`; starts full.
#[derive(Debug)]
struct Bucket {
    cap: f64,
    per_sec: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// `per_min` tokens a minute, at most `burst` at once; `None` when `per_min` is 0 (no limit).
    fn new(per_min: u32, burst: u32, now: Instant) -> Option<Bucket> {
        if per_min == 0 {
            return None;
        }
        let cap = f64::from(burst.max(1));
        Some(Bucket { cap, per_sec: f64::from(per_min) / 60.0, tokens: cap, last: now })
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.per_sec).min(self.cap);
        self.last = now;
    }

    /// Time until one token is there (zero if one is there now).
    fn wait(&self) -> Duration {
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(((1.0 - self.tokens) / self.per_sec).min(3600.0))
        }
    }
}

#[derive(Debug)]
struct Buckets {
    employees: Option<Bucket>,
    global: Option<Bucket>,
    auth: Option<Bucket>,
    v2_auth: Option<Bucket>,
    /// Server-announced pauses, per [`Scope`].
    paused_until: [Option<Instant>; SCOPES],
}

/// The one limiter of a client: token buckets, server-announced pauses, the adaptive concurrency limit.
pub(crate) struct Pacer {
    balances_in_employees: bool,
    /// Longest pause a server can impose (the client's `max_retry_delay`).
    max_pause: Duration,
    buckets: Mutex<Buckets>,
    /// One waiter per class polls the buckets at a time (FIFO); the others queue behind it, so a
    /// refilling bucket wakes one request instead of a herd.
    turns: [tokio::sync::Mutex<()>; CLASSES],
    concurrency: Arc<Concurrency>,
    /// Times a request had to wait for a bucket or a pause.
    pub(crate) rate_waits: AtomicU64,
    /// Pauses started because of a server's headers.
    pub(crate) server_pauses: AtomicU64,
}

/// What admission handed out: the concurrency permit (released when dropped) and why the request
/// waited, which drives the adaptive limit.
pub(crate) struct Admission {
    permit: Option<ConcurrencyPermit>,
    /// The request waited for a concurrency permit and never for a bucket: latency, not the allowance,
    /// held it back.
    concurrency_bound: bool,
}

impl Pacer {
    pub(crate) fn new(cfg: &PacingConfig, conc: &ConcurrencyConfig, max_pause: Duration) -> Self {
        let now = Instant::now();
        let on = cfg.enabled;
        let bucket = |per_min: u32, burst: u32| if on { Bucket::new(per_min, burst, now) } else { None };
        Self {
            balances_in_employees: cfg.balances_in_employees_limit,
            max_pause,
            buckets: Mutex::new(Buckets {
                // Like Personio's gateway: refill 5/s, burst 15.
                employees: bucket(cfg.employees_per_min, cfg.employees_burst_per_sec),
                // About one second's worth of burst.
                global: bucket(cfg.global_per_min, cfg.global_per_min / 60),
                // Token requests strictly spaced, never more than the limit in any minute.
                auth: bucket(cfg.auth_per_min, 1),
                v2_auth: bucket(cfg.v2_auth_per_min, 1),
                paused_until: [None; SCOPES],
            }),
            turns: std::array::from_fn(|_| tokio::sync::Mutex::new(())),
            concurrency: Arc::new(Concurrency::new(conc)),
            rate_waits: AtomicU64::new(0),
            server_pauses: AtomicU64::new(0),
        }
    }

    pub(crate) fn concurrency(&self) -> &Concurrency {
        &self.concurrency
    }

    fn scopes(&self, class: Class) -> &'static [Scope] {
        match class {
            Class::Auth => &[Scope::Auth],
            Class::V2Auth => &[Scope::V2Auth],
            Class::Employees => &[Scope::V1, Scope::Employees],
            Class::Balance if self.balances_in_employees => &[Scope::V1, Scope::Employees],
            Class::Balance | Class::Other => &[Scope::V1],
            Class::V2 => &[Scope::V2],
        }
    }

    /// Takes the tokens of `class` if all are there (and no pause covers it); otherwise how long to wait.
    fn try_take(&self, class: Class, now: Instant) -> Result<(), Duration> {
        let mut b = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let mut wait = Duration::ZERO;
        for scope in self.scopes(class) {
            if let Some(until) = b.paused_until[*scope as usize] {
                wait = wait.max(until.saturating_duration_since(now));
            }
        }
        let employees = matches!(class, Class::Employees) || (class == Class::Balance && self.balances_in_employees);
        let Buckets { employees: e, global: g, auth: a, v2_auth: v, .. } = &mut *b;
        let mut own: Vec<&mut Bucket> = Vec::with_capacity(2);
        match class {
            Class::Auth => own.extend(a.as_mut()),
            Class::V2Auth => own.extend(v.as_mut()),
            _ if employees => own.extend(e.as_mut()),
            _ => {}
        }
        own.extend(g.as_mut());
        for bucket in own.iter_mut() {
            bucket.refill(now);
            wait = wait.max(bucket.wait());
        }
        if !wait.is_zero() {
            return Err(wait);
        }
        for bucket in own {
            bucket.tokens -= 1.0;
        }
        Ok(())
    }

    /// Waits until the request may be sent: no pause, a concurrency permit, the class's tokens.
    pub(crate) async fn admit(&self, class: Class) -> Admission {
        let _turn = self.turns[class.index()].lock().await;
        let mut waited_for_permit = false;
        let mut rate_bound = false;
        loop {
            let permit = if class.uses_permit() {
                let (p, waited) = self.concurrency.acquire().await;
                waited_for_permit |= waited;
                Some(p)
            } else {
                None
            };
            match self.try_take(class, Instant::now()) {
                Ok(()) => {
                    return Admission { permit, concurrency_bound: waited_for_permit && !rate_bound };
                }
                Err(wait) => {
                    drop(permit);
                    rate_bound = true;
                    self.rate_waits.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Reads what a response says about the server's limits: a 429 halves the concurrency limit and,
    /// with `Retry-After`, pauses the scope; `x-ratelimit-remaining: 0` pauses the scope until one
    /// token (`x-ratelimit-requested-tokens`, default 1) has refilled at `x-ratelimit-replenish-rate`.
    /// A success that had waited for a permit (not for a bucket) lets the concurrency limit grow.
    pub(crate) fn on_response(
        &self,
        class: Class,
        admission: &Admission,
        status: Option<u16>,
        rate: Option<RateHeaders>,
        retry_after: Option<Duration>,
    ) {
        let limited = status == Some(429);
        if let Some(p) = &admission.permit {
            if limited {
                self.concurrency.on_rate_limited(p);
            } else if status.is_some_and(|s| (200..300).contains(&s)) && admission.concurrency_bound {
                self.concurrency.on_latency_bound();
            }
        }
        let header_pause = rate.and_then(|h| h.pause());
        let pause = match (limited, retry_after) {
            (true, Some(ra)) => Some(ra.max(header_pause.unwrap_or_default())),
            _ => header_pause,
        };
        if let Some(pause) = pause.filter(|p| !p.is_zero()) {
            // Capped like every wait: at `max_retry_delay`.
            let pause = pause.min(self.max_pause);
            let until = Instant::now() + pause;
            let scope = self.pause_scope(class);
            let mut b = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
            let slot = &mut b.paused_until[scope as usize];
            if slot.is_none_or(|u| u < until) {
                *slot = Some(until);
                self.server_pauses.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(?scope, pause_ms = pause.as_millis() as u64, "pausing: the server's rate limit is exhausted");
            }
        }
    }

    /// The scope a response's headers speak for: its class's narrowest.
    fn pause_scope(&self, class: Class) -> Scope {
        match class {
            Class::Auth => Scope::Auth,
            Class::V2Auth => Scope::V2Auth,
            Class::Employees => Scope::Employees,
            Class::Balance if self.balances_in_employees => Scope::Employees,
            Class::Balance | Class::Other => Scope::V1,
            Class::V2 => Scope::V2,
        }
    }
}

/// The Spring Cloud Gateway token-bucket headers (`x-ratelimit-*`, personio-api.md §3.5).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct RateHeaders {
    pub(crate) remaining: Option<f64>,
    pub(crate) replenish_rate: Option<f64>,
    pub(crate) burst_capacity: Option<f64>,
    pub(crate) requested_tokens: Option<f64>,
}

impl RateHeaders {
    pub(crate) fn parse(h: &HeaderMap) -> Option<RateHeaders> {
        let num = |name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|s| s.trim().parse::<f64>().ok())
                .filter(|f| f.is_finite() && *f >= 0.0)
        };
        let r = RateHeaders {
            remaining: num("x-ratelimit-remaining"),
            replenish_rate: num("x-ratelimit-replenish-rate"),
            burst_capacity: num("x-ratelimit-burst-capacity"),
            requested_tokens: num("x-ratelimit-requested-tokens"),
        };
        (r != RateHeaders::default()).then_some(r)
    }

    /// How long to pause when the bucket is empty: the time to refill the tokens one request needs.
    pub(crate) fn pause(&self) -> Option<Duration> {
        let needed = self.requested_tokens.filter(|t| *t > 0.0).unwrap_or(1.0);
        if self.remaining? >= needed {
            return None;
        }
        let rate = self.replenish_rate.filter(|r| *r > 0.0)?;
        let missing = needed - self.remaining.unwrap_or(0.0);
        Some(Duration::from_secs_f64((missing / rate).min(300.0)))
    }
}

// ------------------------------------------------------------------ adaptive concurrency

/// The adaptive limit on requests in flight (AIMD, like TCP's congestion window):
///
/// * **slow start**: the limit starts at `initial` and grows by one for every successful response
///   whose request had waited for a permit without ever waiting for a rate-limit token — that is,
///   latency, not the allowance, was holding the work back. This doubles the limit per round trip.
/// * **at the allowance** requests wait for tokens rather than permits, so the limit stops growing:
///   the number in flight settles at rate × latency by itself.
/// * **a 429 halves the limit** (never below 1) and ends slow start; afterwards the limit grows by
///   one per round trip (`1/limit` per qualifying response). Responses to requests sent before the last
///   decrease do not halve it again, so one burst of 429s counts once.
/// * the limit never exceeds `max` (`sources.personio.max_concurrency`).
pub(crate) struct Concurrency {
    sem: Arc<Semaphore>,
    state: Mutex<ConcState>,
    max: usize,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
}

struct ConcState {
    /// The limit, fractional during additive increase.
    limit: f64,
    /// Permits the semaphore represents (`floor(limit)` once debts are paid).
    permits: usize,
    /// Permits to withdraw as they come back (the limit shrank below the number in use).
    debt: usize,
    /// Bumped by every decrease.
    epoch: u64,
    slow_start: bool,
}

/// One request's slot; releasing it frees the slot (or withdraws it after a decrease).
pub(crate) struct ConcurrencyPermit {
    permit: Option<OwnedSemaphorePermit>,
    epoch: u64,
    owner: Arc<Concurrency>,
}

impl Drop for ConcurrencyPermit {
    fn drop(&mut self) {
        self.owner.in_flight.fetch_sub(1, Ordering::Relaxed);
        let mut st = self.owner.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.debt > 0 {
            st.debt -= 1;
            if let Some(p) = self.permit.take() {
                p.forget();
            }
        }
    }
}

impl Concurrency {
    fn new(cfg: &ConcurrencyConfig) -> Self {
        let max = cfg.max.max(1);
        let initial = cfg.initial.clamp(1, max);
        Concurrency {
            sem: Arc::new(Semaphore::new(initial)),
            state: Mutex::new(ConcState { limit: initial as f64, permits: initial, debt: 0, epoch: 0, slow_start: true }),
            max,
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    /// A permit, and whether the caller had to wait for it.
    async fn acquire(self: &Arc<Self>) -> (ConcurrencyPermit, bool) {
        let (permit, waited) = match self.sem.clone().try_acquire_owned() {
            Ok(p) => (p, false),
            // The semaphore is never closed.
            Err(_) => (self.sem.clone().acquire_owned().await.expect("semaphore never closed"), true),
        };
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now, Ordering::Relaxed);
        let epoch = self.state.lock().unwrap_or_else(|e| e.into_inner()).epoch;
        (ConcurrencyPermit { permit: Some(permit), epoch, owner: self.clone() }, waited)
    }

    fn on_latency_bound(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let step = if st.slow_start { 1.0 } else { 1.0 / st.limit.max(1.0) };
        st.limit = (st.limit + step).min(self.max as f64);
        self.apply(&mut st);
    }

    fn on_rate_limited(&self, p: &ConcurrencyPermit) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if p.epoch != st.epoch {
            return;
        }
        st.epoch += 1;
        st.slow_start = false;
        st.limit = (st.limit / 2.0).floor().max(1.0);
        tracing::debug!(limit = st.limit, "429: concurrency limit halved");
        self.apply(&mut st);
    }

    /// Brings the semaphore to `floor(limit)` permits.
    fn apply(&self, st: &mut ConcState) {
        let target = (st.limit.floor() as usize).clamp(1, self.max);
        if target > st.permits {
            let mut add = target - st.permits;
            let paid = add.min(st.debt);
            st.debt -= paid;
            add -= paid;
            self.sem.add_permits(add);
        } else if target < st.permits {
            let cut = st.permits - target;
            let forgotten = self.sem.forget_permits(cut);
            st.debt += cut - forgotten;
        }
        st.permits = target;
    }

    /// The current limit (whole requests).
    pub(crate) fn limit(&self) -> usize {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).permits
    }

    /// The most requests ever in flight at once.
    pub(crate) fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }
}

/// Classifies a v1 path relative to the v1 root (leading `/` ignored).
pub(crate) fn classify_v1(path: &str) -> Class {
    let p = path.trim_start_matches('/');
    let bare = p.split('?').next().unwrap_or(p);
    if bare.starts_with("company/employees/") && bare.ends_with("/absences/balance") {
        Class::Balance
    } else if p == "company/employees" || p.starts_with("company/employees/") || p.starts_with("company/employees?") {
        Class::Employees
    } else if p == "auth" {
        Class::Auth
    } else {
        Class::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pacer(cfg: PacingConfig) -> Pacer {
        Pacer::new(&cfg, &ConcurrencyConfig::default(), Duration::from_secs(300))
    }

    #[tokio::test]
    async fn balance_scope_selects_the_bucket() {
        let cfg = PacingConfig { employees_per_min: 1, employees_burst_per_sec: 1, global_per_min: 0, balances_in_employees_limit: false, ..PacingConfig::default() };
        let global_only = pacer(cfg.clone());
        let started = std::time::Instant::now();
        for _ in 0..3 {
            drop(global_only.admit(Class::Balance).await);
        }
        assert!(started.elapsed() < Duration::from_secs(1));
        let employees = pacer(PacingConfig { balances_in_employees_limit: true, ..cfg });
        drop(employees.admit(Class::Balance).await);
        assert!(tokio::time::timeout(Duration::from_millis(200), employees.admit(Class::Balance)).await.is_err());
    }

    #[test]
    fn buckets_are_taken_together_or_not_at_all() {
        // Employees has tokens, global has one: the second employees call must not spend an employees token.
        let cfg = PacingConfig { employees_per_min: 60, employees_burst_per_sec: 5, global_per_min: 60, ..PacingConfig::default() };
        let p = pacer(cfg);
        let now = Instant::now();
        assert!(p.try_take(Class::Employees, now).is_ok());
        assert!(p.try_take(Class::Employees, now).is_err());
        let b = p.buckets.lock().unwrap();
        assert!((b.employees.as_ref().unwrap().tokens - 4.0).abs() < 0.01, "{:?}", b.employees);
    }

    #[test]
    fn headers_pause_only_when_the_bucket_is_empty() {
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-remaining", "3".parse().unwrap());
        h.insert("x-ratelimit-replenish-rate", "10".parse().unwrap());
        assert_eq!(RateHeaders::parse(&h).unwrap().pause(), None);
        h.insert("x-ratelimit-remaining", "0".parse().unwrap());
        assert_eq!(RateHeaders::parse(&h).unwrap().pause(), Some(Duration::from_millis(100)));
        h.insert("x-ratelimit-requested-tokens", "2".parse().unwrap());
        assert_eq!(RateHeaders::parse(&h).unwrap().pause(), Some(Duration::from_millis(200)));
        assert!(RateHeaders::parse(&HeaderMap::new()).is_none());
        // Without a replenish rate nothing says how long: no pause from the headers alone.
        let mut only = HeaderMap::new();
        only.insert("x-ratelimit-remaining", "0".parse().unwrap());
        assert_eq!(RateHeaders::parse(&only).unwrap().pause(), None);
    }

    #[tokio::test]
    async fn a_server_pause_holds_the_scope_back() {
        let p = pacer(PacingConfig::disabled());
        let a = p.admit(Class::Other).await;
        p.on_response(Class::Other, &a, Some(429), None, Some(Duration::from_millis(300)));
        drop(a);
        // v1 is paused; v2 is not.
        assert!(tokio::time::timeout(Duration::from_millis(100), p.admit(Class::Other)).await.is_err());
        assert!(tokio::time::timeout(Duration::from_millis(100), p.admit(Class::V2)).await.is_ok());
        assert_eq!(p.server_pauses.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn aimd_grows_when_latency_bound_and_halves_on_429() {
        let p = Arc::new(pacer(PacingConfig::disabled()));
        let c = p.concurrency();
        assert_eq!(c.limit(), ConcurrencyConfig::default().initial);
        // Hold all permits, queue one more: it waits for a permit, never for a token.
        let held: Vec<Admission> = futures::future::join_all((0..c.limit()).map(|_| p.admit(Class::Other))).await;
        let p2 = p.clone();
        let waiter = tokio::spawn(async move {
            let a = p2.admit(Class::Other).await;
            let bound = a.concurrency_bound;
            p2.on_response(Class::Other, &a, Some(200), None, None);
            bound
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(held);
        assert!(waiter.await.unwrap(), "waited for a permit only");
        assert_eq!(c.limit(), ConcurrencyConfig::default().initial + 1);
        // A 429 halves it; a second 429 from a request sent before the decrease does not.
        let a = p.admit(Class::Other).await;
        let b = p.admit(Class::Other).await;
        p.on_response(Class::Other, &a, Some(429), None, None);
        p.on_response(Class::Other, &b, Some(429), None, None);
        assert_eq!(c.limit(), (ConcurrencyConfig::default().initial + 1) / 2);
        drop((a, b));
        // The semaphore holds exactly the limit.
        let all: Vec<Admission> = futures::future::join_all((0..c.limit()).map(|_| p.admit(Class::Other))).await;
        assert!(tokio::time::timeout(Duration::from_millis(50), p.admit(Class::Other)).await.is_err());
        drop(all);
    }

    #[test]
    fn classification() {
        assert_eq!(classify_v1("company/employees"), Class::Employees);
        assert_eq!(classify_v1("/company/employees/12/absences/balance"), Class::Balance);
        assert_eq!(classify_v1("company/employees/attributes"), Class::Employees);
        assert_eq!(classify_v1("company/time-offs"), Class::Other);
        assert_eq!(classify_v1("company/employeesX"), Class::Other);
    }
}
