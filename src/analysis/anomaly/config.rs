//! The detector's thresholds: their documented defaults, their checks
//! against the limits, and the nearest valid setting.

use crate::limits::{ANOMALY_INCIDENT_IDLE_S_MAX, ANOMALY_WINDOW_EVENTS_MAX, ANOMALY_WINDOW_S_MAX};

/// Detector thresholds. [`Default`] gives the documented values; settings
/// outside the limits are clamped by [`Detector::new`](super::Detector::new)
/// and refused by [`DetectorConfig::validate`], which configuration loading
/// should call.
#[derive(Clone, Debug, PartialEq)]
pub struct DetectorConfig {
    /// Events an actor needs before baseline flags may fire for it (20: a
    /// working session's worth, so one login's first calls do not flag).
    pub warmup_events_min: u32,
    /// Width of the buckets rate is counted in, seconds (300).
    pub rate_bucket_s: u32,
    /// A bucket is a spike at this many times the actor's mean per active
    /// bucket (5.0)...
    pub rate_spike_factor: f32,
    /// ...and at least this many events (30), so 2 → 10 is not a spike.
    pub rate_spike_events_min: u32,
    /// Closed active buckets an actor needs before its rate is judged (3).
    pub rate_buckets_min: u32,
    /// Window for failure bursts, seconds (600: ten minutes).
    pub failure_window_s: u32,
    /// Failed or denied requests by one actor, or failed logins against one
    /// account, within the window that make a burst (10). A person without
    /// a permission tries a few times; established detections count 10 to
    /// 20 refusals in 10 to 60 minutes before they alert (Panther's
    /// brute-force, unauthorized-call and Kubernetes 403 rules).
    pub failure_burst_min: u32,
    /// How long after a privilege change sensitive access by the same actor
    /// is flagged, seconds (3600).
    pub privilege_window_s: u32,
    /// Window for mass reads and exports, seconds (600).
    pub mass_window_s: u32,
    /// Distinct objects read within the window that make a mass read (50).
    pub mass_read_objects_min: u32,
    /// Distinct objects exported within the window that make a mass export
    /// (10: exports are rarer and each matters more).
    pub mass_export_objects_min: u32,
    /// Quiet gap after which the incident of a session flag (instance
    /// credentials off the host, privilege change then sensitive access)
    /// stops growing, seconds (1800: an attacker's session pauses for
    /// minutes between steps; the OTRF one for ten).
    pub incident_idle_s: u32,
    /// The same for single-event flags (security alerts, sensitive changes,
    /// baseline deviations), seconds (300: the follow-up of one action, not
    /// the actor's next task). Window flags stay open for their own window.
    pub event_incident_idle_s: u32,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            warmup_events_min: 20,
            rate_bucket_s: 300,
            rate_spike_factor: 5.0,
            rate_spike_events_min: 30,
            rate_buckets_min: 3,
            failure_window_s: 600,
            failure_burst_min: 10,
            privilege_window_s: 3600,
            mass_window_s: 600,
            mass_read_objects_min: 50,
            mass_export_objects_min: 10,
            incident_idle_s: 1800,
            event_incident_idle_s: 300,
        }
    }
}

/// A detector setting outside its limits.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DetectorConfigError {
    #[error("detector setting `{name}` is {value} s; it must be between 1 and {max} s")]
    Window {
        name: &'static str,
        value: u32,
        max: u32,
    },
    #[error("detector setting `{name}` is {value}; it must be between 1 and {max}, the events one window keeps")]
    Count {
        name: &'static str,
        value: u32,
        max: usize,
    },
    #[error("detector setting `{name}` is {value}; it must be at least 1")]
    AtLeastOne { name: &'static str, value: u32 },
    #[error(
        "detector setting `rate_spike_factor` is {value}; it must be a finite number of at least 1"
    )]
    SpikeFactor { value: f32 },
}

