//! `prune`: what a cache holds, what to keep, and the plan of what to
//! delete (pure, in this file); reading the caches and the clusters, and
//! applying the plan with the registry's own API and `garbage-collect`, in
//! the submodules.

pub mod apply;
pub mod clusters;
pub mod run;

use std::collections::{BTreeMap, BTreeSet};

use crate::imageref::ImageRef;

/// A manifest the cache holds: its size and what it references.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManifestInfo {
    pub size: u64,
    /// Platform manifests of an index that the cache holds.
    pub children: Vec<String>,
    /// Config and layer blobs with their sizes (an image manifest).
    pub blobs: Vec<(String, u64)>,
}

/// One repository of a cache: its tags and the manifests read through them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Repo {
    pub name: String,
    /// (tag, digest of the manifest it points to).
    pub tags: Vec<(String, String)>,
}

/// What one cache holds, as its registry API shows it. Manifests are
/// content-addressed: one map for all repositories.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    pub repos: Vec<Repo>,
    pub manifests: BTreeMap<String, ManifestInfo>,
}

/// Why an image is kept.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    /// Named with --keep or in --keep-file.
    Named,
    /// In the containerd of a cluster node (`profile/machine`).
    Cluster(String),
    /// Pulled through the cache within --unused-for.
    Recent,
    /// --unused-for was given, and the cache's log does not reach back that far.
    LastPullUnknown,
    /// Its tag points to a manifest a kept image uses: deleting the
    /// manifest would untag the kept image too.
    SharesManifest,
}

impl Reason {
    pub fn as_str(&self) -> String {
        match self {
            Reason::Named => "named".into(),
            Reason::Cluster(node) => format!("in use on {node}"),
            Reason::Recent => "pulled recently".into(),
            Reason::LastPullUnknown => "last pull unknown".into(),
            Reason::SharesManifest => "shares its manifest with a kept image".into(),
        }
    }
}

/// What a cache's own access log says about recent pulls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recent {
    /// No --unused-for.
    NotAsked,
    /// The log does not cover the whole period: every image is kept.
    Unknown,
    /// (repository, tag or digest) of each manifest request in the period.
    Seen(BTreeSet<(String, String)>),
}

/// The keep criteria that apply to one cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keep {
    /// References of this cache's registry with why they are kept.
    pub refs: Vec<(ImageRef, Reason)>,
    pub recent: Recent,
}

/// One tagged image of a cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub repo: String,
    pub tag: String,
    pub digest: String,
}

impl Image {
    pub fn name(&self) -> String {
        format!("{}:{}", self.repo, self.tag)
    }
}

/// What prune does to one cache.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub kept: Vec<(Image, Reason)>,
    pub removed: Vec<Image>,
    /// (repository, manifest digest) to DELETE, indexes before their platform manifests.
    pub deletes: Vec<(String, String)>,
    /// Bytes of the blobs and manifests nothing kept references any more.
    pub bytes_freed: u64,
}

/// A manifest and the platform manifests under it that the cache holds.
fn closure(inv: &Inventory, digest: &str) -> Vec<String> {
    let mut out = vec![digest.to_string()];
    if let Some(m) = inv.manifests.get(digest) {
        out.extend(m.children.iter().cloned());
    }
    out
}

/// Why the image is kept, if it is. Names and cluster images come first,
/// then recent pulls.
fn keep_reason(inv: &Inventory, keep: &Keep, image: &Image) -> Option<Reason> {
    let digests = closure(inv, &image.digest);
    let named = keep.refs.iter().find(|(r, _)| {
        r.repository == image.repo
            && (r.digest.as_ref().is_some_and(|d| digests.contains(d))
                || (r.digest.is_none() && r.tag.as_deref() == Some(image.tag.as_str())))
    });
    if let Some((_, reason)) = named {
        return Some(reason.clone());
    }
    match &keep.recent {
        Recent::NotAsked => None,
        Recent::Unknown => Some(Reason::LastPullUnknown),
        Recent::Seen(seen) => {
            let hit = seen.contains(&(image.repo.clone(), image.tag.clone()))
                || digests
                    .iter()
                    .any(|d| seen.contains(&(image.repo.clone(), d.clone())));
            hit.then_some(Reason::Recent)
        }
    }
}

