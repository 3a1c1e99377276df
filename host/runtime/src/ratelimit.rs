//! Entity-call budgets: GCRA (the `governor` crate) per plugin, across events,
//! plus an optional host-wide cap. A call waits (asynchronously) when the
//! wait fits in the event's deadline, and is refused with the wait otherwise.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// The connector's limit: 100 calls per minute.
pub const DEFAULT_CALLS: u32 = 100;
/// The default window for [`DEFAULT_CALLS`].
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);

/// A budget of `calls` per `window`, bursting up to `calls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub calls: NonZeroU32,
    pub window: Duration,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            calls: NonZeroU32::new(DEFAULT_CALLS).unwrap_or(NonZeroU32::MIN),
            window: DEFAULT_WINDOW,
        }
    }
}

/// One budget in force.
pub struct Limiter {
    budget: Budget,
    gcra: DefaultDirectRateLimiter,
    clock: DefaultClock,
    throttled: AtomicU64,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

/// Why a call may not go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// How long until a call would be allowed.
    pub retry_after: Duration,
}

impl Limiter {
    /// A limiter for `budget`.
    pub fn new(budget: Budget) -> Self {
        let period = budget.window / budget.calls.get();
        let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
            .unwrap_or_else(|| Quota::per_second(budget.calls))
            .allow_burst(budget.calls);
        Self {
            budget,
            gcra: RateLimiter::direct(quota),
            clock: DefaultClock::default(),
            throttled: AtomicU64::new(0),
        }
    }

    /// The budget.
    pub fn budget(&self) -> Budget {
        self.budget
    }

    /// Calls that had to wait or were refused.
    pub fn throttled(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }

    /// Take one call now, or say how long until one is allowed.
    pub fn try_take(&self) -> Result<(), Refused> {
        self.gcra.check().map_err(|not_until| Refused {
            retry_after: not_until.wait_time_from(self.clock.now()),
        })
    }

    /// Take one call, waiting if the wait ends before `deadline`.
    /// Returns how long it waited.
    pub async fn take_before(&self, deadline: Instant) -> Result<Duration, Refused> {
        let started = Instant::now();
        let mut counted = false;
        loop {
            match self.try_take() {
                Ok(()) => return Ok(started.elapsed()),
                Err(r) => {
                    if !counted {
                        self.throttled.fetch_add(1, Ordering::Relaxed);
                        counted = true;
                    }
                    if Instant::now() + r.retry_after > deadline {
                        return Err(r);
                    }
                    tokio::time::sleep(r.retry_after).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn five_per_second() -> Limiter {
        Limiter::new(Budget {
            calls: NonZeroU32::new(5).unwrap(),
            window: Duration::from_secs(1),
        })
    }

    #[test]
    fn burst_then_refusal_with_retry_after() {
        let l = five_per_second();
        for _ in 0..5 {
            assert!(l.try_take().is_ok());
        }
        let r = l.try_take().unwrap_err();
        assert!(
            r.retry_after > Duration::ZERO && r.retry_after <= Duration::from_millis(200),
            "{r:?}"
        );
    }

    #[tokio::test]
    async fn waits_when_the_deadline_allows_and_refuses_otherwise() {
        let l = five_per_second();
        for _ in 0..5 {
            l.take_before(Instant::now()).await.unwrap();
        }
        let refused = l
            .take_before(Instant::now() + Duration::from_millis(10))
            .await
            .unwrap_err();
        assert!(refused.retry_after > Duration::from_millis(10));
        let waited = l
            .take_before(Instant::now() + Duration::from_secs(2))
            .await
            .unwrap();
        assert!(waited > Duration::ZERO);
        assert_eq!(l.throttled(), 2);
    }
}
