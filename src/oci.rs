//! The parts of OCI and Docker v2 manifests that `warm` walks: indexes
//! (manifest lists) with their platforms, and image manifests with their
//! config and layer blobs.

use std::fmt;

use serde::Deserialize;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: Option<u64>,
    pub platform: Option<Platform>,
    /// Foreign layers (Windows base layers) live elsewhere; a registry may
    /// not have them.
    pub urls: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = self.variant.as_deref().filter(|v| !v.is_empty()) {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manifest {
    /// An OCI index or a Docker manifest list.
    Index(Vec<Descriptor>),
    Image {
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
}

/// Parse a manifest; `content_type` is the served `Content-Type`, used when
/// the body does not say its media type (OCI makes it optional).
pub fn parse(content_type: &str, bytes: &[u8]) -> Result<Manifest, String> {
    let raw: Raw = serde_json::from_slice(bytes).map_err(|e| format!("not a manifest: {e}"))?;
    if raw.schema_version == Some(1)
        || content_type.starts_with("application/vnd.docker.distribution.manifest.v1")
    {
        return Err("Docker schema 1 manifests are not supported (the image is too old)".into());
    }
    let media_type = raw
        .media_type
        .clone()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| content_type.to_string());
    let is_index = match media_type.as_str() {
        OCI_INDEX | DOCKER_LIST => true,
        OCI_MANIFEST | DOCKER_MANIFEST => false,
        _ => raw.manifests.is_some(),
    };
    if is_index {
        return Ok(Manifest::Index(raw.manifests.unwrap_or_default()));
    }
    match raw.config {
        Some(config) => Ok(Manifest::Image {
            config,
            layers: raw.layers.unwrap_or_default(),
        }),
        None => Err(format!("manifest of type {media_type:?} has no config")),
    }
}

/// A platform asked for on the command line: `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformSpec {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl fmt::Display for PlatformSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Which manifests of an index to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Platforms {
    All,
    Some(Vec<PlatformSpec>),
}

impl fmt::Display for Platforms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Platforms::All => f.write_str("all"),
            Platforms::Some(list) => {
                let names: Vec<String> = list.iter().map(ToString::to_string).collect();
                f.write_str(&names.join(","))
            }
        }
    }
}

/// Go's architecture names for the ones Rust names differently.
fn normalize_arch(arch: &str) -> &str {
    match arch {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        "i386" | "i686" | "x86" => "386",
        "powerpc64le" | "powerpc64" => "ppc64le",
        other => other,
    }
}

/// arm64 without a variant is v8.
fn normalize_variant<'a>(arch: &str, variant: Option<&'a str>) -> Option<&'a str> {
    match (arch, variant.filter(|v| !v.is_empty())) {
        ("arm64", None) => Some("v8"),
        (_, v) => v,
    }
}

impl PlatformSpec {
    pub fn parse(text: &str) -> Result<PlatformSpec, String> {
        let parts: Vec<&str> = text.split('/').collect();
        let valid =
            |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        match parts.as_slice() {
            [os, arch] | [os, arch, _] if valid(os) && valid(arch) => {
                let variant = parts.get(2).map(|v| v.to_string());
                if variant.as_deref().is_some_and(|v| !valid(v)) {
                    return Err(format!("invalid platform {text:?}: bad variant"));
                }
                Ok(PlatformSpec {
                    os: os.to_ascii_lowercase(),
                    architecture: normalize_arch(&arch.to_ascii_lowercase()).to_string(),
                    variant,
                })
            }
            _ => Err(format!(
                "invalid platform {text:?}: expected OS/ARCH[/VARIANT] such as linux/arm64, or all"
            )),
        }
    }

    /// Cluster nodes run Linux on this host's CPU architecture.
    pub fn host() -> PlatformSpec {
        PlatformSpec {
            os: "linux".into(),
            architecture: normalize_arch(std::env::consts::ARCH).to_string(),
            variant: None,
        }
    }

    pub fn matches(&self, p: &Platform) -> bool {
        let arch = normalize_arch(&p.architecture);
        if self.os != p.os || self.architecture != arch {
            return false;
        }
        match &self.variant {
            None => true,
            Some(v) => {
                normalize_variant(&self.architecture, Some(v))
                    == normalize_variant(arch, p.variant.as_deref())
            }
        }
    }
}

impl Platforms {
    /// `all`, or a comma-separated list of platforms; none given: the host's.
    pub fn parse(values: &[String]) -> Result<Platforms, String> {
        let mut list = Vec::new();
        for value in values.iter().flat_map(|v| v.split(',')).map(str::trim) {
            if value.eq_ignore_ascii_case("all") {
                return Ok(Platforms::All);
            }
            if !value.is_empty() {
                list.push(PlatformSpec::parse(value)?);
            }
        }
        if list.is_empty() {
            list.push(PlatformSpec::host());
        }
        Ok(Platforms::Some(list))
    }

