//! C2SP tlog-tiles coordinates and entry bundles (<https://c2sp.org/tlog-tiles>).
//!
//! A tile is 256 consecutive Merkle tree hashes at one tile level (tree level
//! `8 * L`), or, for entry bundles, the 256 leaves under one level-0 tile.
//! This module owns the URL path of a tile (`tile/<L>/<N>[.p/<W>]` and
//! `tile/entries/<N>[.p/<W>]`, with `N` in three-digit `x001/234` groups),
//! how much of a tile a tree of a given size holds, and the bundle encoding
//! (each leaf as a big-endian uint16 length then its bytes).
//!
//! # Invariants
//! - [`Tile::parse`] accepts exactly the canonical paths [`Tile::path`]
//!   renders, so one tile has one URL (caches and static mirrors depend on
//!   it), and it refuses anything else with a reason, never a panic.
//! - A tile's bytes depend only on its coordinates and the append-only log:
//!   a width-`W` tile is the first `W` hashes (or entries) of the full tile.
//!
//! Pure: no I/O.

use std::fmt;

/// Tree levels one tile spans (the spec fixes 8).
pub const TILE_HEIGHT: u8 = 8;

/// Hashes in a full tile, and entries in a full bundle: `2^TILE_HEIGHT`.
pub const TILE_WIDTH: u16 = 1 << TILE_HEIGHT;

/// Highest tile level a path may name (the spec's range is 0 to 63).
pub const TILE_LEVEL_MAX: u8 = 63;

/// Longest tile path accepted, bytes. The longest canonical one,
/// `tile/entries/` plus seven index groups (u64::MAX) and `.p/255`, is 52
/// bytes; anything longer is refused before it is looked at or echoed.
pub const TILE_PATH_BYTES_MAX: usize = 64;

/// Three-digit groups in the longest index (u64::MAX has 20 digits).
const INDEX_GROUPS_MAX: usize = 7;

/// Bytes of the length prefix of each entry in a bundle.
pub const BUNDLE_LENGTH_BYTES: usize = 2;

const _: () = assert!(TILE_WIDTH as u32 == 1 << TILE_HEIGHT);

/// Why a path does not name a tile (HTTP 400). Each variant names the part
/// of the path at fault, so the caller can fix the URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TilePathError {
    #[error("tile path is {bytes} bytes, longer than any tile path ({max})")]
    TooLong { bytes: usize, max: usize },
    #[error("{path:?} is not tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>]")]
    Shape { path: String },
    #[error(
        "tile level {text:?} is not a decimal from 0 to {TILE_LEVEL_MAX} without leading zeros"
    )]
    Level { text: String },
    #[error("tile index {text:?}: {reason}")]
    Index { text: String, reason: &'static str },
    #[error(
        "tile width {text:?} is not a decimal from 1 to {} without leading zeros \
         (a full tile has no .p/ suffix)",
        TILE_WIDTH - 1
    )]
    Width { text: String },
}

/// Why bytes are not an entry bundle, or leaves cannot be one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("entry {position} is {bytes} bytes, more than a bundle's uint16 length can carry")]
    EntryTooLong { position: usize, bytes: usize },
    #[error("bundle ends inside entry {position}")]
    Truncated { position: usize },
}

/// What a tile holds: Merkle tree hashes at a tile level, or leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TileKind {
    /// `tile/<L>/...`: hashes of tree level `8 * L`.
    Hashes { level: u8 },
    /// `tile/entries/...`: the leaves under level-0 tile `N`.
    Entries,
}

/// One tile or entry bundle, as named by its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tile {
    pub kind: TileKind,
    /// `N`: the tile's position within its level.
    pub index: u64,
    /// Hashes or entries it holds, 1 to [`TILE_WIDTH`]; less is a partial tile.
    pub width: u16,
}

