//! logi's user-mapping rules: which userinfo claims become the local profile.

use super::oidc::UserInfo;
use crate::accounts::store::Profile;

const SYNTHETIC_EMAIL_DOMAIN: &str = "@1pass.internal";

/// An anonymous account keeps no email or name; a synthetic `@1pass.internal` email is
/// dropped; `name` falls back to `nickname`. Identity is the id_token's `sub`, never the email.
pub fn from_userinfo(info: &UserInfo) -> Profile {
    if info.anonymous {
        return Profile { anonymous: true, email: None, name: None };
    }
    let email = info.email.clone().filter(|email| !email.to_ascii_lowercase().ends_with(SYNTHETIC_EMAIL_DOMAIN));
    Profile { anonymous: false, email, name: info.name.clone().or_else(|| info.nickname.clone()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(email: Option<&str>, name: Option<&str>, nickname: Option<&str>, anonymous: bool) -> UserInfo {
        UserInfo { sub: "s".into(), email: email.map(Into::into), name: name.map(Into::into), nickname: nickname.map(Into::into), anonymous }
    }

    #[test]
    fn a_normal_user_keeps_email_and_name() {
        let profile = from_userinfo(&info(Some("a@example.com"), Some("Alice"), Some("al"), false));
        assert_eq!(profile, Profile { anonymous: false, email: Some("a@example.com".into()), name: Some("Alice".into()) });
    }

    #[test]
    fn an_anonymous_user_keeps_neither_email_nor_name() {
        let profile = from_userinfo(&info(Some("anon+1@1pass.internal"), Some("x"), None, true));
        assert_eq!(profile, Profile { anonymous: true, email: None, name: None });
    }

    #[test]
    fn a_synthetic_email_is_dropped_even_without_the_anonymous_flag() {
        let profile = from_userinfo(&info(Some("anon+1@1PASS.internal"), None, Some("nick"), false));
        assert_eq!(profile, Profile { anonymous: false, email: None, name: Some("nick".into()) });
    }

    #[test]
    fn consent_without_email_or_name_leaves_them_empty() {
        assert_eq!(from_userinfo(&info(None, None, None, false)), Profile { anonymous: false, email: None, name: None });
    }
}
