//! The taxonomy: the fixed labels every entry is put in, their names (as
//! stored and parsed) and their plain words (as the model scores them).

use std::fmt;
use std::str::FromStr;

/// One category of audit entry. The order is the order of [`Category::ALL`],
/// which is also the order in which the model scores candidate labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    FailedLogin,
    AuthSuccess,
    PrivilegeChange,
    AdminChange,
    ConfigChange,
    DataAccess,
    DataExport,
    DataDeletion,
    SecurityAlert,
    Other,
}

/// A name that is not in the taxonomy.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("unknown category `{0}`; expected one of failed_login, auth_success, privilege_change, admin_change, config_change, data_access, data_export, data_deletion, security_alert, other")]
pub struct UnknownCategory(pub String);

impl Category {
    pub const ALL: [Category; 10] = [
        Category::FailedLogin,
        Category::AuthSuccess,
        Category::PrivilegeChange,
        Category::AdminChange,
        Category::ConfigChange,
        Category::DataAccess,
        Category::DataExport,
        Category::DataDeletion,
        Category::SecurityAlert,
        Category::Other,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Category::FailedLogin => "failed_login",
            Category::AuthSuccess => "auth_success",
            Category::PrivilegeChange => "privilege_change",
            Category::AdminChange => "admin_change",
            Category::ConfigChange => "config_change",
            Category::DataAccess => "data_access",
            Category::DataExport => "data_export",
            Category::DataDeletion => "data_deletion",
            Category::SecurityAlert => "security_alert",
            Category::Other => "other",
        }
    }

    /// Plain words for the label, as the model scores them: a base model
    /// knows "failed login" far better than `failed_login`.
    pub fn words(&self) -> &'static str {
        match self {
            Category::FailedLogin => "failed login",
            Category::AuthSuccess => "successful login",
            Category::PrivilegeChange => "privilege change",
            Category::AdminChange => "administrative change",
            Category::ConfigChange => "configuration change",
            Category::DataAccess => "data access",
            Category::DataExport => "data export",
            Category::DataDeletion => "data deletion",
            Category::SecurityAlert => "security alert",
            Category::Other => "other activity",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Category {
    type Err = UnknownCategory;

    fn from_str(s: &str) -> Result<Category, UnknownCategory> {
        Category::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownCategory(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_is_refused() {
        for c in Category::ALL {
            assert_eq!(c.as_str().parse::<Category>(), Ok(c));
        }
        assert_eq!(
            "login".parse::<Category>(),
            Err(UnknownCategory("login".into()))
        );
    }
}
