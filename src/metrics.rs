//! The registry's own counters, read from its debug port: the Prometheus text
//! of `/metrics` and the expvar JSON of `/debug/vars`, turned into one set of
//! proxy numbers per cache.
//!
//! The two registry versions count differently (see
//! `tests/fixtures/registry/README.md`):
//!
//! - registry 3 exports `registry_proxy_{requests,hits,misses,pulled_bytes,
//!   pushed_bytes}_total{type="blob"|"manifest"}` and counts them right;
//! - registry 2.8 has no proxy counters in `/metrics`, and in `/debug/vars` it
//!   never counts blob misses: each missed blob is fetched from the upstream
//!   twice and both fetches are counted as requests and hits. The true numbers
//!   follow from `/debug/vars` together with the HTTP counters of `/metrics`
//!   (what clients really received).
//!
//! Both versions also export counters of their blob *descriptor* cache
//! (`registry_storage_cache_total{type=...}` on 2.8,
//! `registry_storage_cache_{requests,hits}_total` on 3); they are reported as
//! such and are not the proxy hit rate.

use serde::Serialize;

/// One sample of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A parsed `/metrics` page.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub samples: Vec<Sample>,
}

impl Metrics {
    /// Parse the Prometheus text exposition format (version 0.0.4).
    pub fn parse(text: &str) -> Result<Metrics, String> {
        let mut samples = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let sample = parse_sample(line)
                .ok_or_else(|| format!("line {}: cannot parse {line:?}", index + 1))?;
            samples.push(sample);
        }
        Ok(Metrics { samples })
    }

    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }

    /// The sum of the samples of `name` whose labels satisfy `keep`; None when
    /// there is no such sample.
    pub fn sum_where(&self, name: &str, keep: impl Fn(&Sample) -> bool) -> Option<f64> {
        let mut found = None;
        for s in self.samples.iter().filter(|s| s.name == name && keep(s)) {
            *found.get_or_insert(0.0) += s.value;
        }
        found
    }

    /// The sum of the samples of `name` carrying every label in `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.sum_where(name, |s| labels.iter().all(|(k, v)| s.label(k) == Some(*v)))
    }
}

fn parse_sample(line: &str) -> Option<Sample> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let (parsed, remainder) = parse_labels(after)?;
        labels = parsed;
        rest = remainder;
    }
    // The value, then an optional timestamp.
    let value = rest.split_whitespace().next()?;
    Some(Sample {
        name: name.to_string(),
        labels,
        value: parse_value(value)?,
    })
}

/// `k="v",k2="v2"}` -> labels and what follows the closing brace.
fn parse_labels(mut text: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        text = text.trim_start_matches([' ', ',']);
        if let Some(rest) = text.strip_prefix('}') {
            return Some((labels, rest));
        }
        let eq = text.find('=')?;
        let key = text[..eq].trim().to_string();
        let quoted = text[eq + 1..].trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut escaped = false;
        let mut end = None;
        for (i, c) in quoted.char_indices() {
            match (escaped, c) {
                (true, 'n') => {
                    value.push('\n');
                    escaped = false;
                }
                (true, c) => {
                    value.push(c);
                    escaped = false;
                }
                (false, '\\') => escaped = true,
                (false, '"') => {
                    end = Some(i + 1);
                    break;
                }
                (false, c) => value.push(c),
            }
        }
        labels.push((key, value));
        text = &quoted[end?..];
    }
}

fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

/// The `registry.proxy.{blobs,manifests}` counters of `/debug/vars`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct VarCounts {
    pub requests: u64,
    pub hits: u64,
    pub misses: u64,
    pub bytes_pulled: u64,
    pub bytes_pushed: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DebugVars {
    pub blobs: VarCounts,
    pub manifests: VarCounts,
}

impl DebugVars {
    /// Parse `/debug/vars`; only the proxy counters are read.
    pub fn parse(json: &str) -> Result<DebugVars, String> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
        let proxy = value
            .pointer("/registry/proxy")
            .ok_or("no registry.proxy counters (is the registry in proxy mode?)")?;
        let counts = |key: &str| -> Result<VarCounts, String> {
            match proxy.get(key) {
                Some(v) => serde_json::from_value(v.clone())
                    .map_err(|e| format!("registry.proxy.{key}: {e}")),
                None => Err(format!("no registry.proxy.{key}")),
            }
        };
        Ok(DebugVars {
            blobs: counts("blobs")?,
            manifests: counts("manifests")?,
        })
    }
}

