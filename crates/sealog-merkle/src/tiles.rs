//! C2SP tlog-tiles resource paths.
//!
//! A hash tile at level `L`, index `N` holds the hashes of tree level `8 * L`, nodes
//! `[256 * N, 256 * N + W)`, concatenated; an entry bundle holds the entries behind the
//! level-0 tile of the same index. Full tiles have `W = 256`; the rightmost tiles of a tree
//! are usually partial and carry a `.p/<W>` suffix.

use std::fmt::Write as _;

use thiserror::Error;

use crate::text::parse_decimal;

/// Hashes in a full tile.
pub const TILE_WIDTH: u64 = 256;
/// Tree levels spanned by one tile level.
pub const TILE_HEIGHT: u8 = 8;
/// The spec allows tile levels 0 to 63.
const MAX_TILE_LEVEL: u8 = 63;

/// A parsed tile path. `width` is 256 for a full tile, 1 to 255 for a partial one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TilePath {
    Hashes { level: u8, index: u64, width: u16 },
    Entries { index: u64, width: u16 },
}

/// Why a tile path was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TileError {
    #[error("not a tile path (must start with \"tile/\")")]
    NotATilePath,
    #[error("tile level must be a decimal from 0 to 63 without leading zeros")]
    BadLevel,
    #[error("tile index is not canonically encoded")]
    BadIndex,
    #[error("partial tile width must be a decimal from 1 to 255 without leading zeros")]
    BadWidth,
}

/// Path of the hash tile at `level`, `index` with `width` hashes:
/// `tile/<L>/<N>[.p/<W>]`.
///
/// # Panics
/// If `level > 63` or `width` is not in `1..=256`; such tiles cannot exist.
pub fn tile_path(level: u8, index: u64, width: u16) -> String {
    assert!(level <= MAX_TILE_LEVEL, "tile level {level} out of range");
    let mut s = format!("tile/{level}/");
    push_index(&mut s, index, width);
    s
}

/// Path of the entry bundle `index` holding `width` entries: `tile/entries/<N>[.p/<W>]`.
///
/// # Panics
/// If `width` is not in `1..=256`.
pub fn entries_path(index: u64, width: u16) -> String {
    let mut s = String::from("tile/entries/");
    push_index(&mut s, index, width);
    s
}

/// Appends `<N>[.p/<W>]`: `N` in groups of three digits, most significant first, every
/// group but the last prefixed with `x` so no file name is also a directory name.
fn push_index(s: &mut String, index: u64, width: u16) {
    assert!(
        (1..=256).contains(&width),
        "tile width {width} out of range"
    );
    let mut groups = [0u16; 7];
    let mut n = index;
    let mut count = 0;
    loop {
        groups[count] = (n % 1000) as u16;
        n /= 1000;
        count += 1;
        if n == 0 {
            break;
        }
    }
    for (i, g) in groups[..count].iter().enumerate().rev() {
        let prefix = if i == 0 { "" } else { "x" };
        let sep = if i == 0 { "" } else { "/" };
        let _ = write!(s, "{prefix}{g:03}{sep}");
    }
    if width < 256 {
        let _ = write!(s, ".p/{width}");
    }
}

/// Parses a tile or entry-bundle path, accepting only the canonical spelling that
/// [`tile_path`] and [`entries_path`] produce.
pub fn parse_tile_path(path: &str) -> Result<TilePath, TileError> {
    let rest = path.strip_prefix("tile/").ok_or(TileError::NotATilePath)?;
    let (kind, rest) = rest.split_once('/').ok_or(TileError::NotATilePath)?;
    let (index, width) = parse_index(rest)?;
    if kind == "entries" {
        return Ok(TilePath::Entries { index, width });
    }
    let level = parse_decimal(kind)
        .and_then(|l| u8::try_from(l).ok())
        .filter(|&l| l <= MAX_TILE_LEVEL)
        .ok_or(TileError::BadLevel)?;
    Ok(TilePath::Hashes {
        level,
        index,
        width,
    })
}

