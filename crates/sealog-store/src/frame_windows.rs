//! A segment's frames as `verify` reads them: a sealed segment whole (mapped, or
//! decompressed), the active one a window at a time through one buffer kept for every window.
//!
//! A log smaller than a segment keeps all its records in the active one. Read whole, its
//! every page was faulted in and cleared in fresh memory before the first record could be
//! checked, on one thread: a sixth of a verification's time. A window at a time, the same
//! pages are read into again and again.

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::StoreError;
use crate::segment::{self, BadFrame, FRAME_HEADER_BYTES, HEADER_BYTES};

/// How much of the active segment one window reads; it grows for a frame larger than this.
const WINDOW_BYTES: usize = 4 << 20;

/// A frame's offset in its segment and its payload's byte range in its window.
pub(crate) type FrameSpan = (u64, Range<usize>);

/// Whole frames of one window: their payloads are `data[range]`.
pub(crate) struct Window<'a> {
    pub(crate) data: &'a [u8],
    pub(crate) frames: &'a [FrameSpan],
}

/// Why a segment's frames could not be read.
pub(crate) enum WindowError {
    Io(StoreError),
    /// The bytes at `offset` are not a whole frame, after `whole` frames of the same window.
    Frame {
        offset: u64,
        whole: u64,
        why: String,
    },
}

pub(crate) struct FrameWindows {
    bytes: Bytes,
    /// The active segment: zeros its writer laid down ahead of its frames end them.
    active: bool,
    /// Where the next window's frames start in the bytes at hand.
    from: usize,
    frames: Vec<FrameSpan>,
    /// Where zeros began in an earlier window: everything after them must be zeros too.
    zeros_at: Option<u64>,
    started: bool,
    done: bool,
}

enum Bytes {
    /// A sealed plain segment: a sealed segment is only ever replaced by rename, so the
    /// mapping cannot shrink under the reader; one changed in place would be tampering, which
    /// the frames' checksums and the tree find like any other.
    Mapped(memmap2::Mmap),
    /// A compressed segment, decompressed (every block's checksum checked on the way).
    Whole(Vec<u8>),
    /// The active segment: a writer beside this reader may still cut a torn tail off it, so it
    /// is read, not mapped.
    Streamed {
        file: File,
        path: PathBuf,
        buf: Vec<u8>,
        /// How much of `buf` holds the file's bytes from `base` on.
        filled: usize,
        base: u64,
        /// `buf` holds the file up to its end.
        eof: bool,
    },
}

impl FrameWindows {
    /// Opens segment `first` at `path` and reads its first window, into `spare`'s buffer
    /// unless it is mapped.
    pub(crate) fn open(
        path: &Path,
        first: u64,
        sealed: bool,
        spare: &mut Vec<u8>,
    ) -> Result<Self, StoreError> {
        Self::open_sized(path, first, sealed, spare, WINDOW_BYTES)
    }

    #[allow(unsafe_code)]
    fn open_sized(
        path: &Path,
        first: u64,
        sealed: bool,
        spare: &mut Vec<u8>,
        window: usize,
    ) -> Result<Self, StoreError> {
        let bytes = match segment::SegmentFile::open_listed(path, first)? {
            segment::SegmentFile::Compressed(z) => {
                let mut bytes = std::mem::take(spare);
                z.plain_into(&mut bytes)
                    .map_err(|e| StoreError::io(z.path(), e))?;
                Bytes::Whole(bytes)
            }
            segment::SegmentFile::Plain { file, path } if !sealed => {
                let mut buf = std::mem::take(spare);
                buf.resize(window.max(HEADER_BYTES as usize), 0);
                let mut streamed = Bytes::Streamed {
                    file,
                    path,
                    buf,
                    filled: 0,
                    base: 0,
                    eof: false,
                };
                streamed.advance(0)?;
                streamed
            }
            // SAFETY: see `Bytes::Mapped`.
            segment::SegmentFile::Plain { file, path } => unsafe { memmap2::Mmap::map(&file) }
                .map(Bytes::Mapped)
                .map_err(|e| StoreError::io(&path, e))?,
        };
        let from = (HEADER_BYTES as usize).min(bytes.current().0.len());
        Ok(FrameWindows {
            bytes,
            active: !sealed,
            from,
            frames: Vec::new(),
            zeros_at: None,
            started: false,
            done: false,
        })
    }

