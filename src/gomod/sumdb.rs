//! A client for the Go checksum database (`sum.golang.org`), as the go
//! command uses it: look a module version up, check the signed tree note
//! with the database's Ed25519 key (`golang.org/x/mod/sumdb/note`), and
//! prove that the record is in that tree from hash tiles
//! (`golang.org/x/mod/sumdb/tlog`, tiles of height 8) before trusting it.
//!
//! Owns: the note, record and tile formats and the Merkle proof. Reads
//! through a [`Fetch`] (a GOPROXY's `/sumdb/<name>/` over HTTP or a
//! `file://` tree such as `$GOMODCACHE/cache/download/sumdb/<name>/`).
//! Must not: write anywhere, or trust anything it has not proven.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result};
use base64::Engine;
use sha2::{Digest as _, Sha256};

use crate::error::{Kind, fail};

/// The go command's built-in key for `sum.golang.org`
/// (`cmd/go/internal/modfetch/key.go`).
pub const SUM_GOLANG_ORG_KEY: &str =
    "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8";
/// Tile height the Go checksum database uses.
const TILE_HEIGHT: u32 = 8;
const TILE_WIDTH: u64 = 1 << TILE_HEIGHT;
const HASH_SIZE: usize = 32;
/// Bounds on what is read from the database.
const MAX_RECORD_BYTES: u64 = 64 << 10;
const MAX_TILE_BYTES: u64 = TILE_WIDTH * HASH_SIZE as u64;
const ALG_ED25519: u8 = 1;

pub type Hash = [u8; HASH_SIZE];

/// `tlog.TreeHash(0, _)`: the hash of the empty tree.
pub fn empty_tree_hash() -> Hash {
    Sha256::digest([]).into()
}

fn bad(what: impl Into<String>) -> anyhow::Error {
    fail(
        Kind::Integrity,
        format!("checksum database: {}", what.into()),
    )
}

/// A note verifier key: `<name>+<hash8hex>+<base64(alg || key)>`.
#[derive(Clone)]
pub struct Verifier {
    pub name: String,
    key_hash: u32,
    key: ed25519_dalek::VerifyingKey,
}

impl Verifier {
    pub fn parse(vkey: &str) -> Result<Verifier> {
        let err = || {
            fail(
                Kind::Usage,
                format!("{vkey:?} is not a checksum database key"),
            )
        };
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(hash16), Some(key64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(err());
        };
        let key = base64::engine::general_purpose::STANDARD
            .decode(key64)
            .map_err(|_| err())?;
        let hash = u32::from_str_radix(hash16, 16).map_err(|_| err())?;
        if hash16.len() != 8 || !valid_name(name) || key.len() != 33 || key[0] != ALG_ED25519 {
            return Err(err());
        }
        if hash != key_hash(name, &key) {
            return Err(fail(
                Kind::Usage,
                format!("checksum database key {vkey:?}: its hash does not match its key"),
            ));
        }
        let key = ed25519_dalek::VerifyingKey::from_bytes(key[1..].try_into().expect("33 bytes"))
            .map_err(|_| err())?;
        Ok(Verifier {
            name: name.to_string(),
            key_hash: hash,
            key,
        })
    }
}

fn key_hash(name: &str, key: &[u8]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update(key);
    let sum = h.finalize();
    u32::from_be_bytes(sum[..4].try_into().expect("4 bytes"))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(|c: char| c.is_whitespace() || c == '+' || c.is_control())
}

/// A tree head: `n` records, root hash `hash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeHead {
    pub n: u64,
    pub hash: Hash,
}

