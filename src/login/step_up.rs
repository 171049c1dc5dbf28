//! How strongly and how recently a login's person authenticated at logi (the id_token's
//! `acr` and `auth_time`), and what an API may require of it (OIDC `acr_values` and
//! `max_age`, RFC 9470). A login that does not meet an API's requirement steps up: it signs
//! in at logi again with the requirement, and the same login is upgraded in place.

use serde::{Deserialize, Serialize};

/// Longest `acr` value kept from an id_token, or accepted in `acr_values`.
pub const MAX_ACR_BYTES: usize = 128;
/// Shortest `max_age` an API may declare or a step-up may ask for: the new sign-in must
/// still count as recent when the API is called again after the redirects.
pub const MIN_MAX_AGE_SECS: i64 = 60;
/// Longest `max_age`: more than a year means nothing.
pub const MAX_MAX_AGE_SECS: i64 = 366 * 86_400;

/// What logi's id_token said about the sign-in behind a login; a password login has neither.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Authentication {
    /// The Authentication Context Class Reference (`acr`).
    pub acr: Option<String>,
    /// When the person authenticated (`auth_time`, unix seconds).
    pub auth_time: Option<i64>,
}

/// An API's requirement: the sign-in's `acr` is one of `acr_values` (when any are named),
/// and it happened at most `max_age` seconds ago (when set).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Requirement {
    pub acr_values: Vec<String>,
    pub max_age: Option<i64>,
}

impl Requirement {
    /// `None` when it requires nothing.
    pub fn new(acr_values: Vec<String>, max_age: Option<i64>) -> Option<Self> {
        (!acr_values.is_empty() || max_age.is_some()).then_some(Self { acr_values, max_age })
    }

    /// Parses `acr_values` (space-separated, RFC 9470 / OIDC) and `max_age` as they come
    /// in a query, a challenge or a file; `Err` names what is wrong.
    pub fn parse(acr_values: Option<&str>, max_age: Option<&str>) -> Result<Option<Self>, &'static str> {
        let acr_values = match acr_values {
            Some(text) => parse_acr_values(text)?,
            None => Vec::new(),
        };
        let max_age =
            max_age.map(|text| text.parse::<i64>().ok().filter(|secs| (MIN_MAX_AGE_SECS..=MAX_MAX_AGE_SECS).contains(secs)).ok_or("max_age")).transpose()?;
        Ok(Self::new(acr_values, max_age))
    }

    /// Whether a login authenticated this way meets it at `now`. A login that lacks the
    /// claim a requirement names (`acr`, `auth_time`) never does.
    pub fn is_met_by(&self, authentication: &Authentication, now: i64) -> bool {
        let acr_met = self.acr_values.is_empty() || authentication.acr.as_ref().is_some_and(|acr| self.acr_values.contains(acr));
        let age_met = self.max_age.is_none_or(|max_age| authentication.auth_time.is_some_and(|at| now.saturating_sub(at) <= max_age));
        acr_met && age_met
    }

    /// The `acr_values` parameter (`None` when it names none).
    pub fn acr_values_param(&self) -> Option<String> {
        (!self.acr_values.is_empty()).then(|| self.acr_values.join(" "))
    }

    /// Whether every value it names is one `declared` names (what a sign-in may ask logi
    /// for); `Err` names the parameter that is not.
    pub fn check_declared(&self, declared: &[Self]) -> Result<(), &'static str> {
        if !self.acr_values.iter().all(|acr| declared.iter().any(|other| other.acr_values.contains(acr))) {
            return Err("acr_values");
        }
        if !self.max_age.is_none_or(|max_age| declared.iter().any(|other| other.max_age == Some(max_age))) {
            return Err("max_age");
        }
        Ok(())
    }
}

/// Space-separated `acr` values: at least one, each printable ASCII without quotes or
/// backslashes (they go into a `WWW-Authenticate` quoted string), duplicates dropped.
fn parse_acr_values(text: &str) -> Result<Vec<String>, &'static str> {
    let mut values: Vec<String> = Vec::new();
    for value in text.split(' ').filter(|value| !value.is_empty()) {
        if !is_acr(value) {
            return Err("acr_values");
        }
        if !values.iter().any(|seen| seen == value) {
            values.push(value.to_owned());
        }
    }
    if values.is_empty() {
        return Err("acr_values");
    }
    Ok(values)
}

/// One `acr` value as we keep or send it.
pub fn is_acr(value: &str) -> bool {
    !value.is_empty() && value.len() <= MAX_ACR_BYTES && value.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(acr: Option<&str>, auth_time: Option<i64>) -> Authentication {
        Authentication { acr: acr.map(Into::into), auth_time }
    }

    #[test]
    fn a_requirement_is_met_only_by_a_named_acr_and_a_recent_enough_sign_in() {
        let mfa = Requirement::parse(Some("mfa hwk"), Some("300")).unwrap().unwrap();
        assert!(mfa.is_met_by(&auth(Some("mfa"), Some(1000)), 1300));
        assert!(mfa.is_met_by(&auth(Some("hwk"), Some(1000)), 1000));
        assert!(!mfa.is_met_by(&auth(Some("mfa"), Some(1000)), 1301), "too old");
        assert!(!mfa.is_met_by(&auth(Some("pwd"), Some(1000)), 1000), "weaker acr");
        assert!(!mfa.is_met_by(&auth(None, Some(1000)), 1000), "no acr");
        assert!(!mfa.is_met_by(&auth(Some("mfa"), None), 1000), "no auth_time");
        let any_acr = Requirement::parse(None, Some("60")).unwrap().unwrap();
        assert!(any_acr.is_met_by(&auth(None, Some(1000)), 1060));
        assert!(!any_acr.is_met_by(&auth(None, Some(1000)), 1061));
    }

    #[test]
    fn parameters_are_checked_and_nothing_is_no_requirement() {
        assert_eq!(Requirement::parse(None, None), Ok(None));
        assert_eq!(Requirement::parse(Some(" mfa  mfa pwd "), None).unwrap().unwrap().acr_values, ["mfa", "pwd"]);
        for (acr, max_age) in [(Some(""), None), (Some("  "), None), (Some("a\"b"), None), (Some("a\\b"), None), (Some("é"), None)] {
            assert_eq!(Requirement::parse(acr, max_age), Err("acr_values"), "{acr:?}");
        }
        let long = "a".repeat(MAX_ACR_BYTES + 1);
        assert_eq!(Requirement::parse(Some(&long), None), Err("acr_values"));
        for max_age in ["-1", "0", "59", "x", "", "1.5", "99999999999999999999", &(MAX_MAX_AGE_SECS + 1).to_string()] {
            assert_eq!(Requirement::parse(None, Some(max_age)), Err("max_age"), "{max_age}");
        }
    }

    #[test]
    fn a_sign_in_may_ask_only_for_declared_values() {
        let declared = [Requirement::parse(Some("mfa"), None).unwrap().unwrap(), Requirement::parse(Some("hwk"), Some("300")).unwrap().unwrap()];
        let asks = |acr, max_age| Requirement::parse(acr, max_age).unwrap().unwrap().check_declared(&declared);
        assert_eq!(asks(Some("mfa"), None), Ok(()));
        assert_eq!(asks(Some("mfa hwk"), Some("300")), Ok(()));
        assert_eq!(asks(None, Some("300")), Ok(()));
        assert_eq!(asks(Some("mfa pwd"), None), Err("acr_values"));
        assert_eq!(asks(Some("mfa"), Some("299")), Err("max_age"));
    }
}