    /// The segment's first bytes (its header among them), before any window is taken.
    pub(crate) fn head(&self) -> &[u8] {
        self.bytes.current().0
    }

    /// The next window's whole frames, no more than `wanted`; `None` once the segment's
    /// frames, or the wanted ones, are all read.
    pub(crate) fn next(&mut self, wanted: u64) -> Result<Option<Window<'_>>, WindowError> {
        if self.done {
            return Ok(None);
        }
        if self.started {
            // What the last window did not take (a frame cut at its end) starts this one.
            self.bytes.advance(self.from).map_err(WindowError::Io)?;
            self.from = 0;
        }
        self.started = true;
        self.split(wanted)?;
        Ok(Some(Window {
            data: self.bytes.current().0,
            frames: &self.frames,
        }))
    }

    /// Hands the buffer read into back for the next segment.
    pub(crate) fn recycle(self, spare: &mut Vec<u8>) {
        match self.bytes {
            Bytes::Whole(buf) | Bytes::Streamed { buf, .. } => *spare = buf,
            Bytes::Mapped(_) => {}
        }
    }

    /// Splits the whole frames of the bytes at hand, from `self.from`.
    fn split(&mut self, wanted: u64) -> Result<(), WindowError> {
        self.frames.clear();
        let (data, base, last) = self.bytes.current();
        if let Some(zeros_at) = self.zeros_at {
            if !segment::all_zero(&data[self.from..]) {
                return Err(WindowError::Frame {
                    offset: zeros_at,
                    whole: 0,
                    why: BadFrame::Length(0).to_string(),
                });
            }
            self.from = data.len();
            self.done = last;
            return Ok(());
        }
        let mut at = self.from;
        while at < data.len() && (self.frames.len() as u64) < wanted {
            match segment::decode_frame(&data[at..]) {
                Ok((payload, n)) => {
                    let start = at + FRAME_HEADER_BYTES as usize;
                    self.frames
                        .push((base + at as u64, start..start + payload.len()));
                    at += n;
                }
                Err(BadFrame::Short) if !last => break,
                Err(_) if self.active && segment::all_zero(&data[at..]) => {
                    if !last {
                        self.zeros_at = Some(base + at as u64);
                    }
                    at = data.len();
                }
                Err(why) => {
                    return Err(WindowError::Frame {
                        offset: base + at as u64,
                        whole: self.frames.len() as u64,
                        why: why.to_string(),
                    });
                }
            }
        }
        self.from = at;
        self.done = last && at >= data.len() || self.frames.len() as u64 >= wanted;
        Ok(())
    }
}

impl Bytes {
    /// The bytes at hand, the offset in the file of the first, and whether they reach the
    /// file's end.
    fn current(&self) -> (&[u8], u64, bool) {
        match self {
            Bytes::Mapped(m) => (m, 0, true),
            Bytes::Whole(v) => (v, 0, true),
            Bytes::Streamed {
                buf,
                filled,
                base,
                eof,
                ..
            } => (&buf[..*filled], *base, *eof),
        }
    }