/// Decide what goes: every tagged image not kept, with the manifests only
/// it uses. The blobs that nothing left references are what
/// `garbage-collect` then frees.
pub fn plan(inv: &Inventory, keep: &Keep) -> Plan {
    let mut result = Plan::default();
    // (repo, digest) of every manifest a kept image needs.
    let mut kept_manifests: BTreeSet<(String, String)> = BTreeSet::new();
    let mut candidates = Vec::new();
    for repo in &inv.repos {
        for (tag, digest) in &repo.tags {
            let image = Image {
                repo: repo.name.clone(),
                tag: tag.clone(),
                digest: digest.clone(),
            };
            match keep_reason(inv, keep, &image) {
                Some(reason) => {
                    for d in closure(inv, digest) {
                        kept_manifests.insert((repo.name.clone(), d));
                    }
                    result.kept.push((image, reason));
                }
                None => candidates.push(image),
            }
        }
        // A reference by digest keeps that manifest even without a tag.
        for (r, _) in keep.refs.iter().filter(|(r, _)| r.repository == repo.name) {
            if let Some(d) = &r.digest {
                for d in closure(inv, d) {
                    kept_manifests.insert((repo.name.clone(), d));
                }
            }
        }
    }
    let mut deleted: BTreeSet<(String, String)> = BTreeSet::new();
    for image in candidates {
        if kept_manifests.contains(&(image.repo.clone(), image.digest.clone())) {
            result.kept.push((image, Reason::SharesManifest));
            continue;
        }
        for d in closure(inv, &image.digest) {
            let key = (image.repo.clone(), d);
            if !kept_manifests.contains(&key) && deleted.insert(key.clone()) {
                result.deletes.push(key);
            }
        }
        result.removed.push(image);
    }
    result.bytes_freed = bytes_freed(inv, &deleted);
    result
}

/// Sizes of the manifests and blobs that only deleted manifests reference.
fn bytes_freed(inv: &Inventory, deleted: &BTreeSet<(String, String)>) -> u64 {
    let mut remaining_blobs: BTreeSet<&str> = BTreeSet::new();
    let mut remaining_manifests: BTreeSet<&str> = BTreeSet::new();
    for repo in &inv.repos {
        let mut present: BTreeSet<String> = BTreeSet::new();
        for (_, digest) in &repo.tags {
            present.extend(closure(inv, digest));
        }
        for d in present {
            if deleted.contains(&(repo.name.clone(), d.clone())) {
                continue;
            }
            if let Some((key, m)) = inv.manifests.get_key_value(&d) {
                remaining_manifests.insert(key.as_str());
                remaining_blobs.extend(m.blobs.iter().map(|(b, _)| b.as_str()));
            }
        }
    }
    let mut freed_blobs: BTreeMap<&str, u64> = BTreeMap::new();
    let mut freed_manifests: BTreeMap<&str, u64> = BTreeMap::new();
    for (_, d) in deleted {
        let Some((key, m)) = inv.manifests.get_key_value(d) else {
            continue;
        };
        if !remaining_manifests.contains(key.as_str()) {
            freed_manifests.insert(key.as_str(), m.size);
        }
        for (blob, size) in &m.blobs {
            if !remaining_blobs.contains(blob.as_str()) {
                freed_blobs.insert(blob.as_str(), *size);
            }
        }
    }
    freed_blobs.values().sum::<u64>() + freed_manifests.values().sum::<u64>()
}

/// `30d`, `12h`, `90m`, `3600s`, `2w` -> seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let bad = || format!("--unused-for {text:?} is not a duration like 30d, 12h, 90m, 3600s or 2w");
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let unit_seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    match number.checked_mul(unit_seconds) {
        Some(0) | None => Err(bad()),
        Some(seconds) => Ok(seconds),
    }
}

