//! The images clusters use: every running node of every minikube profile
//! with containerd, read with `sudo crictl images -o json` over `minikube ssh`.
//!
//! `crictl images -o json` prints the CRI `ListImagesResponse` as protojson:
//! `{"images":[{"id","repoTags":[...],"repoDigests":[...],"size",...}]}`.

use serde::Deserialize;

use crate::cluster::reach::ssh_failure;
use crate::cluster::select::{nodes_of, select_profiles, NodeTarget, Selection};
use crate::imageref::{self, ImageRef};
use crate::minikube::Minikube;
use crate::serde_util::null_as_default;

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct CriImage {
    pub id: String,
    #[serde(deserialize_with = "null_as_default")]
    pub repo_tags: Vec<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub repo_digests: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ListImages {
    #[serde(default, deserialize_with = "null_as_default")]
    images: Vec<CriImage>,
}

/// Parse `crictl images -o json`. Anything before the JSON (a login
/// banner, a warning) is skipped.
pub fn parse_crictl_images(text: &str) -> Result<Vec<CriImage>, String> {
    let start = text
        .find('{')
        .ok_or_else(|| "no JSON in the output of `crictl images -o json`".to_string())?;
    serde_json::from_str::<ListImages>(text[start..].trim())
        .map(|l| l.images)
        .map_err(|e| format!("cannot parse the output of `crictl images -o json`: {e}"))
}

/// Every name and digest of the node's images as normalized references
/// (`docker.io/library/nginx:1.25`, `...@sha256:...`). Names that do not
/// parse (a bare image id) are left out.
pub fn references(images: &[CriImage]) -> Vec<ImageRef> {
    let mut refs = Vec::new();
    for image in images {
        for name in image.repo_tags.iter().chain(&image.repo_digests) {
            if let Ok(r) = imageref::parse(name) {
                if !refs.contains(&r) {
                    refs.push(r);
                }
            }
        }
    }
    refs
}

/// One node that was read, or could not be.
#[derive(Debug, Clone)]
pub struct NodeImages {
    pub profile: String,
    pub machine: String,
    pub result: Result<Vec<ImageRef>, String>,
}

impl NodeImages {
    pub fn node(&self) -> String {
        format!("{}/{}", self.profile, self.machine)
    }
}

/// What the clusters use: the running nodes of every containerd profile.
/// A profile whose status cannot be read counts as one unreadable node.
pub fn read(mk: &Minikube) -> anyhow::Result<Vec<NodeImages>> {
    let list = mk.profiles()?;
    let selected = select_profiles(&list, &[])?;
    let live: Vec<_> = selected
        .into_iter()
        .filter(|(_, s)| *s == Selection::Live)
        .map(|(p, _)| p)
        .collect();
    let per_profile = crate::parallel::map(&live, |profile| {
        let statuses = match mk.status(&profile.name) {
            Ok(s) => s,
            Err(e) => {
                return vec![NodeImages {
                    profile: profile.name.clone(),
                    machine: "(all nodes)".into(),
                    result: Err(format!("{e:#}").replace('\n', "; ")),
                }]
            }
        };
        let nodes: Vec<NodeTarget> = nodes_of(profile, &statuses)
            .into_iter()
            .filter(NodeTarget::running)
            .collect();
        crate::parallel::map(&nodes, |node| NodeImages {
            profile: profile.name.clone(),
            machine: node.machine.clone(),
            result: mk
                .crictl_images(&profile.name, &node.machine)
                .map_err(|e| ssh_failure(&e, &profile.name, &node.machine))
                .and_then(|out| parse_crictl_images(&out.stdout))
                .map(|images| references(&images)),
        })
    });
    Ok(per_profile.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> String {
        let path = format!(
            "{}/tests/fixtures/minikube/crictl-images.json",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn parses_crictl_images_json() {
        let images = parse_crictl_images(&fixture()).unwrap();
        assert!(images.len() >= 3);
        let pause = images
            .iter()
            .find(|i| {
                i.repo_tags
                    .iter()
                    .any(|t| t.starts_with("registry.k8s.io/pause:"))
            })
            .unwrap();
        assert!(pause.id.starts_with("sha256:"));
        assert!(pause.repo_digests[0].starts_with("registry.k8s.io/pause@sha256:"));
        let refs = references(&images);
        assert!(refs
            .iter()
            .any(|r| r.registry == "docker.io" && r.repository == "library/nginx"));
        assert!(refs.iter().any(|r| r.digest.is_some()));
    }

    #[test]
    fn tolerates_nulls_banners_and_rejects_garbage() {
        let text = "Warning: something\n{\"images\":[{\"id\":\"sha256:x\",\"repoTags\":null,\"repoDigests\":null,\"size\":\"1\",\"uid\":null,\"username\":\"\",\"spec\":null,\"pinned\":false}]}";
        let images = parse_crictl_images(text).unwrap();
        assert_eq!(images.len(), 1);
        assert!(references(&images).is_empty());
        assert!(parse_crictl_images("sudo: crictl: command not found").is_err());
        assert!(parse_crictl_images("{\"images\": 5}").is_err());
    }
}
