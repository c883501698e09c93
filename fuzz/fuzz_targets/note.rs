//! Signed notes and checkpoint bodies from arbitrary bytes: parsing and
//! policy checks must return errors, never panic, and never accept a note
//! the fixed policy's key did not sign.
#![no_main]

use ironlog::ledger::checkpoint::{open_note, CheckpointBody};
use ironlog::ledger::policy::TrustPolicy;
use libfuzzer_sys::fuzz_target;

/// The public key of the C2SP signed-note example (tests/data provenance).
const VKEY: &str = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";

fuzz_target!(|data: &[u8]| {
    let _ = CheckpointBody::parse(data);
    let _ = open_note(data, &[VKEY.to_string()]);
    let policy = TrustPolicy::parse(&format!(
        "origin = \"example.com/log\"\n[log]\nthreshold = 1\nkeys = [\"{VKEY}\"]\n"
    ))
    .expect("fixed policy parses");
    if let Ok(accepted) = policy.check(data) {
        // Accepted only with the policy key's valid signature.
        assert_eq!(accepted.log_signers.len(), 1);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = TrustPolicy::parse(text);
    }
});
