//! OCI 1.1 referrers on a registry: the referrers API
//! (`GET /v2/<name>/referrers/<digest>[?artifactType=]`, an image index,
//! paged with `Link`), and for registries without it (they answer 404:
//! CNCF distribution 2.8 and v3.1.2, the registry Harbor embeds before
//! 2.8) the
//! referrers tag schema: the tag `sha256-<hex>` holding an image index of
//! the referrers, which the client maintains itself.
//!
//! Pushing a manifest with `subject`: a registry that understood the
//! subject answers the PUT with an `OCI-Subject` header; without it, the
//! fallback index is read, extended and pushed again. Harbor 2.8+ answers
//! `OCI-Subject` and serves the API but never reads the fallback tag, so
//! both worlds find a referrer pushed this way.
//!
//! Owns: those two endpoints' meaning. Must not: interpret what a referrer
//! is (signature, SBOM); nothing here verifies a referrer's own `subject`
//! (the listing is the registry's word; callers that copy or verify read
//! the manifest and check it).

use std::collections::HashSet;
use std::io::Read;

use anyhow::Result;

use super::auth::Access;
use super::check_manifest_size;
use super::client::SMALL_REQUEST_TIMEOUT;
use super::url::{join_url, next_link};
use super::{Payload, RegistryRepository};
use crate::error::{Kind, fail, kind_of};
use crate::oci::{
    self, Descriptor, Digest, Index, MAX_MANIFEST_BYTES, MEDIA_TYPE_INDEX, ReferrerInfo, Referrers,
    Repository,
};

/// Pages of the referrers API followed before giving up: a registry that
/// pages without end does not hold ocigo.
const MAX_REFERRERS_PAGES: usize = 1000;

impl RegistryRepository {
    /// The referrers API's answer: `Ok(None)` when the registry does not
    /// have the API (404), else every page's descriptors.
    fn referrers_api(
        &self,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Option<Vec<Descriptor>>> {
        let mut url = {
            let mut u = ::url::Url::parse(&format!("{}/referrers/{subject}", self.api()))
                .expect("the registry base is a URL");
            if let Some(t) = artifact_type {
                u.query_pairs_mut().append_pair("artifactType", t);
            }
            u.to_string()
        };
        let what = format!("list the referrers of {subject}");
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for page in 0.. {
            if page >= MAX_REFERRERS_PAGES || !seen.insert(url.clone()) {
                return Err(fail(
                    Kind::Remote,
                    format!(
                        "registry {} pages the referrers of {subject} without end (at page {})",
                        self.host,
                        page + 1
                    ),
                ));
            }
            let resp = self.request(
                "GET",
                &url,
                Access::Pull,
                &[("Accept", MEDIA_TYPE_INDEX)],
                Payload::Empty,
                Some(SMALL_REQUEST_TIMEOUT),
            )?;
            match resp.status() {
                200 => {}
                // No referrers API (only the first page can tell).
                404 if page == 0 => return Ok(None),
                _ => return Err(self.status_error(resp, &what)),
            }
            let next = resp
                .all("link")
                .into_iter()
                .find_map(next_link)
                .and_then(|l| join_url(&url, &l));
            let mut body = Vec::new();
            resp.into_reader()
                .take(MAX_MANIFEST_BYTES as u64 + 1)
                .read_to_end(&mut body)
                .map_err(|e| {
                    fail(
                        Kind::Remote,
                        format!(
                            "reading the referrers of {subject} from {}: {e}",
                            self.location()
                        ),
                    )
                })?;
            if body.len() > MAX_MANIFEST_BYTES {
                return Err(fail(
                    Kind::Remote,
                    format!(
                        "registry {} sent a referrers page over {MAX_MANIFEST_BYTES} bytes for \
                         {subject}; refusing it",
                        self.host
                    ),
                ));
            }
            let index: Index = serde_json::from_slice(&body).map_err(|e| {
                fail(
                    Kind::Remote,
                    format!(
                        "registry {} answered the referrers of {subject} with something that \
                         is not an image index: {e}",
                        self.host
                    ),
                )
            })?;
            out.extend(index.manifests);
            match next {
                Some(n) => url = n,
                None => break,
            }
        }
        Ok(Some(out))
    }

    /// The fallback tag's index, `None` when the tag does not exist.
    fn fallback_index(&self, subject: &Digest) -> Result<Option<Index>> {
        let tag = oci::referrers_tag(subject);
        let desc = match self.resolve(&tag) {
            Ok(d) => d,
            Err(e) if kind_of(&e) == Some(Kind::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        let fetched = self.fetch_manifest(&desc)?;
        if !fetched.is_index() {
            return Err(fail(
                Kind::Integrity,
                format!(
                    "tag {tag} in {} is not an image index, so it is not a referrers index; \
                     remove or retag it",
                    self.location()
                ),
            ));
        }
        Ok(Some(fetched.index()?))
    }

    /// Pushes `bytes` by digest; `Ok((descriptor, confirmed))` where
    /// `confirmed` says the registry answered `OCI-Subject` (it tracks the
    /// subject itself).
    fn put_manifest_with_subject(
        &self,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<(Descriptor, bool)> {
        check_manifest_size(bytes)?;
        let desc = Descriptor::for_bytes(media_type, bytes);
        let resp = self.put_manifest(media_type, bytes, &desc, desc.digest.as_str())?;
        let confirmed = resp.header("oci-subject").is_some();
        Ok((desc, confirmed))
    }
}

impl Referrers for RegistryRepository {
    fn referrers(&self, subject: &Digest, artifact_type: Option<&str>) -> Result<Vec<Descriptor>> {
        // The API's filter is optional for a registry (OCI-Filters-Applied
        // says whether it applied it): filter again here either way.
        let list = match self.referrers_api(subject, artifact_type)? {
            Some(list) => list,
            None => self
                .fallback_index(subject)?
                .map(|i| i.manifests)
                .unwrap_or_default(),
        };
        Ok(oci::filter_referrers(list, artifact_type))
    }

    fn push_referrer(
        &self,
        media_type: &str,
        bytes: &[u8],
        subject: &Descriptor,
    ) -> Result<Descriptor> {
        let info = ReferrerInfo::of(bytes).ok_or_else(|| {
            fail(
                Kind::Usage,
                "a referrer must be an OCI manifest or index (JSON)",
            )
        })?;
        if info.subject.as_ref().map(|s| &s.digest) != Some(&subject.digest) {
            return Err(fail(
                Kind::Usage,
                format!(
                    "the manifest pushed as a referrer of {} names another subject",
                    subject.digest
                ),
            ));
        }
        let (desc, confirmed) = self.put_manifest_with_subject(media_type, bytes)?;
        if !confirmed {
            // The referrers tag schema: read, extend, push the index. Two
            // writers at once can lose an entry (as with every client of the
            // schema); pushing again restores it.
            let entry = info.descriptor(media_type, bytes);
            let current = self.fallback_index(&subject.digest)?;
            if let Some(index) = oci::referrers_index_with(current, &entry) {
                let tag = oci::referrers_tag(&subject.digest);
                self.push_manifest(
                    MEDIA_TYPE_INDEX,
                    &oci::to_canonical_json(&index),
                    Some(&tag),
                )
                .map_err(|e| {
                    e.context(format!(
                        "updating the referrers index {tag} of {} in {}",
                        subject.digest,
                        self.location()
                    ))
                })?;
            }
        }
        Ok(desc)
    }
}
