//! What the ledger does with personal data beyond sealing it on the way in: names data
//! subjects by pseudonym, shows sealed values to whoever may see them, and erases a data
//! subject by destroying their key (crypto-shredding), with an `audit.legal_erasure` record
//! that is durable before the key is gone.

use std::borrow::Cow;
use std::fmt;

use serde_json::{Value, json};

use sealog_model::RecordId;
use sealog_store::{LIMIT_MAX, LogRead, Scan};

use crate::facts::Facts;
use crate::keys::sealed_for;
use crate::own::Act;
use crate::privacy::{SEALED_PREFIX, Sight, pseudonym_bytes, sealed_prefix_for};
use crate::{Error, Ledger, Query};

/// The event type of an erasure's record.
pub const LEGAL_ERASURE_TYPE: &str = "audit.legal_erasure";
/// The event type of the record of quarantine payloads deleted with an erasure.
pub const PAYLOAD_DELETED_TYPE: &str = "audit.payload_deleted";

/// An erasure as asked for.
#[derive(Debug, Clone)]
pub struct Erasure<'a> {
    /// The data subject as producers name it (a customer id), or its pseudonym.
    pub data_subject: &'a str,
    /// Only this tenant's key; every tenant's when `None`.
    pub tenant: Option<&'a str>,
    pub reason: &'a str,
    pub act: Act<'a>,
}

/// What an erasure did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erased {
    pub pseudonym: String,
    pub tenants: Vec<String>,
    /// Records sealed for the subject: they stay, and read as erased.
    pub records: u64,
    /// The subject's quarantine payloads, deleted (their `audit.payload_deleted` record
    /// durable first).
    pub payloads_deleted: Vec<String>,
    /// The `audit.legal_erasure` record.
    pub seq: u64,
    pub record_id: RecordId,
}

#[derive(Debug)]
pub enum EraseError {
    /// No key was ever made for this data subject (in this tenant): nothing is sealed for
    /// them here.
    Unknown(String),
    /// Every key of this data subject (in this tenant) is already destroyed.
    AlreadyErased(String),
    /// A legal hold in force covers the subject: nothing was erased.
    Held(Box<crate::Hold>),
    /// The record could not be formed or was refused.
    Refused(String),
    Store(Error),
}

