//! The forms of the values requests carry, each written once: the pattern a value is checked
//! against is the pattern the OpenAPI document states, so a client that follows the document
//! is never refused for a value's form, and the document never promises what the server
//! refuses.
//!
//! Patterns keep to what ECMA-262, Python's `re` and Rust's `regex` read alike (no lookaround,
//! no `\s`, no `\d`), since the document's readers use all three.

use std::sync::OnceLock;

use regex::Regex;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};

use crate::error::ApiError;

/// Years whose every instant is a nanosecond count in an `i64` (1677-09-21 to 2262-04-11),
/// whatever the offset.
const YEAR: &str = "(?:167[89]|16[89][0-9]|1[7-9][0-9]{2}|2[01][0-9]{2}|22[0-5][0-9]|226[01])";
/// Months and days every year has (February up to the 28th).
const MONTH_DAY: &str = "(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))";
/// The leap years among `YEAR`.
const LEAP_YEAR: &str = "(?:16(?:8[048]|9[26])|(?:1[7-9]|2[01])(?:0[48]|[2468][048]|[13579][26])|2000|22(?:0[48]|[135][26]|[24][048]|60))";
const TIME_OF_DAY: &str = "T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:[.][0-9]{1,9})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])";

fn date() -> String {
    format!("(?:{YEAR}-{MONTH_DAY}|{LEAP_YEAR}-02-29)")
}

/// A value's form: its pattern (anchored; none for any text), its length in characters at
/// most, and what the document says of it.
pub(crate) struct Form {
    pattern: Option<fn() -> String>,
    max_length: Option<usize>,
    description: &'static str,
    compiled: OnceLock<Option<Regex>>,
}

impl Form {
    const fn new(
        pattern: Option<fn() -> String>,
        max_length: Option<usize>,
        description: &'static str,
    ) -> Self {
        Form {
            pattern,
            max_length,
            description,
            compiled: OnceLock::new(),
        }
    }

    fn regex(&self) -> Option<&Regex> {
        self.compiled
            .get_or_init(|| {
                self.pattern
                    .map(|p| Regex::new(&p()).expect("a valid pattern"))
            })
            .as_ref()
    }

    /// Whether `value` has this form.
    pub(crate) fn matches(&self, value: &str) -> bool {
        self.max_length
            .is_none_or(|max| value.chars().count() <= max)
            && self.regex().is_none_or(|r| r.is_match(value))
    }

    pub(crate) fn description(&self) -> &'static str {
        self.description
    }

    /// Refuses a value without this form, naming the parameter and the form.
    pub(crate) fn check(&self, parameter: &str, value: &str) -> Result<(), ApiError> {
        self.check_as("BAD_PARAMETER", parameter, value)
    }

    /// `check` with the error code a route has always answered for this parameter.
    pub(crate) fn check_as(
        &self,
        code: &'static str,
        parameter: &str,
        value: &str,
    ) -> Result<(), ApiError> {
        if self.matches(value) {
            return Ok(());
        }
        Err(ApiError::bad_request(
            code,
            format!("{parameter} must be {}", self.description),
        ))
    }

    pub(crate) fn schema(&self) -> Schema {
        Schema::Object(
            ObjectBuilder::new()
                .schema_type(SchemaType::new(Type::String))
                .pattern(self.pattern.map(|p| p()))
                .max_length(self.max_length)
                .description(Some(self.description))
                .build(),
        )
    }
}

/// An instant: RFC 3339 with `T`, `Z` or an offset, and at most nanoseconds.
pub(crate) static DATE_TIME: Form = Form::new(
    Some(|| format!("^{}{TIME_OF_DAY}$", date())),
    None,
    "an RFC 3339 time (`2026-01-03T10:00:00Z`; `T` and `Z` in capitals, at most nine fractional digits) in the years 1678 to 2261",
);

/// A bound of a time window: an instant, or a date meaning its midnight UTC.
pub(crate) static TIME_BOUND: Form = Form::new(
    Some(|| format!("^{}(?:{TIME_OF_DAY})?$", date())),
    None,
    "an RFC 3339 time (`2026-01-03T10:00:00Z`) or a date (`2026-01-03`, its midnight UTC) in the years 1678 to 2261",
);