    /// Lets the first `consumed` bytes at hand go and reads on from the file behind the rest.
    fn advance(&mut self, consumed: usize) -> Result<(), StoreError> {
        let Bytes::Streamed {
            file,
            path,
            buf,
            filled,
            base,
            eof,
        } = self
        else {
            return Ok(());
        };
        buf.copy_within(consumed..*filled, 0);
        *filled -= consumed;
        *base += consumed as u64;
        if *filled == buf.len() {
            // One frame larger than the whole buffer: room for all of it.
            buf.resize(buf.len() * 2, 0);
        }
        let n = segment::read_up_to(file, &mut buf[*filled..])
            .map_err(|e| StoreError::io(&*path, e))?;
        *filled += n;
        *eof = *filled < buf.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames of many sizes, one of them longer than a small window.
    fn payloads() -> Vec<Vec<u8>> {
        (0..200u32)
            .map(|i| {
                let len = if i == 77 {
                    700
                } else {
                    1 + (i as usize * 37) % 90
                };
                (0..len).map(|k| (k as u32 ^ i) as u8).collect()
            })
            .collect()
    }

    /// An active segment file holding `payloads`, then `zeros` zero bytes.
    fn active_segment(dir: &Path, payloads: &[Vec<u8>], zeros: usize) -> (PathBuf, Vec<u8>) {
        let mut bytes = segment::encode_header(0).to_vec();
        for p in payloads {
            segment::encode_frame(p, &mut bytes);
        }
        bytes.resize(bytes.len() + zeros, 0);
        let path = dir.join(segment::file_name(0));
        std::fs::write(&path, &bytes).unwrap();
        (path, bytes)
    }

    /// A frame found: its offset in the file and its payload.
    type Found = (u64, Vec<u8>);
    /// Where the bytes are not a frame, after how many of its window, and why.
    type Bad = (u64, u64, String);

    /// Every window's frames, or the first error.
    fn read_all(path: &Path, window: usize, wanted: u64) -> Result<Vec<Found>, Bad> {
        let mut windows = FrameWindows::open_sized(path, 0, false, &mut Vec::new(), window)
            .unwrap_or_else(|e| panic!("open: {e}"));
        let mut out: Vec<Found> = Vec::new();
        loop {
            match windows.next(wanted - out.len() as u64) {
                Ok(Some(w)) => out.extend(
                    w.frames
                        .iter()
                        .map(|(offset, r)| (*offset, w.data[r.clone()].to_vec())),
                ),
                Ok(None) => return Ok(out),
                Err(WindowError::Io(e)) => panic!("io: {e}"),
                Err(WindowError::Frame { offset, whole, why }) => return Err((offset, whole, why)),
            }
        }
    }

    #[test]
    fn small_windows_find_the_frames_one_read_of_the_whole_file_finds() {
        let dir = tempfile::tempdir().unwrap();
        let payloads = payloads();
        let (path, _) = active_segment(dir.path(), &payloads, 3000);
        let whole = read_all(&path, 1 << 20, u64::MAX).unwrap();
        assert_eq!(whole.len(), payloads.len());
        assert!(whole.iter().map(|(_, p)| p).eq(payloads.iter()));
        for window in [16, 64, 100, 701, 4096] {
            assert_eq!(
                read_all(&path, window, u64::MAX).unwrap(),
                whole,
                "window of {window} bytes"
            );
            assert_eq!(read_all(&path, window, 120).unwrap(), whole[..120]);
        }
    }

    #[test]
    fn a_frame_after_the_zeros_is_damage_even_windows_later() {
        let dir = tempfile::tempdir().unwrap();
        let payloads = payloads();
        let (path, mut bytes) = active_segment(dir.path(), &payloads, 5000);
        let zeros_at = bytes.len() - 5000;
        *bytes.last_mut().unwrap() = 1;
        std::fs::write(&path, &bytes).unwrap();
        for window in [64, 1 << 20] {
            let (offset, whole, why) = read_all(&path, window, u64::MAX).unwrap_err();
            assert_eq!(offset, zeros_at as u64, "window of {window} bytes");
            assert_eq!(why, BadFrame::Length(0).to_string());
            if window > bytes.len() {
                assert_eq!(whole, payloads.len() as u64);
            }
        }
    }

    #[test]
    fn a_damaged_frame_is_found_at_its_offset_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let payloads = payloads();
        let (path, mut bytes) = active_segment(dir.path(), &payloads, 0);
        let whole = read_all(&path, 1 << 20, u64::MAX).unwrap();
        let (offset, _) = whole[150];
        bytes[offset as usize + FRAME_HEADER_BYTES as usize] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        for window in [64, 1000, 1 << 20] {
            let (at, _, why) = read_all(&path, window, u64::MAX).unwrap_err();
            assert_eq!((at, why.as_str()), (offset, "frame checksum mismatch"));
        }
        // A file cut inside its last frame: short, at that frame.
        bytes[offset as usize + FRAME_HEADER_BYTES as usize] ^= 0x40;
        let (last, _) = whole[whole.len() - 1];
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        for window in [64, 1 << 20] {
            let (at, _, why) = read_all(&path, window, u64::MAX).unwrap_err();
            assert_eq!((at, why.as_str()), (last, "file ends inside a frame"));
        }
    }
}
