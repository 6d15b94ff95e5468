//! Test harness shared by the integration tests: real registry processes,
//! fixture module proxies, and the real go command (also in a network
//! namespace with no route out).
#![allow(dead_code)]

pub mod closure;
pub mod cosign;
pub mod faults;
pub mod fixtures;
pub mod go;
pub mod http;
pub mod ocigo;
pub mod registry;
