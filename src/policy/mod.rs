//! Policies: rules an operator or a pipeline sets on what ocigo accepts.
//!
//! Owns: [`host`], the host pull policy; and the deployment gate of `ocigo
//! policy check`: the policy file ([`spec`], read through [`yaml`] so every
//! error has a line and column), module path patterns and version ranges
//! ([`pattern`]), the Go vulnerability database ([`vulndb`]), rule
//! evaluation ([`rules`]) and the decision in text, JSON and SARIF
//! ([`report`]). Must not: perform the operations it rules on, or reach
//! repositories; commands gather the facts, ask it and apply the answer.

pub mod host;
pub mod pattern;
pub mod report;
pub mod rules;
pub mod spec;
pub mod vulndb;
pub mod yaml;
