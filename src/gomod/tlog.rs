//! The tiled transparency log arithmetic of the Go checksum database, as
//! `golang.org/x/mod/sumdb/tlog` defines it: stored-hash indexes, tiles of
//! height 8, and which tiles the go command reads (and how it
//! authenticates them) to prove hashes in a tree of a given size.
//!
//! The go command's client proves a record, or an older tree, by reading
//! exactly the tiles [`plan`] lists for the tree it trusts; a cache that
//! lacks one of them sends it to the network. So ocigo computes the same
//! list to know what to carry, and checks tiles the same way
//! ([`read_hashes`]) before writing them where the go command will trust
//! them.
//!
//! Owns: the arithmetic and the checks. Must not: do any I/O (tiles come
//! from the caller's closure).

use std::collections::HashMap;

use anyhow::Result;

use super::sumdb::{Hash, node_hash, tile_path};
use crate::error::{Kind, fail};

/// Tile height of the Go checksum database.
pub const HEIGHT: u32 = 8;
const WIDTH: u64 = 1 << HEIGHT;
pub const HASH_SIZE: usize = 32;

/// A tile: level `l`, index `n`, `w` hashes wide (256 when full).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tile {
    pub l: u32,
    pub n: u64,
    pub w: u64,
}

impl Tile {
    /// `tile/8/<L>/<N>[.p/<W>]`, the path below the database's name.
    pub fn path(&self) -> String {
        tile_path(self.l, self.n, self.w)
    }

    /// Parses what [`Tile::path`] writes (and nothing else: no leading
    /// zeros dropped, no other height, no data tiles).
    pub fn parse(path: &str) -> Option<Tile> {
        let rest = path.strip_prefix("tile/8/")?;
        let (l, rest) = rest.split_once('/')?;
        let l: u32 = l.parse().ok()?;
        let (n_part, w) = match rest.split_once(".p/") {
            Some((n, w)) => (n, w.parse::<u64>().ok()?),
            None => (rest, WIDTH),
        };
        let mut n = 0u64;
        let groups: Vec<&str> = n_part.split('/').collect();
        for (i, g) in groups.iter().enumerate() {
            let digits = if i + 1 < groups.len() {
                g.strip_prefix('x')?
            } else {
                g
            };
            if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            n = n.checked_mul(1000)?.checked_add(digits.parse().ok()?)?;
        }
        let t = Tile { l, n, w };
        (l < 8 && (1..=WIDTH).contains(&w) && t.path() == path).then_some(t)
    }
}

/// `tlog.StoredHashIndex`: where the hash of the subtree at `level`,
/// index `n` sits in the log's sequence of stored hashes.
pub fn stored_hash_index(level: u32, n: u64) -> u64 {
    let mut n = n;
    for _ in 0..level {
        n = 2 * n + 1;
    }
    let mut i = 0u64;
    while n > 0 {
        i += n;
        n >>= 1;
    }
    i + level as u64
}

/// `tlog.SplitStoredHashIndex`.
pub fn split_stored_hash_index(index: u64) -> (u32, u64) {
    let mut n = index / 2;
    let mut index_n = stored_hash_index(0, n);
    assert!(index_n <= index, "bad math");
    loop {
        let x = index_n + 1 + (n + 1).trailing_zeros() as u64;
        if x > index {
            break;
        }
        n += 1;
        index_n = x;
    }
    let level = (index - index_n) as u32;
    (level, n >> level)
}

/// `maxpow2`: the largest power of two below `n`, and its log.
fn maxpow2(n: u64) -> (u64, u32) {
    let mut l = 0;
    while (1u64 << (l + 1)) < n {
        l += 1;
    }
    (1 << l, l)
}

/// `subTreeIndex(lo, hi)`: the stored hashes of the complete subtrees
/// that make up records `[lo, hi)`, largest (leftmost) first.
pub fn subtree_index(mut lo: u64, hi: u64) -> Vec<u64> {
    let mut need = Vec::new();
    while lo < hi {
        let (k, level) = maxpow2(hi - lo + 1);
        assert!(lo & (k - 1) == 0, "bad math in subtree_index");
        need.push(stored_hash_index(level, lo >> level));
        lo += k;
    }
    need
}

/// `subTreeHash`, for a whole tree: folds the hashes of [`subtree_index`]
/// right to left.
fn fold(hashes: &[Hash]) -> Hash {
    let mut th = hashes[hashes.len() - 1];
    for h in hashes[..hashes.len() - 1].iter().rev() {
        th = node_hash(h, &th);
    }
    th
}