/// `as_of`: a tree size, or an instant or date whose tree size is the log's then.
pub(crate) static AS_OF: Form = Form::new(
    Some(|| format!("^(?:[0-9]{{1,19}}|{}(?:{TIME_OF_DAY})?)$", date())),
    None,
    "a tree size (at most 19 digits) or an ingest time: an RFC 3339 time or a date in the years 1678 to 2261",
);

/// A record id.
pub(crate) static RECORD_ID: Form = Form::new(
    Some(|| "^sha256:[0-9a-f]{64}$".to_string()),
    None,
    "a record id: `sha256:` and 64 lowercase hex digits",
);

/// A record named by its seq or its record id.
pub(crate) static RECORD_REF: Form = Form::new(
    Some(|| "^(?:[0-9]{1,20}|sha256:[0-9a-f]{64})$".to_string()),
    None,
    "a seq (at most 20 digits) or a record id (`sha256:` and 64 lowercase hex digits)",
);

/// A value compared for equality with an indexed axis.
pub(crate) static FILTER: Form = Form::new(
    None,
    Some(FILTER_CHARS_MAX),
    "the value an axis must equal: at most 1024 characters",
);

/// Longest filter value, in characters.
pub(crate) const FILTER_CHARS_MAX: usize = 1024;

/// A schema of one of `values`.
pub(crate) fn one_of(values: &[&str], description: &str) -> Schema {
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::String))
            .enum_values(Some(values.iter().copied()))
            .description(Some(description.to_string()))
            .build(),
    )
}

/// Refuses a value not among `values`.
pub(crate) fn check_one_of(parameter: &str, value: &str, values: &[&str]) -> Result<(), ApiError> {
    if values.contains(&value) {
        return Ok(());
    }
    Err(ApiError::bad_request(
        "BAD_PARAMETER",
        format!(
            "{parameter} must be one of {}, not {:?}",
            values.join(", "),
            crate::access::clip(value)
        ),
    ))
}

/// An integer from `minimum` to `maximum` (default `u64::MAX`), as query strings carry them.
/// The bounds are written as integers: `u64::MAX` as a double would be one more.
pub(crate) fn integer(minimum: u64, maximum: Option<u64>) -> Schema {
    let exact = |n: u64| utoipa::Number::UInt(usize::try_from(n).expect("a 64-bit target"));
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::Integer))
            .minimum(Some(exact(minimum)))
            .maximum(Some(exact(maximum.unwrap_or(u64::MAX))))
            .build(),
    )
}

/// Schemas for request bodies' fields (`#[schema(schema_with = …)]`).
pub(crate) fn nonblank() -> Schema {
    NONBLANK.schema()
}

pub(crate) fn date_time_or_null() -> Schema {
    let mut s = DATE_TIME.schema();
    if let Schema::Object(o) = &mut s {
        o.schema_type = SchemaType::from_iter([Type::String, Type::Null]);
    }
    s
}

/// The rules a check run may name: every built-in pack's, and the integrity check.
pub(crate) fn rule_names() -> Schema {
    let packs = sealog_ledger::Packs::builtin();
    let mut names: Vec<&str> = packs.checks().iter().map(|r| r.name.as_str()).collect();
    names.push(sealog_check::INTEGRITY_RULE);
    Schema::Array(
        utoipa::openapi::schema::ArrayBuilder::new()
            .items(RefOr::T(one_of(
                &names,
                "a rule's name (a user pack's rules are named the same way)",
            )))
            .build(),
    )
}

/// Types the handlers' `params(...)` annotations name, each standing for one schema above.
macro_rules! documented {
    ($($(#[$doc:meta])* $name:ident = $schema:expr;)*) => {$(
        $(#[$doc])*
        pub(crate) struct $name;
        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                RefOr::T($schema)
            }
        }
        impl utoipa::ToSchema for $name {}
    )*};
}

