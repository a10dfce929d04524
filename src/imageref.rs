//! Image references as people and kubectl write them, normalized the way
//! docker and containerd do: `nginx` is `docker.io/library/nginx:latest`.

use std::fmt;

/// A normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// Registry host (and port), e.g. `quay.io`, `localhost:5000`.
    pub registry: String,
    /// Repository path inside the registry, e.g. `library/nginx`.
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageRef {
    /// What to ask the registry for: the digest when there is one.
    pub fn reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

const DOCKER_HUB: &str = "docker.io";

/// Parse and normalize `text`. A reference without tag or digest gets
/// `latest`; Docker Hub's official images get `library/`.
pub fn parse(text: &str) -> Result<ImageRef, String> {
    let bad = |why: &str| format!("invalid image reference {text:?}: {why}");
    if text.is_empty() {
        return Err(bad("empty"));
    }
    if text.len() > 4096 {
        return Err(bad("too long"));
    }
    let (name_and_tag, digest) = match text.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (text, None),
    };
    if let Some(d) = digest {
        check_digest(d).map_err(|why| bad(&why))?;
    }
    // A tag follows the last ':' after the last '/' (a ':' before it is a port).
    let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
        Some(i) => (
            &name_and_tag[..last_slash + i],
            Some(&name_and_tag[last_slash + i + 1..]),
        ),
        None => (name_and_tag, None),
    };
    if let Some(t) = tag {
        check_tag(t).map_err(|why| bad(&why))?;
    }
    let (registry, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first, rest)
        }
        _ => (DOCKER_HUB, name),
    };
    if !registry
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
    {
        return Err(bad(&format!("{registry:?} is not a registry host")));
    }
    let registry = match registry {
        "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB,
        r => r,
    };
    let repository = if registry == DOCKER_HUB && !path.contains('/') {
        format!("library/{path}")
    } else {
        path.to_string()
    };
    check_repository(&repository).map_err(|why| bad(&why))?;
    let tag = match (tag, digest) {
        (None, None) => Some("latest".to_string()),
        (t, _) => t.map(str::to_string),
    };
    Ok(ImageRef {
        registry: registry.to_ascii_lowercase(),
        repository,
        tag,
        digest: digest.map(str::to_string),
    })
}

fn check_digest(digest: &str) -> Result<(), String> {
    let (algorithm, hex) = digest
        .split_once(':')
        .ok_or_else(|| format!("digest {digest:?} has no algorithm"))?;
    let expected_len = match algorithm {
        "sha256" => 64,
        "sha512" => 128,
        other => return Err(format!("unsupported digest algorithm {other:?}")),
    };
    if hex.len() != expected_len
        || !hex
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    {
        return Err(format!(
            "digest {digest:?} is not {expected_len} lowercase hex digits"
        ));
    }
    Ok(())
}

fn check_tag(tag: &str) -> Result<(), String> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!("tag {tag:?} is not valid"))
    }
}

/// Path components: lowercase alphanumerics separated by `.`, `_`, `__` or `-`s.
fn check_repository(repository: &str) -> Result<(), String> {
    for component in repository.split('/') {
        let ok = !component.is_empty()
            && component.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && component.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && component
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
            && !component.contains("..")
            && !component.contains("___");
        if !ok {
            return Err(if component.chars().any(|c| c.is_ascii_uppercase()) {
                format!("repository {repository:?} must be lowercase")
            } else {
                format!("repository {repository:?} is not valid")
            });
        }
    }
    Ok(())
}

/// The references in an image list: one a line with `#` comments, or the
/// space-separated output of `kubectl get pods -A -o jsonpath='{..image}'`.
/// Image IDs (a bare `sha256:...`, which some runtimes report as a pod's
/// image) are skipped; duplicates are kept once, in order.
pub fn parse_list(text: &str) -> (Vec<String>, Vec<String>) {
    let mut refs: Vec<String> = Vec::new();
    let mut skipped = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        for word in line.split_whitespace() {
            let word = word.trim_matches(|c| c == '"' || c == '\'' || c == ',');
            if word.is_empty() {
                continue;
            }
            if is_image_id(word) {
                skipped.push(word.to_string());
            } else if !refs.iter().any(|r| r == word) {
                refs.push(word.to_string());
            }
        }
    }
    (refs, skipped)
}

