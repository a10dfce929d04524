//! Finding the external tools: an environment override first, then PATH.

use std::path::{Path, PathBuf};

use crate::errors::{exit, Hinted};

/// A tool drcache drives, with the variable that overrides its location.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    pub name: &'static str,
    pub env_var: &'static str,
    /// Where to look when it is not on PATH (e.g. macOS's socketfilterfw).
    pub fallback: Option<&'static str>,
    pub install_hint: &'static str,
}

pub const PODMAN: Tool = Tool {
    name: "podman",
    env_var: "DRCACHE_PODMAN",
    fallback: None,
    install_hint: "install podman (https://podman.io/docs/installation)",
};

pub const MINIKUBE: Tool = Tool {
    name: "minikube",
    env_var: "DRCACHE_MINIKUBE",
    fallback: None,
    install_hint: "install minikube (https://minikube.sigs.k8s.io/docs/start/)",
};

pub const FIREWALL_CMD: Tool = Tool {
    name: "firewall-cmd",
    env_var: "DRCACHE_FIREWALL_CMD",
    fallback: None,
    install_hint: "install firewalld",
};

/// macOS's application firewall tool; it is not on PATH.
pub const SOCKETFILTERFW: Tool = Tool {
    name: "socketfilterfw",
    env_var: "DRCACHE_SOCKETFILTERFW",
    fallback: Some("/usr/libexec/ApplicationFirewall/socketfilterfw"),
    install_hint: "socketfilterfw is part of macOS",
};

pub const SUDO: Tool = Tool {
    name: "sudo",
    env_var: "DRCACHE_SUDO",
    fallback: None,
    install_hint: "install sudo or run drcache as root",
};

/// systemd's manager client, for the autostart units.
pub const SYSTEMCTL: Tool = Tool {
    name: "systemctl",
    env_var: "DRCACHE_SYSTEMCTL",
    fallback: None,
    install_hint: "systemctl is part of systemd",
};

/// macOS's launchd client, for the autostart agent.
pub const LAUNCHCTL: Tool = Tool {
    name: "launchctl",
    env_var: "DRCACHE_LAUNCHCTL",
    fallback: Some("/bin/launchctl"),
    install_hint: "launchctl is part of macOS",
};

/// Resolve `tool` to an executable path.
pub fn find(tool: &Tool) -> Result<PathBuf, Hinted> {
    find_with(tool, std::env::var_os(tool.env_var).map(PathBuf::from))
}

/// Like [`find`], but a tool that is not installed is no error: None. An
/// override that points at nothing still is (the user asked for it).
pub fn find_installed(tool: &Tool) -> Result<Option<PathBuf>, Hinted> {
    let override_path = std::env::var_os(tool.env_var).filter(|p| !p.is_empty());
    let overridden = override_path.is_some();
    match find_with(tool, override_path.map(PathBuf::from)) {
        Ok(path) => Ok(Some(path)),
        Err(_) if !overridden => Ok(None),
        Err(e) => Err(e),
    }
}

/// Like [`find`], but with the override given, for tests.
pub fn find_with(tool: &Tool, override_path: Option<PathBuf>) -> Result<PathBuf, Hinted> {
    let missing = |message: String| Hinted {
        message,
        hint: format!(
            "{}, or set {} to the path of the {} executable",
            tool.install_hint, tool.env_var, tool.name
        ),
        code: exit::TOOL_MISSING,
    };
    if let Some(path) = override_path.filter(|p| !p.as_os_str().is_empty()) {
        // A bare name is looked up on PATH; a path must exist.
        return which::which(&path).map_err(|e| {
            missing(format!(
                "{} is set to {}, which is not an executable: {e}",
                tool.env_var,
                path.display()
            ))
        });
    }
    if let Ok(path) = which::which(tool.name) {
        return Ok(path);
    }
    if let Some(fallback) = tool.fallback.map(Path::new).filter(|p| p.is_file()) {
        return Ok(fallback.to_path_buf());
    }
    Err(missing(format!(
        "{} was not found on PATH{}",
        tool.name,
        tool.fallback
            .map(|f| format!(" nor at {f}"))
            .unwrap_or_default()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn override_must_be_executable_and_is_named_in_the_error() {
        let err = find_with(&PODMAN, Some(PathBuf::from("/nonexistent/podman"))).unwrap_err();
        assert!(err
            .message
            .contains("DRCACHE_PODMAN is set to /nonexistent/podman"));
        assert!(err.hint.contains("DRCACHE_PODMAN"));
        assert_eq!(err.code, exit::TOOL_MISSING);
    }

    #[test]
    fn override_with_a_bare_name_uses_path() {
        let path = find_with(&PODMAN, Some(PathBuf::from("sh"))).unwrap();
        assert!(path.is_absolute());
    }

    #[test]
    fn missing_tool_names_where_it_looked() {
        let tool = Tool {
            name: "drcache-no-such-tool",
            env_var: "DRCACHE_NO_SUCH_TOOL",
            fallback: Some("/nonexistent/tool"),
            install_hint: "install it",
        };
        let err = find_with(&tool, None).unwrap_err();
        assert_eq!(
            err.message,
            "drcache-no-such-tool was not found on PATH nor at /nonexistent/tool"
        );
        assert_eq!(
            err.hint,
            "install it, or set DRCACHE_NO_SUCH_TOOL to the path of the drcache-no-such-tool executable"
        );
    }
}
