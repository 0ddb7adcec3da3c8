//! Client-side pacing: token buckets (governor) shared by all clones of a client.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::config::PacingConfig;

/// Which buckets a request must pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// Token endpoint (v1 `/auth`, v2 `/auth/token`).
    Auth,
    /// v1 paths under `company/employees`.
    Employees,
    /// `company/employees/{id}/absences/balance`: the employees bucket only when configured so.
    Balance,
    /// Anything else.
    Other,
}

pub(crate) struct Pacer {
    balances_in_employees: bool,
    employees: Option<DefaultDirectRateLimiter>,
    global: Option<DefaultDirectRateLimiter>,
    auth: Option<DefaultDirectRateLimiter>,
}

/// A bucket refilling `per_min` tokens per minute, holding at most `burst`.
fn bucket(per_min: u32, burst: u32) -> Option<DefaultDirectRateLimiter> {
    let per_min = NonZeroU32::new(per_min)?;
    let period = Duration::from_secs(60) / per_min.get();
    let burst = NonZeroU32::new(burst.max(1)).expect("burst is at least 1");
    let quota = Quota::with_period(period.max(Duration::from_nanos(1)))?.allow_burst(burst);
    Some(RateLimiter::direct(quota))
}

impl Pacer {
    pub(crate) fn new(cfg: &PacingConfig) -> Self {
        if !cfg.enabled {
            return Self { balances_in_employees: false, employees: None, global: None, auth: None };
        }
        Self {
            balances_in_employees: cfg.balances_in_employees_limit,
            // Token bucket like Personio's own gateway: refill 5/s, burst 15.
            employees: bucket(cfg.employees_per_min, cfg.employees_burst_per_sec),
            // About one second's worth of burst.
            global: bucket(cfg.global_per_min, cfg.global_per_min / 60),
            // Auth: strictly spaced, never more than `auth_per_min` in any minute.
            auth: bucket(cfg.auth_per_min, 1),
        }
    }

    /// Waits until the request may be sent.
    pub(crate) async fn acquire(&self, class: Class) {
        match class {
            Class::Auth => {
                if let Some(l) = &self.auth {
                    l.until_ready().await;
                }
            }
            Class::Balance if !self.balances_in_employees => {}
            Class::Employees | Class::Balance => {
                if let Some(l) = &self.employees {
                    l.until_ready().await;
                }
            }
            Class::Other => {}
        }
        if let Some(l) = &self.global {
            l.until_ready().await;
        }
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

    #[tokio::test]
    async fn balance_scope_selects_the_bucket() {
        let cfg = PacingConfig { employees_per_min: 1, employees_burst_per_sec: 1, global_per_min: 0, balances_in_employees_limit: false, ..PacingConfig::default() };
        let global_only = Pacer::new(&cfg);
        let started = std::time::Instant::now();
        for _ in 0..3 {
            global_only.acquire(Class::Balance).await;
        }
        assert!(started.elapsed() < Duration::from_secs(1));
        let employees = Pacer::new(&PacingConfig { balances_in_employees_limit: true, ..cfg });
        employees.acquire(Class::Balance).await;
        assert!(tokio::time::timeout(Duration::from_millis(200), employees.acquire(Class::Balance)).await.is_err());
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
