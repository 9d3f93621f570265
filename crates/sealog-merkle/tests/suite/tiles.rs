//! Tile paths and widths.

use proptest::prelude::*;
use sealog_merkle::tiles::{
    TILE_HEIGHT, TILE_WIDTH, TileError, TilePath, entries_path, parse_tile_path, tile_path,
    tile_width,
};

#[test]
fn index_encoding() {
    assert_eq!(tile_path(0, 0, 256), "tile/0/000");
    assert_eq!(tile_path(0, 999, 256), "tile/0/999");
    assert_eq!(tile_path(0, 1000, 256), "tile/0/x001/000");
    assert_eq!(tile_path(3, 1_234_067, 256), "tile/3/x001/x234/067");
    assert_eq!(
        tile_path(63, u64::MAX, 256),
        "tile/63/x018/x446/x744/x073/x709/x551/615"
    );
    assert_eq!(entries_path(1_234_067, 256), "tile/entries/x001/x234/067");
}

#[test]
fn partial_widths() {
    assert_eq!(tile_path(0, 273, 112), "tile/0/273.p/112");
    assert_eq!(tile_path(1, 1, 17), "tile/1/001.p/17");
    assert_eq!(tile_path(2, 0, 1), "tile/2/000.p/1");
    assert_eq!(tile_path(0, 1_234_067, 255), "tile/0/x001/x234/067.p/255");
    assert_eq!(entries_path(273, 112), "tile/entries/273.p/112");
    assert_eq!(
        parse_tile_path("tile/0/x001/x234/067.p/255"),
        Ok(TilePath::Hashes {
            level: 0,
            index: 1_234_067,
            width: 255
        })
    );
    assert_eq!(
        parse_tile_path("tile/entries/273.p/112"),
        Ok(TilePath::Entries {
            index: 273,
            width: 112
        })
    );
    assert_eq!(
        parse_tile_path("tile/entries/000"),
        Ok(TilePath::Entries {
            index: 0,
            width: 256
        })
    );
}

#[test]
#[should_panic(expected = "width")]
fn width_zero_panics() {
    tile_path(0, 0, 0);
}

#[test]
#[should_panic(expected = "level")]
fn level_64_panics() {
    tile_path(64, 0, 256);
}

#[test]
fn parse_rejects_non_canonical_paths() {
    use TileError::*;
    let cases = [
        ("", NotATilePath),
        ("tiles/0/000", NotATilePath),
        ("/tile/0/000", NotATilePath),
        ("tile/0", NotATilePath),
        ("tile/0/0", BadIndex),
        ("tile/0/00", BadIndex),
        ("tile/0/0000", BadIndex),
        ("tile/0/", BadIndex),
        ("tile/0/000/", BadIndex),
        ("tile/0/x000/001", BadIndex),
        ("tile/0/x000", BadIndex),
        ("tile/0/001/002", BadIndex),
        ("tile/0/X001/002", BadIndex),
        ("tile/0/x01/002", BadIndex),
        ("tile/0/x001/x002", BadIndex),
        ("tile/0/00a", BadIndex),
        ("tile/0/+01", BadIndex),
        ("tile/0/x018/x446/x744/x073/x709/x551/616", BadIndex),
        ("tile/0/x001/x018/x446/x744/x073/x709/x551/615", BadIndex),
        ("tile/0//000", BadIndex),
        ("tile/00/000", BadLevel),
        ("tile/01/000", BadLevel),
        ("tile/64/000", BadLevel),
        ("tile/256/000", BadLevel),
        ("tile/-1/000", BadLevel),
        ("tile/+1/000", BadLevel),
        ("tile//000", BadLevel),
        ("tile/data/000", BadLevel),
        ("tile/0/000.p/0", BadWidth),
        ("tile/0/000.p/256", BadWidth),
        ("tile/0/000.p/012", BadWidth),
        ("tile/0/000.p/", BadWidth),
        ("tile/0/000.p/1/", BadWidth),
        ("tile/0/000.p/1x", BadWidth),
        ("tile/entries/000.p/00", BadWidth),
        ("tile/0/000.q/1", BadIndex),
        ("tile/0/000.p", BadIndex),
    ];
    for (path, want) in cases {
        assert_eq!(parse_tile_path(path), Err(want), "{path:?}");
    }
}

#[test]
fn widths_for_small_trees() {
    assert_eq!(tile_width(0, 0, 0), None);
    assert_eq!(tile_width(0, 0, 1), Some(1));
    assert_eq!(tile_width(0, 0, 255), Some(255));
    // A tree of 256 is a full level-0 tile and a partial level-1 tile of width 1.
    assert_eq!(tile_width(0, 0, 256), Some(256));
    assert_eq!(tile_width(0, 1, 256), None);
    assert_eq!(tile_width(1, 0, 256), Some(1));
    assert_eq!(tile_width(2, 0, 256), None);
    assert_eq!(tile_width(64, 0, u64::MAX), None);
    assert_eq!(tile_width(7, 0, u64::MAX), Some(255));
    assert_eq!(tile_width(8, 0, u64::MAX), None);
}

/// Tile indexes: any, and those either side of a power of ten, where a path's groups of three
/// digits change in number or are all zeros.
fn index() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        (0u32..=19, -1i64..=1).prop_map(|(p, d)| 10u64.pow(p).saturating_add_signed(d)),
        0u64..2000,
    ]
}

/// Tile widths: any, and the full and nearly full ones, whose paths differ (no `.p/`).
fn width() -> impl Strategy<Value = u16> {
    prop_oneof![1u16..=256, Just(256), Just(255), Just(1)]
}

/// Tree sizes: any (a full last tile is then rare), small trees, and sizes a node count
/// either side of a whole number of tiles at some level.
fn size() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        0u64..70_000,
        (1u64..4, 0u32..8, -1i64..=1).prop_map(|(k, j, d)| (k << (8 * j)).saturating_add_signed(d)),
        Just(u64::MAX),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5ea1_0102),
        ..ProptestConfig::default()
    })]

    #[test]
    fn paths_round_trip(level in 0u8..=63, index in index(), width in width()) {
        let p = tile_path(level, index, width);
        prop_assert_eq!(parse_tile_path(&p), Ok(TilePath::Hashes { level, index, width }));
        let e = entries_path(index, width);
        prop_assert_eq!(parse_tile_path(&e), Ok(TilePath::Entries { index, width }));
    }

    #[test]
    fn widths_cover_exactly_the_complete_nodes(size in size(), level in 0u8..8) {
        // Tiles at a level hold every complete node of tree level 8 * level, once.
        let nodes = size >> (u32::from(level) * u32::from(TILE_HEIGHT));
        let tiles = nodes.div_ceil(TILE_WIDTH);
        let mut covered = 0u64;
        for index in tiles.saturating_sub(3)..tiles {
            let w = tile_width(level, index, size).expect("tile below the edge exists");
            prop_assert!((1..=256).contains(&w));
            prop_assert!(w == 256 || index == tiles - 1, "only the last tile may be partial");
            covered += u64::from(w);
        }
        prop_assert_eq!(tile_width(level, tiles, size), None);
        prop_assert_eq!(covered + tiles.saturating_sub(3) * TILE_WIDTH, nodes);
    }
}
