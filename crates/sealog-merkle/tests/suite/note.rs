//! Signed notes: published golden vectors, round trips, tampering and malformed input.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sealog_merkle::note::{MAX_SIGNATURES, NoteError, Opened, Signer, Verifier, open, sign};
use sha2::{Digest, Sha256};

/// Example from the C2SP signed-note specification (c2sp.org/signed-note).
const SPEC_VKEY: &str = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
const SPEC_NOTE: &str = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";

/// Example from the documentation of Go's golang.org/x/mod/sumdb/note package.
const GO_SKEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const GO_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const GO_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

fn signer(name: &str, n: u8) -> Signer {
    Signer::from_seed(name, [n; 32]).unwrap()
}

/// The base64 key material of a key string with `parts` '+'-separated fields; the
/// material itself may contain '+'.
fn material(key: &str, parts: usize) -> &str {
    key.splitn(parts, '+').last().unwrap()
}

/// Key id recomputed independently from the definition.
fn key_id_by_hand(name: &str, public_key: &[u8]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([0x01]);
    h.update(public_key);
    let d = h.finalize();
    u32::from_be_bytes(d[..4].try_into().unwrap())
}

#[test]
fn spec_example_verifies() {
    let v = Verifier::parse(SPEC_VKEY).unwrap();
    assert_eq!(v.name(), "example.com/foo");
    assert_eq!(v.key_id(), 0x530d903a);
    let material = STANDARD.decode(material(SPEC_VKEY, 3)).unwrap();
    assert_eq!(material[0], 0x01);
    assert_eq!(
        key_id_by_hand("example.com/foo", &material[1..]),
        0x530d903a
    );
    assert_eq!(v.to_vkey(), SPEC_VKEY);
    assert_eq!(
        open(SPEC_NOTE, &[&v]).unwrap(),
        Opened {
            text: "This is an example message.\n".into(),
            verified_by: vec!["example.com/foo".into()]
        }
    );
}

#[test]
fn go_reference_example_signs_byte_for_byte() {
    let s = Signer::parse(GO_SKEY).unwrap();
    assert_eq!(s.name(), "PeterNeumann");
    assert_eq!(s.key_id(), 0xc74f20a3);
    assert_eq!(s.to_skey(), GO_SKEY);
    let v = s.verifier();
    assert_eq!(v.to_vkey(), GO_VKEY);
    assert_eq!(Verifier::parse(GO_VKEY).unwrap(), v);
    let material = STANDARD.decode(material(GO_VKEY, 3)).unwrap();
    assert_eq!(key_id_by_hand("PeterNeumann", &material[1..]), 0xc74f20a3);

    // Ed25519 is deterministic, so the published note must come out exactly.
    let note = sign(GO_TEXT, &[&s]).unwrap();
    assert_eq!(note, format!("{GO_TEXT}\n{GO_SIG}"));
    let opened = open(&note, &[&v]).unwrap();
    assert_eq!(opened.text, GO_TEXT);
    assert_eq!(opened.verified_by, vec!["PeterNeumann".to_string()]);
}

#[test]
fn rfc8032_key_derivation() {
    // RFC 8032 §7.1 TEST 1.
    let seed: [u8; 32] =
        hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
            .unwrap()
            .try_into()
            .unwrap();
    let public =
        hex::decode("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a").unwrap();
    let s = Signer::from_seed("rfc8032.example/test1", seed).unwrap();
    let vkey = s.verifier().to_vkey();
    let key = STANDARD.decode(material(&vkey, 3)).unwrap();
    assert_eq!(key[0], 0x01);
    assert_eq!(&key[1..], public.as_slice());
    let id = key_id_by_hand("rfc8032.example/test1", &public);
    assert!(vkey.starts_with(&format!("rfc8032.example/test1+{id:08x}+")));
    assert_eq!(s.key_id(), id);
    let skey = s.to_skey();
    assert!(skey.starts_with(&format!("PRIVATE+KEY+rfc8032.example/test1+{id:08x}+")));
    assert_eq!(Signer::parse(&skey).unwrap().to_skey(), skey);
}

#[test]
fn signer_debug_hides_the_seed() {
    let s = signer("log.example", 7);
    let dbg = format!("{s:?}");
    assert!(dbg.contains("log.example"));
    let skey = s.to_skey();
    let seed_b64 = material(&skey, 5);
    assert!(!dbg.contains(seed_b64));
    assert!(!dbg.contains("0707"));
}

