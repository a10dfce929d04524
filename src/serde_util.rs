//! Deserializing the JSON of other programs tolerantly.

use serde::{Deserialize, Deserializer};

/// `null` in podman's and minikube's JSON means the same as an absent key.
pub fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}
