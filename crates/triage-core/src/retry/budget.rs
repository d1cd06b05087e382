//! A retry budget shared by every clone of a client, so that an outage adds a
//! bounded fraction of load instead of multiplying it.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// Slots of the sliding window.
const SLOTS: u64 = 10;

/// Budget IDs, for the per-thread cache.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The budget this thread last deposited in, and the end of the epoch
    /// it checked: a deposit before that end needs no clock arithmetic (a
    /// comparison of two instants instead of a subtraction and a division).
    static EPOCH_END: Cell<(u64, Option<Instant>)> = const { Cell::new((0, None)) };
}
/// Counters are kept in thousandths of a retry.
const SCALE: i64 = 1000;

/// A bad budget configuration.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidBudget {
    /// The window is outside 1 s to 60 s.
    #[error("the budget window must be between 1 and 60 seconds")]
    Ttl,
    /// The ratio is negative, not finite, or above 1000.
    #[error("the retry ratio must be a finite number between 0 and 1000")]
    Ratio,
    /// The reserve is above 1,000,000 retries a second.
    #[error("the minimum retries per second must be at most 1000000")]
    MinPerSec,
}

/// A retry budget in the Finagle / tower `TpsBudget` style.
///
/// Every logical request deposits `ratio` of a retry, every retry withdraws
/// one, and a reserve of `min_per_sec × ttl` retries is always there; both
/// expire after `ttl` (a window of ten slots). So within any window of `ttl`
/// (give or take a slot) retries are at most `ratio × requests +
/// min_per_sec × ttl`. The defaults (10 s, 10 a second, 0.2) let an outage
/// add about 20 % load plus 10 retries a second, where fixed retries would
/// triple it.
///
/// [`deposit`](Self::deposit) is lock-free and allocation-free (it is called
/// for every request); [`try_withdraw`](Self::try_withdraw) takes a lock (it
/// is called only for failures). Time comes from the caller.
///
/// # Example
///
/// ```
/// use std::time::{Duration, Instant};
/// use triage_core::RetryBudget;
///
/// let budget = RetryBudget::new(Duration::from_secs(10), 0, 0.2).unwrap();
/// let now = Instant::now();
/// for _ in 0..10 {
///     budget.deposit(now);
/// }
/// assert!(budget.try_withdraw(now));
/// assert!(budget.try_withdraw(now));
/// assert!(!budget.try_withdraw(now)); // 10 requests earned 2 retries
/// ```
pub struct RetryBudget {
    unlimited: bool,
    ttl: Duration,
    min_per_sec: u32,
    ratio: f32,
    deposit_amount: i64,
    reserve: i64,
    slot_nanos: u64,
    /// Tells budgets apart in the per-thread cache of [`EPOCH_END`].
    id: u64,
    origin: OnceLock<Instant>,
    epoch: AtomicU64,
    pending: AtomicI64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    epoch: u64,
    slots: [i64; SLOTS as usize],
}

impl Default for RetryBudget {
    /// 10 s window, 10 retries a second in reserve, 20 % of requests.
    fn default() -> Self {
        Self::build(false, Duration::from_secs(10), 10, 0.2)
    }
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.unlimited {
            return f.write_str("RetryBudget(unlimited)");
        }
        f.debug_struct("RetryBudget")
            .field("ttl", &self.ttl)
            .field("min_per_sec", &self.min_per_sec)
            .field("ratio", &self.ratio)
            .finish()
    }
}

impl RetryBudget {
    /// A budget over a window of `ttl` (1 s to 60 s) with a reserve of
    /// `min_per_sec` retries a second and `ratio` retries per request
    /// (0 to 1000).
    pub fn new(ttl: Duration, min_per_sec: u32, ratio: f32) -> Result<RetryBudget, InvalidBudget> {
        if ttl < Duration::from_secs(1) || ttl > Duration::from_secs(60) {
            return Err(InvalidBudget::Ttl);
        }
        if !ratio.is_finite() || !(0.0..=1000.0).contains(&ratio) {
            return Err(InvalidBudget::Ratio);
        }
        if min_per_sec > 1_000_000 {
            return Err(InvalidBudget::MinPerSec);
        }
        Ok(Self::build(false, ttl, min_per_sec, ratio))
    }

    /// A budget that never refuses (the budget turned off).
    pub fn unlimited() -> RetryBudget {
        Self::build(true, Duration::from_secs(10), 0, 0.0)
    }