impl fmt::Display for EraseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EraseError::Unknown(ps) => write!(
                f,
                "no personal data is sealed for data subject {ps} here: nothing to erase"
            ),
            EraseError::AlreadyErased(ps) => {
                write!(f, "data subject {ps} is already erased: nothing changed")
            }
            EraseError::Held(h) => write!(
                f,
                "legal hold {} ({}) covers this data subject: nothing was erased until it is released",
                h.hold_id, h.reason
            ),
            EraseError::Refused(why) => write!(f, "the erasure record was refused: {why}"),
            EraseError::Store(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for EraseError {}

impl From<Error> for EraseError {
    fn from(e: Error) -> Self {
        EraseError::Store(e)
    }
}

impl Ledger {
    /// The pseudonym that stands for a data subject in everything Sealog writes about them
    /// (a pseudonym given is kept as it is).
    pub fn pseudonym(&self, data_subject: &str) -> String {
        if pseudonym_bytes(data_subject).is_some() {
            data_subject.to_string()
        } else {
            self.privacy.pseudonym(data_subject)
        }
    }

    /// Whether an axis holds keyed hashes: the data subject and every personal axis.
    pub fn is_personal_axis(&self, axis: &str) -> bool {
        axis == "data_subject" || self.deriver.personal_axes().contains(axis)
    }

    /// A filter's value as the index holds it: pseudonymised on a personal axis.
    pub fn filter_value(&self, axis: &str, value: &str) -> String {
        if self.is_personal_axis(axis) {
            self.pseudonym(value)
        } else {
            value.to_string()
        }
    }

    /// A filter's value as Sealog's own records state it (access records, export requests):
    /// pseudonymised on a personal axis, and on an axis no pack declares, which is often a
    /// personal one under a wrong name.
    pub fn echoed_value(&self, axis: &str, value: &str) -> String {
        if self.axis_names().iter().any(|a| a == axis) {
            self.filter_value(axis, value)
        } else {
            self.pseudonym(value)
        }
    }

    /// A query as the index answers it: values on personal axes pseudonymised.
    pub fn pseudonymise_query(&self, q: &mut Query) {
        self.pseudonymise_filters(&mut q.equals);
    }

    /// Pseudonymises the values of personal axes in place; whether there was one.
    pub(crate) fn pseudonymise_filters(&self, equals: &mut [(String, String)]) -> bool {
        let mut any = false;
        for (axis, value) in equals.iter_mut() {
            any |= self.is_personal_axis(axis);
            *value = self.filter_value(axis, value);
        }
        any
    }

    /// Whether a record's data subject was erased in its tenant.
    pub(crate) fn sealed_for_erased(&self, bytes: &[u8]) -> bool {
        match Facts::of(&self.deriver, 0, bytes) {
            Ok(f) => f.data_subject.as_deref().is_some_and(|ps| {
                self.privacy
                    .is_erased(f.tenant.as_deref().unwrap_or(""), ps)
            }),
            Err(_) => false,
        }
    }

    /// The pseudonym of a stored record's data subject, as its pack declares it.
    pub fn data_subject_of(&self, record: &[u8]) -> Option<String> {
        Facts::of(&self.deriver, 0, record).ok()?.data_subject
    }

    /// A stored record as `sight` may see it: each sealed value replaced by its plain value
    /// or a marker (`{"$personal": "hidden" | "erased" | "unavailable"}`). A record with no
    /// sealed value comes back as it is stored, byte for byte; one with any is rewritten and
    /// no longer hashes to its leaf (the stored form is what proofs cover).
    pub fn reveal<'b>(&self, record: &'b [u8], sight: &Sight) -> Cow<'b, [u8]> {
        let needle = format!("\"{SEALED_PREFIX}");
        if memchr::memmem::find(record, needle.as_bytes()).is_none() {
            return Cow::Borrowed(record);
        }
        let Ok(mut v) = serde_json::from_slice::<Value>(record) else {
            return Cow::Borrowed(record);
        };
        let tenant = v.get("tenant").and_then(Value::as_str).map(str::to_string);
        self.privacy.reveal(&mut v, tenant.as_deref(), sight);
        Cow::Owned(serde_json::to_vec(&v).expect("a JSON value serializes"))
    }

    /// A quarantine payload as `sight` may see it: a sealed payload opened for those who may
    /// see its data subject's personal data; `None` for others, or when its key is gone.
    pub fn reveal_payload(&self, bytes: Vec<u8>, sight: &Sight) -> Option<Vec<u8>> {
        match self.privacy.open_payload(&bytes, sight) {
            None => Some(bytes),
            Some(opened) => opened.ok(),
        }
    }

    /// Erases a data subject: appends the `audit.legal_erasure` record (durable), then
    /// destroys their key in each tenant. Records stay, verify, and read as erased.
    pub fn erase(&self, e: &Erasure<'_>) -> Result<Erased, EraseError> {
        let ps = self.pseudonym(e.data_subject);
        let _governing = self.governing()?;
        let (tenants, erased_before) = self.privacy.live_keys(&ps, e.tenant);
        if tenants.is_empty() {
            return Err(if erased_before {
                EraseError::AlreadyErased(ps)
            } else {
                EraseError::Unknown(ps)
            });
        }
        if let Some(hold) = self.hold_on(&tenants, &ps)? {
            return Err(EraseError::Held(Box::new(hold)));
        }
        // What the erasure record announces: the records and payloads there are as it
        // starts (events of the subject sealed before it and appended while it runs are
        // erased too, and their payloads deleted, but not counted here).
        let mut records = 0u64;
        for t in &tenants {
            records += count_sealed_for(&*self.canonical, tenant_of(t), &ps, u64::MAX)?;
        }
        let payloads = self.payloads_sealed_for_any(&tenants, &ps)?;
        let scope = e.tenant.unwrap_or("*");
        let data = json!({
            "data_subject_pseudonym": ps,
            "reason": e.reason,
            "records_affected": records,
            "quarantine_payloads_deleted": payloads.len(),
            "tenants": tenants,
        });
        let erasure = self.append_own(
            format!("erasure:{ps}:{scope}:{}", e.act.time),
            LEGAL_ERASURE_TYPE,
            &e.act,
            e.tenant,
            data,
        )?;
        let (seq, record_id) = erasure.map_err(EraseError::Refused)?;
        let payloads = {
            // No quarantine record is appended between the keys' destruction and the search
            // for what was sealed under them; one appended after finds them destroyed.
            let _erasing = self.erasing.write().unwrap_or_else(|p| p.into_inner());
            self.privacy.erase(&ps, &tenants, e.tenant.is_none())?;
            self.payloads_sealed_for_any(&tenants, &ps)?
        };
        if !payloads.is_empty() {
            // Recorded first: a payload a quarantine record names is gone only when a record
            // says why.
            self.append_own(
                format!("payloads-deleted:{ps}:{scope}:{}", e.act.time),
                PAYLOAD_DELETED_TYPE,
                &e.act,
                e.tenant,
                payload_deletion(&payloads, &ps),
            )?
            .map_err(EraseError::Refused)?;
            self.payloads.remove(&payloads)?;
        }
        metrics::counter!("sealog_erasures_total").increment(1);
        Ok(Erased {
            pseudonym: ps,
            tenants,
            records,
            payloads_deleted: payloads,
            seq,
            record_id,
        })
    }

    /// Appends the deletion record an interrupted erasure (`erasure`, its record) did not
    /// get to: the payloads sealed for the subject in its tenants, named by the id the
    /// erasure would have given it, by the erasure's own act. Answers the payloads it names.
    fn record_payload_deletion(
        &self,
        id: String,
        ps: &str,
        tenants: &[String],
        erasure: &Value,
    ) -> Result<Vec<String>, Error> {
        let payloads = self.payloads_sealed_for_any(tenants, ps)?;
        if payloads.is_empty() {
            return Ok(payloads);
        }
        let text = |k: &str| erasure[k].as_str().unwrap_or_default().to_string();
        let source = text("source");
        let act = Act {
            actor: erasure["actor"].clone(),
            time: text("time"),
            source: &source,
        };
        self.append_own(
            id,
            PAYLOAD_DELETED_TYPE,
            &act,
            erasure["tenant"].as_str(),
            payload_deletion(&payloads, ps),
        )?
        .map_err(|why| {
            Error::Corrupted(format!(
                "the deletion record of an interrupted erasure was refused: {why}"
            ))
        })?;
        Ok(payloads)
    }

    /// The payload refs of the quarantine records sealed for the data subject `ps` in any of
    /// `tenants`, sorted, once each.
    fn payloads_sealed_for_any(&self, tenants: &[String], ps: &str) -> Result<Vec<String>, Error> {
        let mut payloads = Vec::new();
        for t in tenants {
            payloads.extend(self.payloads_sealed_for(&sealed_for(tenant_of(t), ps))?);
        }
        payloads.sort();
        payloads.dedup();
        Ok(payloads)
    }

    /// The payload refs of the quarantine records sealed for a (tenant, subject) key.
    fn payloads_sealed_for(&self, key: &sealog_store::Key) -> Result<Vec<String>, Error> {
        let mut scan = scan_of(key);
        let mut refs = Vec::new();
        loop {
            let page = self.quarantine.scan(&scan)?;
            for (_, bytes) in &page.records {
                let v: Value = serde_json::from_slice(bytes)
                    .map_err(|e| Error::Corrupted(format!("a quarantine record: {e}")))?;
                if let Some(r) = v["data"]["payload_ref"].as_str() {
                    refs.push(r.to_string());
                }
            }
            match page.next_after {
                Some(a) => scan.after = Some(a),
                None => return Ok(refs),
            }
        }
    }

    /// Whether an `audit.payload_deleted` record names the payload.
    pub(crate) fn payload_deleted(&self, payload_ref: &str) -> Result<bool, Error> {
        let q = Query {
            equals: vec![
                ("type".into(), PAYLOAD_DELETED_TYPE.into()),
                ("payload_ref".into(), payload_ref.into()),
            ],
            limit: 1,
            ..Query::default()
        };
        let page = crate::query::canonical(&*self.canonical, &self.deriver, &q)?;
        Ok(page.records.iter().any(|(_, bytes)| {
            serde_json::from_slice::<Value>(bytes).is_ok_and(|v| {
                v["data"]["payload_refs"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|r| r == payload_ref))
            })
        }))
    }

    /// Finishes erasures a crash interrupted: keys an erasure record names that are still
    /// here are destroyed, the deletion record of its payloads appended if it is missing,
    /// and payloads a deletion record names that are still here deleted.
    pub(crate) fn finish_erasures(&self) -> Result<(), Error> {
        let deletions = self.records_of(PAYLOAD_DELETED_TYPE)?;
        let mut refs: Vec<String> = deletions
            .iter()
            .flat_map(|(_, v)| strings(&v["data"]["payload_refs"]))
            .collect();
        for (_, v) in self.records_of(LEGAL_ERASURE_TYPE)? {
            let data = &v["data"];
            let Some(ps) = data["data_subject_pseudonym"].as_str() else {
                continue;
            };
            let tenants = strings(&data["tenants"]);
            let (live, _) = self.privacy.live_keys(ps, None);
            let left: Vec<String> = tenants
                .iter()
                .filter(|t| live.contains(t))
                .cloned()
                .collect();
            // An erasure of no one tenant's (its record has none) holds in every tenant.
            let everywhere = v["tenant"].is_null() && !self.privacy.erased_everywhere(ps);
            if !left.is_empty() || everywhere {
                self.privacy.erase(ps, &left, everywhere)?;
            }
            // Asked of every erasure without its deletion record, whatever it announced: a
            // payload may have come in while it ran.
            let id = v["id"]
                .as_str()
                .and_then(|id| id.strip_prefix("erasure:"))
                .map(|rest| format!("payloads-deleted:{rest}"));
            if let Some(id) = id.filter(|id| !deletions.iter().any(|(_, d)| d["id"] == **id)) {
                refs.extend(self.record_payload_deletion(id, ps, &tenants, &v)?);
            }
        }
        if !refs.is_empty() {
            self.payloads.remove(&refs)?;
        }
        Ok(())
    }
}

