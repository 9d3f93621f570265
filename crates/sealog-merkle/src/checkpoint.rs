//! C2SP tlog-checkpoint note bodies.
//!
//! ```text
//! <origin>
//! <tree size, decimal>
//! <root hash, standard base64>
//! [extension lines]
//! ```
//! Every line, including the last, ends in a newline. The body is the text of a signed
//! note (see [`crate::note`]); signing and verification happen there.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use thiserror::Error;

use crate::hash::{HASH_SIZE, Hash};
use crate::text::{has_forbidden_control, parse_decimal};

/// A tree head as published in a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Identity of the log, e.g. `example.com/log42`. Non-empty, no newline.
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// RFC 9162 tree head at `size`.
    pub root: Hash,
    /// Opaque extra lines, each non-empty and without newline (discouraged by the spec,
    /// since monitors cannot audit them).
    pub extensions: Vec<String>,
}

/// Why a checkpoint body was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CheckpointError {
    #[error("checkpoint does not end in a newline")]
    MissingFinalNewline,
    #[error("checkpoint contains a control character other than newline")]
    ControlCharacter,
    #[error("checkpoint has {0} lines, needs at least 3")]
    TooFewLines(usize),
    /// 1-based line number.
    #[error("checkpoint line {0} is empty")]
    EmptyLine(usize),
    #[error("invalid tree size {0:?}")]
    BadSize(String),
    #[error("root hash is not the base64 encoding of {HASH_SIZE} bytes")]
    BadRootHash,
}

impl Checkpoint {
    /// Serialises the note text. The fields are not checked: a checkpoint whose origin or
    /// extensions are empty or contain newlines yields a body that [`parse`](Self::parse)
    /// rejects.
    pub fn to_body(&self) -> String {
        let mut s = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        );
        for ext in &self.extensions {
            s.push_str(ext);
            s.push('\n');
        }
        s
    }

    /// Parses a note text strictly: exactly the canonical encoding is accepted, so a
    /// checkpoint has a single byte representation and `parse(b).to_body() == b`.
    pub fn parse(body: &str) -> Result<Self, CheckpointError> {
        let Some(content) = body.strip_suffix('\n') else {
            return Err(CheckpointError::MissingFinalNewline);
        };
        if has_forbidden_control(content) {
            return Err(CheckpointError::ControlCharacter);
        }
        let lines: Vec<&str> = content.split('\n').collect();
        if let Some(i) = lines.iter().position(|l| l.is_empty()) {
            return Err(CheckpointError::EmptyLine(i + 1));
        }
        if lines.len() < 3 {
            return Err(CheckpointError::TooFewLines(lines.len()));
        }
        let size =
            parse_decimal(lines[1]).ok_or_else(|| CheckpointError::BadSize(lines[1].to_owned()))?;
        let root = STANDARD
            .decode(lines[2])
            .ok()
            .and_then(|v| Hash::try_from(v).ok())
            .ok_or(CheckpointError::BadRootHash)?;
        Ok(Self {
            origin: lines[0].to_owned(),
            size,
            root,
            extensions: lines[3..].iter().map(|l| (*l).to_owned()).collect(),
        })
    }
}