    fn build(unlimited: bool, ttl: Duration, min_per_sec: u32, ratio: f32) -> RetryBudget {
        let ttl_nanos = u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX);
        RetryBudget {
            unlimited,
            ttl,
            min_per_sec,
            ratio,
            deposit_amount: (f64::from(ratio) * SCALE as f64).round() as i64,
            reserve: i64::from(min_per_sec) * (ttl.as_secs() as i64) * SCALE,
            slot_nanos: (ttl_nanos / SLOTS).max(1),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            origin: OnceLock::new(),
            epoch: AtomicU64::new(0),
            pending: AtomicI64::new(0),
            state: Mutex::new(State {
                epoch: 0,
                slots: [0; SLOTS as usize],
            }),
        }
    }

    /// The window.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Retries earned per request.
    pub fn ratio(&self) -> f32 {
        self.ratio
    }

    /// Retries a second always available.
    pub fn min_per_sec(&self) -> u32 {
        self.min_per_sec
    }

    /// Whether this budget never refuses.
    pub fn is_unlimited(&self) -> bool {
        self.unlimited
    }

    /// Records one logical request (once per request, not per attempt).
    #[inline]
    pub fn deposit(&self, now: Instant) {
        if self.unlimited {
            return;
        }
        let checked = EPOCH_END.with(|cached| {
            let (id, end) = cached.get();
            id == self.id && end.is_some_and(|end| now < end)
        });
        if !checked {
            let epoch = self.epoch_of(now);
            if epoch > self.epoch.load(Ordering::Acquire) {
                self.rotate(&mut self.lock(), epoch);
            }
            // Until the end of `epoch`, this thread's deposits go to it.
            let end = self.origin.get().and_then(|origin| {
                origin.checked_add(Duration::from_nanos(
                    self.slot_nanos.saturating_mul(epoch.saturating_add(1)),
                ))
            });
            EPOCH_END.with(|cached| cached.set((self.id, end)));
        }
        self.pending
            .fetch_add(self.deposit_amount, Ordering::AcqRel);
    }

    /// Takes one retry if the budget allows it; takes nothing otherwise.
    pub fn try_withdraw(&self, now: Instant) -> bool {
        if self.unlimited {
            return true;
        }
        let mut state = self.lock();
        self.rotate(&mut state, self.epoch_of(now));
        if self.balance(&state) < SCALE {
            return false;
        }
        let slot = (state.epoch % SLOTS) as usize;
        state.slots[slot] -= SCALE;
        true
    }

    /// Whole retries that could be taken now.
    pub fn available(&self, now: Instant) -> u64 {
        if self.unlimited {
            return u64::MAX;
        }
        let mut state = self.lock();
        self.rotate(&mut state, self.epoch_of(now));
        u64::try_from(self.balance(&state) / SCALE).unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is plain integers, valid after any panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn balance(&self, state: &State) -> i64 {
        let slots: i64 = state.slots.iter().sum();
        slots + self.pending.load(Ordering::Acquire) + self.reserve
    }

    fn epoch_of(&self, now: Instant) -> u64 {
        let origin = *self.origin.get_or_init(|| now);
        let since = now.saturating_duration_since(origin);
        // In u64: a u128 division is a library call on the happy path (the
        // nanoseconds fit for 584 years).
        match u64::try_from(since.as_nanos()) {
            Ok(nanos) => nanos / self.slot_nanos,
            Err(_) => u64::MAX,
        }
    }

    /// Moves the window forward to `epoch` (never backwards), folding the
    /// pending deposits into the slot they were made in and clearing the
    /// slots that expire.
    fn rotate(&self, state: &mut State, epoch: u64) {
        if epoch <= state.epoch {
            return;
        }
        let folded = self.pending.swap(0, Ordering::AcqRel);
        let current = (state.epoch % SLOTS) as usize;
        state.slots[current] += folded;
        let steps = (epoch - state.epoch).min(SLOTS);
        for step in 1..=steps {
            state.slots[((state.epoch + step) % SLOTS) as usize] = 0;
        }
        if epoch - state.epoch >= SLOTS {
            state.slots = [0; SLOTS as usize];
        }
        state.epoch = epoch;
        self.epoch.store(epoch, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::Arc;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn ratio_of_deposits_can_be_withdrawn() {
        let b = RetryBudget::new(secs(10.0), 0, 0.2).unwrap();
        let t = Instant::now();
        for _ in 0..100 {
            b.deposit(t);
        }
        assert_eq!(b.available(t), 20);
        for _ in 0..20 {
            assert!(b.try_withdraw(t));
        }
        assert!(!b.try_withdraw(t));
        assert_eq!(b.available(t), 0);
    }

    #[test]
    fn reserve_alone_allows_min_per_sec_times_ttl() {
        let b = RetryBudget::new(secs(10.0), 10, 0.2).unwrap();
        let t = Instant::now();
        let granted = (0..1000).filter(|_| b.try_withdraw(t)).count();
        assert_eq!(granted, 100);
    }

    #[test]
    fn deposits_and_withdrawals_expire_after_ttl() {
        let b = RetryBudget::new(secs(10.0), 0, 1.0).unwrap();
        let t = Instant::now();
        for _ in 0..5 {
            b.deposit(t);
        }
        // Deposits expire: nothing left 11 s later.
        assert_eq!(b.available(t + secs(11.0)), 0);

        let b = RetryBudget::new(secs(10.0), 1, 0.0).unwrap();
        let granted = (0..100).filter(|_| b.try_withdraw(t)).count();
        assert_eq!(granted, 10);
        assert!(!b.try_withdraw(t + secs(5.0)));
        // Withdrawals expire: the reserve is back.
        assert_eq!(b.available(t + secs(11.0)), 10);
    }

    #[test]
    fn time_going_backwards_is_harmless() {
        let b = RetryBudget::new(secs(1.0), 0, 1.0).unwrap();
        let t = Instant::now() + secs(100.0);
        b.deposit(t);
        b.deposit(t - secs(50.0));
        assert_eq!(b.available(t - secs(99.0)), 2);
        assert!(b.try_withdraw(t));
        // Far future: no overflow, everything expired.
        assert_eq!(
            b.available(t + Duration::from_secs(10 * 365 * 24 * 3600)),
            0
        );
    }

    #[test]
    fn unlimited_always_grants() {
        let b = RetryBudget::unlimited();
        let t = Instant::now();
        assert!((0..10_000).all(|_| b.try_withdraw(t)));
    }

    #[test]
    fn bad_values_are_refused() {
        assert_eq!(
            RetryBudget::new(secs(0.5), 1, 0.2).unwrap_err(),
            InvalidBudget::Ttl
        );
        assert_eq!(
            RetryBudget::new(secs(61.0), 1, 0.2).unwrap_err(),
            InvalidBudget::Ttl
        );
        assert_eq!(
            RetryBudget::new(secs(10.0), 1, -0.1).unwrap_err(),
            InvalidBudget::Ratio
        );
        assert_eq!(
            RetryBudget::new(secs(10.0), 1, f32::NAN).unwrap_err(),
            InvalidBudget::Ratio
        );
        assert_eq!(
            RetryBudget::new(secs(10.0), 2_000_000, 0.2).unwrap_err(),
            InvalidBudget::MinPerSec
        );
    }

    #[test]
    fn concurrent_deposits_and_withdrawals_never_overdraw() {
        let b = Arc::new(RetryBudget::new(secs(10.0), 0, 0.2).unwrap());
        let t = Instant::now();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let b = Arc::clone(&b);
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        b.deposit(t);
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|h| h.join().unwrap());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let b = Arc::clone(&b);
                std::thread::spawn(move || {
                    let mut granted = 0u64;
                    while b.try_withdraw(t) {
                        granted += 1;
                    }
                    granted
                })
            })
            .collect();
        let granted: u64 = threads.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(granted, 16_000);
    }

    proptest! {
        /// Withdrawals in any window of `ttl` less one slot never exceed
        /// ratio × the deposits made in the `2 × ttl` before the window's end
        /// (a withdrawal spends deposits up to `ttl` plus one slot old) plus
        /// the reserve; and over the whole run, withdrawals never exceed
        /// ratio × all deposits plus one reserve per window.
        #[test]
        fn withdrawals_stay_within_ratio_and_reserve(
            events in prop::collection::vec((0u64..1_500, any::<bool>()), 1..400),
            min_per_sec in 0u32..3,
            ratio_tenths in 0u32..20,
        ) {
            let ttl = secs(2.0);
            let ratio = ratio_tenths as f32 / 10.0;
            let b = RetryBudget::new(ttl, min_per_sec, ratio).unwrap();
            let start = Instant::now();
            let mut now_ms = 0u64;
            let mut log: Vec<(u64, bool)> = Vec::new(); // (time, is_withdrawal)
            for (step, deposit) in events {
                now_ms += step;
                let now = start + Duration::from_millis(now_ms);
                if deposit {
                    b.deposit(now);
                    log.push((now_ms, false));
                } else if b.try_withdraw(now) {
                    log.push((now_ms, true));
                }
                // Check the window ending now.
                let window_ms = 2_000u64;
                let slot_ms = window_ms / 10;
                let withdrawn = log.iter().filter(|(t, w)| *w && now_ms - t < window_ms - slot_ms).count() as f64;
                let deposited = log.iter().filter(|(t, w)| !*w && now_ms - t < 2 * window_ms).count() as f64;
                let reserve = f64::from(min_per_sec) * 2.0;
                prop_assert!(
                    withdrawn <= f64::from(ratio) * deposited + reserve + 1e-9,
                    "{withdrawn} withdrawals vs {deposited} deposits at {now_ms} ms"
                );
                let all_withdrawn = log.iter().filter(|(_, w)| *w).count() as f64;
                let all_deposited = log.len() as f64 - all_withdrawn;
                let windows = (now_ms / (window_ms - slot_ms) + 1) as f64;
                prop_assert!(all_withdrawn <= f64::from(ratio) * all_deposited + reserve * windows + 1e-9);
            }
        }

        #[test]
        fn never_grants_when_nothing_is_available(
            events in prop::collection::vec((0u64..500, any::<bool>()), 1..200),
        ) {
            let b = RetryBudget::new(secs(1.0), 1, 0.5).unwrap();
            let start = Instant::now();
            let mut now_ms = 0;
            for (step, deposit) in events {
                now_ms += step;
                let now = start + Duration::from_millis(now_ms);
                if deposit {
                    b.deposit(now);
                } else {
                    let available = b.available(now);
                    prop_assert_eq!(b.try_withdraw(now), available > 0);
                }
            }
        }
    }
}