/// What an `audit.payload_deleted` record of an erasure says.
fn payload_deletion(payloads: &[String], ps: &str) -> Value {
    json!({
        "payload_refs": payloads,
        "reason": format!("erasure of data subject {ps}"),
        "data_subject_pseudonym": ps,
    })
}

/// How many of `log`'s records are sealed for the data subject `ps` in `tenant`, counting no
/// further than `at_most`: those its `data_subject` key finds in that tenant that hold a value
/// sealed for it (records kept before their pack declared a data subject hold none).
pub(crate) fn count_sealed_for(
    log: &dyn LogRead,
    tenant: Option<&str>,
    ps: &str,
    at_most: u64,
) -> Result<u64, sealog_store::StoreError> {
    #[derive(serde::Deserialize)]
    struct Tenant<'a> {
        #[serde(borrow)]
        tenant: Option<Cow<'a, str>>,
    }
    let subject_key = crate::keys::key("data_subject", ps);
    // A subject's first event asks this of a log that has none of theirs: one look in the
    // index answers it, before a scan and its needle are made.
    if log.first_with(&subject_key, u64::MAX)?.is_none() {
        return Ok(0);
    }
    let Some(needle) = sealed_prefix_for(ps) else {
        return Ok(0);
    };
    let mut scan = scan_of(&subject_key);
    // A tenant's key selects its records; a record of no tenant is told by reading it.
    scan.keys
        .extend(tenant.map(|t| crate::keys::key("tenant", t)));
    // Short pages when one record answers (a check that a subject is known), yet not one
    // record a page when other tenants' records come first.
    scan.limit = usize::try_from(at_most).map_or(LIMIT_MAX, |n| n.clamp(64, LIMIT_MAX));
    let mut n = 0;
    loop {
        let page = log.scan(&scan)?;
        for (_, bytes) in &page.records {
            let sealed = memchr::memmem::find(bytes, needle.as_bytes()).is_some();
            let here = tenant.is_some()
                || serde_json::from_slice::<Tenant<'_>>(bytes).is_ok_and(|r| r.tenant.is_none());
            n += u64::from(sealed && here);
            if n >= at_most {
                return Ok(n);
            }
        }
        match page.next_after {
            Some(a) => scan.after = Some(a),
            None => return Ok(n),
        }
    }
}

/// Every record carrying `key`, page by page.
fn scan_of(key: &sealog_store::Key) -> Scan {
    Scan {
        keys: vec![*key],
        event_from: None,
        event_to: None,
        ingest_from: None,
        ingest_to: None,
        after: None,
        below: None,
        limit: LIMIT_MAX,
        skip_leaf_check: true,
    }
}

/// The strings of a JSON array (none when it is not one).
fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A key store's tenant ("" for events with none) as an envelope names it.
fn tenant_of(t: &str) -> Option<&str> {
    (!t.is_empty()).then_some(t)
}
