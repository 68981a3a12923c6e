//! Identifiers, etags, tokens and sample text for simulated records.
//!
//! Everything comes from one seeded generator or from a counter, so two worlds built from
//! the same seed hand out the same values. This module builds strings only; it never reads
//! or writes records.

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

/// Lower-case base32 without `i`, `l`, `o` and `u`, the alphabet Akua-style ids look like.
const ID_ALPHABET: &[u8] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// The characters of an offer's `short_hash`, which Akua documents as base62.
const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Random characters after the prefix. `odft_` plus 24 stays well under the 53 to 56
/// character limits the API sets on ids.
const ID_LENGTH: usize = 24;

const FIRST_NAMES: &[&str] = &["ada", "bruno", "chen", "dana", "emeka", "farah", "goran", "hana", "ivan", "jules"];
const COMPANIES: &[&str] = &["acme", "globex", "initech", "umbrella", "hooli", "vandelay", "wonka", "stark"];
const EMAIL_DOMAINS: &[&str] = &["example.com", "example.org", "example.net"];

const INSTALL_ERRORS: &[&str] = &[
    "helm upgrade failed: timed out waiting for the condition",
    "image pull failed: manifest unknown for tag 2.4.1",
    "readiness probe failed for deployment web after 10 attempts",
    "persistent volume claim data-0 stayed pending: no storage class available",
];

/// The source of every generated value in one world.
pub(super) struct IdSource {
    rng: StdRng,
    /// Mixed into every etag, so two worlds with different seeds never share etags.
    etag_salt: u64,
    /// Counts etags handed out; never reused, so every etag in a world is distinct.
    etag_count: u64,
}

impl IdSource {
    pub(super) fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let etag_salt = rng.random();
        IdSource { rng, etag_salt, etag_count: 0 }
    }

    /// Returns a new id such as `odft_j57...` for the given prefix (written without `_`).
    pub(super) fn id(&mut self, prefix: &str) -> String {
        let mut id = String::with_capacity(prefix.len() + 1 + ID_LENGTH);
        id.push_str(prefix);
        id.push('_');
        for _ in 0..ID_LENGTH {
            id.push(char::from(*ID_ALPHABET.choose(&mut self.rng).expect("alphabet is not empty")));
        }
        id
    }

    /// Returns an etag that no earlier call in this world returned.
    ///
    /// The SplitMix64 finalizer is a bijection on `u64`, so distinct counts give distinct
    /// etags while still looking opaque.
    pub(super) fn etag(&mut self) -> String {
        self.etag_count += 1;
        format!("{:016x}", splitmix64(self.etag_count ^ self.etag_salt))
    }

    /// Returns a random string of `length` base62 characters.
    pub(super) fn base62(&mut self, length: usize) -> String {
        (0..length).map(|_| char::from(*BASE62.choose(&mut self.rng).expect("alphabet is not empty"))).collect()
    }

    /// Returns a plausible customer address on a reserved example domain.
    pub(super) fn email(&mut self) -> String {
        let name = FIRST_NAMES.choose(&mut self.rng).expect("list is not empty");
        let company = COMPANIES.choose(&mut self.rng).expect("list is not empty");
        let domain = EMAIL_DOMAINS.choose(&mut self.rng).expect("list is not empty");
        let number: u16 = self.rng.random_range(1..100);
        format!("{name}{number}@{company}.{domain}")
    }

    /// Returns a message such as a failed install operation carries.
    pub(super) fn install_error(&mut self) -> String {
        INSTALL_ERRORS.choose(&mut self.rng).expect("list is not empty").to_string()
    }
}

fn splitmix64(mut value: u64) -> u64 {
    value = value.wrapping_add(0x9E37_79B9_7F4A_7C15);
    value = (value ^ (value >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    value ^ (value >> 31)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn etags_never_repeat() {
        let mut ids = IdSource::new(7);
        let etags: HashSet<String> = (0..10_000).map(|_| ids.etag()).collect();
        assert_eq!(etags.len(), 10_000);
    }

    #[test]
    fn ids_depend_on_seed_only() {
        let first: Vec<String> = (0..5).map(|_| IdSource::new(3).id("odft")).collect();
        assert!(first.iter().all(|id| id == &first[0]));
        assert_ne!(IdSource::new(3).id("odft"), IdSource::new(4).id("odft"));
        assert!(first[0].starts_with("odft_"));
        assert_eq!(first[0].len(), "odft_".len() + ID_LENGTH);
    }
}