impl Tile {
    /// Parses a tile path relative to the log prefix, e.g. `tile/0/x001/234.p/7`.
    pub fn parse(path: &str) -> Result<Tile, TilePathError> {
        if path.len() > TILE_PATH_BYTES_MAX {
            return Err(TilePathError::TooLong {
                bytes: path.len(),
                max: TILE_PATH_BYTES_MAX,
            });
        }
        let shape = || TilePathError::Shape {
            path: path.to_string(),
        };
        let mut parts: Vec<&str> = path.split('/').collect();
        if parts.len() < 3 || parts[0] != "tile" {
            return Err(shape());
        }
        let kind = match parts[1] {
            "entries" => TileKind::Entries,
            text => TileKind::Hashes {
                level: parse_level(text)?,
            },
        };
        // `.p/<W>`: the next-to-last element ends in `.p`, the last is W.
        let mut width = TILE_WIDTH;
        let last = parts.len() - 1;
        if let Some(stem) = parts[last - 1].strip_suffix(".p").filter(|_| last >= 3) {
            width = parse_width(parts[last])?;
            parts[last - 1] = stem;
            parts.pop();
        }
        let index = parse_index(&parts[2..])?;
        Ok(Tile { kind, index, width })
    }

    /// The canonical path, e.g. `tile/0/x001/234.p/7`.
    pub fn path(&self) -> String {
        let level = match self.kind {
            TileKind::Hashes { level } => level.to_string(),
            TileKind::Entries => "entries".to_string(),
        };
        let mut path = format!("tile/{level}/{}", index_path(self.index));
        if !self.is_full() {
            path.push_str(&format!(".p/{}", self.width));
        }
        path
    }

    pub fn is_full(&self) -> bool {
        self.width == TILE_WIDTH
    }

    /// Tree level of the hashes in the tile: `8 * L` (up to 504, beyond
    /// any tree), or 0 for entries.
    pub fn tree_level(&self) -> u32 {
        match self.kind {
            TileKind::Hashes { level } => u32::from(level) * u32::from(TILE_HEIGHT),
            TileKind::Entries => 0,
        }
    }

    /// How many of this tile's hashes (or entries) the tree of `size`
    /// leaves holds, 0 to [`TILE_WIDTH`]: the spec's partial-tile width
    /// `floor(size / 256^L) mod 256` for the rightmost tile, 256 for the
    /// tiles left of it and 0 beyond it.
    pub fn covered_width(&self, size: u64) -> u16 {
        // Complete nodes at this tree level; none at levels above 63.
        let nodes = size.checked_shr(self.tree_level()).unwrap_or(0);
        let Some(first) = self.index.checked_mul(u64::from(TILE_WIDTH)) else {
            return 0;
        };
        let covered = nodes.saturating_sub(first).min(u64::from(TILE_WIDTH));
        u16::try_from(covered).unwrap_or(TILE_WIDTH)
    }

    /// Node index, at [`tree_level`](Self::tree_level), of the tile's first
    /// hash; for entries, its first leaf index. Only meaningful for a tile
    /// that some tree within u64 covers, which [`covered_width`](Self::covered_width) checks.
    pub fn first_node(&self) -> u64 {
        self.index.saturating_mul(u64::from(TILE_WIDTH))
    }
}

impl fmt::Display for Tile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

fn parse_level(text: &str) -> Result<u8, TilePathError> {
    let err = || TilePathError::Level {
        text: text.to_string(),
    };
    let level = parse_decimal(text, 2).ok_or_else(err)?;
    u8::try_from(level)
        .ok()
        .filter(|l| *l <= TILE_LEVEL_MAX)
        .ok_or_else(err)
}

fn parse_width(text: &str) -> Result<u16, TilePathError> {
    let err = || TilePathError::Width {
        text: text.to_string(),
    };
    let width = parse_decimal(text, 3).ok_or_else(err)?;
    u16::try_from(width)
        .ok()
        .filter(|w| (1..TILE_WIDTH).contains(w))
        .ok_or_else(err)
}

/// A decimal of at most `digits` ASCII digits without leading zeros.
fn parse_decimal(text: &str, digits: usize) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.len() <= digits
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