/// The (repository, reference) of every manifest request the registry's
/// access log shows as served (HTTP 200), e.g.
/// `10.88.0.1 - - [02/Dec/2026:04:35:23 +0000] "GET /v2/test/img/manifests/1 HTTP/1.1" 200 503 ...`.
pub fn manifest_requests(log: &str) -> BTreeSet<(String, String)> {
    let mut seen = BTreeSet::new();
    for line in log.lines() {
        let Some(start) = line.find("\"GET /v2/").or_else(|| line.find("\"HEAD /v2/")) else {
            continue;
        };
        let rest = &line[start + 1..];
        let Some(end) = rest.find('"') else { continue };
        let request = &rest[..end];
        let status = rest[end + 1..].split_whitespace().next().unwrap_or("");
        if status != "200" {
            continue;
        }
        let Some(path) = request.split_whitespace().nth(1) else {
            continue;
        };
        let path = path.split('?').next().unwrap_or(path);
        let Some(path) = path.strip_prefix("/v2/") else {
            continue;
        };
        if let Some((repo, reference)) = path.rsplit_once("/manifests/") {
            seen.insert((repo.to_string(), reference.to_string()));
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imageref;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const IDX: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const AMD: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    /// test/img:1 and :2 share a base layer; other/app:1 is an index with
    /// one platform held; test/img:same points at img:1's manifest.
    fn inventory() -> Inventory {
        let mut manifests = BTreeMap::new();
        manifests.insert(
            A.into(),
            ManifestInfo {
                size: 10,
                children: vec![],
                blobs: vec![("sha256:base".into(), 1000), ("sha256:a-layer".into(), 200)],
            },
        );
        manifests.insert(
            B.into(),
            ManifestInfo {
                size: 20,
                children: vec![],
                blobs: vec![("sha256:base".into(), 1000), ("sha256:b-layer".into(), 300)],
            },
        );
        manifests.insert(
            IDX.into(),
            ManifestInfo {
                size: 5,
                children: vec![AMD.into()],
                blobs: vec![],
            },
        );
        manifests.insert(
            AMD.into(),
            ManifestInfo {
                size: 7,
                children: vec![],
                blobs: vec![("sha256:app".into(), 4000)],
            },
        );
        Inventory {
            repos: vec![
                Repo {
                    name: "test/img".into(),
                    tags: vec![
                        ("1".into(), A.into()),
                        ("2".into(), B.into()),
                        ("same".into(), A.into()),
                    ],
                },
                Repo {
                    name: "other/app".into(),
                    tags: vec![("1".into(), IDX.into())],
                },
            ],
            manifests,
        }
    }

    fn keep(refs: &[&str], recent: Recent) -> Keep {
        Keep {
            refs: refs
                .iter()
                .map(|r| (imageref::parse(r).unwrap(), Reason::Named))
                .collect(),
            recent,
        }
    }

    fn names(images: &[Image]) -> Vec<String> {
        images.iter().map(Image::name).collect()
    }

    #[test]
    fn keeping_one_tag_removes_the_others_and_their_own_layers() {
        let plan = plan(
            &inventory(),
            &keep(&["quay.io/test/img:1"], Recent::NotAsked),
        );
        assert_eq!(names(&plan.removed), ["test/img:2", "other/app:1"]);
        let kept: Vec<(String, Reason)> = plan
            .kept
            .iter()
            .map(|(i, r)| (i.name(), r.clone()))
            .collect();
        assert_eq!(
            kept,
            [
                ("test/img:1".to_string(), Reason::Named),
                ("test/img:same".to_string(), Reason::SharesManifest)
            ]
        );
        assert_eq!(
            plan.deletes,
            [
                ("test/img".to_string(), B.to_string()),
                ("other/app".to_string(), IDX.to_string()),
                ("other/app".to_string(), AMD.to_string()),
            ]
        );
        // b-layer, the app layer and three manifests; the shared base stays.
        assert_eq!(plan.bytes_freed, 300 + 20 + 4000 + 5 + 7);
    }

    #[test]
    fn a_digest_keeps_the_index_that_holds_it() {
        let plan = plan(
            &inventory(),
            &keep(&[&format!("quay.io/other/app@{AMD}")], Recent::NotAsked),
        );
        assert!(plan.kept.iter().any(|(i, _)| i.name() == "other/app:1"));
        assert!(!plan.deletes.iter().any(|(r, _)| r == "other/app"));
    }

    #[test]
    fn a_digest_keeps_every_tag_of_that_manifest() {
        let plan = plan(
            &inventory(),
            &keep(&[&format!("quay.io/test/img@{A}")], Recent::NotAsked),
        );
        let kept: Vec<String> = plan.kept.iter().map(|(i, _)| i.name()).collect();
        assert_eq!(kept, ["test/img:1", "test/img:same"]);
        assert!(plan.kept.iter().all(|(_, r)| *r == Reason::Named));
        assert!(!plan.deletes.iter().any(|(_, d)| d == A));
        assert!(plan
            .deletes
            .contains(&("test/img".to_string(), B.to_string())));
    }

    #[test]
    fn a_digest_keeps_its_manifest_in_its_own_repository_only() {
        // The same digest in another repository is another image.
        let plan = plan(
            &inventory(),
            &keep(
                &["quay.io/test/img:1", &format!("quay.io/test/img@{AMD}")],
                Recent::NotAsked,
            ),
        );
        assert!(plan
            .deletes
            .contains(&("other/app".to_string(), AMD.to_string())));
    }

    #[test]
    fn reasons_read_as_the_report_shows_them() {
        let shown: Vec<String> = [
            Reason::Named,
            Reason::Cluster("hub/hub".into()),
            Reason::Recent,
            Reason::LastPullUnknown,
            Reason::SharesManifest,
        ]
        .iter()
        .map(Reason::as_str)
        .collect();
        assert_eq!(
            shown,
            [
                "named",
                "in use on hub/hub",
                "pulled recently",
                "last pull unknown",
                "shares its manifest with a kept image"
            ]
        );
    }

    #[test]
    fn recent_pulls_by_tag_or_digest_are_kept_unknown_keeps_all() {
        let seen: BTreeSet<(String, String)> = [
            ("test/img".to_string(), "2".to_string()),
            ("other/app".to_string(), AMD.to_string()),
        ]
        .into();
        let plan = plan(&inventory(), &keep(&[], Recent::Seen(seen)));
        assert_eq!(names(&plan.removed), ["test/img:1", "test/img:same"]);
        assert_eq!(plan.deletes, [("test/img".to_string(), A.to_string())]);
        assert_eq!(plan.bytes_freed, 200 + 10);

        let all = super::plan(&inventory(), &keep(&[], Recent::Unknown));
        assert!(all.removed.is_empty() && all.deletes.is_empty());
        assert!(all.kept.iter().all(|(_, r)| *r == Reason::LastPullUnknown));
    }

    #[test]
    fn a_bare_name_keeps_latest_only_and_names_match_repositories() {
        let mut inv = inventory();
        inv.repos.push(Repo {
            name: "library/nginx".into(),
            tags: vec![("latest".into(), A.into()), ("1.25".into(), B.into())],
        });
        let plan = plan(&inv, &keep(&["nginx"], Recent::NotAsked));
        assert!(plan
            .kept
            .iter()
            .any(|(i, r)| i.name() == "library/nginx:latest" && *r == Reason::Named));
        assert!(names(&plan.removed).contains(&"library/nginx:1.25".to_string()));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d"), Ok(30 * 86_400));
        assert_eq!(parse_duration("12h"), Ok(43_200));
        assert_eq!(parse_duration("90m"), Ok(5400));
        assert_eq!(parse_duration("2w"), Ok(14 * 86_400));
        assert_eq!(parse_duration("3600s"), Ok(3600));
        for bad in [
            "",
            "30",
            "d",
            "0d",
            "1y",
            "-1d",
            "1.5h",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn registry_3_access_log_of_a_real_pull() {
        let path = format!(
            "{}/tests/fixtures/registry/registry-3.1.1-access-cold-pull.txt",
            env!("CARGO_MANIFEST_DIR")
        );
        let log = std::fs::read_to_string(&path).unwrap();
        let seen: Vec<_> = manifest_requests(&log).into_iter().collect();
        assert_eq!(seen, [("test/img".to_string(), "1".to_string())]);
    }

    #[test]
    fn access_log_lines_give_served_manifest_requests() {
        let log = "\
10.88.0.1 - - [02/Dec/2026:04:35:23 +0000] \"GET /v2/test/img/manifests/1 HTTP/1.1\" 200 503 \"\" \"skopeo\"
10.88.0.1 - - [02/Dec/2026:04:35:23 +0000] \"HEAD /v2/library/nginx/manifests/sha256:abcd HTTP/1.1\" 200 0 \"\" \"containerd\"
10.88.0.1 - - [02/Dec/2026:04:35:24 +0000] \"GET /v2/test/img/blobs/sha256:ffff HTTP/1.1\" 200 2097152 \"\" \"skopeo\"
10.88.0.1 - - [02/Dec/2026:04:35:25 +0000] \"GET /v2/gone/img/manifests/9 HTTP/1.1\" 404 96 \"\" \"skopeo\"
time=\"2026-12-02T04:35:23Z\" level=info msg=\"response completed\" http.request.uri=/v2/x/manifests/1
";
        let seen = manifest_requests(log);
        assert_eq!(
            seen.into_iter().collect::<Vec<_>>(),
            [
                ("library/nginx".to_string(), "sha256:abcd".to_string()),
                ("test/img".to_string(), "1".to_string()),
            ]
        );
    }
}
