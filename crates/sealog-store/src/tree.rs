//! The Merkle tree's stored nodes: one append-only file per level, node `i` of level `l` at
//! byte `32·i` of `tree/level-<l>`. A level-`8L` file is also the C2SP tile level `L`, so
//! tiles are served as byte ranges. Derived from the log like the indexes: written without
//! fsync at commit, synced with them, and re-integrated from the log after a crash.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use sealog_merkle::{Frontier, HASH_SIZE, Hash, NodeReader, ReadError};

use crate::error::StoreError;
use crate::io::Io;

/// Levels a tree of up to 2^63 leaves can have.
const LEVELS_MAX: usize = 64;

pub(crate) struct TreeFiles {
    io: Io,
    dir: PathBuf,
    levels: RwLock<Vec<File>>,
    /// Opened read-only beside the writer: nodes integrated here are kept in memory.
    overlay: Option<RwLock<HashMap<(u8, u64), Hash>>>,
}

impl TreeFiles {
    /// Opens the level files, keeping exactly the nodes of a tree of `trusted` leaves.
    pub(crate) fn open(io: &Io, dir: &Path, trusted: u64) -> Result<Self, StoreError> {
        fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        let files = TreeFiles {
            io: io.clone(),
            dir: dir.to_path_buf(),
            levels: RwLock::new(Vec::new()),
            overlay: None,
        };
        for level in 0..LEVELS_MAX {
            let nodes = trusted >> level;
            let path = files.path(level);
            if nodes == 0 && !path.exists() {
                break;
            }
            files.ensure(level)?;
            let levels = files.levels.read().expect("tree lock");
            let file = &levels[level];
            let len = file.metadata().map_err(|e| StoreError::io(&path, e))?.len();
            if len < nodes * HASH_SIZE as u64 {
                return Err(StoreError::Corrupted(format!(
                    "{} holds {} nodes, the index promises {nodes}",
                    path.display(),
                    len / 32
                )));
            }
            io.set_len(file, &path, nodes * HASH_SIZE as u64)?;
        }
        Ok(files)
    }

    /// Opens whatever level files exist, read-only, truncating nothing (for verification).
    pub(crate) fn read_only(dir: &Path) -> Self {
        let mut levels = Vec::new();
        while let Ok(f) = File::open(dir.join(format!("level-{:02}", levels.len()))) {
            levels.push(f);
        }
        TreeFiles {
            io: Io::default(),
            dir: dir.to_path_buf(),
            levels: RwLock::new(levels),
            overlay: None,
        }
    }

    /// Like `read_only`, but nodes written later are kept in memory: for reading beside the
    /// writer, whose files are trusted only up to what its index manifest vouches for.
    pub(crate) fn read_only_with_memory(dir: &Path) -> Self {
        TreeFiles {
            overlay: Some(RwLock::new(HashMap::new())),
            ..Self::read_only(dir)
        }
    }