/// `N` from its groups: `xDDD` for all but the last, `DDD` last, no
/// leading `x000` (so each number has one spelling), within u64.
fn parse_index(groups: &[&str]) -> Result<u64, TilePathError> {
    let text = groups.join("/");
    let err = |reason| TilePathError::Index {
        text: text.clone(),
        reason,
    };
    if groups.is_empty() || groups.len() > INDEX_GROUPS_MAX {
        return Err(err("expected 1 to 7 three-digit groups"));
    }
    if groups.len() > 1 && groups[0] == "x000" {
        return Err(err("leading x000 group: write the index without it"));
    }
    let mut index: u64 = 0;
    for (i, group) in groups.iter().enumerate() {
        let digits = if i + 1 < groups.len() {
            group
                .strip_prefix('x')
                .ok_or_else(|| err("every group but the last starts with x"))?
        } else {
            group
        };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err("each group is exactly three digits, e.g. x001/234"));
        }
        let value: u64 = digits
            .parse()
            .map_err(|_| err("each group is exactly three digits, e.g. x001/234"))?;
        index = index
            .checked_mul(1000)
            .and_then(|n| n.checked_add(value))
            .ok_or_else(|| err("larger than 2^64 - 1"))?;
    }
    Ok(index)
}

/// `N` as path groups: 1234067 is `x001/x234/067`.
fn index_path(mut index: u64) -> String {
    let mut path = format!("{:03}", index % 1000);
    while index >= 1000 {
        index /= 1000;
        path = format!("x{:03}/{path}", index % 1000);
    }
    path
}

/// Encodes leaves as an entry bundle: each as a big-endian uint16 length
/// followed by its bytes.
pub fn encode_bundle<'a>(
    leaves: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<u8>, BundleError> {
    let mut out = Vec::new();
    for (position, leaf) in leaves.into_iter().enumerate() {
        let len = u16::try_from(leaf.len()).map_err(|_| BundleError::EntryTooLong {
            position,
            bytes: leaf.len(),
        })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(leaf);
    }
    Ok(out)
}