/// Checks a signed note (`golang.org/x/mod/sumdb/note`): text, a blank
/// line, then `— <name> <base64(keyhash || sig)>` lines; one of them must
/// be a valid signature by `v` over the text. Returns the text.
pub fn open_note<'a>(msg: &'a [u8], v: &Verifier) -> Result<&'a str> {
    let msg = std::str::from_utf8(msg).map_err(|_| bad("the signed note is not UTF-8"))?;
    if msg.chars().any(|c| c < ' ' && c != '\n') {
        return Err(bad("the signed note holds control characters"));
    }
    let split = msg
        .rfind("\n\n")
        .ok_or_else(|| bad("the signed note has no signature block"))?;
    let (text, sigs) = (&msg[..split + 1], &msg[split + 2..]);
    if sigs.is_empty() || !sigs.ends_with('\n') {
        return Err(bad("the signed note's signature block is malformed"));
    }
    let mut good = false;
    for line in sigs.lines().take(100) {
        let rest = line
            .strip_prefix("— ")
            .ok_or_else(|| bad("the signed note has a malformed signature line"))?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or_else(|| bad("the signed note has a malformed signature line"))?;
        let sig = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| bad("the signed note has a malformed signature"))?;
        if sig.len() < 5 {
            return Err(bad("the signed note has a malformed signature"));
        }
        let hash = u32::from_be_bytes(sig[..4].try_into().expect("4 bytes"));
        if name != v.name || hash != v.key_hash {
            continue;
        }
        let Ok(sig) = ed25519_dalek::Signature::from_slice(&sig[4..]) else {
            return Err(bad(format!("the signature by {name} is malformed")));
        };
        if v.key.verify_strict(text.as_bytes(), &sig).is_err() {
            return Err(bad(format!(
                "the signature by {name} on the tree note does not verify: the database (or a proxy on the way) sent a forged or altered note"
            )));
        }
        good = true;
    }
    if !good {
        return Err(bad(format!("the tree note is not signed by {}", v.name)));
    }
    Ok(text)
}

/// Parses `go.sum database tree\n<N>\n<base64 hash>\n`.
pub fn parse_tree(text: &str) -> Result<TreeHead> {
    let mut lines = text.split('\n');
    let malformed = || bad("malformed tree note");
    if lines.next() != Some("go.sum database tree") {
        return Err(malformed());
    }
    let n_text = lines.next().ok_or_else(malformed)?;
    let n: u64 = n_text.parse().map_err(|_| malformed())?;
    if n.to_string() != n_text {
        return Err(malformed());
    }
    let h = base64::engine::general_purpose::STANDARD
        .decode(lines.next().ok_or_else(malformed)?)
        .map_err(|_| malformed())?;
    let hash: Hash = h.try_into().map_err(|_| malformed())?;
    Ok(TreeHead { n, hash })
}

/// `tlog.RecordHash`.
pub fn record_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// `tlog.NodeHash`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Where the database's files come from: `get("lookup/...")`,
/// `get("tile/8/0/000")`. `Ok(None)`: not there (404).
pub trait Fetch {
    fn get(&self, path: &str, limit: u64) -> Result<Option<Vec<u8>>>;
    fn describe(&self) -> String;
    /// Widths of the partial tiles `tile/8/<L>/<N>.p/<W>` this source holds,
    /// when it can list them (a module cache: the go command caches the
    /// partial tiles of whatever tree it last proved against, whose prefix
    /// is the same). Empty when it cannot tell.
    fn partial_widths(&self, _tile_path: &str) -> Vec<u64> {
        Vec::new()
    }
}

/// A database reached through a base URL: `https://proxy/sumdb/<name>`
/// (GOPROXY's way) or `file:///dir/sumdb/<name>` (a module cache's
/// `cache/download`).
pub struct UrlFetch {
    base: String,
    /// Built on the first HTTP request (a `file://` base needs none).
    web: std::sync::OnceLock<crate::registry::WebClient>,
}

impl UrlFetch {
    pub fn new(base: &str) -> UrlFetch {
        UrlFetch {
            base: base.trim_end_matches('/').to_string(),
            web: std::sync::OnceLock::new(),
        }
    }
}

impl UrlFetch {
    /// Opens `<base>/<path>` for reading: `Ok(None)` when it is not there
    /// (404/410, or no such file under a `file://` base). The one place
    /// ocigo's toolchain and checksum-database code speaks HTTP, through
    /// [`crate::registry::WebClient`] (system CAs, proxies, deadlines).
    pub fn open(&self, path: &str) -> Result<Option<Box<dyn Read + Send>>> {
        if let Some(dir) = self.base.strip_prefix("file://") {
            let p = PathBuf::from(format!("{dir}/{path}"));
            return Ok(crate::fs::open_regular(&p)?.map(|f| Box::new(f) as Box<dyn Read + Send>));
        }
        let web = match self.web.get() {
            Some(w) => w,
            None => {
                let w = crate::registry::WebClient::from_env()?;
                self.web.get_or_init(|| w)
            }
        };
        let url = format!("{}/{path}", self.base);
        web.get(&url, &format!("{path} from {}", self.describe()))
    }
}