fn is_image_id(word: &str) -> bool {
    let hex = word.strip_prefix("sha256:").unwrap_or(word);
    (word.starts_with("sha256:") || hex.len() == 64)
        && hex.len() == 64
        && hex.chars().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(text: &str) -> String {
        parse(text).unwrap().to_string()
    }

    const D: &str = "sha256:4d3cf9068cd4781cbb46ddc8b04ac04cc38c89563616c287628a7806087f5080";

    #[test]
    fn docker_hub_defaults() {
        assert_eq!(full("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(full("nginx:1.25"), "docker.io/library/nginx:1.25");
        assert_eq!(full("bitnami/redis"), "docker.io/bitnami/redis:latest");
        assert_eq!(full("docker.io/nginx"), "docker.io/library/nginx:latest");
        assert_eq!(
            full("index.docker.io/library/nginx:1"),
            "docker.io/library/nginx:1"
        );
        assert_eq!(full("library/nginx"), "docker.io/library/nginx:latest");
    }

    #[test]
    fn other_registries() {
        let r = parse("quay.io/prometheus/node-exporter:v1.8.0").unwrap();
        assert_eq!(r.registry, "quay.io");
        assert_eq!(r.repository, "prometheus/node-exporter");
        assert_eq!(r.tag.as_deref(), Some("v1.8.0"));
        assert_eq!(r.reference(), "v1.8.0");
        assert_eq!(
            full("registry.k8s.io/pause:3.9"),
            "registry.k8s.io/pause:3.9"
        );
        assert_eq!(full("ghcr.io/a/b/c"), "ghcr.io/a/b/c:latest");
    }

    #[test]
    fn host_port_and_localhost() {
        let r = parse("localhost:5000/test/img").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("localhost:5000", "test/img")
        );
        assert_eq!(r.tag.as_deref(), Some("latest"));
        let r = parse("127.0.0.1:15100/test/img:1").unwrap();
        assert_eq!(r.registry, "127.0.0.1:15100");
        assert_eq!(r.tag.as_deref(), Some("1"));
        assert_eq!(parse("localhost/img:2").unwrap().registry, "localhost");
        // Without a '/', `host:port` can only be an image and its tag.
        assert_eq!(full("myimage:5000"), "docker.io/library/myimage:5000");
    }

    #[test]
    fn digests() {
        let r = parse(&format!("quay.io/test/img@{D}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.reference(), D);
        let r = parse(&format!("nginx:1.25@{D}")).unwrap();
        assert_eq!(r.tag.as_deref(), Some("1.25"));
        assert_eq!(r.reference(), D, "the digest wins");
        assert_eq!(r.to_string(), format!("docker.io/library/nginx:1.25@{D}"));
        let r = parse(&format!("localhost:5000/x@{D}")).unwrap();
        assert_eq!(r.registry, "localhost:5000");
    }

    #[test]
    fn invalid_references() {
        for (text, why) in [
            ("", "empty"),
            ("Nginx", "must be lowercase"),
            ("quay.io/Foo/bar", "must be lowercase"),
            ("nginx:", "tag \"\""),
            ("nginx:-x", "tag"),
            ("nginx@sha256:abc", "64 lowercase hex"),
            ("nginx@md5:abc", "unsupported digest algorithm"),
            ("quay.io//x", "not valid"),
            ("a..b", "not valid"),
            ("quay.io/x/", "not valid"),
            ("bad!host.io/x", "not a registry host"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(why), "{text:?}: {err}");
            assert!(err.starts_with("invalid image reference"), "{err}");
        }
    }

    #[test]
    fn lists_with_comments_and_kubectl_output() {
        let (refs, skipped) = parse_list(
            "# images for the CI run\nnginx:1.25   # web\n\nquay.io/test/img:1\nnginx:1.25\n",
        );
        assert_eq!(refs, ["nginx:1.25", "quay.io/test/img:1"]);
        assert!(skipped.is_empty());
        let kubectl = format!(
            "registry.k8s.io/coredns/coredns:v1.11.1 registry.k8s.io/coredns/coredns:v1.11.1 \
             gcr.io/k8s-minikube/storage-provisioner:v5 {D} docker.io/library/nginx:latest"
        );
        let (refs, skipped) = parse_list(&kubectl);
        assert_eq!(
            refs,
            [
                "registry.k8s.io/coredns/coredns:v1.11.1",
                "gcr.io/k8s-minikube/storage-provisioner:v5",
                "docker.io/library/nginx:latest"
            ]
        );
        assert_eq!(skipped, [D]);
    }
}
