//! Login emails, password rules and argon2id hashing (server only).
//!
//! [`Email`] and [`NewPassword`] can only be built by parsing, so a value of either
//! type has passed the rules. Hashing runs on the blocking pool: one hash is ~19 MiB
//! of memory and tens of milliseconds of CPU.

use super::AccountError;
use crate::server::AppError;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use std::sync::OnceLock;

/// OWASP's minimum for argon2id: 19 MiB, 2 passes, 1 lane. Stored hashes carry their
/// parameters, so raising these rehashes each account at its next sign-in.
const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;
const LANES: u32 = 1;
pub const MIN_PASSWORD_CHARS: usize = 12;
pub const MAX_PASSWORD_CHARS: usize = 128;
const MAX_EMAIL_LEN: usize = 254;

/// The most common passwords that are long enough to pass the length rule.
const COMMON_PASSWORDS: &[&str] = &[
    "123456789012",
    "1234567890123",
    "12345678901234",
    "123456123456",
    "111111111111",
    "000000000000",
    "password1234",
    "password12345",
    "password123456",
    "passwordpassword",
    "password1234567",
    "p@ssw0rd1234",
    "passw0rd1234",
    "qwerty123456",
    "qwertyuiop12",
    "qwertyuiopas",
    "qwertyuiop123",
    "1q2w3e4r5t6y",
    "1qaz2wsx3edc",
    "abcdefghijkl",
    "abc123456789",
    "abcd12345678",
    "iloveyou1234",
    "welcome12345",
    "letmein12345",
    "changeme1234",
    "administrator",
    "football1234",
    "baseball1234",
    "sunshine1234",
    "princess1234",
    "monkey123456",
    "dragon123456",
    "trustno12345",
    "superman1234",
    "correcthorsebatterystaple",
];

fn argon2() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(MEMORY_KIB, PASSES, LANES, None).expect("valid argon2 parameters"))
}

/// A login email: trimmed, domain lowercased, one `@` between a non-empty local part
/// and a dotted domain, no spaces or control characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, AccountError> {
        let trimmed = raw.trim();
        let (local, domain) = trimmed.rsplit_once('@').ok_or(AccountError::InvalidEmail)?;
        let well_formed = !local.is_empty()
            && !local.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && trimmed.len() <= MAX_EMAIL_LEN
            && !trimmed.chars().any(|c| c.is_whitespace() || c.is_control());
        if !well_formed {
            return Err(AccountError::InvalidEmail);
        }
        Ok(Self(format!("{local}@{}", domain.to_lowercase())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password that meets the rules (NIST 800-63B: length, not the email, not common;
/// no composition rules). Length counts characters, not bytes.
pub struct NewPassword(SecretString);

impl NewPassword {
    pub fn parse(raw: String, email: &Email) -> Result<Self, AccountError> {
        let chars = raw.chars().count();
        if chars < MIN_PASSWORD_CHARS {
            return Err(AccountError::PasswordTooShort);
        }
        if chars > MAX_PASSWORD_CHARS {
            return Err(AccountError::PasswordTooLong);
        }
        let lowered = raw.to_lowercase();
        let local_part = email.as_str().rsplit_once('@').map_or("", |(local, _)| local).to_lowercase();
        if lowered == email.as_str().to_lowercase() || lowered == local_part {
            return Err(AccountError::PasswordIsEmail);
        }
        let one_repeated_char = raw.chars().all(|c| raw.starts_with(c));
        if one_repeated_char || COMMON_PASSWORDS.contains(&lowered.as_str()) {
            return Err(AccountError::PasswordTooCommon);
        }
        Ok(Self(raw.into()))
    }

    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

/// Hashes a password into a PHC string (algorithm, parameters and salt included).
pub async fn hash(password: &SecretString) -> Result<String, AppError> {
    let password = password.clone();
    blocking(move || hash_now(&password)).await?
}

fn hash_now(password: &SecretString) -> Result<String, AppError> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    argon2()
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| AppError::Internal(format!("argon2 hash: {error}")))
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verification {
    Valid { needs_rehash: bool },
    Invalid,
}

/// Checks `password` against the stored hash. With no stored hash (unknown email) it
/// checks against a dummy hash instead, so both failures take the same time.
pub async fn verify(password: SecretString, stored: Option<String>) -> Result<Verification, AppError> {
    blocking(move || match stored {
        Some(stored) => verify_now(&password, &stored),
        None => {
            verify_now(&password, dummy_hash()?)?;
            Ok(Verification::Invalid)
        }
    })
    .await?
}

fn verify_now(password: &SecretString, stored: &str) -> Result<Verification, AppError> {
    let parsed = PasswordHash::new(stored).map_err(|error| AppError::Internal(format!("stored password hash: {error}")))?;
    if argon2().verify_password(password.expose_secret().as_bytes(), &parsed).is_err() {
        return Ok(Verification::Invalid);
    }
    Ok(Verification::Valid { needs_rehash: !uses_current_parameters(&parsed) })
}

fn uses_current_parameters(hash: &PasswordHash) -> bool {
    let params = Params::try_from(hash);
    hash.algorithm == Algorithm::Argon2id.ident() && params.is_ok_and(|p| (p.m_cost(), p.t_cost(), p.p_cost()) == (MEMORY_KIB, PASSES, LANES))
}

fn dummy_hash() -> Result<&'static str, AppError> {
    static DUMMY: OnceLock<String> = OnceLock::new();
    if let Some(hash) = DUMMY.get() {
        return Ok(hash);
    }
    let hash = hash_now(&SecretString::from("a password nobody has, for timing"))?;
    Ok(DUMMY.get_or_init(|| hash))
}

/// Hashes running at once: each holds 19 MiB and a core for a while, so a burst of
/// sign-ins queues here instead of growing memory with it.
fn hashing_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get() * 2)))
}

