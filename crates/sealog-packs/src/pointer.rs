//! RFC 6901 JSON pointers, extended with `*` for "every element of this array", resolved the
//! same way over the ingest path's borrowed tree and over `serde_json::Value`.
//!
//! A bare `*` token is always the wildcard: a pack cannot address a member literally named
//! `*`. That costs nothing real and keeps one token meaning one thing.

use std::borrow::Cow;

use sealog_model::json::Json;
use serde_json::Value;

/// Called with each concrete path a pointer reaches and the value there (`None`: absent).
pub(crate) type Visitor<'f, 'a, N> = dyn FnMut(&[Cow<'_, str>], Option<&'a N>) + 'f;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Segment {
    Key(String),
    Each,
}

#[derive(Debug, Clone)]
pub(crate) struct Pointer {
    pub(crate) text: String,
    pub(crate) segments: Vec<Segment>,
    /// Without a wildcard, the one concrete path this pointer names: visiting it needs no
    /// path built per event.
    concrete: Option<Vec<Cow<'static, str>>>,
    /// Its place among the values its type's rules find in one walk (`crate::paths`).
    pub(crate) slot: Option<u16>,
}

/// A pointer is the place it names: where its type's rules find it is not part of that.
impl PartialEq for Pointer {
    fn eq(&self, other: &Self) -> bool {
        self.segments == other.segments
    }
}

impl Eq for Pointer {}

impl std::hash::Hash for Pointer {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.segments.hash(state);
    }
}

impl Pointer {
    /// Parses a pointer; the empty pointer (the whole value) is allowed only when `relative`.
    pub(crate) fn parse(text: &str, relative: bool) -> Result<Self, String> {
        if text.is_empty() {
            return if relative {
                Ok(Pointer {
                    text: String::new(),
                    segments: Vec::new(),
                    concrete: Some(Vec::new()),
                    slot: None,
                })
            } else {
                Err("the empty pointer names the whole event; name a member".into())
            };
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!(
                "\"{text}\" is not a JSON pointer: it must start with '/'"
            ));
        };
        let mut segments = Vec::new();
        for token in rest.split('/') {
            if token == "*" {
                segments.push(Segment::Each);
                continue;
            }
            let mut key = String::with_capacity(token.len());
            let mut chars = token.chars();
            while let Some(c) = chars.next() {
                match (c, c == '~') {
                    (_, false) => key.push(c),
                    (_, true) => match chars.next() {
                        Some('0') => key.push('~'),
                        Some('1') => key.push('/'),
                        _ => {
                            return Err(format!(
                                "\"{text}\": '~' must be followed by 0 or 1 (RFC 6901)"
                            ));
                        }
                    },
                }
            }
            segments.push(Segment::Key(key));
        }
        let concrete = segments
            .iter()
            .map(|s| match s {
                Segment::Key(k) => Some(Cow::Owned(k.clone())),
                Segment::Each => None,
            })
            .collect();
        Ok(Pointer {
            text: text.to_string(),
            segments,
            concrete,
            slot: None,
        })
    }

    /// The one concrete path of a pointer without a wildcard.
    pub(crate) fn concrete(&self) -> Option<&[Cow<'static, str>]> {
        self.concrete.as_deref()
    }

    pub(crate) fn has_wildcard(&self) -> bool {
        self.segments.contains(&Segment::Each)
    }

    pub(crate) fn first_key(&self) -> Option<&str> {
        match self.segments.first() {
            Some(Segment::Key(k)) => Some(k),
            _ => None,
        }
    }

    /// Every place this pointer reaches in `root`, with its concrete path; `None` where a
    /// concrete member is absent. Wildcards over absent or non-array values reach nothing, so a
    /// per-element rule says nothing about an array that is not there.
    pub(crate) fn visit<'a, N: Node>(&self, root: &'a N, f: &mut Visitor<'_, 'a, N>) {
        if let Some(path) = &self.concrete {
            // An absent member anywhere along it reads as the field itself being absent.
            f(path, self.get(root));
            return;
        }
        let mut path = Vec::with_capacity(self.segments.len());
        walk(root, &self.segments, &mut path, f);
    }

    /// The single value of a wildcard-free pointer.
    pub(crate) fn get<'a, N: Node>(&self, root: &'a N) -> Option<&'a N> {
        let mut node = root;
        for seg in &self.segments {
            match seg {
                Segment::Key(k) => node = node.child(k)?,
                Segment::Each => return None,
            }
        }
        Some(node)
    }

    /// Applies `f` to every value this pointer reaches in the event's tree.
    pub(crate) fn for_each_mut<'a>(&self, root: &mut Json<'a>, f: &mut dyn FnMut(&mut Json<'a>)) {
        walk_mut(root, &self.segments, f);
    }
}

