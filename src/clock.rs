//! The wall clock, read in one place: commit times, refusal records,
//! relative times in questions and on the command line all take it from
//! here, so they agree on its unit and on what happens at its limits.

/// Now, in nanoseconds since the Unix epoch. A clock before the epoch
/// reads as 0 and one past i64's range (the year 2262) as `i64::MAX`:
/// neither can happen on a working host, and neither may panic.
pub fn now_unix_nanos() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_nanos()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_after_2026_and_moves_forward() {
        let a = now_unix_nanos();
        let b = now_unix_nanos();
        assert!(a > 1_767_225_600 * 1_000_000_000, "{a}");
        assert!(b >= a);
    }
}