#[test]
fn round_trip_with_several_signers_and_blank_lines_in_text() {
    let a = signer("a.example", 1);
    let b = signer("b.example", 2);
    let text = "first\n\nthird line after a blank one\n\n";
    let note = sign(text, &[&a, &b]).unwrap();
    let opened = open(&note, &[&b.verifier(), &a.verifier()]).unwrap();
    assert_eq!(opened.text, text);
    assert_eq!(
        opened.verified_by,
        vec!["a.example".to_string(), "b.example".to_string()]
    );
}

#[test]
fn sixteen_signatures_are_accepted() {
    let signers: Vec<Signer> = (0..16)
        .map(|i| signer(&format!("w{i}.example"), i))
        .collect();
    let refs: Vec<&Signer> = signers.iter().collect();
    let note = sign("checkpoint\n", &refs).unwrap();
    let verifiers: Vec<Verifier> = signers.iter().map(Signer::verifier).collect();
    let vrefs: Vec<&Verifier> = verifiers.iter().collect();
    assert_eq!(open(&note, &vrefs).unwrap().verified_by.len(), 16);
}

#[test]
fn unknown_keys_are_ignored() {
    let a = signer("a.example", 1);
    let b = signer("b.example", 2);
    // Same name as `a`, different key: the (name, id) pair differs, so it is unknown.
    let impostor = signer("a.example", 3);
    let note = sign("hello\n", &[&impostor, &b, &a]).unwrap();
    let opened = open(&note, &[&a.verifier()]).unwrap();
    assert_eq!(opened.verified_by, vec!["a.example".to_string()]);
    assert_eq!(
        open(&note, &[&signer("c.example", 4).verifier()]),
        Err(NoteError::NoKnownSignature)
    );
    assert_eq!(open(&note, &[]), Err(NoteError::NoKnownSignature));

    // A known key id under another name is unknown too.
    let only_a = sign("hello\n", &[&a]).unwrap();
    let renamed = only_a.replace("\u{2014} a.example ", "\u{2014} z.example ");
    assert_eq!(
        open(&renamed, &[&a.verifier()]),
        Err(NoteError::NoKnownSignature)
    );
}

#[test]
fn duplicate_signatures_are_reported_once() {
    let a = signer("a.example", 1);
    let note = sign("hello\n", &[&a, &a]).unwrap();
    assert_eq!(
        open(&note, &[&a.verifier()]).unwrap().verified_by,
        vec!["a.example".to_string()]
    );
}

#[test]
fn bad_signature_by_known_key_rejects_the_note() {
    let a = signer("a.example", 1);
    let b = signer("b.example", 2);
    let note_a = sign("hello\n", &[&a]).unwrap();
    let note_b = sign("hello\n", &[&b]).unwrap();
    let sig_of = |note: &str| {
        STANDARD
            .decode(note.trim_end().rsplit(' ').next().unwrap())
            .unwrap()
    };
    // a's key id with b's signature bytes.
    let mut blob = sig_of(&note_a);
    blob[4..].copy_from_slice(&sig_of(&note_b)[4..]);
    let forged = format!("hello\n\n\u{2014} a.example {}\n", STANDARD.encode(&blob));
    let err = NoteError::InvalidSignature {
        name: "a.example".into(),
        key_id: a.key_id(),
    };
    assert_eq!(open(&forged, &[&a.verifier()]), Err(err.clone()));
    // Even when another trusted key signed correctly.
    let both = format!(
        "hello\n\n\u{2014} b.example {}\n\u{2014} a.example {}\n",
        STANDARD.encode(sig_of(&note_b)),
        STANDARD.encode(&blob)
    );
    assert_eq!(
        open(&both, &[&a.verifier(), &b.verifier()]),
        Err(err.clone())
    );
    // A signature of the wrong length by a known key is a bad signature, too.
    let short = format!(
        "hello\n\n\u{2014} a.example {}\n",
        STANDARD.encode(&blob[..40])
    );
    assert_eq!(open(&short, &[&a.verifier()]), Err(err));
}

