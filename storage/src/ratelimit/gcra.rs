//! The generic cell rate algorithm on integer nanoseconds: one pure function, shared in
//! meaning with the Lua script of [`super::redis`].

/// What one decision did to a key's theoretical arrival time (TAT).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// The request conforms; the key's TAT becomes `tat_ns`.
    Allow {
        /// The new TAT, in the same clock as `now_ns`.
        tat_ns: u64,
        /// Requests that would conform right after this one, at the same instant.
        remaining: u32,
    },
    /// The request does not conform. The TAT is unchanged, unless it was further ahead
    /// than one burst (a clock that went back), when `tat_ns` is the capped value.
    Limit {
        /// How long until a request would conform.
        retry_after_ns: u64,
        /// The TAT to keep: the stored one, capped at `now + τ + T`.
        tat_ns: u64,
    },
}

/// One GCRA decision. `tat_ns` is the key's stored TAT (0 or anything at or before `now_ns`
/// when the key is idle); `interval_ns` is the emission interval T and `tolerance_ns` the
/// tolerance τ = T × (burst − 1).
///
/// The request conforms when `max(TAT, now) − now ≤ τ`; the new TAT is then
/// `max(TAT, now) + T`. Otherwise it may retry after `max(TAT, now) − now − τ`. A TAT
/// further ahead than `τ + T` (a clock that went back) counts as `τ + T`, so no key is
/// blocked longer than one full burst's worth of time.
pub(crate) fn step(tat_ns: u64, now_ns: u64, interval_ns: u64, tolerance_ns: u64) -> Step {
    let ahead = tat_ns.saturating_sub(now_ns).min(tolerance_ns.saturating_add(interval_ns));
    if ahead > tolerance_ns {
        return Step::Limit {
            retry_after_ns: ahead - tolerance_ns,
            tat_ns: now_ns.saturating_add(ahead),
        };
    }
    let new_ahead = ahead + interval_ns;
    let remaining = if new_ahead > tolerance_ns {
        0
    } else {
        (tolerance_ns - new_ahead) / interval_ns.max(1) + 1
    };
    Step::Allow {
        tat_ns: now_ns.saturating_add(new_ahead),
        remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 100; // ns
    const BURST: u64 = 3;
    const TAU: u64 = T * (BURST - 1);

    fn allow(tat_ns: u64, remaining: u32) -> Step {
        Step::Allow { tat_ns, remaining }
    }

    fn limit(retry_after_ns: u64, tat_ns: u64) -> Step {
        Step::Limit { retry_after_ns, tat_ns }
    }

    #[test]
    fn burst_at_once_then_one_per_interval() {
        let now = 1_000_000;
        let a = step(0, now, T, TAU);
        assert_eq!(a, allow(now + T, 2));
        let b = step(now + T, now, T, TAU);
        assert_eq!(b, allow(now + 2 * T, 1));
        let c = step(now + 2 * T, now, T, TAU);
        assert_eq!(c, allow(now + 3 * T, 0));
        // The fourth at the same instant waits exactly one interval.
        assert_eq!(step(now + 3 * T, now, T, TAU), limit(T, now + 3 * T));
        // One nanosecond early is still limited, by one nanosecond.
        assert_eq!(step(now + 3 * T, now + T - 1, T, TAU), limit(1, now + 3 * T));
        // Exactly on time conforms, and leaves nothing at that instant.
        assert_eq!(step(now + 3 * T, now + T, T, TAU), allow(now + 4 * T, 0));
    }

    #[test]
    fn an_idle_key_gets_its_whole_burst_back() {
        let now = 5_000;
        // A TAT long past counts as now.
        assert_eq!(step(10, now, T, TAU), allow(now + T, 2));
        // Half drained: one interval later one slot is back.
        assert_eq!(step(now + 3 * T, now + 2 * T, T, TAU), allow(now + 4 * T, 1));
    }

    #[test]
    fn burst_of_one_allows_one_per_interval() {
        let now = 7;
        assert_eq!(step(0, now, T, 0), allow(now + T, 0));
        assert_eq!(step(now + T, now, T, 0), limit(T, now + T));
        assert_eq!(step(now + T, now + T, T, 0), allow(now + 2 * T, 0));
    }

    #[test]
    fn a_tat_far_ahead_is_capped_at_one_burst() {
        // A clock that jumped back by an hour: the wait is capped at τ + T − τ = T, and
        // the TAT to keep is capped too, so the key conforms again one interval later.
        let now = 1_000;
        let tat = now + 3_600_000_000_000;
        assert_eq!(step(tat, now, T, TAU), limit(T, now + TAU + T));
        assert_eq!(step(now + TAU + T, now + T, T, TAU), allow(now + TAU + 2 * T, 0));
    }
}