/// `tileForIndex`: the narrowest tile holding stored hash `index`, and the
/// byte range of the hashes (at the tile's base level) below it.
fn tile_for_index(index: u64) -> (Tile, usize, usize) {
    let (level, n) = split_stored_hash_index(index);
    let l = level / HEIGHT;
    let level = level - l * HEIGHT;
    let tn = (n << level) >> HEIGHT;
    let within = n - ((tn << HEIGHT) >> level);
    let w = (within + 1) << level;
    (
        Tile { l, n: tn, w },
        ((within << level) as usize) * HASH_SIZE,
        (((within + 1) << level) as usize) * HASH_SIZE,
    )
}

/// `tileParent(t, k, n)`: the tile `k` levels up, as wide as it is in a
/// tree of `n` records; `None` when the tree has no such tile.
fn tile_parent(t: Tile, k: u32, n: u64) -> Option<Tile> {
    let l = t.l + k;
    let tn = t.n >> (k * HEIGHT);
    let mut w = WIDTH;
    let max = n.checked_shr(l * HEIGHT).unwrap_or(0);
    if (tn << HEIGHT) + w >= max {
        if (tn << HEIGHT) >= max {
            return None;
        }
        w = max - (tn << HEIGHT);
    }
    Some(Tile { l, n: tn, w })
}

/// `tileHash`: the subtree hash of the (power of two) hashes in `data`.
fn tile_hash(data: &[u8]) -> Hash {
    if data.len() == HASH_SIZE {
        return data.try_into().expect("32 bytes");
    }
    let half = data.len() / 2;
    node_hash(&tile_hash(&data[..half]), &tile_hash(&data[half..]))
}

/// `HashFromTile`.
fn hash_from_tile(t: Tile, data: &[u8], index: u64) -> Option<Hash> {
    let (t1, start, end) = tile_for_index(index);
    if t.l != t1.l || t.n != t1.n || t.w < t1.w || data.len() < t.w as usize * HASH_SIZE {
        return None;
    }
    Some(tile_hash(&data[start..end]))
}

/// The tiles the go command's `tlog.TileHashReader` reads to return the
/// stored hashes `indexes` of a tree of `n` records, in its order: first
/// those that recompute the tree hash, then each index's tile and the
/// parents it needs to be authenticated.
pub fn plan(n: u64, indexes: &[u64]) -> Result<Vec<Tile>> {
    let mut order: HashMap<Tile, usize> = HashMap::new();
    let mut tiles = Vec::new();
    for x in subtree_index(0, n) {
        let t = tile_parent(tile_for_index(x).0, 0, n).expect("in the tree");
        if let std::collections::hash_map::Entry::Vacant(e) = order.entry(t) {
            e.insert(tiles.len());
            tiles.push(t);
        }
    }
    for &x in indexes {
        if x >= stored_hash_index(0, n) {
            return Err(fail(
                Kind::Integrity,
                format!("checksum database: stored hash {x} is not in a tree of {n} records"),
            ));
        }
        let t = tile_for_index(x).0;
        let mut k = 0;
        while !tile_parent(t, k, n).is_some_and(|p| order.contains_key(&p)) {
            k += 1;
            if k > 8 {
                return Err(fail(Kind::Integrity, "checksum database: bad tile math"));
            }
        }
        while k > 0 {
            k -= 1;
            let p = tile_parent(t, k, n).expect("below a parent");
            order.insert(p, tiles.len());
            tiles.push(p);
        }
    }
    Ok(tiles)
}

/// Reads a tile as the go command's cache would serve it: `Ok(None)` when
/// it is not there.
pub type GetTile<'a> = dyn Fn(&Tile) -> Result<Option<Vec<u8>>> + 'a;

