//! Every wildcard-free pointer of a type's checks and derivation, compiled into one tree of
//! member names, so an event's values for all of them are found in one walk of the event.
//! A decision-log record names some sixty such places; looked up one pointer at a time,
//! each lookup scanned the envelope and then `data` from their first member.

use crate::pointer::{Node, Pointer, Segment, Visitor};
use sealog_model::json::same_bytes;

/// The places a type's rules read, as a tree of member names from the event's root.
#[derive(Default)]
pub(crate) struct Paths {
    /// `nodes[0]` is the event itself.
    nodes: Vec<Place>,
    /// Who reads each slot.
    slot_readers: Vec<Readers>,
}

/// Who reads a place: the checks, the derivation, or both. An event is resolved for one of
/// them, so the derivation's walk skips the many places only the checks read.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub(crate) struct Readers(u8);

impl Readers {
    pub(crate) const CHECK: Readers = Readers(1);
    pub(crate) const DERIVE: Readers = Readers(2);
    pub(crate) const BOTH: Readers = Readers(3);

    fn meet(self, other: Readers) -> bool {
        self.0 & other.0 != 0
    }
}

impl std::ops::BitOrAssign for Readers {
    fn bitor_assign(&mut self, other: Readers) {
        self.0 |= other.0;
    }
}

#[derive(Default)]
struct Place {
    /// Who reads this place or one below it.
    readers: Readers,
    /// Each child's [`sketch`] and its index in `children` plus one, at the slot its sketch
    /// hashes to or the first free one after it, in a table at least twice as large as the
    /// children: a member of an object finds its child, or that it has none, in about one
    /// probe and compares bytes once. Zero marks a free slot.
    table: Vec<(u64, u32)>,
    children: Vec<(String, u32)>,
    /// Where the value found here goes, when a pointer ends here.
    slot: Option<u16>,
}

/// A name's length and its first and last two bytes: names that differ mostly differ here.
fn sketch(name: &str) -> u64 {
    let b = name.as_bytes();
    let byte = |i: usize| u64::from(b.get(i).copied().unwrap_or(0));
    let n = b.len();
    (n as u64) << 32
        | byte(0) << 24
        | byte(1) << 16
        | byte(n.wrapping_sub(2)) << 8
        | byte(n.wrapping_sub(1))
}

/// Where a sketch's probe starts in a table of `mask + 1` slots.
fn home(sketch: u64, mask: usize) -> usize {
    (sketch.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) as usize & mask
}

/// Whether two names with the same [`sketch`] are the same name. The sketch holds the length
/// and every byte of a name up to four bytes long.
fn same_sketched(a: &[u8], b: &[u8]) -> bool {
    a.len() <= 4 || same_bytes(a, b)
}

impl Place {
    fn find(&self, name: &str) -> Option<u32> {
        if self.table.is_empty() {
            return None;
        }
        let k = sketch(name);
        let mask = self.table.len() - 1;
        let mut at = home(k, mask);
        loop {
            let (s, child) = self.table[at];
            if child == 0 {
                return None;
            }
            if s == k {
                let (n, place) = &self.children[child as usize - 1];
                if same_sketched(n.as_bytes(), name.as_bytes()) {
                    return Some(*place);
                }
            }
            at = (at + 1) & mask;
        }
    }

    fn add_child(&mut self, name: &str, place: u32) {
        self.children.push((name.to_string(), place));
        let size = (self.children.len() * 2).next_power_of_two();
        self.table = vec![(0, 0); size];
        for (i, (n, _)) in self.children.iter().enumerate() {
            let k = sketch(n);
            let mut at = home(k, size - 1);
            while self.table[at].1 != 0 {
                at = (at + 1) & (size - 1);
            }
            self.table[at] = (k, u32::try_from(i + 1).expect("few children"));
        }
    }
}

impl Paths {
    /// Gives each wildcard-free pointer its slot (one per distinct path) and compiles the
    /// tree that finds them. Pointers with a wildcard keep none and are walked as before.
    pub(crate) fn assign<'p>(
        pointers: impl IntoIterator<Item = (&'p mut Pointer, Readers)>,
    ) -> Paths {
        let mut paths = Paths {
            nodes: vec![Place::default()],
            slot_readers: Vec::new(),
        };
        for (p, readers) in pointers {
            if p.has_wildcard() {
                continue;
            }
            let mut at = 0usize;
            paths.nodes[at].readers |= readers;
            for seg in &p.segments {
                let Segment::Key(name) = seg else {
                    unreachable!("no wildcard")
                };
                at = match paths.nodes[at].find(name) {
                    Some(next) => next as usize,
                    None => {
                        let next = paths.nodes.len();
                        paths.nodes[at].add_child(name, next as u32);
                        paths.nodes.push(Place::default());
                        next
                    }
                };
                paths.nodes[at].readers |= readers;
            }
            let slot = *paths.nodes[at].slot.get_or_insert_with(|| {
                paths.slot_readers.push(Readers::default());
                u16::try_from(paths.slot_readers.len() - 1)
                    .expect("a type names far fewer than 65,536 places")
            });
            paths.slot_readers[usize::from(slot)] |= readers;
            p.slot = Some(slot);
        }
        paths
    }

