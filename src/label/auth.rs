//! Who may use the server and whether a form came from one of its own pages:
//! the shared secret (`--token`), CSRF tokens (double-submit cookie), random ids,
//! cookies, and annotator names.

/// Cookie holding the annotator's name.
pub const ANNOTATOR_COOKIE: &str = "rlhf_label_annotator";
/// Cookie holding the CSRF token that every form must repeat in its `csrf` field.
pub const CSRF_COOKIE: &str = "rlhf_label_csrf";
/// Cookie holding the shared secret once it was given in the URL (`?token=`).
pub const TOKEN_COOKIE: &str = "rlhf_label_token";

/// `n` random bytes from the operating system, as lower-case hex (2n characters).
/// Used for CSRF tokens and the submission ids pages pre-fill.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    // The OS source failing is not something a web page can recover from:
    // without it there are no unguessable tokens.
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fair coin from the operating system's random source (which answer is
/// shown on the left).
pub fn random_bool() -> bool {
    let mut b = [0u8; 1];
    getrandom::fill(&mut b).expect("the operating system's random source failed");
    b[0] & 1 == 1
}

/// Equality that takes the same time wherever the first difference is, so a
/// guesser cannot learn a secret's prefix from response times.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of cookie `name` in a `Cookie:` header value (`a=1; b=2`).
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, for the whole site.
pub fn set_cookie(name: &str, value: &str) -> String {
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=31536000")
}

/// Check an annotator name: 1 to 40 characters, letters, digits, space, `.`,
/// `_` and `-` (it is stored in a cookie and in every record).
pub fn check_annotator_name(name: &str) -> Result<(), String> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err("field `name` is empty: choose a name to label under".into());
    }
    if trimmed.chars().count() > 40 {
        return Err("field `name` is longer than 40 characters".into());
    }
    if let Some(c) = trimmed
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, ' ' | '.' | '_' | '-')))
    {
        return Err(format!(
            "field `name` contains `{c}`: use letters, digits, spaces, `.`, `_` or `-`"
        ));
    }
    Ok(())
}

/// Check a client-generated submission id: 8 to 64 characters of letters,
/// digits, `-` and `_` (a UUID or the hex id the page pre-fills).
pub fn check_submission_id(id: &str) -> Result<(), String> {
    let ok_len = (8..=64).contains(&id.len());
    let ok_chars = id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok_len && ok_chars {
        Ok(())
    } else {
        Err("field `submission_id` must be 8 to 64 letters, digits, `-` or `_`".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_tokens_and_names() {
        assert_eq!(cookie("a=1; rlhf_label_csrf=xyz", CSRF_COOKIE), Some("xyz"));
        assert_eq!(cookie("a=1", CSRF_COOKIE), None);
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
        let t = random_hex(16);
        assert_eq!(t.len(), 32);
        assert_ne!(t, random_hex(16));
        assert!(check_annotator_name("Ada L.").is_ok());
        assert!(check_annotator_name(" ").unwrap_err().contains("empty"));
        assert!(check_annotator_name("a;b").unwrap_err().contains("`;`"));
        assert!(check_submission_id("0123456789abcdef").is_ok());
        assert!(check_submission_id("short").is_err());
        assert!(check_submission_id("has space in it").is_err());
    }
}