/// Whether `segments` reach a value other than null in `root` (any element for `*`).
pub(crate) fn reaches_a_value<N: Node>(root: &N, segments: &[Segment]) -> bool {
    let mut found = false;
    walk(root, segments, &mut Vec::new(), &mut |_, v| {
        found |= v.is_some_and(|v| !v.is_null())
    });
    found
}

fn walk<'a, 'p, N: Node>(
    node: &'a N,
    segments: &'p [Segment],
    path: &mut Vec<Cow<'p, str>>,
    f: &mut Visitor<'_, 'a, N>,
) {
    let Some((seg, rest)) = segments.split_first() else {
        f(path, Some(node));
        return;
    };
    match seg {
        Segment::Key(k) => {
            path.push(Cow::Borrowed(k));
            match node.child(k) {
                Some(child) => walk(child, rest, path, f),
                None => {
                    // Name the whole concrete path below, so a missing parent reads as the
                    // field itself being missing.
                    let depth = path.len();
                    for s in rest {
                        match s {
                            Segment::Key(k) => path.push(Cow::Borrowed(k)),
                            Segment::Each => break,
                        }
                    }
                    if !rest.contains(&Segment::Each) {
                        f(path, None);
                    }
                    path.truncate(depth);
                }
            }
            path.pop();
        }
        Segment::Each => {
            for (i, child) in node.elements().iter().enumerate() {
                path.push(Cow::Owned(i.to_string()));
                walk(child, rest, path, f);
                path.pop();
            }
        }
    }
}

fn walk_mut<'a>(node: &mut Json<'a>, segments: &[Segment], f: &mut dyn FnMut(&mut Json<'a>)) {
    let Some((seg, rest)) = segments.split_first() else {
        f(node);
        return;
    };
    each_child(node, seg, |child| walk_mut(child, rest, f));
}

/// Applies `f` to each child of `node` that one segment names: a member, an array's element
/// by its index, or every element.
fn each_child<'a>(node: &mut Json<'a>, seg: &Segment, mut f: impl FnMut(&mut Json<'a>)) {
    match (seg, node) {
        (Segment::Key(k), obj @ Json::Object(_)) => {
            if let Some(child) = obj.get_mut(k) {
                f(child);
            }
        }
        (Segment::Key(k), Json::Array(items)) => {
            if let Some(child) = index(k).and_then(|i| items.get_mut(i)) {
                f(child);
            }
        }
        (Segment::Each, Json::Array(items)) => items.iter_mut().for_each(f),
        _ => {}
    }
}

/// Several pointers walked together, in place: a member their paths share is looked up once,
/// not once per pointer. Made only where no two of them can reach the same value or one value
/// inside another's, so the order values are met in changes nothing done to each.
#[derive(Debug, Clone, Default)]
pub(crate) struct Merged {
    steps: Vec<(Segment, Step)>,
}

#[derive(Debug, Clone)]
enum Step {
    /// The value the `n`th pointer names.
    Value(usize),
    Below(Merged),
}