    /// The values `readers` find through their slotted pointers in `root`, in one walk.
    pub(crate) fn resolve<'a, N: Node>(&self, root: &'a N, readers: Readers) -> Found<'a, N> {
        // A place the walk does not reach is absent; one it skips is not known.
        let mut at: Vec<Slot<'a, N>> = self
            .slot_readers
            .iter()
            .map(|r| {
                if readers.meet(*r) {
                    Resolved(None)
                } else {
                    Unresolved
                }
            })
            .collect();
        self.fill(0, root, readers, &mut at);
        Found { root, at }
    }

    fn fill<'a, N: Node>(
        &self,
        place: usize,
        value: &'a N,
        readers: Readers,
        at: &mut [Slot<'a, N>],
    ) {
        let here = &self.nodes[place];
        if !readers.meet(here.readers) {
            return;
        }
        if let Some(s) = here.slot {
            at[usize::from(s)] = Resolved(Some(value));
        }
        if here.children.is_empty() {
            return;
        }
        let object = value.each_member(|name, child| {
            if let Some(next) = here.find(name) {
                self.fill(next as usize, child, readers, at);
            }
        });
        if !object {
            // An array's elements by index, or nothing below a scalar: as `Pointer::get`.
            for (name, next) in &here.children {
                if let Some(child) = value.child(name) {
                    self.fill(*next as usize, child, readers, at);
                }
            }
        }
    }
}

/// An event with the values of its type's slotted pointers already found. Reads through a
/// pointer without a slot (a wildcard, or one the rules did not compile), or of an event
/// not resolved, walk the event.
pub(crate) struct Found<'a, N> {
    root: &'a N,
    at: Vec<Slot<'a, N>>,
}

/// What one walk found at a place: its value or its absence, or nothing known (the walk was
/// for other readers).
enum Slot<'a, N> {
    Unresolved,
    Resolved(Option<&'a N>),
}
use Slot::{Resolved, Unresolved};

impl<N> Clone for Slot<'_, N> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<N> Copy for Slot<'_, N> {}

impl<'a, N: Node> Found<'a, N> {
    /// An event whose reads all walk it: for a single read, one walk of every place would
    /// cost more than it saves.
    pub(crate) fn unresolved(root: &'a N) -> Self {
        Found {
            root,
            at: Vec::new(),
        }
    }

