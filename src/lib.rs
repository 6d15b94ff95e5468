//! ocigo: Go module closures and toolchains as signed OCI artifacts, for
//! networks with no internet.
//!
//! The crate is one library with a thin CLI (`src/main.rs`) on top. Each
//! module owns one concern; see its `//!` header for what it owns and what it
//! must not touch.

pub mod artifact;
pub mod closure;
pub mod commands;
pub mod error;
pub mod fs;
pub mod gomod;
pub mod install;
pub mod oci;
pub mod parallel;
pub mod policy;
pub mod progress;
pub mod registry;
pub mod rfc3339;
pub mod sbom;
pub mod sign;
pub mod store;
pub mod sumdata;
pub mod text;
pub mod toolchain;
pub mod transfer;
