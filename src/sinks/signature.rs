//! Standard Webhooks signatures: HMAC-SHA256 over `{id}.{timestamp}.{body}`.
//!
//! This module signs; it does not decode `whsec_` secrets (the configuration does that)
//! and it does not choose the id or the timestamp.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Returns the `webhook-signature` header value `v1,<base64 HMAC-SHA256>` of
/// `"{msg_id}.{timestamp}.{body}"` under `key`.
///
/// `body` must be exactly the bytes sent, since receivers verify over what they received.
pub fn sign(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    // N.B. HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("hmac accepts any key length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);

    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference_key() -> Vec<u8> {
        let secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
        STANDARD.decode(secret.strip_prefix("whsec_").unwrap()).unwrap()
    }

    /// The known-answer vector of the Standard Webhooks reference libraries.
    #[test]
    fn sign_known_answer() {
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        let signature = sign(&reference_key(), "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1_649_367_553, body);
        assert_eq!(signature, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn sign_depends_on_every_part() {
        let key = reference_key();
        let base = sign(&key, "msg_1", 1_649_367_553, b"{}");
        assert_ne!(sign(&key, "msg_2", 1_649_367_553, b"{}"), base);
        assert_ne!(sign(&key, "msg_1", 1_649_367_554, b"{}"), base);
        assert_ne!(sign(&key, "msg_1", 1_649_367_553, b"{ }"), base);
        assert_ne!(sign(b"another key of 24 bytes!", "msg_1", 1_649_367_553, b"{}"), base);
    }
}
