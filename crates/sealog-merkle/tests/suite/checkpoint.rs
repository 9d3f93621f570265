//! Checkpoint bodies: round trips, the spec example, strict parsing, and signing.

use sealog_merkle::checkpoint::{Checkpoint, CheckpointError};
use sealog_merkle::note::{Signer, open, sign};
use sealog_merkle::{Frontier, leaf_hash};

/// Body of the example in the C2SP tlog-checkpoint specification (c2sp.org/tlog-checkpoint).
const SPEC_BODY: &str =
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

#[test]
fn spec_example_round_trips() {
    let c = Checkpoint::parse(SPEC_BODY).unwrap();
    assert_eq!(c.origin, "example.com/behind-the-sofa");
    assert_eq!(c.size, 20_852_163);
    assert_eq!(
        hex::encode(c.root),
        "0ac5186a91863e8e1d90c808014aa89bf5da8e3ee1d9f07630f0378f68f1ab62"
    );
    assert!(c.extensions.is_empty());
    assert_eq!(c.to_body(), SPEC_BODY);
}

#[test]
fn extensions_round_trip() {
    let c = Checkpoint {
        origin: "sealog.example/audit".into(),
        size: 0,
        root: sealog_merkle::empty_root(),
        extensions: vec!["timestamp 1700000000".into(), "— other ext".into()],
    };
    let body = c.to_body();
    assert_eq!(
        body,
        "sealog.example/audit\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\ntimestamp 1700000000\n— other ext\n"
    );
    assert_eq!(Checkpoint::parse(&body).unwrap(), c);
}

#[test]
fn signed_checkpoint_round_trips() {
    let mut f = Frontier::new();
    for i in 0u32..1000 {
        f.push(leaf_hash(&i.to_be_bytes()));
    }
    let c = Checkpoint {
        origin: "log.example".into(),
        size: f.size(),
        root: f.root(),
        extensions: vec![],
    };
    let signer = Signer::from_seed("log.example", [9; 32]).unwrap();
    let note = sign(&c.to_body(), &[&signer]).unwrap();
    let opened = open(&note, &[&signer.verifier()]).unwrap();
    assert_eq!(Checkpoint::parse(&opened.text).unwrap(), c);
}

#[test]
fn parse_is_strict() {
    let root = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";
    let cases: Vec<(String, CheckpointError)> = vec![
        (
            "o\n1\n".to_string() + root,
            CheckpointError::MissingFinalNewline,
        ),
        ("".into(), CheckpointError::MissingFinalNewline),
        ("\n".into(), CheckpointError::EmptyLine(1)),
        ("o\n1\n".into(), CheckpointError::TooFewLines(2)),
        (format!("\n1\n{root}\n"), CheckpointError::EmptyLine(1)),
        (format!("o\n1\n{root}\n\n"), CheckpointError::EmptyLine(4)),
        (
            format!("o\n1\n{root}\next\n\nmore\n"),
            CheckpointError::EmptyLine(5),
        ),
        (
            format!("o\r\n1\n{root}\n"),
            CheckpointError::ControlCharacter,
        ),
        (
            format!("o\n01\n{root}\n"),
            CheckpointError::BadSize("01".into()),
        ),
        (
            format!("o\n+1\n{root}\n"),
            CheckpointError::BadSize("+1".into()),
        ),
        (
            format!("o\n-0\n{root}\n"),
            CheckpointError::BadSize("-0".into()),
        ),
        (
            format!("o\n 1\n{root}\n"),
            CheckpointError::BadSize(" 1".into()),
        ),
        (
            format!("o\n18446744073709551616\n{root}\n"),
            CheckpointError::BadSize("18446744073709551616".into()),
        ),
        (
            "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n".into(),
            CheckpointError::BadRootHash,
        ),
        (
            "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=\n".into(),
            CheckpointError::BadRootHash,
        ),
        (
            "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxqw==\n".into(),
            CheckpointError::BadRootHash,
        ),
        (
            "o\n1\nCsUYapGGPo4dkMgIAUqom_Xajj7h2fB2MPA3j2jxq2I=\n".into(),
            CheckpointError::BadRootHash,
        ),
    ];
    for (body, want) in cases {
        assert_eq!(Checkpoint::parse(&body), Err(want), "{body:?}");
    }
    assert_eq!(
        Checkpoint::parse(&format!("o\n18446744073709551615\n{root}\n"))
            .unwrap()
            .size,
        u64::MAX
    );
}
