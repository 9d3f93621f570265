//! Exports made through the server: each a job with an id, its files in
//! `DATA/exports/{id}/` (owner-only), recorded as `audit.export` before it can be fetched.
//!
//! A request is sliced first, so its size is known and its cut pinned (the checkpoint it is
//! proven against is fixed then, whatever is appended while it waits or runs). Exports of
//! more records than `approval_above` wait in `pending` until an admin other than the one
//! who asked approves them (`audit.export_approved`); those above `background_above` run in
//! the background with progress in their status. Jobs live in memory: a restart forgets
//! them and removes their files, and every job expires `ttl` after it was made.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use sealog_export::{Format, Manifest, Request};
use sealog_ledger::Selection;
use serde_json::{Value, json};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;

/// When exports need approval, run in the background, and expire.
#[derive(Debug, Clone)]
pub struct ExportConfig {
    /// Exports of more records than this wait for a second admin's approval.
    pub approval_above: u64,
    /// Exports of more records than this run in the background (answered 202).
    pub background_above: u64,
    /// How long an export's files are kept.
    pub ttl: Duration,
}

impl Default for ExportConfig {
    fn default() -> Self {
        ExportConfig {
            approval_above: 1_000_000,
            background_above: 10_000,
            ttl: Duration::from_secs(24 * 3600),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File(Format),
    Bundle,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::File(f) => f.name(),
            Kind::Bundle => "bundle",
        }
    }

    /// The file `GET /v1/exports/{id}` serves, within the job's directory.
    fn main_file(self) -> &'static str {
        match self {
            Kind::File(Format::Jsonl) => "export.jsonl",
            Kind::File(Format::Parquet) => "export.parquet",
            Kind::Bundle => "bundle/records.jsonl",
        }
    }

    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Kind::File(Format::Parquet) => "application/vnd.apache.parquet",
            _ => "application/x-ndjson",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum JobState {
    Pending,
    Running,
    Done(Box<Manifest>),
    Failed(String),
}

impl JobState {
    fn name(&self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Done(_) => "done",
            JobState::Failed(_) => "failed",
        }
    }
}

pub(crate) struct Job {
    pub id: String,
    pub kind: Kind,
    /// The filters as the request gave them.
    pub filters: Value,
    /// The selection with the principal's reach added and its cut pinned.
    pub selection: Selection,
    /// For a bundle: the axis and value it is the history of.
    pub bundle_of: Option<(String, String)>,
    /// The principal's forced filters: who may see the job, and what every record must have.
    pub reach: Vec<(String, String)>,
    pub requested_by: Principal,
    pub approved_by: Mutex<Option<String>>,
    pub count: u64,
    pub written: AtomicU64,
    pub state: Mutex<JobState>,
    pub made: SystemTime,
    /// Where its files are: `DATA/exports/{id}`.
    pub dir: PathBuf,
}

impl Job {
    pub(crate) fn state(&self) -> JobState {
        self.state.lock().expect("job lock").clone()
    }

    fn set(&self, s: JobState) {
        *self.state.lock().expect("job lock") = s;
    }

    /// Whether a principal may see this job: one that reaches everything, or one with the
    /// same reach as the one who asked for it.
    pub(crate) fn visible_to(&self, p: &Principal) -> bool {
        let theirs = p.forced_filters();
        theirs.is_empty() || theirs == self.reach
    }

    pub(crate) fn status(&self, ttl: Duration) -> Value {
        let state = self.state();
        let expires = self.made + ttl;
        let expires_ns = expires
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        let mut v = json!({
            "id": self.id,
            "state": state.name(),
            "format": self.kind.name(),
            "filters": self.filters,
            "count": self.count,
            "written": self.written.load(Ordering::Relaxed),
            "requested_by": self.requested_by.key_id,
            "approved_by": *self.approved_by.lock().expect("job lock"),
            "expires_at": sealog_model::time::format_micros(expires_ns),
        });
        match state {
            JobState::Done(m) => {
                v["manifest"] = serde_json::to_value(&*m).expect("a manifest is JSON");
                v["files"] = json!(self.files());
            }
            JobState::Failed(why) => v["error"] = json!(why),
            _ => {}
        }
        v
    }

    /// The files a finished job holds, by the names `/files/{name}` serves them under.
    pub(crate) fn files(&self) -> Vec<String> {
        match self.kind {
            Kind::File(_) => {
                let f = self.kind.main_file();
                vec![
                    f.to_string(),
                    format!("{f}.proof"),
                    format!("{f}.manifest.json"),
                ]
            }
            Kind::Bundle => {
                let mut v: Vec<String> = [
                    "records.jsonl",
                    "records.jsonl.proof",
                    "records.jsonl.manifest.json",
                    "checkpoint",
                    "log.pub",
                    "README.md",
                ]
                .iter()
                .map(|f| format!("bundle/{f}"))
                .collect();
                if let Ok(entries) = fs::read_dir(self.dir.join("bundle/schemas")) {
                    let mut schemas: Vec<String> = entries
                        .filter_map(|e| e.ok())
                        .map(|e| format!("bundle/schemas/{}", e.file_name().to_string_lossy()))
                        .collect();
                    schemas.sort();
                    v.extend(schemas);
                }
                v
            }
        }
    }

    pub(crate) fn main_file(&self) -> &'static str {
        self.kind.main_file()
    }
}

pub(crate) struct Exports {
    pub dir: PathBuf,
    pub config: ExportConfig,
    jobs: Mutex<HashMap<String, Arc<Job>>>,
}