/// Splits an entry bundle into its leaves.
pub fn decode_bundle(mut bytes: &[u8]) -> Result<Vec<Vec<u8>>, BundleError> {
    let mut leaves = Vec::new();
    while !bytes.is_empty() {
        let position = leaves.len();
        let truncated = BundleError::Truncated { position };
        let (len, rest) = bytes
            .split_first_chunk::<BUNDLE_LENGTH_BYTES>()
            .ok_or(truncated.clone())?;
        let len = usize::from(u16::from_be_bytes(*len));
        if rest.len() < len {
            return Err(truncated);
        }
        let (leaf, rest) = rest.split_at(len);
        leaves.push(leaf.to_vec());
        bytes = rest;
    }
    Ok(leaves)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes(level: u8, index: u64, width: u16) -> Tile {
        Tile {
            kind: TileKind::Hashes { level },
            index,
            width,
        }
    }

    #[test]
    fn paths_match_the_spec_examples() {
        assert_eq!(hashes(0, 1234067, 256).path(), "tile/0/x001/x234/067");
        assert_eq!(hashes(1, 0, 17).path(), "tile/1/000.p/17");
        let bundle = Tile {
            kind: TileKind::Entries,
            index: 273,
            width: 112,
        };
        assert_eq!(bundle.path(), "tile/entries/273.p/112");
    }

    #[test]
    fn canonical_paths_round_trip_and_agree_with_tlog_tiles() {
        let indexes = [0, 1, 999, 1000, 1001, 1234067, 999_999_999, u64::MAX];
        for level in [0, 1, 5, 63] {
            for &index in &indexes {
                for width in [1, 2, 128, 255, 256] {
                    let tile = hashes(level, index, width);
                    let path = tile.path();
                    assert_eq!(Tile::parse(&path), Ok(tile), "{path}");
                    // tlog_tiles writes the height into the path (Go sumdb style).
                    let go = tlog_tiles::Tile::new(TILE_HEIGHT, level, index, width.into(), false);
                    assert_eq!(go.path().replacen("tile/8/", "tile/", 1), path);
                    let entries = Tile {
                        kind: TileKind::Entries,
                        ..tile
                    };
                    assert_eq!(Tile::parse(&entries.path()), Ok(entries));
                }
            }
        }
        assert!(Tile::parse("tile/entries/x018/x446/x744/x073/x709/x551/615.p/255").is_ok());
    }

    /// Which part of a path an error blames.
    fn blamed(e: &TilePathError) -> &'static str {
        match e {
            TilePathError::TooLong { .. } => "length",
            TilePathError::Shape { .. } => "shape",
            TilePathError::Level { .. } => "level",
            TilePathError::Index { .. } => "index",
            TilePathError::Width { .. } => "width",
        }
    }

    #[test]
    fn non_canonical_and_junk_paths_are_refused_with_a_reason() {
        let cases = [
            ("tile/0/1", "index"),
            ("tile/0/0001", "index"),
            ("tile/0/x000/001", "index"),
            ("tile/0/001/002", "index"),
            ("tile/0/x001", "index"),
            ("tile/0/+01", "index"),
            ("tile/0/x018/x446/x744/x073/x709/x551/616", "index"),
            ("tile/0/000/", "index"),
            ("tile/0/x001.p/5/000", "index"),
            ("tile/00/000", "level"),
            ("tile/64/000", "level"),
            ("tile/255/000", "level"),
            ("tile/-1/000", "level"),
            ("tile/data/000", "level"),
            ("tile/0/000.p/0", "width"),
            ("tile/0/000.p/256", "width"),
            ("tile/0/000.p/007", "width"),
            ("tile/0/000.p/", "width"),
            ("tile/entries/000.p/1000", "width"),
            ("tile/0", "shape"),
            ("tiles/0/000", "shape"),
        ];
        for (path, part) in cases {
            let err = Tile::parse(path).expect_err(path);
            assert_eq!(blamed(&err), part, "{path}: {err}");
            assert!(!err.to_string().contains('\n'), "one line: {err}");
        }
        let long = format!("tile/0/{}", "x001/".repeat(20));
        assert!(matches!(
            Tile::parse(&long),
            Err(TilePathError::TooLong { .. })
        ));
    }

    #[test]
    fn covered_width_follows_the_spec_example_of_size_70000() {
        // 273 full level-0 tiles, a partial one of 112, one full level-1
        // tile, a partial level-1 tile of 17 and a partial level-2 tile of 1.
        let size = 70_000;
        assert_eq!(hashes(0, 272, 256).covered_width(size), 256);
        assert_eq!(hashes(0, 273, 256).covered_width(size), 112);
        assert_eq!(hashes(0, 274, 256).covered_width(size), 0);
        assert_eq!(hashes(1, 0, 256).covered_width(size), 256);
        assert_eq!(hashes(1, 1, 256).covered_width(size), 17);
        assert_eq!(hashes(2, 0, 256).covered_width(size), 1);
        assert_eq!(hashes(3, 0, 256).covered_width(size), 0);
        assert_eq!(hashes(63, 0, 256).covered_width(u64::MAX), 0);
        assert_eq!(hashes(0, u64::MAX, 256).covered_width(u64::MAX), 0);
        // A tree of 256 is one full level-0 tile and a level-1 tile of width 1.
        assert_eq!(hashes(0, 0, 256).covered_width(256), 256);
        assert_eq!(hashes(1, 0, 256).covered_width(256), 1);
        let entries = Tile {
            kind: TileKind::Entries,
            index: 273,
            width: 256,
        };
        assert_eq!(entries.covered_width(size), 112);
    }

    #[test]
    fn bundles_round_trip_and_refuse_truncation() {
        let leaves: Vec<Vec<u8>> = vec![b"a".to_vec(), Vec::new(), vec![7; 300]];
        let bundle = encode_bundle(leaves.iter().map(Vec::as_slice)).unwrap();
        assert_eq!(&bundle[..3], &[0, 1, b'a']);
        assert_eq!(decode_bundle(&bundle), Ok(leaves));
        assert_eq!(
            decode_bundle(&bundle[..bundle.len() - 1]),
            Err(BundleError::Truncated { position: 2 })
        );
        assert_eq!(
            decode_bundle(&[0]),
            Err(BundleError::Truncated { position: 0 })
        );
        let huge = vec![0u8; usize::from(u16::MAX) + 1];
        assert_eq!(
            encode_bundle([huge.as_slice()]),
            Err(BundleError::EntryTooLong {
                position: 0,
                bytes: huge.len()
            })
        );
    }
}
