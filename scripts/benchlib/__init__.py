"""scripts/bench as a package: the environment and its cleanup, the podman
helpers, the loopback cases, the network case, and the report."""