    pub(crate) fn root(&self) -> &'a N {
        self.root
    }

    /// The value found for `p`, when it has a slot this event was resolved for.
    fn slotted(&self, p: &Pointer) -> Option<Option<&'a N>> {
        match self.at.get(usize::from(p.slot?))? {
            Resolved(v) => Some(*v),
            Unresolved => None,
        }
    }

    /// What [`Pointer::get`] finds.
    pub(crate) fn get(&self, p: &Pointer) -> Option<&'a N> {
        self.slotted(p).unwrap_or_else(|| p.get(self.root))
    }

    /// What [`Pointer::visit`] visits.
    pub(crate) fn visit(&self, p: &Pointer, f: &mut Visitor<'_, 'a, N>) {
        match (self.slotted(p), p.concrete()) {
            (Some(v), Some(path)) => f(path, v),
            _ => p.visit(self.root, f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pointer::to_pointer;
    use proptest::prelude::*;
    use sealog_model::json::Json;
    use serde_json::{Value, json};

    /// Trees of a few names at a few levels, so pointers often hit, often miss, and meet
    /// arrays, scalars and nulls on the way.
    fn tree() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (0u8..4).prop_map(|n| json!(n)),
            "[a-c]{0,2}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 40, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-d]|0|1|01|~|a/b", inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn pointer_text() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                "[a-d]",
                Just("0".into()),
                Just("1".into()),
                Just("01".into()),
                Just("~0".into()),
                Just("a~1b".into()),
                Just("*".into())
            ],
            1..5,
        )
        .prop_map(|segs| format!("/{}", segs.join("/")))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2048, rng_seed: proptest::test_runner::RngSeed::Fixed(0x5ea1), ..ProptestConfig::default() })]

        /// One walk finds, for every pointer, exactly what looking it up alone finds, over
        /// both kinds of tree the rules read.
        #[test]
        fn one_walk_finds_what_each_pointer_finds_alone(
            value in tree(),
            texts in prop::collection::vec((pointer_text(), 1u8..4), 1..12),
            readers in 1u8..4,
        ) {
            let mut pointers: Vec<(Pointer, Readers)> = texts
                .iter()
                .map(|(t, r)| (Pointer::parse(t, false).unwrap(), Readers(*r)))
                .collect();
            let paths = Paths::assign(pointers.iter_mut().map(|(p, r)| (p, *r)));
            let borrowed = Json::from_value(&value);
            let readers = Readers(readers);
            let (found, found_json) =
                (paths.resolve(&value, readers), paths.resolve(&borrowed, readers));
            let unresolved = Found::unresolved(&value);
            for p in pointers.iter().map(|(p, _)| p) {
                prop_assert_eq!(p.slot.is_some(), !p.has_wildcard());
                prop_assert_eq!(found.get(p), p.get(&value), "{}", p.text);
                prop_assert_eq!(found_json.get(p), p.get(&borrowed), "{}", p.text);
                prop_assert_eq!(unresolved.get(p), p.get(&value), "{}", p.text);
                let (mut one, mut alone) = (Vec::new(), Vec::new());
                found.visit(p, &mut |path, v| one.push((to_pointer(path), v.cloned())));
                p.visit(&value, &mut |path, v| alone.push((to_pointer(path), v.cloned())));
                prop_assert_eq!(one, alone, "{}", p.text);
            }
        }

        /// Where a type's personal pointers merge into one walk, that walk changes an event
        /// exactly as walking them one after another in the pack's order does.
        #[test]
        fn a_merged_walk_changes_what_the_pointers_walked_in_turn_change(
            value in tree(),
            texts in prop::collection::vec(pointer_text(), 1..8),
        ) {
            let pointers: Vec<Pointer> =
                texts.iter().map(|t| Pointer::parse(t, false).unwrap()).collect();
            let Some(merged) = crate::pointer::Merged::of(&pointers) else {
                return Ok(());
            };
            let mark = |n: usize| Json::String(format!("#{n}").into());
            let mut in_turn = Json::from_value(&value);
            for (n, p) in pointers.iter().enumerate() {
                p.for_each_mut(&mut in_turn, &mut |v| *v = mark(n));
            }
            let mut together = Json::from_value(&value);
            merged.for_each_mut(&mut together, &mut |n, v| *v = mark(n));
            prop_assert_eq!(together.to_value(), in_turn.to_value());
        }
    }

    #[test]
    fn pointers_to_one_place_share_its_slot_and_places_below_one_another_each_have_theirs() {
        let mut pointers: Vec<Pointer> = ["/data/a", "/data", "/data/a", "/data/b/0", "/x/*/y"]
            .iter()
            .map(|t| Pointer::parse(t, false).unwrap())
            .collect();
        let readers = [
            Readers::CHECK,
            Readers::DERIVE,
            Readers::DERIVE,
            Readers::CHECK,
            Readers::BOTH,
        ];
        let paths = Paths::assign(pointers.iter_mut().zip(readers));
        let slots: Vec<_> = pointers.iter().map(|p| p.slot).collect();
        assert_eq!(slots, vec![Some(0), Some(1), Some(0), Some(2), None]);
        let v = json!({"data": {"a": 1, "b": [true]}, "x": [{"y": 2}]});
        for readers in [Readers::CHECK, Readers::DERIVE] {
            let found = paths.resolve(&v, readers);
            assert_eq!(found.get(&pointers[0]), Some(&json!(1)));
            assert_eq!(found.get(&pointers[3]), Some(&json!(true)));
            let mut each = Vec::new();
            found.visit(&pointers[4], &mut |_, v| each.extend(v));
            assert_eq!(each, vec![&json!(2)]);
        }
        // The derivation's walk does not go where only the checks read.
        let derive = paths.resolve(&v, Readers::DERIVE);
        assert!(matches!(derive.at[2], Unresolved));
        assert!(matches!(derive.at[0], Resolved(Some(_))));
    }

    /// Names that share their length and first and last two bytes, and differ in one byte
    /// anywhere between, are told apart at every length, as are names the place lacks.
    #[test]
    fn a_place_finds_each_child_among_names_that_share_their_sketch() {
        let mut place = Place::default();
        let mut names = Vec::new();
        for n in 0..40usize {
            let base: Vec<u8> = (0..n).map(|i| b'a' + (i % 7) as u8).collect();
            names.push(String::from_utf8(base.clone()).unwrap());
            for at in 2..n.saturating_sub(2) {
                let mut other = base.clone();
                other[at] = b'Z';
                names.push(String::from_utf8(other).unwrap());
            }
        }
        for (i, name) in names.iter().enumerate() {
            place.add_child(name, i as u32 + 100);
        }
        assert!(place.table.len() >= 2 * names.len());
        for (i, name) in names.iter().enumerate() {
            assert_eq!(place.find(name), Some(i as u32 + 100), "{name:?}");
            // The same sketch, a byte between its ends changed to one no child has there.
            if name.len() > 4 {
                let mut miss = name.clone().into_bytes();
                miss[name.len() / 2] = b'#';
                let miss = String::from_utf8(miss).unwrap();
                assert_eq!(sketch(&miss), sketch(name));
                assert_eq!(place.find(&miss), None, "{miss:?}");
            }
        }
        assert_eq!(place.find("not a child at all"), None);
        assert_eq!(Place::default().find("a"), None);
    }
}