impl Merged {
    /// `None` when a pointer is another's prefix or repeats it, or when a wildcard and a
    /// member name meet at one level (`/a/*` and `/a/0` reach one element).
    pub(crate) fn of(pointers: &[Pointer]) -> Option<Merged> {
        let mut root = Merged::default();
        for (n, p) in pointers.iter().enumerate() {
            root.add(&p.segments, n)?;
        }
        Some(root)
    }

    fn add(&mut self, segments: &[Segment], n: usize) -> Option<()> {
        let (first, rest) = segments.split_first()?;
        if self
            .steps
            .iter()
            .any(|(s, _)| (*s == Segment::Each) != (*first == Segment::Each))
        {
            return None;
        }
        match self.steps.iter_mut().find(|(s, _)| s == first) {
            None if rest.is_empty() => self.steps.push((first.clone(), Step::Value(n))),
            None => {
                let mut below = Merged::default();
                below.add(rest, n)?;
                self.steps.push((first.clone(), Step::Below(below)));
            }
            Some((_, Step::Below(below))) if !rest.is_empty() => below.add(rest, n)?,
            Some(_) => return None,
        }
        Some(())
    }

    /// Applies `f` to every value the pointers reach, with the index of the pointer that
    /// reached it.
    pub(crate) fn for_each_mut<'a>(
        &self,
        node: &mut Json<'a>,
        f: &mut dyn FnMut(usize, &mut Json<'a>),
    ) {
        for (seg, step) in &self.steps {
            each_child(node, seg, |child| step.visit(child, f));
        }
    }
}

impl Step {
    fn visit<'a>(&self, node: &mut Json<'a>, f: &mut dyn FnMut(usize, &mut Json<'a>)) {
        match self {
            Step::Value(n) => f(*n, node),
            Step::Below(below) => below.for_each_mut(node, f),
        }
    }
}

/// An array index token as RFC 6901 spells it: digits, no leading zero.
pub(crate) fn index(token: &str) -> Option<usize> {
    let ok = token == "0" || (!token.starts_with('0') && token.bytes().all(|b| b.is_ascii_digit()));
    if ok { token.parse().ok() } else { None }
}

/// An RFC 6901 pointer for a concrete path.
pub(crate) fn to_pointer(path: &[Cow<'_, str>]) -> String {
    let mut out = String::new();
    for seg in path {
        out.push('/');
        out.push_str(&seg.replace('~', "~0").replace('/', "~1"));
    }
    out
}

/// The dotted form quarantine evidence uses: `data.features.feature_snapshot_hash`.
pub(crate) fn to_dotted(path: &[Cow<'_, str>]) -> String {
    path.join(".")
}

/// A JSON tree the packs can read: lets one implementation serve the event's tree (checks,
/// normalization, derivation) and `serde_json::Value` (stored records folded into state).
pub(crate) trait Node: Sized {
    fn child(&self, key: &str) -> Option<&Self>;
    /// Calls `f` with each member of an object, in order; `false` for anything else.
    fn each_member<'s>(&'s self, f: impl FnMut(&str, &'s Self)) -> bool;
    fn elements(&self) -> &[Self];
    fn is_null(&self) -> bool;
    /// Strings as they are (borrowed), every other non-null value as its RFC 8785 text.
    fn text_ref(&self) -> Option<Cow<'_, str>>;
    /// [`Node::text_ref`], owned.
    fn text(&self) -> Option<String> {
        self.text_ref().map(Cow::into_owned)
    }
}

impl Node for Value {
    fn child(&self, key: &str) -> Option<&Self> {
        match self {
            Value::Object(m) => m.get(key),
            Value::Array(items) => items.get(index(key)?),
            _ => None,
        }
    }
    fn each_member<'s>(&'s self, mut f: impl FnMut(&str, &'s Self)) -> bool {
        let Value::Object(m) = self else {
            return false;
        };
        m.iter().for_each(|(k, v)| f(k, v));
        true
    }
    fn elements(&self) -> &[Self] {
        self.as_array().map_or(&[], Vec::as_slice)
    }
    fn is_null(&self) -> bool {
        Value::is_null(self)
    }
    fn text_ref(&self) -> Option<Cow<'_, str>> {
        match self {
            Value::Null => None,
            Value::String(s) => Some(Cow::Borrowed(s)),
            other => Some(Cow::Owned(canonical_text(other))),
        }
    }
}

impl Node for Json<'_> {
    fn child(&self, key: &str) -> Option<&Self> {
        match self {
            Json::Array(items) => items.get(index(key)?),
            _ => self.get(key),
        }
    }
    fn each_member<'s>(&'s self, mut f: impl FnMut(&str, &'s Self)) -> bool {
        let Json::Object(members) = self else {
            return false;
        };
        members.iter().for_each(|(k, v)| f(k, v));
        true
    }
    fn elements(&self) -> &[Self] {
        match self {
            Json::Array(items) => items,
            _ => &[],
        }
    }
    fn is_null(&self) -> bool {
        Json::is_null(self)
    }
    fn text_ref(&self) -> Option<Cow<'_, str>> {
        match self {
            Json::Null => None,
            Json::String(s) => Some(Cow::Borrowed(s)),
            // Uncanonicalizable values never reach the log; any stable text will do.
            // RFC 8785 text is UTF-8 (the debug fallback is too): its buffer is the string.
            other => Some(Cow::Owned(
                String::from_utf8(canonical_bytes(other))
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            )),
        }
    }
}