/// The longest a password check waits for a slot before it is answered `503 server_busy`.
const HASHING_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, AppError> {
    let slot = tokio::time::timeout(HASHING_WAIT, hashing_slots().acquire()).await.map_err(|_| AppError::Busy("password hashing"))?;
    let done = tokio::task::spawn_blocking(work).await.map_err(|error| AppError::Internal(format!("password task: {error}")));
    drop(slot);
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> Email {
        Email::parse("Ada.Lovelace@Example.COM").unwrap()
    }

    #[test]
    fn emails_are_trimmed_and_their_domain_lowercased() {
        assert_eq!(email().as_str(), "Ada.Lovelace@example.com");
        assert_eq!(Email::parse("  a@b.io \n").unwrap().as_str(), "a@b.io");
        for bad in ["", "no-at-sign", "@example.com", "a@", "a@localhost", "a@.com", "a@b.", "a b@c.io", "a@b@c.io", "a\u{0}@b.io"] {
            assert_eq!(Email::parse(bad), Err(AccountError::InvalidEmail), "{bad:?}");
        }
        assert_eq!(Email::parse(&format!("{}@b.io", "a".repeat(250))), Err(AccountError::InvalidEmail));
    }

    fn rule(password: &str) -> Result<(), AccountError> {
        NewPassword::parse(password.to_owned(), &email()).map(|_| ())
    }

    #[test]
    fn passwords_follow_nist_length_rules_without_composition_rules() {
        assert_eq!(rule("elevenchars"), Err(AccountError::PasswordTooShort));
        assert_eq!(rule("twelve chars"), Ok(()));
        assert_eq!(rule("ünïcödé-chär"), Ok(()), "12 characters that are more than 12 bytes");
        assert_eq!(rule(&"ab".repeat(64)), Ok(()), "128 characters");
        assert_eq!(rule(&format!("{}c", "ab".repeat(64))), Err(AccountError::PasswordTooLong));
        assert_eq!(rule("all lowercase letters only"), Ok(()), "no composition rules");
    }

    #[test]
    fn the_email_and_common_passwords_are_refused() {
        assert_eq!(rule("ada.lovelace@example.com"), Err(AccountError::PasswordIsEmail));
        assert_eq!(rule("ADA.LOVELACE"), Err(AccountError::PasswordIsEmail));
        assert_eq!(rule("Password1234"), Err(AccountError::PasswordTooCommon));
        assert_eq!(rule("qwerty123456"), Err(AccountError::PasswordTooCommon));
        assert_eq!(rule("zzzzzzzzzzzzzz"), Err(AccountError::PasswordTooCommon));
    }

    #[tokio::test]
    async fn a_hash_is_argon2id_with_the_owasp_parameters_and_verifies() {
        let password = SecretString::from("correct horse battery");
        let hash = hash(&password).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert_eq!(verify(password, Some(hash.clone())).await.unwrap(), Verification::Valid { needs_rehash: false });
        assert_eq!(verify("correct horse batterY".into(), Some(hash)).await.unwrap(), Verification::Invalid);
    }

    #[tokio::test]
    async fn two_hashes_of_one_password_differ_by_salt() {
        let password = SecretString::from("correct horse battery");
        assert_ne!(hash(&password).await.unwrap(), hash(&password).await.unwrap());
    }

    #[tokio::test]
    async fn a_hash_with_older_parameters_verifies_and_asks_for_a_rehash() {
        let weak = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(8 * 1024, 1, 1, None).unwrap());
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        let old = weak.hash_password(b"correct horse battery", &salt).unwrap().to_string();
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, Params::new(MEMORY_KIB, PASSES, LANES, None).unwrap());
        let other_algorithm = argon2i.hash_password(b"correct horse battery", &salt).unwrap().to_string();
        for stored in [old, other_algorithm] {
            let verified = verify("correct horse battery".into(), Some(stored)).await.unwrap();
            assert_eq!(verified, Verification::Valid { needs_rehash: true });
        }
    }

    #[tokio::test]
    async fn an_unknown_account_fails_like_a_wrong_password() {
        assert_eq!(verify("anything at all".into(), None).await.unwrap(), Verification::Invalid);
    }

    #[tokio::test]
    async fn a_corrupt_stored_hash_is_an_internal_error_not_a_match() {
        assert!(verify("anything at all".into(), Some("not a PHC string".into())).await.is_err());
    }
}
