//! The Parquet form: one row per record, typed columns for the envelope and for the axes the
//! packs declare for the exported types (`axis.NAME`, a list of strings), and the canonical
//! record text in `record`, so every row can be re-hashed and its typed columns re-derived.
//! Writer properties are fixed (zstd level 3, row groups of 4,096 rows, Sealog's own
//! `created_by`), so the same records give the same bytes.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder, TimestampNanosecondBuilder, UInt64Builder};
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use sealog_ledger::{Located, Packs, locate};

use crate::error::Error;
use crate::files::Hashing;
use crate::write::Sink;

/// The envelope columns, in order; the `axis.NAME` columns follow them.
pub const COLUMNS: [&str; 15] = [
    "seq",
    "record_id",
    "id",
    "type",
    "source",
    "time",
    "ingested_at",
    "tenant",
    "scope",
    "subject",
    "data_subject",
    "actor_type",
    "actor_id",
    "supersedes",
    "record",
];

const AXIS_PREFIX: &str = "axis.";
const ROWS_PER_BATCH: usize = 4096;
const ROWS_PER_GROUP: usize = 4096;

/// The `axis.NAME` columns an export of these event types has: every axis their packs declare.
pub(crate) fn axis_names(packs: &Packs, types: &BTreeSet<String>) -> Vec<String> {
    let mut names: Vec<String> = packs
        .axes()
        .into_iter()
        .filter(|(_, t, _)| types.contains(t))
        .map(|(_, _, name)| name)
        .collect();
    names.sort();
    names.dedup();
    names
}

fn schema(axis_names: &[String]) -> SchemaRef {
    let utc = || DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()));
    let mut fields = Vec::with_capacity(COLUMNS.len() + axis_names.len());
    for name in COLUMNS {
        let (ty, nullable) = match name {
            "seq" => (DataType::UInt64, false),
            "time" | "ingested_at" => (utc(), false),
            "tenant" | "subject" | "data_subject" | "actor_type" | "actor_id" | "supersedes" => {
                (DataType::Utf8, true)
            }
            _ => (DataType::Utf8, false),
        };
        fields.push(Field::new(name, ty, nullable));
    }
    for a in axis_names {
        let item = Arc::new(Field::new("item", DataType::Utf8, true));
        fields.push(Field::new(
            format!("{AXIS_PREFIX}{a}"),
            DataType::List(item),
            true,
        ));
    }
    Arc::new(Schema::new(fields))
}

/// Column builders for a batch of rows.
struct Rows {
    schema: SchemaRef,
    seq: UInt64Builder,
    text: [StringBuilder; 4],
    time: [TimestampNanosecondBuilder; 2],
    optional: [StringBuilder; 7],
    record: StringBuilder,
    axes: Vec<(String, ListBuilder<StringBuilder>)>,
    len: usize,
}

impl Rows {
    fn new(axis_names: &[String]) -> Self {
        let ts = || TimestampNanosecondBuilder::new().with_timezone("UTC");
        Rows {
            schema: schema(axis_names),
            seq: UInt64Builder::new(),
            text: std::array::from_fn(|_| StringBuilder::new()),
            time: [ts(), ts()],
            optional: std::array::from_fn(|_| StringBuilder::new()),
            record: StringBuilder::new(),
            axes: axis_names
                .iter()
                .map(|a| (a.clone(), ListBuilder::new(StringBuilder::new())))
                .collect(),
            len: 0,
        }
    }

    fn push(&mut self, r: &Located, text: &str) {
        self.seq.append_value(r.seq);
        for (b, v) in self
            .text
            .iter_mut()
            .zip([&r.record_id, &r.id, &r.event_type, &r.source])
        {
            b.append_value(v);
        }
        self.time[0].append_value(r.time_ns);
        self.time[1].append_value(r.ingested_ns);
        let optional = [
            r.tenant.as_deref(),
            Some(r.scope.as_str()),
            r.subject.as_deref(),
            r.data_subject.as_deref(),
            r.actor_type.as_deref(),
            r.actor_id.as_deref(),
            r.supersedes.as_deref(),
        ];
        for (b, v) in self.optional.iter_mut().zip(optional) {
            b.append_option(v);
        }
        self.record.append_value(text);
        for (name, b) in &mut self.axes {
            let mut any = false;
            for (_, v) in r.axes.iter().filter(|(a, _)| a == name) {
                b.values().append_value(v);
                any = true;
            }
            b.append(any);
        }
        self.len += 1;
    }

    fn finish(&mut self) -> Result<RecordBatch, Error> {
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        cols.push(Arc::new(self.seq.finish()));
        for b in &mut self.text {
            cols.push(Arc::new(b.finish()));
        }
        for b in &mut self.time {
            cols.push(Arc::new(b.finish()));
        }
        for b in &mut self.optional {
            cols.push(Arc::new(b.finish()));
        }
        cols.push(Arc::new(self.record.finish()));
        for (_, b) in &mut self.axes {
            cols.push(Arc::new(b.finish()));
        }
        self.len = 0;
        RecordBatch::try_new(self.schema.clone(), cols).map_err(|e| Error::Parquet(e.to_string()))
    }
}

fn properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("zstd level 3 exists"),
        ))
        .set_max_row_group_row_count(Some(ROWS_PER_GROUP))
        // Statistics of the record text would copy whole records into the metadata, which
        // the writer keeps for the whole file; the typed columns keep theirs.
        .set_column_statistics_enabled("record".into(), EnabledStatistics::None)
        .set_statistics_truncate_length(Some(64))
        .set_created_by(format!("sealog {}", env!("CARGO_PKG_VERSION")))
        .build()
}