/// Which registry's way of counting a `/metrics` page shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Format {
    #[serde(rename = "registry-2.8")]
    Registry28,
    #[serde(rename = "registry-3")]
    Registry3,
}

impl Format {
    pub fn detect(metrics: &Metrics) -> Option<Format> {
        if metrics.has("registry_proxy_requests_total")
            || metrics.has("registry_storage_cache_requests_total")
        {
            Some(Format::Registry3)
        } else if metrics
            .samples
            .iter()
            .any(|s| s.name.starts_with("registry_"))
        {
            // registry 3 registers its proxy and cache counters at start;
            // 2.8 creates its labelled counters at first use, so a fresh 2.8
            // shows only gauges and timers.
            Some(Format::Registry28)
        } else {
            None
        }
    }
}

/// Proxy counters of one kind of object, as a cache user means them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Objects served to clients (GETs that got the object).
    pub requests: u64,
    /// Served from the cache's storage.
    pub hits: u64,
    /// Fetched from the upstream.
    pub misses: u64,
    /// Bytes fetched from the upstream.
    pub upstream_bytes: u64,
    /// Bytes served to clients.
    pub served_bytes: u64,
}

/// The registry's blob descriptor cache (not the proxy cache).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DescriptorCache {
    pub requests: u64,
    pub hits: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProxyStats {
    pub format: Format,
    pub manifests: Counts,
    pub blobs: Counts,
    /// Share of requests (manifests and blobs) served from the cache; None
    /// before the first request.
    pub hit_rate: Option<f64>,
    pub descriptor_cache: Option<DescriptorCache>,
}

fn count(value: Option<f64>) -> u64 {
    // Counters are exported as floats (`2.098443e+06`); they are whole numbers.
    value.map_or(0, |v| {
        if v.is_finite() && v > 0.0 {
            v.round() as u64
        } else {
            0
        }
    })
}

/// Combine what the debug port served into proxy numbers. `vars` is needed
/// for registry 2.8 only.
pub fn proxy_stats(metrics: &Metrics, vars: Option<&DebugVars>) -> Result<ProxyStats, String> {
    let format = Format::detect(metrics)
        .ok_or("/metrics shows no registry counters this drcache knows (registry 2.8 or 3)")?;
    let (manifests, blobs, descriptor_cache) = match format {
        Format::Registry3 => {
            let kind = |kind: &str| -> Option<Counts> {
                let get = |name: &str| metrics.sum(name, &[("type", kind)]);
                get("registry_proxy_requests_total")?;
                Some(Counts {
                    requests: count(get("registry_proxy_requests_total")),
                    hits: count(get("registry_proxy_hits_total")),
                    misses: count(get("registry_proxy_misses_total")),
                    upstream_bytes: count(get("registry_proxy_pulled_bytes_total")),
                    served_bytes: count(get("registry_proxy_pushed_bytes_total")),
                })
            };
            // registry 3 without the Prometheus proxy counters: its
            // /debug/vars counts the same way.
            let from_vars = |v: &VarCounts| Counts {
                requests: v.requests,
                hits: v.hits,
                misses: v.misses,
                upstream_bytes: v.bytes_pulled,
                served_bytes: v.bytes_pushed,
            };
            let (manifests, blobs) = match (kind("manifest"), kind("blob"), vars) {
                (Some(m), Some(b), _) => (m, b),
                (_, _, Some(v)) => (from_vars(&v.manifests), from_vars(&v.blobs)),
                _ => return Err("neither registry_proxy_* counters nor /debug/vars".into()),
            };
            let descriptor = metrics
                .sum("registry_storage_cache_requests_total", &[])
                .map(|requests| DescriptorCache {
                    requests: count(Some(requests)),
                    hits: count(metrics.sum("registry_storage_cache_hits_total", &[])),
                });
            (manifests, blobs, descriptor)
        }
        Format::Registry28 => {
            let vars = vars.ok_or(
                "registry 2.8 counts proxy hits only in /debug/vars, which did not answer",
            )?;
            let descriptor = metrics
                .sum("registry_storage_cache_total", &[("type", "Request")])
                .map(|requests| DescriptorCache {
                    requests: count(Some(requests)),
                    hits: count(metrics.sum("registry_storage_cache_total", &[("type", "Hit")])),
                });
            (
                manifests_28(&vars.manifests),
                blobs_28(&vars.blobs, metrics),
                descriptor,
            )
        }
    };
    let requests = manifests.requests + blobs.requests;
    let hits = manifests.hits + blobs.hits;
    Ok(ProxyStats {
        format,
        manifests,
        blobs,
        hit_rate: (requests > 0).then(|| hits as f64 / requests as f64),
        descriptor_cache,
    })
}

