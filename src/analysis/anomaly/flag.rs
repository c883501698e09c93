//! The flags the detector raises: what each says happened, how much it
//! matters, which entries raised it, and which incident it belongs to.

use super::incident::IncidentKey;

/// What a flag says happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlagKind {
    RateSpike,
    UnusualHour,
    NewResource,
    NewSourceIp,
    NewUserAgent,
    FirstSeenPair,
    FailureBurst,
    PrivilegeThenSensitive,
    MassRead,
    MassExport,
    SecurityAlert,
    SensitiveChange,
    /// A detection of the catalogue (`catalogue/*.toml`) fired.
    Detection,
    InstanceCredentialsOffHost,
}

impl FlagKind {
    #[cfg(test)]
    pub const ALL: [FlagKind; 14] = [
        FlagKind::RateSpike,
        FlagKind::UnusualHour,
        FlagKind::NewResource,
        FlagKind::NewSourceIp,
        FlagKind::NewUserAgent,
        FlagKind::FirstSeenPair,
        FlagKind::FailureBurst,
        FlagKind::PrivilegeThenSensitive,
        FlagKind::MassRead,
        FlagKind::MassExport,
        FlagKind::SecurityAlert,
        FlagKind::SensitiveChange,
        FlagKind::Detection,
        FlagKind::InstanceCredentialsOffHost,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            FlagKind::RateSpike => "rate_spike",
            FlagKind::UnusualHour => "unusual_hour",
            FlagKind::NewResource => "new_resource",
            FlagKind::NewSourceIp => "new_source_ip",
            FlagKind::NewUserAgent => "new_user_agent",
            FlagKind::FirstSeenPair => "first_seen_pair",
            FlagKind::FailureBurst => "failure_burst",
            FlagKind::PrivilegeThenSensitive => "privilege_then_sensitive",
            FlagKind::MassRead => "mass_read",
            FlagKind::MassExport => "mass_export",
            FlagKind::SecurityAlert => "security_alert",
            FlagKind::SensitiveChange => "sensitive_change",
            FlagKind::Detection => "detection",
            FlagKind::InstanceCredentialsOffHost => "instance_credentials_off_host",
        }
    }
}

/// One flag raised by one observed entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Flag {
    pub kind: FlagKind,
    /// Priority in 0..=1; see the documentation of the `anomaly` module.
    pub score: f32,
    /// Plain words naming the actor, the resource and the counts.
    pub reason: String,
    /// Indices of the entries that raised it, in log order, at most
    /// `ANOMALY_FLAG_ENTRIES_MAX` (the latest).
    pub entries: Vec<u64>,
    /// The actor of the entry that raised it.
    pub actor: String,
    /// Event time of the entry that raised it.
    pub time_unix_nanos: i64,
    /// What its incident gathers entries by: the actor, unless the rule
    /// says otherwise (see `incident.rs`).
    pub key: IncidentKey,
}

impl Flag {
    /// The flag with its incident keyed on `key` instead of its actor.
    pub(super) fn keyed(self, key: IncidentKey) -> Flag {
        Flag { key, ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_are_distinct_snake_case() {
        let names: Vec<&str> = FlagKind::ALL.iter().map(FlagKind::as_str).collect();
        for n in &names {
            assert!(n.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{n}");
        }
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
    }
}
