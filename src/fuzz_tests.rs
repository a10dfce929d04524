//! Bounded property tests: every parser of config files and tool output
//! returns a value or an error naming what it was reading, and never panics.

use proptest::prelude::*;

use crate::host::{linux, macos};
use crate::{config, credentials, minikube, podman, reconcile};

/// Text that looks a little like the real inputs, so the parsers get past
/// their first byte: TOML and JSON punctuation, keys they know, and noise.
fn almost_structured() -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        Just("[[registry]]\n".to_string()),
        Just("name = \"quay.io\"\n".to_string()),
        Just("port = 5051\n".to_string()),
        Just("upstream = ".to_string()),
        Just("{\"Names\":[".to_string()),
        Just("\"State\":null,".to_string()),
        Just("[{\"Name\":".to_string()),
        Just("\"Labels\":{}".to_string()),
        Just("}]".to_string()),
        "[ -~]{0,12}",
        any::<String>(),
    ];
    prop::collection::vec(pieces, 0..12).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn config_parser_never_panics(text in almost_structured()) {
        if let Err(e) = config::parse(&text, "fuzz.toml") {
            prop_assert!(e.to_string().starts_with("fuzz.toml"));
        }
    }

    #[test]
    fn podman_parsers_never_panic(text in almost_structured()) {
        if let Err(e) = podman::parse_containers(&text) {
            let text = format!("{:#}", e);
            prop_assert!(text.contains("podman ps"));
        }
        if let Err(e) = podman::parse_volumes(&text) {
            let text = format!("{:#}", e);
            prop_assert!(text.contains("podman volume ls"));
        }
    }

    #[test]
    fn minikube_parsers_never_panic(text in almost_structured()) {
        if let Err(e) = minikube::parse_profiles(&text) {
            let text = format!("{:#}", e);
            prop_assert!(text.contains("minikube profile list"));
        }
        if let Err(e) = minikube::parse_status(&text) {
            let text = format!("{:#}", e);
            prop_assert!(text.contains("minikube status"));
        }
        let _ = minikube::node_scripts::parse_sync(&text);
        let _ = minikube::node_scripts::parse_checks(&text);
    }

    #[test]
    fn firewall_parsers_never_panic(text in any::<String>()) {
        let _ = linux::parse_service_info(&text);
        let _ = linux::parse_zone_services(&text);
        let _ = macos::parse_app_state(&text);
    }

    #[test]
    fn log_and_auth_readers_never_panic(text in any::<String>(), host in "[a-z:/.]{0,20}") {
        let _ = reconcile::upstream_failure(&text, &host);
        let _ = credentials::find_in_auth_json(&text, &host);
        let _ = credentials::parse_credentials_line(&text);
    }
}
