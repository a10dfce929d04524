//! SHA-256 in the two forms drcache uses.

use sha2::{Digest, Sha256};

/// The first 16 hex digits of the SHA-256 of `data`: short enough for a
/// label, long enough that a changed definition never keeps its value.
pub fn short_sha256(data: &[u8]) -> String {
    format!("{:x}", Sha256::digest(data))[..16].to_string()
}

/// An OCI content digest: `sha256:<64 hex digits>`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_of_the_same_hash() {
        let full = sha256_digest(b"abc");
        assert_eq!(
            full,
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(short_sha256(b"abc"), full["sha256:".len()..][..16]);
    }
}
