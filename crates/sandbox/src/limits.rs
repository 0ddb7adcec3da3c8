//! Rate limits as token buckets: v1 global and employees limits, `POST /v1/auth` and `POST /v2/auth/token`.

use std::time::Instant;

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
    /// `POST /v2/auth/token`: 150 per minute…
    token: Bucket,
    /// …then 1 per second for 60 s: end of that period and the last request let through in it.
    token_slow_until: Option<Instant>,
    token_slow_last: Option<Instant>,
}

impl Limiter {
    pub(crate) fn new() -> Self {
        Limiter {
            global: Bucket::new(2000.0, 2000.0 / 60.0),
            employees_min: Bucket::new(300.0, 5.0),
            employees_sec: Bucket::new(15.0, 15.0),
            auth: Bucket::new(60.0, 1.0),
            auth_locked_until: None,
            token: Bucket::new(150.0, 2.5),
            token_slow_until: None,
            token_slow_last: None,
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
        if path == "/v2/auth/token" {
            return self.check_token(now);
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


impl Limiter {
    /// v2 token endpoint: 150 requests per minute, then 1 request per second for 60 s (personio-api.md §13.1,
    /// credentials spec). The limit is per server here, not per client.
    fn check_token(&mut self, now: Instant) -> Result<u64, Limited> {
        let slow = |retry_after| Limited { retry_after, replenish: 1.0, burst: 1.0, remaining: 0 };
        if let Some(until) = self.token_slow_until {
            if now < until {
                if self.token_slow_last.is_some_and(|l| now.duration_since(l).as_secs_f64() < 1.0) {
                    return Err(slow(1));
                }
                self.token_slow_last = Some(now);
                return Ok(0);
            }
            self.token_slow_until = None;
            self.token_slow_last = None;
            self.token = Bucket::new(150.0, 2.5);
        }
        self.token.refill(now);
        if self.token.tokens < 1.0 {
            self.token_slow_until = Some(now + std::time::Duration::from_secs(60));
            self.token_slow_last = Some(now);
            return Err(slow(1));
        }
        self.token.tokens -= 1.0;
        Ok(self.token.tokens as u64)
    }
}