/// 2.8 counts every manifest it serves as a hit, and misses correctly.
fn manifests_28(v: &VarCounts) -> Counts {
    Counts {
        requests: v.requests,
        hits: v.requests.saturating_sub(v.misses),
        misses: v.misses,
        upstream_bytes: v.bytes_pulled,
        served_bytes: v.bytes_pushed,
    }
}

/// 2.8 adds one to `Requests` (and `Hits`) and the blob's size to
/// `BytesPushed` for every blob served from storage, and for every blob copied
/// from the upstream, which happens twice per miss: to the client and into
/// storage. What clients received is in the HTTP counters of `/metrics`; the
/// difference is what was stored, one copy per miss.
fn blobs_28(v: &VarCounts, metrics: &Metrics) -> Counts {
    let served_requests = count(metrics.sum_where("registry_http_requests_total", |s| {
        s.label("handler") == Some("blob")
            && s.label("method")
                .is_some_and(|m| m.eq_ignore_ascii_case("get"))
            && s.label("code").is_some_and(|c| c.starts_with('2'))
    }));
    let served_bytes = count(metrics.sum(
        "registry_http_response_size_bytes_sum",
        &[("handler", "blob")],
    ));
    let misses = v.requests.saturating_sub(served_requests);
    let stored_bytes = v.bytes_pushed.saturating_sub(served_bytes);
    Counts {
        requests: served_requests,
        hits: served_requests.saturating_sub(misses),
        misses,
        // The client's copy of a missed blob came from the upstream too.
        upstream_bytes: stored_bytes * 2,
        served_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_that_are_not_whole_positive_numbers_count_zero() {
        assert_eq!(count(Some(2.098443e+06)), 2_098_443);
        assert_eq!(count(Some(f64::INFINITY)), 0);
        assert_eq!(count(Some(f64::NAN)), 0);
        assert_eq!(count(Some(-3.0)), 0);
        assert_eq!(count(None), 0);
    }

    fn fixture(name: &str) -> String {
        let path = format!(
            "{}/tests/fixtures/registry/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn stats(version: &str, when: &str) -> ProxyStats {
        let metrics =
            Metrics::parse(&fixture(&format!("registry-{version}-metrics-{when}.txt"))).unwrap();
        let vars = DebugVars::parse(&fixture(&format!(
            "registry-{version}-debug-vars-{when}.json"
        )))
        .unwrap();
        proxy_stats(&metrics, Some(&vars)).unwrap()
    }

    const LAYER: u64 = 2_097_942;
    const CONFIG: u64 = 501;
    const MANIFEST: u64 = 503;

    #[test]
    fn parses_prometheus_text() {
        let m = Metrics::parse(concat!(
            "# HELP x_total help\n# TYPE x_total counter\n",
            "x_total{code=\"200\",handler=\"blob\"} 4\n",
            "x_total{code=\"404\",handler=\"blob\"} 1.5e+01 1700000000000\n",
            "y{le=\"+Inf\",path=\"a\\\"b\\\\c\\nd\"} +Inf\n",
            "z 3\n",
        ))
        .unwrap();
        assert_eq!(m.sum("x_total", &[("handler", "blob")]), Some(19.0));
        assert_eq!(m.sum("x_total", &[("code", "200")]), Some(4.0));
        assert_eq!(m.sum("x_total", &[("code", "500")]), None);
        assert_eq!(m.samples[2].label("path"), Some("a\"b\\c\nd"));
        assert!(m.samples[2].value.is_infinite());
        assert_eq!(m.sum("z", &[]), Some(3.0));
        assert!(Metrics::parse("broken{a=\"b\" 1\n").is_err());
        assert!(Metrics::parse("x{a=b} 1\n").is_err());
    }

    #[test]
    fn every_fixture_parses() {
        for name in [
            "registry-2.8.2-metrics-fresh.txt",
            "registry-2.8.2-metrics-cold-pull.txt",
            "registry-2.8.2-metrics-warm-pull.txt",
            "registry-3.1.1-metrics-fresh.txt",
            "registry-3.1.1-metrics-cold-pull.txt",
            "registry-3.1.1-metrics-warm-pull.txt",
        ] {
            let m = Metrics::parse(&fixture(name)).unwrap();
            assert!(m.samples.len() > 50, "{name}");
        }
    }

    #[test]
    fn detects_the_format() {
        let m28 = Metrics::parse(&fixture("registry-2.8.2-metrics-fresh.txt")).unwrap();
        assert_eq!(Format::detect(&m28), Some(Format::Registry28));
        for when in ["fresh", "cold-pull", "warm-pull"] {
            let m3 =
                Metrics::parse(&fixture(&format!("registry-3.1.1-metrics-{when}.txt"))).unwrap();
            assert_eq!(Format::detect(&m3), Some(Format::Registry3), "{when}");
        }
        assert_eq!(
            Format::detect(&Metrics::parse("go_goroutines 9\n").unwrap()),
            None
        );
    }

    #[test]
    fn registry_28_fresh_counts_nothing() {
        let s = stats("2.8.2", "fresh");
        assert_eq!(s.format, Format::Registry28);
        assert_eq!(s.blobs, Counts::default());
        assert_eq!(s.manifests, Counts::default());
        assert_eq!(s.hit_rate, None);
    }

    #[test]
    fn registry_28_cold_pull_is_all_misses_fetched_twice() {
        // The raw counters claim 4 blob hits and no miss...
        let vars = DebugVars::parse(&fixture("registry-2.8.2-debug-vars-cold-pull.json")).unwrap();
        assert_eq!(
            (vars.blobs.requests, vars.blobs.hits, vars.blobs.misses),
            (4, 4, 0)
        );
        // ...the truth is two misses, each fetched twice from the upstream.
        let s = stats("2.8.2", "cold-pull");
        assert_eq!(
            s.blobs,
            Counts {
                requests: 2,
                hits: 0,
                misses: 2,
                upstream_bytes: 2 * (LAYER + CONFIG),
                served_bytes: LAYER + CONFIG,
            }
        );
        assert_eq!(
            s.manifests,
            Counts {
                requests: 1,
                hits: 0,
                misses: 1,
                upstream_bytes: MANIFEST,
                served_bytes: MANIFEST,
            }
        );
        assert_eq!(s.hit_rate, Some(0.0));
        assert_eq!(
            s.descriptor_cache,
            Some(DescriptorCache {
                requests: 15,
                hits: 6
            })
        );
    }

    #[test]
    fn registry_28_warm_pull_adds_hits_only() {
        let s = stats("2.8.2", "warm-pull");
        assert_eq!(
            s.blobs,
            Counts {
                requests: 4,
                hits: 2,
                misses: 2,
                upstream_bytes: 2 * (LAYER + CONFIG),
                served_bytes: 2 * (LAYER + CONFIG),
            }
        );
        assert_eq!(
            (s.manifests.requests, s.manifests.hits, s.manifests.misses),
            (2, 1, 1)
        );
        assert_eq!(s.manifests.upstream_bytes, MANIFEST);
        assert_eq!(s.hit_rate, Some(0.5));
    }

    #[test]
    fn registry_3_fresh_counts_nothing() {
        let s = stats("3.1.1", "fresh");
        assert_eq!(s.format, Format::Registry3);
        assert_eq!(s.blobs, Counts::default());
        assert_eq!(s.manifests, Counts::default());
        assert_eq!(s.hit_rate, None);
        assert_eq!(
            s.descriptor_cache,
            Some(DescriptorCache {
                requests: 0,
                hits: 0
            })
        );
    }

    #[test]
    fn registry_3_cold_pull_fetches_each_miss_once() {
        // Confirmed by the upstream's access log: each blob GET once.
        let access = fixture("registry-3.1.1-upstream-access-cold-pull.txt");
        assert_eq!(access.matches("\"GET /v2/test/img/blobs/").count(), 2);
        let s = stats("3.1.1", "cold-pull");
        assert_eq!(
            s.blobs,
            Counts {
                requests: 2,
                hits: 0,
                misses: 2,
                upstream_bytes: LAYER + CONFIG,
                served_bytes: LAYER + CONFIG,
            }
        );
        assert_eq!(
            s.manifests,
            Counts {
                requests: 1,
                hits: 0,
                misses: 1,
                upstream_bytes: MANIFEST,
                served_bytes: MANIFEST,
            }
        );
        assert_eq!(s.hit_rate, Some(0.0));
        assert_eq!(
            s.descriptor_cache,
            Some(DescriptorCache {
                requests: 12,
                hits: 4
            })
        );
    }

    #[test]
    fn registry_3_reads_the_proxy_counters() {
        // The warm pull fetched no blob from the upstream.
        let access = fixture("registry-3.1.1-upstream-access-warm-pull.txt");
        assert!(!access.contains("/blobs/"), "{access}");
        let s = stats("3.1.1", "warm-pull");
        assert_eq!(s.format, Format::Registry3);
        assert_eq!(
            s.blobs,
            Counts {
                requests: 4,
                hits: 2,
                misses: 2,
                upstream_bytes: LAYER + CONFIG,
                served_bytes: 2 * (LAYER + CONFIG),
            }
        );
        assert_eq!(
            s.manifests,
            Counts {
                requests: 2,
                hits: 1,
                misses: 1,
                upstream_bytes: MANIFEST,
                served_bytes: 2 * MANIFEST,
            }
        );
        assert_eq!(s.hit_rate, Some(0.5));
        assert_eq!(
            s.descriptor_cache,
            Some(DescriptorCache {
                requests: 23,
                hits: 15
            })
        );
        // /debug/vars of registry 3 counts the same; it is the fallback when
        // the Prometheus proxy counters are absent.
        for when in ["fresh", "cold-pull", "warm-pull"] {
            let metrics = Metrics::parse("registry_storage_cache_requests_total 1\n").unwrap();
            let vars =
                DebugVars::parse(&fixture(&format!("registry-3.1.1-debug-vars-{when}.json")))
                    .unwrap();
            let from_vars = proxy_stats(&metrics, Some(&vars)).unwrap();
            let s = stats("3.1.1", when);
            assert_eq!(from_vars.blobs, s.blobs, "{when}");
            assert_eq!(from_vars.manifests, s.manifests, "{when}");
        }
    }

    #[test]
    fn the_hit_rate_counts_manifests_and_blobs_together() {
        // Manifests 3 of 4 from the cache, blobs 1 of 6: neither ratio
        // alone, nor their mean, is the share of requests served.
        let metrics = Metrics::parse(concat!(
            "registry_proxy_requests_total{type=\"manifest\"} 4\n",
            "registry_proxy_hits_total{type=\"manifest\"} 3\n",
            "registry_proxy_misses_total{type=\"manifest\"} 1\n",
            "registry_proxy_requests_total{type=\"blob\"} 6\n",
            "registry_proxy_hits_total{type=\"blob\"} 1\n",
            "registry_proxy_misses_total{type=\"blob\"} 5\n",
        ))
        .unwrap();
        let s = proxy_stats(&metrics, None).unwrap();
        assert_eq!((s.manifests.requests, s.manifests.hits), (4, 3));
        assert_eq!((s.blobs.requests, s.blobs.hits), (6, 1));
        assert_eq!(s.hit_rate, Some(0.4));
    }

    #[test]
    fn registry_28_needs_debug_vars() {
        let metrics = Metrics::parse(&fixture("registry-2.8.2-metrics-warm-pull.txt")).unwrap();
        let err = proxy_stats(&metrics, None).unwrap_err();
        assert!(err.contains("/debug/vars"), "{err}");
    }

    #[test]
    fn debug_vars_errors_say_what_is_missing() {
        assert!(DebugVars::parse("{").unwrap_err().starts_with("not JSON"));
        assert!(DebugVars::parse(r#"{"registry":{}}"#)
            .unwrap_err()
            .contains("proxy mode"));
        let partial = r#"{"registry":{"proxy":{"blobs":{"Requests":1}}}}"#;
        assert_eq!(
            DebugVars::parse(partial).unwrap_err(),
            "no registry.proxy.manifests"
        );
    }
}
