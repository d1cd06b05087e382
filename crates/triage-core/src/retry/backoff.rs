//! Exponential backoff with jitter, as openai-python computes it.

use std::time::Duration;

/// The longest cap [`Backoff::new`] accepts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60 * 60);

/// A bad backoff configuration.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidBackoff {
    /// The initial delay is zero.
    #[error("the initial backoff must be greater than zero")]
    ZeroInitial,
    /// The cap is below the initial delay.
    #[error("the backoff cap must not be below the initial delay")]
    CapBelowInitial,
    /// The cap is above [`MAX_BACKOFF`].
    #[error("the backoff cap must be at most one hour")]
    CapTooLarge,
}

/// Exponential backoff: `min(initial · 2^n, max) · (1 − 0.25 · random)`.
///
/// The jitter only shortens the delay (by up to 25 %), so a delay never passes
/// the cap.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use triage_core::Backoff;
///
/// let backoff = Backoff::default(); // 0.5 s doubling up to 8 s
/// assert_eq!(backoff.delay(0, 0.0), Duration::from_millis(500));
/// assert_eq!(backoff.delay(3, 0.0), Duration::from_secs(4));
/// assert_eq!(backoff.delay(10, 0.0), Duration::from_secs(8));
/// assert_eq!(backoff.delay(10, 0.5), Duration::from_secs(7)); // 8 s less 12.5 %
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::openai()
    }
}

impl Backoff {
    /// Backoff from `initial`, doubling up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Result<Backoff, InvalidBackoff> {
        if initial.is_zero() {
            Err(InvalidBackoff::ZeroInitial)
        } else if max < initial {
            Err(InvalidBackoff::CapBelowInitial)
        } else if max > MAX_BACKOFF {
            Err(InvalidBackoff::CapTooLarge)
        } else {
            Ok(Backoff { initial, max })
        }
    }

    /// openai-python's backoff: 0.5 s initial, 8 s cap.
    pub const fn openai() -> Backoff {
        Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(8),
        }
    }

    /// The first delay before jitter.
    pub const fn initial(&self) -> Duration {
        self.initial
    }

    /// The cap.
    pub const fn max(&self) -> Duration {
        self.max
    }

    /// The delay before retry number `retry` (0 for the first retry).
    /// `random` is a uniform sample in `[0, 1)`; values outside it (and NaN)
    /// are clamped into it.
    pub fn delay(&self, retry: u32, random: f64) -> Duration {
        let base = self
            .initial
            .checked_mul(1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX))
            .map_or(self.max, |d| d.min(self.max));
        let random = if random.is_nan() {
            0.0
        } else {
            random.clamp(0.0, 1.0)
        };
        // Integer maths on nanoseconds: the factor is in (0.75, 1.0].
        let shave = (random * 250_000.0) as u128; // parts per million
        let nanos = base.as_nanos() * (1_000_000 - shave) / 1_000_000;
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX)).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn openai_sequence() {
        let b = Backoff::openai();
        let secs: Vec<f64> = (0..6).map(|n| b.delay(n, 0.0).as_secs_f64()).collect();
        assert_eq!(secs, vec![0.5, 1.0, 2.0, 4.0, 8.0, 8.0]);
        assert_eq!(b.delay(0, 0.9999999), Duration::from_nanos(375_000_500));
        assert_eq!(b.delay(1, 0.5), Duration::from_millis(875));
        assert_eq!(b.delay(u32::MAX, 0.0), Duration::from_secs(8));
    }

    #[test]
    fn rejects_bad_values() {
        assert_eq!(
            Backoff::new(Duration::ZERO, Duration::from_secs(1)),
            Err(InvalidBackoff::ZeroInitial)
        );
        assert_eq!(
            Backoff::new(Duration::from_secs(2), Duration::from_secs(1)),
            Err(InvalidBackoff::CapBelowInitial)
        );
        assert_eq!(
            Backoff::new(Duration::from_secs(1), Duration::from_secs(7200)),
            Err(InvalidBackoff::CapTooLarge)
        );
    }

    proptest! {
        #[test]
        fn delay_stays_within_zero_and_cap(
            initial_ms in 1u64..10_000,
            extra_ms in 0u64..3_590_000,
            retry in any::<u32>(),
            random in any::<f64>(),
        ) {
            let b = Backoff::new(Duration::from_millis(initial_ms), Duration::from_millis(initial_ms + extra_ms).min(MAX_BACKOFF)).unwrap();
            let d = b.delay(retry, random);
            prop_assert!(d <= b.max());
            // Jitter shaves at most 25 %.
            let base = b.delay(retry, 0.0);
            prop_assert!(d.as_nanos() * 4 >= base.as_nanos() * 3);
        }
    }
}