documented! {
    DateTime = DATE_TIME.schema();
    TimeBound = TIME_BOUND.schema();
    AsOf = AS_OF.schema();
    RecordIdText = RECORD_ID.schema();
    RecordRef = RECORD_REF.schema();
    Filter = FILTER.schema();
    Cursor = CURSOR.schema();
    TilePathText = TILE_PATH.schema();
    ReasonName = one_of(
        &sealog_ledger::ReasonCode::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        "a quarantine reason code",
    );
    RecordForm = one_of(&RECORD_FORMS, "`opened` (default): personal values as this key may see them; `sealed`: exactly as stored, the bytes each record's proof covers (auditor, admin)");
    ViewName = one_of(&VIEWS, "`history` (default): every record in append order; `current`: per supersedes chain only its head");
    Limit = integer(1, Some(sealog_ledger::LIMIT_MAX as u64));
    Count = integer(0, None);
    Size = integer(1, None);
    Flag = one_of(&["true", "false"], "`true` or `false`");
    ReportName = one_of(&["daily", "weekly", "monthly", "quarantine", "coordination", "popia"], "the report");
    ReportFormat = one_of(&["json", "csv", "md"], "`json` (default), `csv` or `md`");
    ConflictStatus = one_of(&["open", "escalated", "resolved"], "a conflict's status");
    CriticalityName = one_of(&["critical", "high", "medium", "low", "info"], "a criticality");
    ExportForm = one_of(&["sealed", "opened"], "`sealed` (default): the file as exported, personal values sealed, what the manifest and proof check; `opened` (JSONL only): each record with personal values as this key may see them (a subject key its own), not the proven file");
}

/// A C2SP tlog-tiles path after `tile/`: a level (0 to 63) or `entries`, an index in groups
/// of three digits (all but the last prefixed `x`, the first not `x000`; at most seven groups,
/// and a first group of seven at most `x017`, so that the index fits in 64 bits), and for a
/// partial tile `.p/` and its width (1 to 255).
pub(crate) static TILE_PATH: Form = Form::new(
    Some(|| {
        let level = "(?:[0-9]|[1-5][0-9]|6[0-3])";
        let first = "x(?:00[1-9]|0[1-9][0-9]|[1-9][0-9]{2})";
        let index = format!(
            "(?:{first}(?:/x[0-9]{{3}}){{0,4}}/|x(?:00[1-9]|01[0-7])(?:/x[0-9]{{3}}){{5}}/)?[0-9]{{3}}"
        );
        let width = "(?:[.]p/(?:[1-9]|[1-9][0-9]|1[0-9]{2}|2[0-4][0-9]|25[0-5]))?";
        format!("^(?:entries|{level})/{index}{width}$")
    }),
    None,
    "a tile path: `L/N[.p/W]` for hashes (level L from 0 to 63), `entries/N[.p/W]` for entry bundles; N in groups of three digits, all but the last prefixed `x` (`x001/234`), W from 1 to 255",
);

/// Free text that is not blank: at least one character Rust's `trim` keeps (the Unicode
/// White_Space characters listed, since `\s` differs between ECMA-262, Python and Rust).
pub(crate) static NONBLANK: Form = Form::new(
    Some(|| {
        r"[^\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]".to_string()
    }),
    None,
    "text with at least one character that is not white space",
);

/// A key's tenant or data subject: 1 to 1024 characters, none of them a control character.
pub(crate) static SCOPE_NAME: Form = Form::new(
    Some(|| r"^[^\x00-\x1F\x7F-\x9F]+$".to_string()),
    Some(sealog_model::limits::ATTRIBUTE_CHARS_MAX),
    "1 to 1024 characters, none of them a control character",
);

/// A key's label: 1 to 256 characters, none of them a control character.
pub(crate) static LABEL: Form = Form::new(
    Some(|| r"^[^\x00-\x1F\x7F-\x9F]+$".to_string()),
    Some(256),
    "1 to 256 characters, none of them a control character",
);

pub(crate) const RECORD_FORMS: [&str; 2] = ["opened", "sealed"];
pub(crate) const VIEWS: [&str; 2] = ["history", "current"];