#[test]
fn tampering_with_any_byte_fails() {
    let s = Signer::parse(GO_SKEY).unwrap();
    let v = s.verifier();
    let note = sign(GO_TEXT, &[&s]).unwrap();
    let mut tried = 0;
    for i in 0..note.len() {
        for delta in [0x01u8, 0x20, 0x80] {
            let mut bytes = note.clone().into_bytes();
            bytes[i] ^= delta;
            // A mutation that breaks UTF-8 cannot even be passed as &str.
            let Ok(tampered) = String::from_utf8(bytes) else {
                continue;
            };
            tried += 1;
            assert!(
                open(&tampered, &[&v]).is_err(),
                "byte {i} ^ {delta:#x} accepted: {tampered:?}"
            );
        }
    }
    assert!(tried > note.len(), "{tried}");
}

#[test]
fn malformed_notes_are_rejected_precisely() {
    let a = signer("a.example", 1);
    let v = a.verifier();
    let good = sign("hello\n", &[&a]).unwrap();
    let sig_b64 = good.trim_end().rsplit(' ').next().unwrap().to_string();
    let cases: Vec<(String, NoteError)> = vec![
        ("hello\n".into(), NoteError::MissingBlankLine),
        ("hello\n\n".into(), NoteError::NoSignatures),
        (good.trim_end().to_string(), NoteError::MissingFinalNewline),
        (
            good.replace("hello", "hel\rlo"),
            NoteError::ControlCharacter,
        ),
        (
            good.replace("hello", "hel\tlo"),
            NoteError::ControlCharacter,
        ),
        (
            format!("hello\n\n- a.example {sig_b64}\n"),
            NoteError::MalformedSignatureLine(1),
        ),
        (
            format!("hello\n\n\u{2014}a.example {sig_b64}\n"),
            NoteError::MalformedSignatureLine(1),
        ),
        (
            "hello\n\n\u{2014} a.example\n".into(),
            NoteError::MalformedSignatureLine(1),
        ),
        (
            format!("hello\n\n\u{2014} a.example {sig_b64} extra\n"),
            NoteError::MalformedSignatureLine(1),
        ),
        (
            format!("hello\n\n\u{2014} a.ex+ample {sig_b64}\n"),
            NoteError::MalformedSignatureLine(1),
        ),
        (
            format!("hello\n\n\u{2014}  {sig_b64}\n"),
            NoteError::MalformedSignatureLine(1),
        ),
        (
            format!("hello\n\n\u{2014} a.example\u{a0}x {sig_b64}\n"),
            NoteError::MalformedSignatureLine(1),
        ),
        (
            format!("{}\u{2014} a.example\n", good),
            NoteError::MalformedSignatureLine(2),
        ),
        (
            "hello\n\n\u{2014} a.example !!!!\n".into(),
            NoteError::BadBase64(1),
        ),
        (
            format!(
                "hello\n\n\u{2014} a.example {}\n",
                sig_b64.trim_end_matches('=')
            ),
            NoteError::BadBase64(1),
        ),
        (
            "hello\n\n\u{2014} a.example AAAAAA==\n".into(),
            NoteError::SignatureTooShort(1),
        ),
        (format!("{good}\n"), NoteError::NoSignatures),
    ];
    for (note, want) in cases {
        assert_eq!(open(&note, &[&v]), Err(want), "{note:?}");
    }

    let many = format!(
        "hello\n\n{}",
        format!("\u{2014} a.example {sig_b64}\n").repeat(MAX_SIGNATURES + 1)
    );
    assert_eq!(open(&many, &[&v]), Err(NoteError::TooManySignatures));
}

#[test]
fn sign_checks_its_input() {
    let a = signer("a.example", 1);
    assert_eq!(
        sign("no newline", &[&a]),
        Err(NoteError::TextMissingNewline)
    );
    assert_eq!(sign("", &[&a]), Err(NoteError::TextMissingNewline));
    assert_eq!(sign("bell\x07\n", &[&a]), Err(NoteError::ControlCharacter));
    assert_eq!(sign("ok\n", &[]), Err(NoteError::NoSigners));
}

#[test]
fn key_names_are_validated() {
    for bad in [
        "",
        "a b",
        "a+b",
        "a\tb",
        "a\nb",
        "a\u{2003}b",
        "a\u{85}b",
        "a\u{1}b",
    ] {
        assert_eq!(
            Signer::from_seed(bad, [1; 32]).map(|_| ()),
            Err(NoteError::InvalidKeyName(bad.into())),
            "{bad:?}"
        );
    }
    assert!(Signer::from_seed("example.com/log-1_ü", [1; 32]).is_ok());
}