/// RFC 8785 bytes of a value; values with no canonical form (refused later by the model)
/// fall back to their debug text, which is still a total, deterministic order.
pub(crate) fn canonical_bytes(v: &Json<'_>) -> Vec<u8> {
    // Room for the short values compared and indexed, so they are written without growing.
    let mut out = Vec::with_capacity(64);
    write_canonical(v, &mut out);
    out
}

/// Appends what [`canonical_bytes`] returns to `out`.
pub(crate) fn write_canonical(v: &Json<'_>, out: &mut Vec<u8>) {
    let start = out.len();
    if sealog_model::jcs::write_json(v, out).is_err() {
        out.truncate(start);
        out.extend_from_slice(format!("{v:?}").as_bytes());
    }
}

fn canonical_text(v: &Value) -> String {
    sealog_model::jcs::to_vec(v)
        .map(|b| String::from_utf8(b).expect("RFC 8785 output is UTF-8"))
        .unwrap_or_else(|_| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What each pointer reaches, walked one pointer after another and walked merged: the
    /// same values, each once.
    #[test]
    fn a_merged_walk_reaches_what_each_pointer_does_and_refuses_overlaps() {
        let text = r#"{"a": {"b": 1, "c": [{"d": 2}, {"d": 3, "e": 4}]}, "f": 5, "g": [6, 7]}"#;
        let pointers: Vec<Pointer> = ["/a/c/*/d", "/f", "/a/b", "/g/1", "/a/c/*/e", "/absent/x"]
            .iter()
            .map(|t| Pointer::parse(t, false).unwrap())
            .collect();
        let mut one_by_one = Vec::new();
        let mut tree = Json::parse_str(text).unwrap();
        for (n, p) in pointers.iter().enumerate() {
            p.for_each_mut(&mut tree, &mut |v| one_by_one.push((n, v.to_value())));
        }
        let mut merged = Vec::new();
        Merged::of(&pointers)
            .expect("no pointer overlaps another")
            .for_each_mut(&mut tree, &mut |n, v| merged.push((n, v.to_value())));
        one_by_one.sort_by_key(|(n, v)| (*n, v.to_string()));
        merged.sort_by_key(|(n, v)| (*n, v.to_string()));
        assert_eq!(merged, one_by_one);
        assert_eq!(merged.len(), 6, "d twice, f, b, g's second, e once");

        for overlapping in [
            &["/a/b", "/a"][..],
            &["/a", "/a/b"],
            &["/a/b", "/a/b"],
            &["/g/*", "/g/0"],
            &["/g/0/x", "/g/*/x"],
        ] {
            let pointers: Vec<Pointer> = overlapping
                .iter()
                .map(|t| Pointer::parse(t, false).unwrap())
                .collect();
            assert!(Merged::of(&pointers).is_none(), "{overlapping:?}");
        }
    }

    #[test]
    fn parses_escapes_and_wildcards() {
        let p = Pointer::parse("/a~1b/*/c~0d", false).unwrap();
        assert_eq!(
            p.segments,
            vec![
                Segment::Key("a/b".into()),
                Segment::Each,
                Segment::Key("c~d".into())
            ]
        );
        assert!(Pointer::parse("a/b", false).is_err());
        assert!(Pointer::parse("/a~2", false).is_err());
        assert!(Pointer::parse("", false).is_err());
        assert!(Pointer::parse("", true).unwrap().segments.is_empty());
    }

    #[test]
    fn visits_concrete_paths_and_reports_absent_leaves() {
        let v = json!({"a": [{"b": 1}, {"c": 2}], "x": null});
        let p = Pointer::parse("/a/*/b", false).unwrap();
        let mut seen = Vec::new();
        p.visit(&v, &mut |path, val| {
            seen.push((to_dotted(path), val.cloned()))
        });
        assert_eq!(
            seen,
            vec![
                ("a.0.b".to_string(), Some(json!(1))),
                ("a.1.b".into(), None)
            ]
        );
        let deep = Pointer::parse("/missing/inner", false).unwrap();
        let mut seen = Vec::new();
        deep.visit(&v, &mut |path, val| {
            seen.push((to_pointer(path), val.is_some()))
        });
        assert_eq!(seen, vec![("/missing/inner".to_string(), false)]);
        let none = Pointer::parse("/missing/*/b", false).unwrap();
        let mut count = 0;
        none.visit(&v, &mut |_, _| count += 1);
        assert_eq!(count, 0, "a wildcard over an absent array reaches nothing");
    }

    #[test]
    fn a_pointer_without_wildcards_visits_as_the_general_walk_does() {
        let v = json!({"a": {"b": [10, {"c": null}]}, "s": "text", "x": null});
        for text in [
            "/a/b/1/c", "/a/b/0", "/a/b/2", "/a/zz/c", "/s/inner", "/x", "/x/y", "/a/b/01",
        ] {
            let p = Pointer::parse(text, false).unwrap();
            assert!(p.concrete.is_some(), "{text}");
            let mut fast = Vec::new();
            p.visit(&v, &mut |path, val| {
                fast.push((to_pointer(path), val.cloned()))
            });
            let mut general = Vec::new();
            walk(&v, &p.segments, &mut Vec::new(), &mut |path, val| {
                general.push((to_pointer(path), val.cloned()))
            });
            assert_eq!(fast, general, "{text}");
        }
    }

    #[test]
    fn borrowed_and_owned_trees_agree() {
        let v = json!({"k": [{"t": "a", "n": 1.5}, {"t": "b", "n": {"z": 1, "a": [true]}}]});
        let j = Json::from_value(&v);
        for text in ["/k/*/t", "/k/*/n", "/k"] {
            let p = Pointer::parse(text, false).unwrap();
            let (mut a, mut b) = (Vec::new(), Vec::new());
            p.visit(&v, &mut |_, n| a.extend(n.map(Node::text)));
            p.visit(&j, &mut |_, n| b.extend(n.map(Node::text)));
            assert_eq!(a, b, "{text}");
        }
        assert_eq!(
            Pointer::parse("/k/1/n", false)
                .unwrap()
                .get(&v)
                .unwrap()
                .text(),
            Some(r#"{"a":[true],"z":1}"#.into())
        );
    }
}
