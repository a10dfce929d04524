//! What `configure`, `unconfigure` and `doctor` share about minikube
//! clusters: which profiles and nodes to act on ([`select`]), how a node
//! reaches a cache ([`reach`]), the wiring itself ([`wire`]) and its report
//! ([`report`]). The typed minikube calls are in `crate::minikube`.

pub mod reach;
pub mod report;
pub mod select;
pub mod wire;