impl Fetch for UrlFetch {
    fn describe(&self) -> String {
        crate::text::scrub_credentials(&self.base)
    }

    fn partial_widths(&self, tile_path: &str) -> Vec<u64> {
        let Some(dir) = self.base.strip_prefix("file://") else {
            return Vec::new();
        };
        let dir = PathBuf::from(format!("{dir}/{tile_path}.p"));
        crate::fs::list_dir(&dir)
            .map(|entries| {
                entries
                    .iter()
                    .filter_map(|(n, _)| n.to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn get(&self, path: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        let Some(r) = self.open(path)? else {
            return Ok(None);
        };
        let mut body = Vec::new();
        r.take(limit + 1)
            .read_to_end(&mut body)
            .with_context(|| format!("reading {path} from {}", self.describe()))?;
        if body.len() as u64 > limit {
            return Err(bad(format!("{path} is larger than {limit} bytes")));
        }
        Ok(Some(body))
    }
}

/// A proven lookup: the go.sum lines the database records, and the tree
/// they were proven in.
#[derive(Debug, Clone)]
pub struct Lookup {
    pub lines: Vec<String>,
    pub id: u64,
    pub tree: TreeHead,
}

impl Lookup {
    /// The `h1:` hash recorded for `path version` (the zip), if any.
    pub fn zip_hash(&self, path: &str, version: &str) -> Option<&str> {
        self.lines.iter().find_map(|l| {
            let mut f = l.split(' ');
            match (f.next(), f.next(), f.next(), f.next()) {
                (Some(p), Some(v), Some(h), None) if p == path && v == version => Some(h),
                _ => None,
            }
        })
    }
}

/// The checksum database client.
pub struct Client<'a> {
    verifier: Verifier,
    fetch: &'a dyn Fetch,
    tiles: RefCell<HashMap<(u32, u64, u64), Vec<u8>>>,
}

impl<'a> Client<'a> {
    pub fn new(verifier: Verifier, fetch: &'a dyn Fetch) -> Client<'a> {
        Client {
            verifier,
            fetch,
            tiles: RefCell::new(HashMap::new()),
        }
    }

    /// Looks `path@version` up and proves the record is in the signed tree.
    pub fn lookup(&self, path: &str, version: &str) -> Result<Lookup> {
        let what = format!("{path}@{version}");
        let epath = super::escape_path(path)?;
        let ever = super::escape_version(version)?;
        let body = self
            .fetch
            .get(&format!("lookup/{epath}@{ever}"), MAX_RECORD_BYTES)?
            .ok_or_else(|| {
                fail(
                    Kind::NotFound,
                    format!(
                        "the checksum database ({}) has no record of {what}",
                        self.fetch.describe()
                    ),
                )
            })?;
        let (id, text, note) =
            parse_record(&body).ok_or_else(|| bad(format!("the lookup of {what} is malformed")))?;
        let tree = parse_tree(open_note(note, &self.verifier)?)?;
        if id >= tree.n {
            return Err(bad(format!(
                "record {id} for {what} is outside the signed tree of {} records",
                tree.n
            )));
        }
        let leaf = record_hash(text);
        let root = self.root_with_leaf(0, tree.n, id, &leaf, tree.n)?;
        if root != tree.hash {
            return Err(bad(format!(
                "the record for {what} is not in the signed tree ({} records): the database (or a proxy on the way) sent an altered record or tiles",
                tree.n
            )));
        }
        let text = std::str::from_utf8(text).map_err(|_| bad("record is not UTF-8"))?;
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if !lines
            .iter()
            .any(|l| l.starts_with(&format!("{path} {version} ")))
        {
            return Err(bad(format!(
                "the record it returned for {what} is for something else"
            )));
        }
        Ok(Lookup { lines, id, tree })
    }

    /// RFC 6962 root of leaves `[lo, hi)`, with leaf `id` replaced by our
    /// own hash of the record and every other subtree read from tiles: it
    /// equals the signed root only if the record is in the tree.
    fn root_with_leaf(&self, lo: u64, hi: u64, id: u64, leaf: &Hash, n: u64) -> Result<Hash> {
        if hi - lo == 1 {
            return Ok(*leaf);
        }
        let k = largest_power_of_two_below(hi - lo);
        let (l, r) = if id < lo + k {
            (
                self.root_with_leaf(lo, lo + k, id, leaf, n)?,
                self.subtree(lo + k, hi, n)?,
            )
        } else {
            (
                self.subtree(lo, lo + k, n)?,
                self.root_with_leaf(lo + k, hi, id, leaf, n)?,
            )
        };
        Ok(node_hash(&l, &r))
    }

    /// RFC 6962 root of leaves `[lo, hi)`, from tiles.
    fn subtree(&self, lo: u64, hi: u64, n: u64) -> Result<Hash> {
        let size = hi - lo;
        if size.is_power_of_two() && lo.is_multiple_of(size) {
            return self.stored_hash(size.trailing_zeros(), lo >> size.trailing_zeros(), n);
        }
        let k = largest_power_of_two_below(size);
        Ok(node_hash(
            &self.subtree(lo, lo + k, n)?,
            &self.subtree(lo + k, hi, n)?,
        ))
    }

    /// The hash of the complete subtree at `level`, `index` (2^level leaves
    /// from index * 2^level), computed from the tile that holds its leaves'
    /// level.
    fn stored_hash(&self, level: u32, index: u64, n: u64) -> Result<Hash> {
        let tile_level = level / TILE_HEIGHT;
        let within = level % TILE_HEIGHT;
        let first = index << within; // first hash at the tile's base level
        let count = 1u64 << within;
        let tile_index = first / TILE_WIDTH;
        // The tile as it is in a tree of n records: full, or partial at the edge.
        let base_count = n >> (tile_level * TILE_HEIGHT);
        let width = (base_count - tile_index * TILE_WIDTH).min(TILE_WIDTH);
        let data = self.tile(tile_level, tile_index, width)?;
        let start = (first - tile_index * TILE_WIDTH) as usize;
        let mut hashes: Vec<Hash> = (start..start + count as usize)
            .map(|i| {
                data.get(i * HASH_SIZE..(i + 1) * HASH_SIZE)
                    .map(|s| s.try_into().expect("32 bytes"))
                    .ok_or_else(|| bad("a tile is shorter than its width"))
            })
            .collect::<Result<_>>()?;
        while hashes.len() > 1 {
            hashes = hashes.chunks(2).map(|p| node_hash(&p[0], &p[1])).collect();
        }
        Ok(hashes[0])
    }

    fn tile(&self, level: u32, index: u64, width: u64) -> Result<Vec<u8>> {
        if let Some(t) = self.tiles.borrow().get(&(level, index, width)) {
            return Ok(t.clone());
        }
        let full = tile_path(level, index, TILE_WIDTH);
        let path = tile_path(level, index, width);
        let mut data = self.fetch.get(&path, MAX_TILE_BYTES)?;
        if data.is_none() && width < TILE_WIDTH {
            // The tree has grown since: the full tile, or a wider partial
            // one, starts with the same hashes (the root check below proves
            // whatever is used).
            data = self.fetch.get(&full, MAX_TILE_BYTES)?;
            let mut wider: Vec<u64> = self
                .fetch
                .partial_widths(&full)
                .into_iter()
                .filter(|&w| w > width && w < TILE_WIDTH)
                .collect();
            wider.sort_unstable();
            for w in wider {
                if data.is_some() {
                    break;
                }
                data = self
                    .fetch
                    .get(&tile_path(level, index, w), MAX_TILE_BYTES)?;
            }
        }
        let mut data = data.ok_or_else(|| {
            fail(
                Kind::NotFound,
                format!(
                    "the checksum database ({}) has no tile {path}",
                    self.fetch.describe()
                ),
            )
        })?;
        if (data.len() as u64) < width * HASH_SIZE as u64 {
            return Err(bad(format!("tile {path} is too short")));
        }
        data.truncate((width as usize) * HASH_SIZE);
        self.tiles
            .borrow_mut()
            .insert((level, index, width), data.clone());
        Ok(data)
    }
}

fn largest_power_of_two_below(n: u64) -> u64 {
    debug_assert!(n > 1);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// `tile/8/<L>/<N>[.p/<W>]`, N in groups of three digits (`x001/x234/067`).
pub fn tile_path(level: u32, index: u64, width: u64) -> String {
    let mut n = index;
    let mut groups = vec![format!("{:03}", n % 1000)];
    n /= 1000;
    while n > 0 {
        groups.push(format!("x{:03}", n % 1000));
        n /= 1000;
    }
    groups.reverse();
    let mut p = format!("tile/{TILE_HEIGHT}/{level}/{}", groups.join("/"));
    if width < TILE_WIDTH {
        p.push_str(&format!(".p/{width}"));
    }
    p
}

/// `tlog.ParseRecord`: `<id>\n<text>\n\n<note>`.
pub fn parse_record(msg: &[u8]) -> Option<(u64, &[u8], &[u8])> {
    let i = msg.iter().position(|&b| b == b'\n')?;
    let id_text = std::str::from_utf8(&msg[..i]).ok()?;
    let id: u64 = id_text.parse().ok()?;
    if id.to_string() != id_text {
        return None;
    }
    let rest = &msg[i + 1..];
    let j = rest.windows(2).position(|w| w == b"\n\n")?;
    let text = &rest[..j + 1];
    if text.iter().any(|&b| (b < 0x20 && b != b'\n') || b >= 0x7f) {
        return None;
    }
    Some((id, text, &rest[j + 2..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    /// A tiny checksum database in memory: records, tiles, signed notes.
    struct FakeDb {
        files: HashMap<String, Vec<u8>>,
    }

    impl Fetch for FakeDb {
        fn get(&self, path: &str, _limit: u64) -> Result<Option<Vec<u8>>> {
            Ok(self.files.get(path).cloned())
        }
        fn describe(&self) -> String {
            "fake".into()
        }
    }

    fn test_key() -> (SigningKey, String) {
        let sk = SigningKey::from_bytes(&[7u8; 32]);
        let mut key = vec![ALG_ED25519];
        key.extend_from_slice(sk.verifying_key().as_bytes());
        let name = "sum.example";
        let vkey = format!(
            "{name}+{:08x}+{}",
            key_hash(name, &key),
            base64::engine::general_purpose::STANDARD.encode(&key)
        );
        (sk, vkey)
    }

    fn sign_note(sk: &SigningKey, vkey: &str, text: &str) -> String {
        let v = Verifier::parse(vkey).unwrap();
        let mut sig = v.key_hash.to_be_bytes().to_vec();
        sig.extend_from_slice(&sk.sign(text.as_bytes()).to_bytes());
        format!(
            "{text}\n— {} {}\n",
            v.name,
            base64::engine::general_purpose::STANDARD.encode(sig)
        )
    }

    fn tree_hash(leaves: &[Hash]) -> Hash {
        if leaves.len() == 1 {
            return leaves[0];
        }
        let k = largest_power_of_two_below(leaves.len() as u64) as usize;
        node_hash(&tree_hash(&leaves[..k]), &tree_hash(&leaves[k..]))
    }

    /// Builds a database of `n` records (record i is for example.com/m<i>).
    fn fake_db(n: u64) -> (FakeDb, String, TreeHead) {
        let (sk, vkey) = test_key();
        let mut files = HashMap::new();
        let records: Vec<String> = (0..n)
            .map(|i| {
                format!(
                    "example.com/m{i} v1.0.0 h1:{i}=\nexample.com/m{i} v1.0.0/go.mod h1:g{i}=\n"
                )
            })
            .collect();
        let leaves: Vec<Hash> = records.iter().map(|r| record_hash(r.as_bytes())).collect();
        let tree = TreeHead {
            n,
            hash: tree_hash(&leaves),
        };
        // Tiles: level L holds the hashes of complete subtrees of 256^L leaves.
        let mut level_hashes = leaves.clone();
        for level in 0.. {
            let count = level_hashes.len() as u64;
            if count == 0 {
                break;
            }
            for t in 0..count.div_ceil(TILE_WIDTH) {
                let lo = (t * TILE_WIDTH) as usize;
                let hi = ((t + 1) * TILE_WIDTH).min(count) as usize;
                let data: Vec<u8> = level_hashes[lo..hi].concat();
                files.insert(tile_path(level, t, (hi - lo) as u64), data);
            }
            level_hashes = level_hashes
                .chunks(TILE_WIDTH as usize)
                .filter(|c| c.len() == TILE_WIDTH as usize)
                .map(tree_hash)
                .collect();
        }
        let note = sign_note(
            &sk,
            &vkey,
            &format!(
                "go.sum database tree\n{n}\n{}\n",
                base64::engine::general_purpose::STANDARD.encode(tree.hash)
            ),
        );
        for (i, r) in records.iter().enumerate() {
            files.insert(
                format!("lookup/example.com/m{i}@v1.0.0"),
                format!("{i}\n{r}\n{note}").into_bytes(),
            );
        }
        (FakeDb { files }, vkey, tree)
    }

    #[test]
    fn the_real_key_parses() {
        let v = Verifier::parse(SUM_GOLANG_ORG_KEY).unwrap();
        assert_eq!(v.name, "sum.golang.org");
        assert_eq!(v.key_hash, 0x033de0ae);
        // The key the brief quoted, with a wrong tail, is refused.
        assert!(
            Verifier::parse("sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ek18Ez2x3dLl2Ivp")
                .is_err()
        );
    }

    #[test]
    fn lookups_are_proven_at_every_position() {
        for n in [1u64, 2, 3, 255, 256, 257, 700, 65537] {
            let (db, vkey, tree) = fake_db(n);
            let c = Client::new(Verifier::parse(&vkey).unwrap(), &db);
            for id in [0, n / 2, n - 1] {
                let l = c.lookup(&format!("example.com/m{id}"), "v1.0.0").unwrap();
                assert_eq!(l.id, id);
                assert_eq!(l.tree, tree);
                assert_eq!(
                    l.zip_hash(&format!("example.com/m{id}"), "v1.0.0"),
                    Some(format!("h1:{id}=").as_str())
                );
            }
        }
    }

    #[test]
    fn a_tampered_record_is_refused() {
        let (mut db, vkey, _) = fake_db(300);
        let key = "lookup/example.com/m5@v1.0.0".to_string();
        let body = String::from_utf8(db.files[&key].clone()).unwrap();
        db.files
            .insert(key, body.replace("h1:5=", "h1:6=").into_bytes());
        let c = Client::new(Verifier::parse(&vkey).unwrap(), &db);
        let e = c.lookup("example.com/m5", "v1.0.0").unwrap_err();
        assert!(e.to_string().contains("not in the signed tree"), "{e}");
        assert_eq!(crate::error::kind_of(&e), Some(Kind::Integrity));
    }

    #[test]
    fn a_tampered_tile_is_refused() {
        // Hash 1 of the first tile is a sibling on record 5's path; the
        // partial tile at the edge is on record 290's.
        for (tile, record) in [(tile_path(0, 0, 256), 5), (tile_path(0, 1, 44), 290)] {
            let (mut db, vkey, _) = fake_db(300);
            db.files.get_mut(&tile).unwrap()[40] ^= 1;
            let c = Client::new(Verifier::parse(&vkey).unwrap(), &db);
            let e = c
                .lookup(&format!("example.com/m{record}"), "v1.0.0")
                .unwrap_err();
            assert!(e.to_string().contains("not in the signed tree"), "{e}");
        }
    }

    #[test]
    fn a_tampered_or_foreign_note_is_refused() {
        let (db, vkey, _) = fake_db(10);
        let key = "lookup/example.com/m3@v1.0.0";
        let body = String::from_utf8(db.files[key].clone()).unwrap();
        // Another tree size under the same signature.
        let mut forged = FakeDb {
            files: db.files.clone(),
        };
        forged.files.insert(
            key.into(),
            body.replace("go.sum database tree\n10\n", "go.sum database tree\n11\n")
                .into_bytes(),
        );
        let v = Verifier::parse(&vkey).unwrap();
        let e = Client::new(v.clone(), &forged)
            .lookup("example.com/m3", "v1.0.0")
            .unwrap_err();
        assert!(e.to_string().contains("does not verify"), "{e}");
        // Signed by someone else, under the database's name and key hash.
        let (head, note) = body.split_once("\n\n").unwrap();
        let (note_text, _) = note.split_once("\n— ").unwrap();
        let other = SigningKey::from_bytes(&[9u8; 32]);
        let resigned = sign_note(&other, &vkey, note_text);
        let mut foreign = FakeDb {
            files: db.files.clone(),
        };
        foreign
            .files
            .insert(key.into(), format!("{head}\n\n{resigned}").into_bytes());
        let e = Client::new(v.clone(), &foreign)
            .lookup("example.com/m3", "v1.0.0")
            .unwrap_err();
        assert!(e.to_string().contains("does not verify"), "{e}");
        // A note signed by an unknown key name only.
        let unknown = body.replace("— sum.example ", "— other.example ");
        let mut unk = FakeDb {
            files: db.files.clone(),
        };
        unk.files.insert(key.into(), unknown.into_bytes());
        let e = Client::new(v, &unk)
            .lookup("example.com/m3", "v1.0.0")
            .unwrap_err();
        assert!(e.to_string().contains("not signed by sum.example"), "{e}");
    }

    /// A module cache holds the partial tiles of the tree the go command
    /// proved against last: wider ones serve a smaller tree too.
    #[test]
    fn a_wider_partial_tile_serves_an_older_tree() {
        struct Wider(FakeDb, String, String);
        impl Fetch for Wider {
            fn get(&self, path: &str, limit: u64) -> Result<Option<Vec<u8>>> {
                if path == self.1 {
                    return Ok(None);
                }
                self.0.get(path, limit)
            }
            fn describe(&self) -> String {
                "wider".into()
            }
            fn partial_widths(&self, tile_path: &str) -> Vec<u64> {
                if tile_path == self.2 {
                    vec![50]
                } else {
                    Vec::new()
                }
            }
        }
        let (mut db, vkey, _) = fake_db(300);
        // The tree has 44 records in its last tile; the cache has 50 of them.
        let mut wide = db.files[&tile_path(0, 1, 44)].clone();
        wide.extend_from_slice(&[0u8; 6 * HASH_SIZE]);
        db.files.insert(tile_path(0, 1, 50), wide);
        let w = Wider(db, tile_path(0, 1, 44), tile_path(0, 1, 256));
        let c = Client::new(Verifier::parse(&vkey).unwrap(), &w);
        assert_eq!(c.lookup("example.com/m290", "v1.0.0").unwrap().id, 290);
    }

    /// The go command's tile plan (`tlog::plan`, `tlog::read_hashes`) finds
    /// every tile it needs at its exact path in a database of `n` records,
    /// proves every record, and recomputes the hash of every older tree.
    #[test]
    fn the_go_commands_tile_plan_proves_records_and_older_trees() {
        use crate::gomod::tlog;
        for n in [1u64, 2, 3, 255, 256, 257, 700, 65537] {
            let (db, _, tree) = fake_db(n);
            let get = |t: &tlog::Tile| Ok(db.files.get(&t.path()).cloned());
            for id in [0, n / 3, n / 2, n - 1] {
                let leaf = tlog::leaf_index(id);
                for t in tlog::plan(n, &[leaf]).unwrap() {
                    assert!(
                        db.files.contains_key(&t.path()),
                        "n={n} id={id}: {}",
                        t.path()
                    );
                }
                let h = tlog::read_hashes(n, &tree.hash, &[leaf], &get)
                    .unwrap()
                    .unwrap();
                let rec = format!(
                    "example.com/m{id} v1.0.0 h1:{id}=\nexample.com/m{id} v1.0.0/go.mod h1:g{id}=\n"
                );
                assert_eq!(h[0], record_hash(rec.as_bytes()), "n={n} id={id}");
            }
            for m in [1, n / 2, n] {
                if m == 0 {
                    continue;
                }
                let (_, _, older) = fake_db(m);
                let h = tlog::tree_hash_in(m, n, &tree.hash, &get).unwrap().unwrap();
                assert_eq!(h, older.hash, "tree {m} in tree {n}");
            }
            // A wrong root is refused.
            let mut wrong = tree.hash;
            wrong[0] ^= 1;
            assert!(tlog::read_hashes(n, &wrong, &[0], &get).is_err());
        }
    }

    #[test]
    fn tile_paths_match_tlog() {
        assert_eq!(tile_path(0, 0, 256), "tile/8/0/000");
        assert_eq!(tile_path(1, 1234067, 256), "tile/8/1/x001/x234/067");
        assert_eq!(tile_path(2, 5, 7), "tile/8/2/005.p/7");
    }
}