#[test]
fn key_strings_are_parsed_strictly() {
    let seed_b64 = material(GO_SKEY, 5);
    let pub_b64 = material(GO_VKEY, 3);
    assert!(matches!(
        Verifier::parse("PeterNeumann+c74f20a3"),
        Err(NoteError::MalformedKey(_))
    ));
    assert!(matches!(
        Verifier::parse(&format!("{GO_VKEY}+x")),
        Err(NoteError::MalformedKey(_))
    ));
    assert!(matches!(
        Verifier::parse(&format!("PeterNeumann+C74F20A3+{pub_b64}")),
        Err(NoteError::MalformedKey(_))
    ));
    assert!(matches!(
        Verifier::parse(&format!("PeterNeumann+c74f20a+{pub_b64}")),
        Err(NoteError::MalformedKey(_))
    ));
    assert_eq!(
        Verifier::parse(&format!("PeterNeumann+c74f20a4+{pub_b64}")),
        Err(NoteError::KeyIdMismatch {
            given: 0xc74f20a4,
            computed: 0xc74f20a3
        })
    );
    // The name is part of the key id: renaming the key invalidates it.
    let renamed = Verifier::parse(&format!("PeterNeuman+c74f20a3+{pub_b64}"));
    assert!(
        matches!(
            renamed,
            Err(NoteError::KeyIdMismatch {
                given: 0xc74f20a3,
                ..
            })
        ),
        "{renamed:?}"
    );
    // Signature type 0x02 with a recomputed-looking id: the type is checked first.
    let mut other_type = STANDARD.decode(pub_b64).unwrap();
    other_type[0] = 0x02;
    assert_eq!(
        Verifier::parse(&format!(
            "PeterNeumann+c74f20a3+{}",
            STANDARD.encode(&other_type)
        )),
        Err(NoteError::UnsupportedKeyType(0x02))
    );
    let mut long = STANDARD.decode(pub_b64).unwrap();
    long.push(0);
    assert!(matches!(
        Verifier::parse(&format!("PeterNeumann+c74f20a3+{}", STANDARD.encode(&long))),
        Err(NoteError::MalformedKey(_))
    ));
    assert!(matches!(
        Verifier::parse("PeterNeumann+c74f20a3+"),
        Err(NoteError::MalformedKey(_))
    ));
    assert_eq!(
        Verifier::parse(&format!("Peter Neumann+c74f20a3+{pub_b64}")).map(|_| ()),
        Err(NoteError::InvalidKeyName("Peter Neumann".into()))
    );
    assert!(matches!(
        Signer::parse(&format!("PRIVATE+KEYS+PeterNeumann+c74f20a3+{seed_b64}")),
        Err(NoteError::MalformedKey(_))
    ));
    assert!(matches!(
        Signer::parse(GO_VKEY),
        Err(NoteError::MalformedKey(_))
    ));
    assert!(matches!(
        Signer::parse(&format!("PRIVATE+KEY+PeterNeumann+00000000+{seed_b64}")),
        Err(NoteError::KeyIdMismatch {
            given: 0,
            computed: 0xc74f20a3
        })
    ));
}

/// Every proper substring and every single-byte increment of a valid key string must be
/// rejected: there is exactly one spelling per key.
#[test]
fn key_string_manglings_are_rejected() {
    for (key, parse) in [
        (
            GO_VKEY,
            (|k: &str| Verifier::parse(k).is_ok()) as fn(&str) -> bool,
        ),
        (GO_SKEY, |k: &str| Signer::parse(k).is_ok()),
    ] {
        assert!(parse(key));
        let b = key.as_bytes();
        for i in 0..b.len() {
            for j in i + 1..=b.len() {
                if (i, j) != (0, b.len()) {
                    assert!(!parse(&key[i..j]), "accepted {:?}", &key[i..j]);
                }
            }
            let mut m = b.to_vec();
            m[i] = m[i].wrapping_add(1);
            if let Ok(m) = String::from_utf8(m) {
                assert!(!parse(&m), "accepted {m:?}");
            }
        }
    }
}
