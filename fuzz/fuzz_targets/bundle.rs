//! Offline bundles from arbitrary bytes: parse and verify must return
//! errors, never panic, and a bundle is accepted only if the fixed policy
//! key signed its checkpoint.
#![no_main]

use ironlog::ledger::bundle::{parse_bundle, verify_bundle};
use ironlog::ledger::policy::TrustPolicy;
use libfuzzer_sys::fuzz_target;

/// The public key of the C2SP signed-note example (tests/data provenance).
const VKEY: &str = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";

fuzz_target!(|data: &[u8]| {
    let Ok(proofs) = parse_bundle(data) else {
        return;
    };
    let policy = TrustPolicy::parse(&format!(
        "origin = \"example.com/log\"\n[log]\nthreshold = 1\nkeys = [\"{VKEY}\"]\n"
    ))
    .expect("fixed policy parses");
    let _ = verify_bundle(&proofs, None);
    if let Ok(verdict) = verify_bundle(&proofs, Some(&policy)) {
        assert_eq!(verdict.entries.len(), proofs.len());
    }
});
