//! Who may reach the caches: the `clients` key, a list of interface
//! patterns (`virbr*`, `podman0`) and networks in CIDR form
//! (`192.168.39.0/24`). The default is loopback and the networks local
//! clusters use; `"*"` opens the caches to every network.

use std::fmt;
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Client {
    /// Every network: no filter at all.
    Any,
    /// An interface name, or a prefix when it ends in `*`.
    Interface(String),
    /// A network: address and prefix length.
    Net(IpAddr, u8),
}

impl fmt::Display for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Client::Any => f.write_str("*"),
            Client::Interface(name) => f.write_str(name),
            Client::Net(addr, len) => write!(f, "{addr}/{len}"),
        }
    }
}

/// The networks local clusters use: loopback, libvirt's bridges (kvm2),
/// podman's and docker's networks (kic drivers), macOS's vmnet bridges.
pub const DEFAULT: &[&str] = &["lo", "virbr*", "podman*", "docker*", "br-*", "bridge1*"];

/// Parse one entry of `clients`.
pub fn parse(text: &str) -> Result<Client, String> {
    if text == "*" {
        return Ok(Client::Any);
    }
    if let Some((addr, len)) = text.split_once('/') {
        let addr: IpAddr = addr.parse().map_err(|_| {
            format!("clients: {text:?} is not a network (e.g. \"192.168.39.0/24\")")
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len: u8 = len
            .parse()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| format!("clients: {text:?} has a prefix length outside 0-{max}"))?;
        return Ok(Client::Net(addr, len));
    }
    if text.parse::<IpAddr>().is_ok() {
        let len = if text.contains(':') { 128 } else { 32 };
        return Ok(Client::Net(text.parse().unwrap(), len));
    }
    let name = text.strip_suffix('*').unwrap_or(text);
    let valid = !text.is_empty()
        && name.len() <= 15
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !valid {
        return Err(format!(
            "clients: {text:?} is neither an interface name (letters, digits, - _ ., at most 15, \
             optionally ending in *), nor a network like \"192.168.39.0/24\", nor \"*\""
        ));
    }
    Ok(Client::Interface(text.to_string()))
}

/// Whether `clients` lets every network in.
pub fn is_open(clients: &[Client]) -> bool {
    clients.contains(&Client::Any)
}

/// Whether interface `name` matches `pattern` (a trailing `*` is a prefix).
pub fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// This host's network interfaces, sorted.
pub fn interfaces() -> Vec<String> {
    let mut names = Vec::new();
    // SAFETY: if_nameindex returns an array ended by a zero entry, or null;
    // it is freed once, after the names are copied.
    unsafe {
        let list = libc::if_nameindex();
        if list.is_null() {
            return names;
        }
        let mut entry = list;
        while (*entry).if_index != 0 && !(*entry).if_name.is_null() {
            let name = std::ffi::CStr::from_ptr((*entry).if_name);
            names.push(name.to_string_lossy().into_owned());
            entry = entry.add(1);
        }
        libc::if_freenameindex(list);
    }
    names.sort();
    names.dedup();
    names
}

/// The interfaces of `all` that `clients` does not name: those a cache
/// published on every address is open to when no filter is in place.
pub fn others(clients: &[Client], all: &[String]) -> Vec<String> {
    all.iter()
        .filter(|name| {
            !clients
                .iter()
                .any(|c| matches!(c, Client::Interface(p) if matches(p, name)))
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_as_interfaces_networks_or_any() {
        assert_eq!(parse("virbr*").unwrap(), Client::Interface("virbr*".into()));
        assert_eq!(
            parse("192.0.2.0/24").unwrap(),
            Client::Net("192.0.2.0".parse().unwrap(), 24)
        );
        assert_eq!(
            parse("2001:db8::/32").unwrap(),
            Client::Net("2001:db8::".parse().unwrap(), 32)
        );
        assert_eq!(
            parse("198.51.100.7").unwrap(),
            Client::Net("198.51.100.7".parse().unwrap(), 32)
        );
        assert_eq!(parse("*").unwrap(), Client::Any);
        for bad in [
            "",
            "a b",
            "x\"y",
            "verylonginterface0",
            "10.0.0.0/33",
            "1.2.3/8",
            "eth*0",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        for text in DEFAULT {
            parse(text).unwrap();
        }
    }

    #[test]
    fn patterns_match_by_prefix_or_exactly() {
        assert!(matches("virbr*", "virbr0"));
        assert!(matches("virbr*", "virbr"));
        assert!(!matches("virbr*", "eth0"));
        assert!(matches("lo", "lo"));
        assert!(!matches("lo", "lo0"));
        let all: Vec<String> = ["eth0", "lo", "virbr0", "wlan0"].map(String::from).to_vec();
        let default: Vec<Client> = DEFAULT.iter().map(|c| parse(c).unwrap()).collect();
        assert_eq!(others(&default, &all), ["eth0", "wlan0"]);
        assert!(interfaces().contains(&"lo".to_string()));
    }
}
