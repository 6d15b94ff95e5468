//! Policies: rules an operator or a pipeline sets on what ocigo accepts.
//!
//! Owns: [`host`], the host pull policy. Must not: perform the operations
//! it rules on; commands ask it and apply the answer.

pub mod host;
