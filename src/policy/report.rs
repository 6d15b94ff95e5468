//! The decision of a policy check and its three forms: text for people,
//! JSON (`schemas/policy-decision.v1.schema.json`; also the predicate of
//! the `--attest` in-toto statement) and SARIF 2.1.0 for code-scanning
//! dashboards.
//!
//! Owns: the decision's shape and rendering. Must not: evaluate rules.

use std::fmt::Write as _;

use serde::Serialize;

use super::rules::{Level, RuleResult, Status};
use crate::text::field;

/// The in-toto predicate type of a decision attestation.
pub const PREDICATE_TYPE: &str = "https://ocigo.dev/attestations/policy-decision/v1";

#[derive(Debug, Clone, Serialize)]
pub struct PolicyRef {
    /// The file as given on the command line.
    pub file: String,
    /// sha256 of the file's bytes.
    pub digest: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct BundleRef {
    pub reference: String,
    /// The manifest or index digest checked.
    pub digest: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DatabaseInfo {
    /// `index/db.json`'s `modified`.
    pub modified: String,
    pub age_seconds: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub predicate_type: String,
    /// Every rule held.
    pub passed: bool,
    pub policy: PolicyRef,
    pub bundle: BundleRef,
    /// When the check ran (RFC 3339, UTC).
    pub checked_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vulnerability_database: Option<DatabaseInfo>,
    /// Findings of level error, over all rules.
    pub violations: usize,
    pub rules: Vec<RuleResult>,
    /// The attestation pushed with `--attest` (its manifest digest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attestation: Option<String>,
}

impl Decision {
    pub fn new(
        policy: PolicyRef,
        bundle: BundleRef,
        checked_at: String,
        vulnerability_database: Option<DatabaseInfo>,
        rules: Vec<RuleResult>,
    ) -> Decision {
        let violations = rules
            .iter()
            .flat_map(|r| &r.findings)
            .filter(|f| f.level == Level::Error)
            .count();
        Decision {
            predicate_type: PREDICATE_TYPE.to_string(),
            passed: rules.iter().all(|r| r.status == Status::Pass),
            policy,
            bundle,
            checked_at,
            vulnerability_database,
            violations,
            rules,
            attestation: None,
        }
    }

    /// The text form: one line per rule, then its findings.
    pub fn human(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "policy {} ({}) on {} ({}): {}",
            field(&self.policy.file),
            self.policy.digest,
            field(&self.bundle.reference),
            self.bundle.digest,
            if self.passed {
                "PASS".to_string()
            } else {
                format!("FAIL, {} violation(s)", self.violations)
            }
        );
        for r in &self.rules {
            let _ = writeln!(
                out,
                "  {} {}: {}",
                match r.status {
                    Status::Pass => "pass",
                    Status::Fail => "FAIL",
                },
                r.rule,
                field(&r.summary)
            );
            for f in &r.findings {
                let level = match f.level {
                    Level::Error => "error",
                    Level::Warning => "warning",
                    Level::Note => "note",
                };
                let loc = f
                    .location
                    .as_ref()
                    .map(|l| match l.column {
                        Some(c) => format!(" [{}:{}:{c}]", field(&l.file), l.line),
                        None => format!(" [{}:{}]", field(&l.file), l.line),
                    })
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "    {level}: {}: {}{loc}",
                    field(&f.subject),
                    field(&f.message)
                );
            }
        }
        if let Some(a) = &self.attestation {
            let _ = writeln!(out, "decision attested: {a}");
        }
        out
    }

    /// SARIF 2.1.0: one run, one reporting descriptor per rule checked,
    /// one result per finding.
    pub fn sarif(&self) -> serde_json::Value {
        use serde_json::json;
        let rules: Vec<serde_json::Value> = self
            .rules
            .iter()
            .map(|r| {
                json!({
                    "id": r.rule,
                    "name": r.rule,
                    "shortDescription": {"text": format!("ocigo policy rule {} (README: Policy checks)", r.rule)},
                })
            })
            .collect();
        let mut results = Vec::new();
        for (i, r) in self.rules.iter().enumerate() {
            for f in &r.findings {
                let mut location = serde_json::Map::new();
                if let Some(l) = &f.location {
                    let mut region = json!({"startLine": l.line});
                    if let Some(c) = l.column {
                        region["startColumn"] = json!(c);
                    }
                    location.insert(
                        "physicalLocation".into(),
                        json!({
                            "artifactLocation": {"uri": file_uri(&l.file)},
                            "region": region,
                        }),
                    );
                }
                location.insert(
                    "logicalLocations".into(),
                    json!([{"fullyQualifiedName": f.subject}]),
                );
                let mut result = json!({
                    "ruleId": r.rule,
                    "ruleIndex": i,
                    "level": match f.level {
                        Level::Error => "error",
                        Level::Warning => "warning",
                        Level::Note => "note",
                    },
                    "message": {"text": format!("{}: {}", f.subject, f.message)},
                    "locations": [serde_json::Value::Object(location)],
                });
                if let Some(id) = &f.id {
                    result["properties"] = json!({"vulnerability": id});
                }
                results.push(result);
            }
        }
        json!({
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": [{
                "tool": {"driver": {
                    "name": "ocigo",
                    "version": env!("CARGO_PKG_VERSION"),
                    "rules": rules,
                }},
                "invocations": [{
                    "executionSuccessful": true,
                    "endTimeUtc": self.checked_at,
                }],
                "results": results,
                "properties": {
                    "passed": self.passed,
                    "policyDigest": self.policy.digest,
                    "bundleReference": self.bundle.reference,
                    "bundleDigest": self.bundle.digest,
                },
            }],
        })
    }
}

/// A file path as a SARIF `uri` (a URI reference): relative paths stay
/// relative, absolute ones become `file://` URIs; bytes outside the
/// unreserved set and `/` are percent-encoded.
pub fn file_uri(path: &str) -> String {
    let mut out = String::new();
    if path.starts_with('/') {
        out.push_str("file://");
    }
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn uris() {
        assert_eq!(super::file_uri("/a b/go.mod"), "file:///a%20b/go.mod");
        assert_eq!(super::file_uri("p/policy.yaml"), "p/policy.yaml");
    }
}
