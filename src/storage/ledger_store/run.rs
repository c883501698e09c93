//! A run of a query index: the leaves, among those indexed in one step,
//! that have one field value, as one row instead of one row per leaf.
//!
//! The row's key is (value, first leaf index); its value holds every later
//! index as the difference from the one before, a protobuf varint each
//! (prost's encoding). Leaves are indexed in steps of about a thousand
//! ([`INDEX_DEFER_LEAVES`](crate::limits::INDEX_DEFER_LEAVES)), and in an
//! audit log a step's leaves share few actors, actions, resources and
//! outcomes, so a step writes a few dozen rows where it wrote four per leaf:
//! redb spent about 1.5 µs of CPU and 35 bytes of file on every row.

use prost::encoding::{decode_varint, encode_varint};

/// Most leaf indices one run holds, so a row stays a few KiB whatever a
/// step's size: a longer list is split into runs of this many.
pub(crate) const RUN_LEAVES_MAX: usize = 4096;

/// Why a stored run is unusable.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RunError {
    #[error("a difference does not decode as a varint")]
    Varint,
    #[error("a difference of 0 or one past the largest index")]
    NotIncreasing,
    #[error("more than {RUN_LEAVES_MAX} indices")]
    TooLong,
}

/// The row value of the run `indices` (ascending, at most
/// [`RUN_LEAVES_MAX`]); its first index is the key's.
pub(crate) fn encode(indices: &[u64]) -> Vec<u8> {
    assert!(
        !indices.is_empty() && indices.len() <= RUN_LEAVES_MAX,
        "a run holds 1 to {RUN_LEAVES_MAX} indices"
    );
    let mut out = Vec::with_capacity(indices.len() * 2);
    for pair in indices.windows(2) {
        assert!(pair[0] < pair[1], "a run's indices are strictly increasing");
        encode_varint(pair[1] - pair[0], &mut out);
    }
    out
}

/// The indices of the run keyed `first` whose row value is `bytes`.
pub(crate) fn decode(first: u64, mut bytes: &[u8]) -> Result<Vec<u64>, RunError> {
    let mut indices = vec![first];
    let mut last = first;
    while !bytes.is_empty() {
        let step = decode_varint(&mut bytes).map_err(|_| RunError::Varint)?;
        last = match last.checked_add(step) {
            Some(next) if step > 0 => next,
            _ => return Err(RunError::NotIncreasing),
        };
        indices.push(last);
        if indices.len() > RUN_LEAVES_MAX {
            return Err(RunError::TooLong);
        }
    }
    Ok(indices)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_round_trip_and_damaged_ones_are_refused() {
        for run in [
            vec![7],
            vec![0, 1, 2, 3],
            vec![5, 200, 201, 70_000, u64::MAX],
            (0..RUN_LEAVES_MAX as u64).map(|i| i * 3 + 1).collect(),
        ] {
            let bytes = encode(&run);
            assert_eq!(decode(run[0], &bytes), Ok(run.clone()));
        }
        // One byte per difference below 128.
        assert_eq!(encode(&[10, 11, 13, 140]).len(), 3);
        assert_eq!(decode(1, &[0x80]), Err(RunError::Varint));
        assert_eq!(decode(1, &[0]), Err(RunError::NotIncreasing));
        assert_eq!(decode(u64::MAX, &[1]), Err(RunError::NotIncreasing));
        let long = vec![1u8; RUN_LEAVES_MAX];
        assert_eq!(decode(0, &long), Err(RunError::TooLong));
    }
}