impl DetectorConfig {
    fn windows(&self) -> [(&'static str, u32); 4] {
        [
            ("rate_bucket_s", self.rate_bucket_s),
            ("failure_window_s", self.failure_window_s),
            ("privilege_window_s", self.privilege_window_s),
            ("mass_window_s", self.mass_window_s),
        ]
    }

    fn idle_windows(&self) -> [(&'static str, u32); 2] {
        [
            ("incident_idle_s", self.incident_idle_s),
            ("event_incident_idle_s", self.event_incident_idle_s),
        ]
    }

    fn counts(&self) -> [(&'static str, u32); 3] {
        [
            ("failure_burst_min", self.failure_burst_min),
            ("mass_read_objects_min", self.mass_read_objects_min),
            ("mass_export_objects_min", self.mass_export_objects_min),
        ]
    }

    /// Checks every setting against its limit.
    pub fn validate(&self) -> Result<(), DetectorConfigError> {
        for (name, value) in self.windows() {
            if !(1..=ANOMALY_WINDOW_S_MAX).contains(&value) {
                return Err(DetectorConfigError::Window {
                    name,
                    value,
                    max: ANOMALY_WINDOW_S_MAX,
                });
            }
        }
        for (name, value) in self.idle_windows() {
            if !(1..=ANOMALY_INCIDENT_IDLE_S_MAX).contains(&value) {
                return Err(DetectorConfigError::Window {
                    name,
                    value,
                    max: ANOMALY_INCIDENT_IDLE_S_MAX,
                });
            }
        }
        for (name, value) in self.counts() {
            if value == 0 || value as usize > ANOMALY_WINDOW_EVENTS_MAX {
                return Err(DetectorConfigError::Count {
                    name,
                    value,
                    max: ANOMALY_WINDOW_EVENTS_MAX,
                });
            }
        }
        for (name, value) in [
            ("warmup_events_min", self.warmup_events_min),
            ("rate_spike_events_min", self.rate_spike_events_min),
            ("rate_buckets_min", self.rate_buckets_min),
        ] {
            if value == 0 {
                return Err(DetectorConfigError::AtLeastOne { name, value });
            }
        }
        if !self.rate_spike_factor.is_finite() || self.rate_spike_factor < 1.0 {
            return Err(DetectorConfigError::SpikeFactor {
                value: self.rate_spike_factor,
            });
        }
        Ok(())
    }

    /// The nearest valid configuration.
    pub(super) fn clamped(mut self) -> DetectorConfig {
        let window = |s: u32| s.clamp(1, ANOMALY_WINDOW_S_MAX);
        let count = |n: u32| n.clamp(1, ANOMALY_WINDOW_EVENTS_MAX as u32);
        self.rate_bucket_s = window(self.rate_bucket_s);
        self.failure_window_s = window(self.failure_window_s);
        self.privilege_window_s = window(self.privilege_window_s);
        self.mass_window_s = window(self.mass_window_s);
        let idle = |s: u32| s.clamp(1, ANOMALY_INCIDENT_IDLE_S_MAX);
        self.incident_idle_s = idle(self.incident_idle_s);
        self.event_incident_idle_s = idle(self.event_incident_idle_s);
        self.failure_burst_min = count(self.failure_burst_min);
        self.mass_read_objects_min = count(self.mass_read_objects_min);
        self.mass_export_objects_min = count(self.mass_export_objects_min);
        self.warmup_events_min = self.warmup_events_min.max(1);
        self.rate_spike_events_min = self.rate_spike_events_min.max(1);
        self.rate_buckets_min = self.rate_buckets_min.max(1);
        if !self.rate_spike_factor.is_finite() || self.rate_spike_factor < 1.0 {
            self.rate_spike_factor = DetectorConfig::default().rate_spike_factor;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_validated_with_the_setting_named_and_clamped_by_new() {
        assert_eq!(DetectorConfig::default().validate(), Ok(()));
        let bad = DetectorConfig {
            failure_window_s: 0,
            ..DetectorConfig::default()
        };
        let err = bad.validate().unwrap_err();
        assert!(
            err.to_string().contains("failure_window_s") && err.to_string().contains("is 0 s"),
            "{err}"
        );
        let too_many = DetectorConfig {
            mass_read_objects_min: 1000,
            ..DetectorConfig::default()
        };
        assert_eq!(
            too_many.validate(),
            Err(DetectorConfigError::Count {
                name: "mass_read_objects_min",
                value: 1000,
                max: ANOMALY_WINDOW_EVENTS_MAX
            })
        );
        let nan = DetectorConfig {
            rate_spike_factor: f32::NAN,
            warmup_events_min: 0,
            ..too_many
        };
        assert!(nan.validate().is_err());
        assert_eq!(nan.clamped().validate(), Ok(()));
        let idle = DetectorConfig {
            event_incident_idle_s: ANOMALY_INCIDENT_IDLE_S_MAX + 1,
            ..DetectorConfig::default()
        };
        assert_eq!(
            idle.validate(),
            Err(DetectorConfigError::Window {
                name: "event_incident_idle_s",
                value: ANOMALY_INCIDENT_IDLE_S_MAX + 1,
                max: ANOMALY_INCIDENT_IDLE_S_MAX
            })
        );
        assert_eq!(idle.clamped().validate(), Ok(()));
    }
}