pub(crate) struct Writer {
    out: ArrowWriter<Hashing<BufWriter<File>>>,
    rows: Rows,
    packs: Packs,
    path: PathBuf,
}

impl Writer {
    pub(crate) fn new(
        file: File,
        path: &Path,
        packs: &Packs,
        types: &[String],
    ) -> Result<Self, Error> {
        let types: BTreeSet<String> = types.iter().cloned().collect();
        let rows = Rows::new(&axis_names(packs, &types));
        let sink = Hashing::new(BufWriter::with_capacity(1 << 20, file));
        let out = ArrowWriter::try_new(sink, rows.schema.clone(), Some(properties()))
            .map_err(|e| Error::Parquet(e.to_string()))?;
        Ok(Writer {
            out,
            rows,
            packs: packs.clone(),
            path: path.to_path_buf(),
        })
    }

    fn flush_rows(&mut self) -> Result<(), Error> {
        if self.rows.len > 0 {
            let batch = self.rows.finish()?;
            self.out
                .write(&batch)
                .map_err(|e| Error::Parquet(format!("{}: {e}", self.path.display())))?;
        }
        Ok(())
    }
}

impl Sink for Writer {
    fn push(&mut self, bytes: &[u8], located: Option<Located>) -> Result<(), Error> {
        let r = match located {
            Some(r) => r,
            None => locate(&self.packs, bytes).map_err(Error::Corrupted)?,
        };
        let text = std::str::from_utf8(bytes)
            .map_err(|_| Error::Corrupted(format!("record {} is not UTF-8", r.seq)))?;
        self.rows.push(&r, text);
        if self.rows.len == ROWS_PER_BATCH {
            self.flush_rows()?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(File, u64, String), Error> {
        self.flush_rows()?;
        let Writer { out, path, .. } = *self;
        let sink = out
            .into_inner()
            .map_err(|e| Error::Parquet(format!("{}: {e}", path.display())))?;
        let (bytes, digest) = (sink.bytes, sink.digest());
        let file = sink
            .inner
            .into_inner()
            .map_err(|e| Error::io(&path, e.into_error()))?;
        Ok((file, bytes, digest))
    }
}

/// What reading a Parquet export back found.
pub(crate) struct Read {
    /// The `axis.NAME` columns the file has.
    pub axis_names: Vec<String>,
    /// The length and SHA-256 of the file this release writes for the rows read, when asked
    /// for: equal to the file's own, they vouch for every byte a reader may act on besides
    /// the rows (the footer's statistics, the page index), which the rows alone do not.
    pub rewritten: Option<(u64, String)>,
}

/// Reads a Parquet export back batch by batch: hands each row's record text to `check`,
/// which answers what the record says of itself, and refuses a file whose typed columns are
/// not exactly what those records give. With `rewrite`, writes those rows again as
/// [`Writer`] does, hashing what it would write.
pub(crate) fn read(
    path: &Path,
    check: &mut dyn FnMut(&[u8]) -> Result<Located, String>,
    rewrite: bool,
) -> Result<Read, String> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| format!("not a readable Parquet file: {e}"))?;
    let axis_names: Vec<String> = reader
        .schema()
        .fields()
        .iter()
        .filter_map(|f| f.name().strip_prefix(AXIS_PREFIX).map(str::to_string))
        .collect();
    let mut rows = Rows::new(&axis_names);
    let want = rows.schema.clone();
    if reader.schema().fields() != want.fields() {
        return Err("its columns are not an export's".into());
    }
    let reader = reader
        .with_batch_size(ROWS_PER_BATCH)
        .build()
        .map_err(|e| format!("not a readable Parquet file: {e}"))?;
    let mut again = rewrite
        .then(|| {
            ArrowWriter::try_new(
                Hashing::new(std::io::sink()),
                want.clone(),
                Some(properties()),
            )
        })
        .transpose()
        .map_err(|e| format!("writing its rows again: {e}"))?;
    let mut row = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| format!("unreadable after row {row}: {e}"))?;
        let texts = batch
            .column_by_name("record")
            .and_then(|c| c.as_any().downcast_ref::<StringArray>())
            .ok_or("no record column")?;
        for i in 0..texts.len() {
            row += 1;
            if texts.is_null(i) {
                return Err(format!("row {row}: no record text"));
            }
            let r = check(texts.value(i).as_bytes())?;
            rows.push(&r, texts.value(i));
        }
        let derived = rows.finish().map_err(|e| e.to_string())?;
        for (i, field) in want.fields().iter().enumerate() {
            if derived.column(i).as_ref() != batch.column(i).as_ref() {
                return Err(format!(
                    "column {:?} in the rows up to {row} is not what their records say",
                    field.name()
                ));
            }
        }
        if let Some(w) = &mut again {
            w.write(&derived)
                .map_err(|e| format!("writing its rows again: {e}"))?;
        }
    }
    let rewritten = again
        .map(|w| {
            w.into_inner()
                .map(|sink| (sink.bytes, sink.digest()))
                .map_err(|e| format!("writing its rows again: {e}"))
        })
        .transpose()?;
    Ok(Read {
        axis_names,
        rewritten,
    })
}

/// The canonical record texts of a Parquet export, in order (for tests and tools).
pub fn record_texts(path: &Path) -> Result<Vec<String>, String> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| format!("not a readable Parquet file: {e}"))?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| e.to_string())?;
        let texts = batch
            .column_by_name("record")
            .and_then(|c| c.as_any().downcast_ref::<StringArray>())
            .ok_or("no record column")?;
        out.extend(texts.iter().map(|t| t.unwrap_or_default().to_string()));
    }
    Ok(out)
}