    /// Deletes every level file, for a rebuild from the log.
    pub(crate) fn reset(dir: &Path) -> Result<(), StoreError> {
        match fs::remove_dir_all(dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(dir, e)),
        }
    }

    fn path(&self, level: usize) -> PathBuf {
        self.dir.join(format!("level-{level:02}"))
    }

    /// Opens the level files up to `level` that are not open yet.
    fn ensure(&self, level: usize) -> Result<(), StoreError> {
        if self.levels.read().expect("tree lock").len() > level {
            return Ok(());
        }
        let mut levels = self.levels.write().expect("tree lock");
        while levels.len() <= level {
            let path = self.path(levels.len());
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| StoreError::io(&path, e))?;
            levels.push(f);
        }
        Ok(())
    }

    /// Writes nodes that the frontier reported, grouped per level into one write each.
    pub(crate) fn write_nodes(&self, nodes: &[(u8, u64, Hash)]) -> Result<(), StoreError> {
        if let Some(overlay) = &self.overlay {
            let mut overlay = overlay.write().expect("tree lock");
            overlay.extend(nodes.iter().map(|&(l, i, h)| ((l, i), h)));
            return Ok(());
        }
        let mut by_level: Vec<(u64, Vec<u8>)> = Vec::new();
        for &(level, index, hash) in nodes {
            let l = level as usize;
            if by_level.len() <= l {
                by_level.resize_with(l + 1, || (u64::MAX, Vec::new()));
            }
            let (first, buf) = &mut by_level[l];
            if buf.is_empty() {
                *first = index;
            }
            debug_assert_eq!(
                *first + (buf.len() / HASH_SIZE) as u64,
                index,
                "nodes of a level arrive in order"
            );
            buf.extend_from_slice(&hash);
        }
        if by_level.is_empty() {
            return Ok(());
        }
        self.ensure(by_level.len() - 1)?;
        let levels = self.levels.read().expect("tree lock");
        for (level, (first, buf)) in by_level.iter().enumerate() {
            if buf.is_empty() {
                continue;
            }
            self.io.write_at(
                &levels[level],
                &self.path(level),
                buf,
                first * HASH_SIZE as u64,
            )?;
        }
        Ok(())
    }

    pub(crate) fn sync(&self) -> Result<(), StoreError> {
        if self.overlay.is_some() {
            return Ok(());
        }
        for (level, f) in self.levels.read().expect("tree lock").iter().enumerate() {
            self.io.sync_data(f, &self.path(level))?;
        }
        Ok(())
    }

    /// `count` consecutive nodes of `level` from `first`, as raw bytes (a tile's body).
    pub(crate) fn read_range(
        &self,
        level: usize,
        first: u64,
        count: u64,
    ) -> Result<Vec<u8>, StoreError> {
        if self.overlay.is_some() {
            let mut out = Vec::with_capacity(count as usize * HASH_SIZE);
            for i in first..first + count {
                let h = self.node(level as u8, i).map_err(|_| {
                    StoreError::InvalidArgument(format!("no tree node {level}/{i}"))
                })?;
                out.extend_from_slice(&h);
            }
            return Ok(out);
        }
        let levels = self.levels.read().expect("tree lock");
        let f = levels
            .get(level)
            .ok_or_else(|| StoreError::InvalidArgument(format!("no tree level {level}")))?;
        let mut buf = vec![0u8; (count as usize) * HASH_SIZE];
        f.read_exact_at(&mut buf, first * HASH_SIZE as u64)
            .map_err(|e| StoreError::io(&self.path(level), e))?;
        Ok(buf)
    }
}

impl NodeReader for TreeFiles {
    fn node(&self, level: u8, index: u64) -> Result<Hash, ReadError> {
        if let Some(h) = self
            .overlay
            .as_ref()
            .and_then(|o| o.read().expect("tree lock").get(&(level, index)).copied())
        {
            return Ok(h);
        }
        let levels = self.levels.read().expect("tree lock");
        let f = levels
            .get(level as usize)
            .ok_or(ReadError::Missing { level, index })?;
        let mut h = [0u8; HASH_SIZE];
        f.read_exact_at(&mut h, index * HASH_SIZE as u64)
            .map_err(|_| ReadError::Missing { level, index })?;
        Ok(h)
    }
}

impl TreeFiles {
    /// Stored nodes of `level` from `index` on, as many as fit `out` and the file holds,
    /// with one read; how many whole nodes that is (0 past the file's end). Verification
    /// compares the nodes it rebuilds in order, so reading them in runs saves a read each.
    pub(crate) fn read_run(&self, level: u8, index: u64, out: &mut [u8]) -> usize {
        if self.overlay.is_some() {
            // Nodes kept in memory are not in the files: one at a time through `node`.
            return match self.node(level, index) {
                Ok(h) if out.len() >= HASH_SIZE => {
                    out[..HASH_SIZE].copy_from_slice(&h);
                    1
                }
                _ => 0,
            };
        }
        let levels = self.levels.read().expect("tree lock");
        let Some(f) = levels.get(level as usize) else {
            return 0;
        };
        let mut got = 0;
        while got < out.len() {
            match f.read_at(&mut out[got..], index * HASH_SIZE as u64 + got as u64) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        got / HASH_SIZE
    }
}

/// The writer's side of the tree: the stored nodes plus the right edge in memory.
pub(crate) struct Tree {
    pub(crate) frontier: Frontier,
    scratch: Vec<(u8, u64, Hash)>,
}

impl Tree {
    pub(crate) fn load(files: &TreeFiles, size: u64) -> Result<Self, StoreError> {
        let frontier = Frontier::load(size, files)
            .map_err(|e| StoreError::Corrupted(format!("tree nodes for size {size}: {e}")))?;
        Ok(Tree {
            frontier,
            scratch: Vec::new(),
        })
    }

    /// Integrates leaf hashes (in seq order) and stores the nodes they complete.
    pub(crate) fn append(
        &mut self,
        files: &TreeFiles,
        leaves: impl Iterator<Item = Hash>,
    ) -> Result<(), StoreError> {
        self.scratch.clear();
        for leaf in leaves {
            self.frontier.push_into(leaf, &mut self.scratch);
        }
        files.write_nodes(&self.scratch)
    }
}