impl Exports {
    /// Starts with an empty exports directory: jobs do not outlive the process.
    pub(crate) fn open(dir: PathBuf, config: ExportConfig) -> std::io::Result<Self> {
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        Ok(Exports {
            dir,
            config,
            jobs: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn job_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    pub(crate) fn get(&self, id: &str) -> Option<Arc<Job>> {
        self.sweep();
        self.jobs.lock().expect("jobs lock").get(id).cloned()
    }

    pub(crate) fn insert(&self, job: Arc<Job>) {
        self.sweep();
        self.jobs
            .lock()
            .expect("jobs lock")
            .insert(job.id.clone(), job);
    }

    /// Forgets expired jobs and removes their files.
    fn sweep(&self) {
        let now = SystemTime::now();
        let expired: Vec<String> = {
            let mut jobs = self.jobs.lock().expect("jobs lock");
            let ids: Vec<String> = jobs
                .values()
                .filter(|j| j.made + self.config.ttl <= now)
                .filter(|j| !matches!(j.state(), JobState::Running))
                .map(|j| j.id.clone())
                .collect();
            for id in &ids {
                jobs.remove(id);
            }
            ids
        };
        for id in expired {
            let _ = fs::remove_dir_all(self.job_dir(&id));
        }
    }
}

/// A fresh job id: random, so one job's id tells nothing of another's.
pub(crate) fn new_id() -> String {
    let mut b = [0u8; 12];
    let _ = getrandom::fill(&mut b);
    format!("exp_{}", hex::encode(b))
}

/// Runs a job to the end: writes its files aside, records `audit.export`, gives the files
/// their names. Call it on a blocking thread.
pub(crate) fn run(state: &Arc<AppState>, job: &Arc<Job>, request_id: &str) {
    job.set(JobState::Running);
    let outcome = write(state, job, request_id);
    match outcome {
        Ok(m) => job.set(JobState::Done(Box::new(m))),
        Err(e) => {
            let _ = fs::remove_dir_all(&job.dir);
            job.set(JobState::Failed(e));
        }
    }
}

fn write(state: &Arc<AppState>, job: &Arc<Job>, request_id: &str) -> Result<Manifest, String> {
    let dir = &job.dir;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let ledger = &state.ledger;
    let written = &job.written;
    let mut progress = |done: u64, _total: u64| written.store(done, Ordering::Relaxed);
    let handle = tokio::runtime::Handle::current();
    let mut record = |m: &Manifest| -> Result<(), sealog_export::Error> {
        handle
            .block_on(state.record_own(vec![export_event(job, m, request_id)]))
            .map_err(|e| sealog_export::Error::Refused(e.message))
    };
    match job.kind {
        Kind::File(format) => {
            let req = Request {
                selection: job.selection.clone(),
                format,
                out: dir.join(job.kind.main_file()),
                force: false,
                must_have: job.reach.clone(),
            };
            let pending =
                sealog_export::prepare(ledger, &req, &mut progress).map_err(|e| e.to_string())?;
            record(&pending.manifest).map_err(|e| e.to_string())?;
            pending.commit().map_err(|e| e.to_string())
        }
        Kind::Bundle => {
            let (axis, value) = job.bundle_of.clone().unwrap_or_default();
            let mut extra = job.selection.clone();
            extra
                .query
                .equals
                .retain(|(a, v)| !(a == &axis && v == &value));
            let req = sealog_export::BundleRequest {
                axis,
                value,
                extra,
                must_have: job.reach.clone(),
                dir: dir.join("bundle"),
            };
            sealog_export::bundle(ledger, &req, &mut progress, &mut record)
                .map(|r| r.manifest)
                .map_err(|e| e.to_string())
        }
    }
}

fn export_event(job: &Job, m: &Manifest, request_id: &str) -> Value {
    let p = &job.requested_by;
    let mut event = json!({
        "specversion": "1.0",
        "id": format!("export:{}", job.id),
        "source": crate::access::SOURCE,
        "type": "audit.export",
        "time": crate::keys::now_text(),
        "actor": {"type": "service", "id": p.key_id},
        "data": {
            "export_id": job.id,
            "format": job.kind.name(),
            "filters": m.filters,
            "count": m.count,
            "sha256": m.sha256,
            "checkpoint_size": m.tree_size,
            "principal": p.to_json(),
            "approved_by": *job.approved_by.lock().expect("job lock"),
            "channel": "http",
            "request_id": request_id,
        },
    });
    if let Some(t) = &p.tenant {
        event["tenant"] = json!(t);
    }
    event
}

pub(crate) fn approval_event(job: &Job, by: &Principal, request_id: &str) -> Value {
    let mut event = json!({
        "specversion": "1.0",
        "id": format!("export-approved:{}", job.id),
        "source": crate::access::SOURCE,
        "type": "audit.export_approved",
        "time": crate::keys::now_text(),
        "actor": {"type": "service", "id": by.key_id},
        "data": {
            "export_id": job.id,
            "approved_by": by.key_id,
            "requested_by": job.requested_by.key_id,
            "count": job.count,
            "request_id": request_id,
        },
    });
    if let Some(t) = &job.requested_by.tenant {
        event["tenant"] = json!(t);
    }
    event
}

/// The path of a job file by the name it is served under, if it is one of the job's.
pub(crate) fn file_path(job: &Job, name: &str) -> Option<PathBuf> {
    job.files()
        .iter()
        .any(|f| f == name)
        .then(|| job.dir.join(Path::new(name)))
}

pub(crate) fn not_ready(job: &Job) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::CONFLICT,
        "EXPORT_NOT_READY",
        format!(
            "export {} is {}; its files can be fetched once it is done",
            job.id,
            job.state().name()
        ),
    )
}