/// A page's cursor as the server issues it: 25 bytes in unpadded URL-safe base64, the first
/// byte the cursor's version (3). Its other bytes bind it to its query, which no pattern can
/// state: a cursor of another query is refused.
pub(crate) static CURSOR: Form = Form::new(
    Some(|| "^A[w-z0-9_-][A-Za-z0-9_-]{31}[AQgw]$".to_string()),
    None,
    "`next_cursor` of the previous page of the same query",
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Text the form's pattern generates (the anchors dropped: the generator adds nothing).
    fn unanchored(form: &Form) -> impl Strategy<Value = String> {
        let p = (form.pattern.expect("a pattern"))();
        proptest::string::string_regex(&p[1..p.len() - 1]).expect("a pattern proptest reads")
    }

    fn parses_as_bound(text: &str) -> bool {
        sealog_model::time::parse_bound(text).is_ok()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, rng_seed: proptest::test_runner::RngSeed::Fixed(7), ..ProptestConfig::default() })]

        /// Everything the document allows, the server reads: any text the pattern generates
        /// parses to an instant in range.
        #[test]
        fn every_time_the_pattern_allows_parses(text in unanchored(&TIME_BOUND)) {
            prop_assert!(TIME_BOUND.matches(&text), "{text}");
            prop_assert!(parses_as_bound(&text), "{text}");
        }

        #[test]
        fn every_tile_path_the_pattern_allows_parses(text in unanchored(&TILE_PATH)) {
            prop_assert!(sealog_merkle::tiles::parse_tile_path(&format!("tile/{text}")).is_ok(), "{text}");
        }

        #[test]
        fn every_date_time_the_pattern_allows_parses(text in unanchored(&DATE_TIME)) {
            prop_assert!(sealog_model::time::parse_rfc3339(&text).is_ok(), "{text}");
        }
    }

    #[test]
    fn the_edges_of_the_calendar() {
        for ok in [
            "2024-02-29",
            "2000-02-29",
            "2260-02-29T00:00:00Z",
            "1678-01-01T00:00:00+23:59",
            "2261-12-31T23:59:59.999999999-23:59",
            "2026-04-30",
            "2026-12-31T00:00:00Z",
        ] {
            assert!(TIME_BOUND.matches(ok), "{ok}");
            assert!(parses_as_bound(ok), "{ok}");
        }
        for bad in [
            "1900-02-29",
            "2100-02-29",
            "2023-02-29",
            "2026-04-31",
            "1677-12-31",
            "2262-01-01",
            "2026-01-01t00:00:00Z",
            "2026-01-01T00:00:00z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:00:60Z",
            "2026-01-01T00:00:00.0000000001Z",
            "2026-01-01T00:00:00",
            "2026-01-01\n",
            "",
        ] {
            assert!(!TIME_BOUND.matches(bad), "{bad:?}");
        }
    }

    #[test]
    fn record_forms() {
        let id = format!("sha256:{}", "a".repeat(64));
        assert!(RECORD_ID.matches(&id));
        assert!(RECORD_REF.matches(&id));
        assert!(RECORD_REF.matches("18446744073709551615"));
        assert!(!RECORD_REF.matches("123456789012345678901"));
        assert!(!RECORD_ID.matches(&id.to_uppercase()));
        assert!(AS_OF.matches("0") && AS_OF.matches("2026-01-03"));
        assert!(!AS_OF.matches("12345678901234567890"));
        assert!(FILTER.matches(""));
        for ok in [
            "0/000",
            "63/x001/234.p/7",
            "entries/x017/x000/x000/x000/x000/x000/999",
        ] {
            assert!(TILE_PATH.matches(ok), "{ok}");
            assert!(
                sealog_merkle::tiles::parse_tile_path(&format!("tile/{ok}")).is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "64/000",
            "0/x000/001",
            "0/00",
            "0/000.p/0",
            "0/000.p/256",
            "x/000",
        ] {
            assert!(!TILE_PATH.matches(bad), "{bad}");
        }
        assert!(!FILTER.matches(&"x".repeat(FILTER_CHARS_MAX + 1)));
    }
}
