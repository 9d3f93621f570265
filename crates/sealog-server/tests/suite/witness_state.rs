//! The witness's state: checked and stored in one step, so racing requests never roll it
//! back, and kept across a restart, per origin.

use std::collections::HashMap;
use std::sync::Arc;

use sealog_merkle::checkpoint::Checkpoint;
use sealog_merkle::note::{self, Signer};
use sealog_merkle::witness::{AddCheckpoint, Refusal};
use sealog_merkle::{Frontier, Hash, leaf_hash};
use sealog_server::witness::{AddError, WitnessState};

fn roots(n: u64) -> Vec<Hash> {
    let mut f = Frontier::new();
    let mut out = vec![f.root()];
    for i in 0..n {
        f.push(leaf_hash(&i.to_be_bytes()));
        out.push(f.root());
    }
    out
}

fn request(log: &Signer, old: u64, size: u64, root: Hash) -> AddCheckpoint {
    let body = Checkpoint {
        origin: log.name().into(),
        size,
        root,
        extensions: vec![],
    }
    .to_body();
    AddCheckpoint {
        old,
        proof: vec![],
        checkpoint: note::sign(&body, &[log]).unwrap(),
    }
}

fn open(dir: &std::path::Path, log: &Signer) -> WitnessState {
    let logs = HashMap::from([(log.name().to_string(), vec![log.verifier()])]);
    WitnessState::open(dir, Some("test.witness/w1"), logs).unwrap()
}

#[test]
fn racing_first_requests_get_one_cosignature_and_the_rest_conflict() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Signer::from_seed("example.com/log", [3; 32]).unwrap();
    let state = Arc::new(open(tmp.path(), &log));
    let r = roots(64);
    // 64 threads each present a different size as the first the witness sees (old 0).
    let answers: Vec<_> = (1..=64u64)
        .map(|size| {
            let (state, log, root) = (state.clone(), log.clone(), r[size as usize]);
            std::thread::spawn(move || {
                (size, state.add_checkpoint(&request(&log, 0, size, root), 1))
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let won: Vec<u64> = answers
        .iter()
        .filter(|(_, a)| a.is_ok())
        .map(|(s, _)| *s)
        .collect();
    assert_eq!(won.len(), 1, "exactly one first checkpoint is cosigned");
    for (_, a) in &answers {
        match a {
            Ok(_) => {}
            Err(AddError::Refused(Refusal::Conflict { size, .. })) => assert_eq!(*size, won[0]),
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(state.last(log.name()), Some((won[0], r[won[0] as usize])));

    // Kept across a restart: the same size is what a reopened witness holds, by origin.
    drop(state);
    let reopened = open(tmp.path(), &log);
    assert_eq!(
        reopened.last(log.name()),
        Some((won[0], r[won[0] as usize]))
    );
    let replay = reopened.add_checkpoint(&request(&log, 0, 1, r[1]), 2);
    assert!(matches!(
        replay,
        Err(AddError::Refused(Refusal::Conflict { size, .. })) if size == won[0]
    ));
}

#[test]
fn a_rotated_log_key_keeps_the_origin_state_and_a_renamed_witness_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let old_key = Signer::from_seed("example.com/log", [3; 32]).unwrap();
    let new_key = Signer::from_seed("example.com/log", [4; 32]).unwrap();
    let r = roots(8);
    let logs = HashMap::from([(
        "example.com/log".to_string(),
        vec![old_key.verifier(), new_key.verifier()],
    )]);
    let state = WitnessState::open(tmp.path(), Some("test.witness/w1"), logs.clone()).unwrap();
    state
        .add_checkpoint(&request(&old_key, 0, 8, r[8]), 1)
        .unwrap();
    // The new key's checkpoint of the same size and root extends the same state…
    state
        .add_checkpoint(&request(&new_key, 8, 8, r[8]), 2)
        .unwrap();
    // …and the state is not reset to size 0 for it.
    assert!(matches!(
        state.add_checkpoint(&request(&new_key, 0, 3, r[3]), 3),
        Err(AddError::Refused(Refusal::Conflict { size: 8, .. }))
    ));
    drop(state);
    assert!(WitnessState::open(tmp.path(), Some("test.witness/other"), logs).is_err());
}