/// Parses `<N>[.p/<W>]`.
fn parse_index(s: &str) -> Result<(u64, u16), TileError> {
    let (elems, width) = match s.split_once(".p/") {
        None => (s, 256),
        Some((elems, w)) => {
            let w = parse_decimal(w)
                .filter(|w| (1..=255).contains(w))
                .ok_or(TileError::BadWidth)?;
            (elems, w as u16)
        }
    };
    let parts: Vec<&str> = elems.split('/').collect();
    // u64::MAX has 20 digits: seven groups.
    if parts.len() > 7 || (parts.len() > 1 && parts[0] == "x000") {
        return Err(TileError::BadIndex);
    }
    let last = parts.len() - 1;
    let mut index: u64 = 0;
    for (i, part) in parts.iter().enumerate() {
        let digits = if i == last {
            Some(*part)
        } else {
            part.strip_prefix('x')
        };
        let group = digits
            .filter(|d| d.len() == 3 && d.bytes().all(|b| b.is_ascii_digit()))
            .ok_or(TileError::BadIndex)?;
        let group: u64 = group.parse().map_err(|_| TileError::BadIndex)?;
        index = index
            .checked_mul(1000)
            .and_then(|v| v.checked_add(group))
            .ok_or(TileError::BadIndex)?;
    }
    Ok((index, width))
}

/// Width of hash tile (`level`, `index`) in a tree of `size` leaves: `Some(256)` for a
/// full tile, `Some(1..=255)` for the rightmost partial tile, `None` if the tree has no
/// such tile (including empty tiles, which are never served).
///
/// Entry bundles have the width of the level-0 tile with the same index.
pub fn tile_width(level: u8, index: u64, size: u64) -> Option<u16> {
    if level > MAX_TILE_LEVEL {
        return None;
    }
    // Nodes of tree level 8 * level that are complete in this tree.
    let nodes = size
        .checked_shr(u32::from(level) * u32::from(TILE_HEIGHT))
        .unwrap_or(0);
    let full = nodes / TILE_WIDTH;
    if index < full {
        Some(TILE_WIDTH as u16)
    } else if index == full && nodes % TILE_WIDTH != 0 {
        Some((nodes % TILE_WIDTH) as u16)
    } else {
        None
    }
}

/// Checks a hash tile's nodes (level 0: the leaves of an entry bundle) against a signed tree
/// of `size` with `root`: each largest aligned power-of-two run of them hashes to a subtree
/// node, proven into `root` with nodes from `tree`. A tile that is not the signed tree's
/// fails, naming why.
pub fn verify_tile(
    level: u8,
    index: u64,
    nodes: &[crate::Hash],
    size: u64,
    root: &crate::Hash,
    tree: &impl crate::NodeReader,
) -> Result<(), String> {
    let mut at = 0usize;
    while at < nodes.len() {
        // The largest power of two that fits what is left and is aligned where it starts.
        let fits = (nodes.len() - at).ilog2();
        let k = if at == 0 {
            fits
        } else {
            fits.min(at.trailing_zeros())
        };
        let mut group = nodes[at..at + (1 << k)].to_vec();
        while group.len() > 1 {
            group = group
                .chunks_exact(2)
                .map(|p| crate::node_hash(&p[0], &p[1]))
                .collect();
        }
        let node_level = level * TILE_HEIGHT + k as u8;
        let node_index = (index * TILE_WIDTH + at as u64) >> k;
        let proof = crate::subtree_proof(node_level, node_index, size, tree)
            .map_err(|e| format!("tree: {e}"))?;
        crate::verify_subtree(&group[0], node_level, node_index, size, root, &proof)
            .map_err(|e| e.to_string())?;
        at += 1 << k;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_examples() {
        assert_eq!(tile_path(0, 1_234_067, 256), "tile/0/x001/x234/067");
        assert_eq!(tile_path(0, 0, 256), "tile/0/000");
        // Tree of size 70,000 per the spec.
        assert_eq!(tile_width(0, 272, 70_000), Some(256));
        assert_eq!(tile_width(0, 273, 70_000), Some(112));
        assert_eq!(tile_width(1, 0, 70_000), Some(256));
        assert_eq!(tile_width(1, 1, 70_000), Some(17));
        assert_eq!(tile_width(2, 0, 70_000), Some(1));
        assert_eq!(tile_width(3, 0, 70_000), None);
    }
}
