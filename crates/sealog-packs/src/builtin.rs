//! The built-in packs, compiled into the binary so a fresh install validates the seed event
//! types without any files beside it.

pub(crate) struct BuiltinPack {
    pub(crate) dir: &'static str,
    pub(crate) manifest: &'static str,
    pub(crate) files: &'static [(&'static str, &'static str)],
}

impl BuiltinPack {
    pub(crate) fn file(&self, name: &str) -> Result<String, String> {
        self.files
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, text)| text.to_string())
            .ok_or_else(|| format!("\"{name}\" is not compiled in; list it in builtin.rs"))
    }
}

macro_rules! pack {
    ($dir:literal, [$($file:literal),* $(,)?]) => {
        BuiltinPack {
            dir: $dir,
            manifest: include_str!(concat!("../packs/", $dir, "/manifest.json")),
            files: &[$(($file, include_str!(concat!("../packs/", $dir, "/", $file)))),*],
        }
    };
}

pub(crate) const PACKS: &[BuiltinPack] = &[
    pack!("decision-log", ["audit_decision_record.schema.json",]),
    pack!(
        "conversation-linking",
        [
            "customer_linked.schema.json",
            "customer_relinked.schema.json",
            "customer_resolution_skipped.schema.json",
            "customer_resolved.schema.json",
            "customer_unlinked.schema.json",
            "customer_unresolved.schema.json",
        ]
    ),
    pack!(
        "knowledge-audit",
        [
            "access_attempt.schema.json",
            "agent_action.schema.json",
            "authority_changed.schema.json",
            "chunk_created.schema.json",
            "chunk_deleted.schema.json",
            "chunk_modified.schema.json",
            "escalation.schema.json",
            "relationship_created.schema.json",
            "relationship_deleted.schema.json",
        ]
    ),
    pack!("coordination", ["decision.schema.json",]),
    pack!(
        "customer-comms",
        [
            "breach_incident.schema.json",
            "consent.schema.json",
            "data_modification.schema.json",
            "email.schema.json",
            "order.schema.json",
            "phone_call.schema.json",
            "popia_request.schema.json",
            "support_ticket.schema.json",
            "user_access.schema.json",
        ]
    ),
    pack!(
        "audit",
        [
            "access.schema.json",
            "alert_delivered.schema.json",
            "check_run.schema.json",
            "conflict.schema.json",
            "conflict_resolved.schema.json",
            "export.schema.json",
            "export_approved.schema.json",
            "hold_placed.schema.json",
            "hold_released.schema.json",
            "key_created.schema.json",
            "key_revoked.schema.json",
            "legal_erasure.schema.json",
            "log_key_rotated.schema.json",
            "payload_deleted.schema.json",
            "quarantine.schema.json",
            "retention_applied.schema.json",
            "verify_run.schema.json",
        ]
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// A schema file added to a pack directory but not listed above would be missing from the
    /// binary; this keeps the list and the directories in step.
    #[test]
    fn every_file_in_the_pack_directories_is_compiled_in() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packs");
        let mut dirs: Vec<String> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        dirs.sort();
        let mut listed: Vec<&str> = PACKS.iter().map(|p| p.dir).collect();
        listed.sort();
        assert_eq!(dirs, listed);
        for pack in PACKS {
            let mut on_disk: Vec<String> = std::fs::read_dir(root.join(pack.dir))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| n != "manifest.json")
                .collect();
            on_disk.sort();
            let mut names: Vec<&str> = pack.files.iter().map(|(n, _)| *n).collect();
            names.sort();
            assert_eq!(on_disk, names, "{}", pack.dir);
        }
    }
}
