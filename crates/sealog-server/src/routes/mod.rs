//! The handlers, one module per resource.

pub(crate) mod conflicts;
pub(crate) mod console;
pub(crate) mod erasures;
pub(crate) mod events;
pub(crate) mod exports;
pub(crate) mod holds;
pub(crate) mod integrity;
pub(crate) mod keys;
pub(crate) mod ops;
pub(crate) mod quarantine;
pub(crate) mod records;
pub(crate) mod reports;
pub(crate) mod retention;
pub(crate) mod small_json;
pub(crate) mod subjects;
pub(crate) mod tlog;