/// What `TileHashReader.ReadHashes` returns for a tree `(n, root)`, with
/// the same checks: the tiles of [`plan`], read through `get`, must
/// recompute the root, and every other tile must hash to its entry in its
/// parent. `Ok(Err(tile))`: a tile the go command would need is missing.
pub fn read_hashes(
    n: u64,
    root: &Hash,
    indexes: &[u64],
    get: &GetTile<'_>,
) -> Result<std::result::Result<Vec<Hash>, Tile>> {
    if n == 0 && indexes.is_empty() {
        return Ok(Ok(Vec::new()));
    }
    let tiles = plan(n, indexes)?;
    let mut data: HashMap<Tile, Vec<u8>> = HashMap::new();
    for t in &tiles {
        match get(t)? {
            Some(d) if d.len() == t.w as usize * HASH_SIZE => {
                data.insert(*t, d);
            }
            Some(_) => {
                return Err(fail(
                    Kind::Integrity,
                    format!(
                        "checksum database: tile {} is not {} hashes long",
                        t.path(),
                        t.w
                    ),
                ));
            }
            None => return Ok(Err(*t)),
        }
    }
    let inconsistent = || {
        fail(
            Kind::Integrity,
            format!(
                "checksum database: the tiles do not match the signed tree of {n} records \
                 (altered tiles, or a tree from another database)"
            ),
        )
    };
    let stx = subtree_index(0, n);
    let stx_hashes: Vec<Hash> = stx
        .iter()
        .map(|&x| {
            let t = tile_parent(tile_for_index(x).0, 0, n).expect("in the tree");
            hash_from_tile(t, &data[&t], x).ok_or_else(inconsistent)
        })
        .collect::<Result<_>>()?;
    if n > 0 && fold(&stx_hashes) != *root {
        return Err(inconsistent());
    }
    // As tlog: the tiles after the last tree-hash tile are checked
    // against their parents.
    let last = tile_parent(tile_for_index(stx[stx.len() - 1]).0, 0, n).expect("in the tree");
    let start = tiles.iter().position(|t| *t == last).expect("planned") + 1;
    for t in &tiles[start..] {
        let p = tile_parent(*t, 1, n).ok_or_else(inconsistent)?;
        let pd = data.get(&p).ok_or_else(inconsistent)?;
        let h =
            hash_from_tile(p, pd, stored_hash_index(p.l * HEIGHT, t.n)).ok_or_else(inconsistent)?;
        if h != tile_hash(&data[t]) {
            return Err(inconsistent());
        }
    }
    indexes
        .iter()
        .map(|&x| {
            let t = tile_parent(tile_for_index(x).0, 0, n).ok_or_else(inconsistent)?;
            // The index's own tile, or the full one the plan read instead.
            let d = data.get(&t).ok_or_else(inconsistent)?;
            hash_from_tile(t, d, x).ok_or_else(inconsistent)
        })
        .collect::<Result<Vec<_>>>()
        .map(Ok)
}

/// The hash of the first `m` records, read from the tiles of a tree of
/// `n` records (`tlog.TreeHash(m, TileHashReader(n))`): equal to the
/// older tree's signed hash exactly when the trees are consistent.
pub fn tree_hash_in(
    m: u64,
    n: u64,
    root: &Hash,
    get: &GetTile<'_>,
) -> Result<std::result::Result<Hash, Tile>> {
    if m == 0 {
        return Ok(Ok(super::sumdb::empty_tree_hash()));
    }
    let idx = subtree_index(0, m);
    Ok(read_hashes(n, root, &idx, get)?.map(|h| fold(&h)))
}

/// The stored-hash indexes [`tree_hash_in`] reads.
pub fn tree_indexes(m: u64) -> Vec<u64> {
    subtree_index(0, m)
}

/// The stored-hash index of record `id` (its leaf).
pub fn leaf_index(id: u64) -> u64 {
    stored_hash_index(0, id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_hash_indexes_match_tlog() {
        // Values from tlog's own tests (tlog_test.go's layout comment).
        assert_eq!(stored_hash_index(0, 0), 0);
        assert_eq!(stored_hash_index(0, 1), 1);
        assert_eq!(stored_hash_index(1, 0), 2);
        assert_eq!(stored_hash_index(0, 2), 3);
        assert_eq!(stored_hash_index(0, 3), 4);
        assert_eq!(stored_hash_index(1, 1), 5);
        assert_eq!(stored_hash_index(2, 0), 6);
        for i in 0..5000 {
            let (l, n) = split_stored_hash_index(i);
            assert_eq!(stored_hash_index(l, n), i);
        }
    }

    #[test]
    fn tile_paths_round_trip() {
        for t in [
            Tile { l: 0, n: 0, w: 256 },
            Tile { l: 2, n: 5, w: 7 },
            Tile {
                l: 1,
                n: 1234067,
                w: 256,
            },
        ] {
            assert_eq!(Tile::parse(&t.path()), Some(t));
        }
        for bad in [
            "tile/8/0/00",
            "tile/8/0/x000/001",
            "tile/8/0/001.p/256",
            "tile/8/0/001.p/0",
            "tile/4/0/001",
            "tile/8/0/../001",
        ] {
            assert_eq!(Tile::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_plan_matches_tlogs_documented_example() {
        // tile.go's comment (h = 2, N = 15, index (0, 01)) scaled to h = 8:
        // the tree-hash tiles first, then the record's tile.
        let n = 256 * 3 + 3;
        let p = plan(n, &[stored_hash_index(0, 1)]).unwrap();
        assert_eq!(
            p,
            vec![
                Tile { l: 1, n: 0, w: 3 },
                Tile { l: 0, n: 3, w: 3 },
                Tile { l: 0, n: 0, w: 256 },
            ]
        );
    }
}