    /// The entries of an index to fetch. Attestation manifests
    /// (`unknown/unknown`) are never platforms.
    pub fn select<'a>(&self, entries: &'a [Descriptor]) -> Vec<&'a Descriptor> {
        entries
            .iter()
            .filter(|d| match (&d.platform, self) {
                (Some(p), _) if p.os == "unknown" => false,
                (_, Platforms::All) => true,
                (None, Platforms::Some(_)) => false,
                (Some(p), Platforms::Some(list)) => list.iter().any(|s| s.matches(p)),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = r#"{
      "schemaVersion": 2,
      "mediaType": "application/vnd.oci.image.index.v1+json",
      "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:aa", "size": 500,
         "platform": {"architecture": "amd64", "os": "linux"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:bb", "size": 500,
         "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:cc", "size": 500,
         "platform": {"architecture": "arm", "os": "linux", "variant": "v7"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:dd", "size": 800,
         "platform": {"architecture": "unknown", "os": "unknown"},
         "annotations": {"vnd.docker.reference.type": "attestation-manifest"}}
      ]
    }"#;

    fn digests(list: Vec<&Descriptor>) -> Vec<&str> {
        list.into_iter().map(|d| d.digest.as_str()).collect()
    }

    fn entries() -> Vec<Descriptor> {
        match parse("", INDEX.as_bytes()).unwrap() {
            Manifest::Index(e) => e,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_an_image_manifest() {
        let body = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
          "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:c1","size":501},
          "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:l1","size":2097942}],
          "annotations":{"x":"y"}}"#;
        let Manifest::Image { config, layers } = parse("", body.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(config.digest, "sha256:c1");
        assert_eq!(layers[0].size, Some(2097942));
    }

    #[test]
    fn media_type_from_the_header_when_the_body_has_none() {
        let list = r#"{"schemaVersion":2,"manifests":[]}"#;
        assert_eq!(
            parse(DOCKER_LIST, list.as_bytes()).unwrap(),
            Manifest::Index(vec![])
        );
        let image = r#"{"schemaVersion":2,"config":{"digest":"sha256:c"},"layers":[]}"#;
        assert!(matches!(
            parse(DOCKER_MANIFEST, image.as_bytes()).unwrap(),
            Manifest::Image { .. }
        ));
    }

    #[test]
    fn schema1_and_garbage_are_errors() {
        let err = parse("", br#"{"schemaVersion":1,"fsLayers":[]}"#).unwrap_err();
        assert!(err.contains("schema 1"));
        let signed = "application/vnd.docker.distribution.manifest.v1+prettyjws";
        assert!(parse(signed, b"{}").unwrap_err().contains("schema 1"));
        assert!(parse("", b"<html>")
            .unwrap_err()
            .starts_with("not a manifest"));
        assert!(parse(OCI_MANIFEST, br#"{"schemaVersion":2}"#)
            .unwrap_err()
            .contains("no config"));
    }

    #[test]
    fn selects_requested_platforms() {
        let e = entries();
        let p = |s: &[&str]| {
            Platforms::parse(&s.iter().map(|x| x.to_string()).collect::<Vec<_>>()).unwrap()
        };
        assert_eq!(digests(p(&["linux/arm64"]).select(&e)), ["sha256:bb"]);
        assert_eq!(digests(p(&["linux/arm64/v8"]).select(&e)), ["sha256:bb"]);
        assert_eq!(digests(p(&["linux/aarch64"]).select(&e)), ["sha256:bb"]);
        assert_eq!(
            digests(p(&["linux/amd64,linux/arm/v7"]).select(&e)),
            ["sha256:aa", "sha256:cc"]
        );
        assert_eq!(
            digests(p(&["linux/amd64", "linux/arm"]).select(&e)),
            ["sha256:aa", "sha256:cc"]
        );
        assert!(p(&["linux/arm/v6"]).select(&e).is_empty());
        assert!(p(&["windows/amd64"]).select(&e).is_empty());
        // all: every platform, never the attestation.
        assert_eq!(
            digests(p(&["all"]).select(&e)),
            ["sha256:aa", "sha256:bb", "sha256:cc"]
        );
        assert_eq!(p(&["linux/amd64", "all"]), Platforms::All);
    }

    #[test]
    fn default_platform_is_linux_on_this_cpu() {
        let Platforms::Some(list) = Platforms::parse(&[]).unwrap() else {
            panic!()
        };
        assert_eq!(list, [PlatformSpec::host()]);
        assert_eq!(list[0].os, "linux");
        #[cfg(target_arch = "x86_64")]
        assert_eq!(list[0].to_string(), "linux/amd64");
        #[cfg(target_arch = "aarch64")]
        assert_eq!(list[0].to_string(), "linux/arm64");
    }

    #[test]
    fn invalid_platforms() {
        for bad in [
            "linux",
            "linux/",
            "/amd64",
            "linux/arm/v7/x",
            "linux/am d64",
        ] {
            let err = PlatformSpec::parse(bad).unwrap_err();
            assert!(err.contains("invalid platform"), "{bad}: {err}");
        }
    }

    #[test]
    fn platform_display() {
        let p = Platform {
            os: "linux".into(),
            architecture: "arm".into(),
            variant: Some("v7".into()),
        };
        assert_eq!(p.to_string(), "linux/arm/v7");
        assert_eq!(
            Platforms::parse(&["linux/arm64,linux/amd64".into()])
                .unwrap()
                .to_string(),
            "linux/arm64,linux/amd64"
        );
    }
}
