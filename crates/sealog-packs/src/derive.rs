//! Derivation of scope, subject, data subject, axes and supersedes target: a pure function of
//! the event, so the same facts come out of a fresh event and of its stored record.

use std::borrow::Cow;

use crate::Derived;

use crate::pointer::Node;
use crate::rules::TypeRules;

impl TypeRules {
    /// Whom the event is about: `None` when its data subject is absent, null, or a blank
    /// string, which names nobody (a check refuses personal values beside one).
    pub(crate) fn data_subject<N: Node>(&self, event: &N) -> Option<String> {
        self.data_subject
            .as_ref()
            .and_then(|p| p.get(event))
            .and_then(Node::text)
            .filter(|s| !crate::check::is_blank(s))
    }

    pub(crate) fn derive<N: Node>(&self, event: &N) -> Derived {
        // An axis over an array gives a value per element: room for a few.
        let mut axes = Vec::with_capacity(self.axes.len() + 8);
        let mut derived = self.derive_each(event, |name, value| {
            axes.push((name.to_string(), value.to_string()));
        });
        // Postings are a set: element order in the body must not change what is indexed.
        axes.sort();
        axes.dedup();
        derived.axes = axes;
        derived
    }

    /// [`TypeRules::derive`] with each axis value handed to `axis` as it is found, in the
    /// manifest's order and possibly repeated, instead of collected: the result's `axes` is
    /// empty.
    pub(crate) fn derive_each<N: Node>(
        &self,
        event: &N,
        mut axis: impl FnMut(&str, &str),
    ) -> Derived {
        let found = self.paths.resolve(event, crate::paths::Readers::DERIVE);
        let text = |p: &Option<crate::pointer::Pointer>| {
            p.as_ref().and_then(|p| found.get(p)).and_then(Node::text)
        };
        for a in &self.axes {
            found.visit(&a.pointer, &mut |_, node| {
                let Some(node) = node else { return };
                let value = if a.join.is_empty() {
                    node.text_ref()
                } else {
                    a.join
                        .iter()
                        .map(|j| j.get(node).and_then(Node::text))
                        .collect::<Option<Vec<_>>>()
                        .map(|parts| Cow::Owned(parts.join(":")))
                };
                if let Some(v) = value {
                    axis(&a.name, &v);
                }
            });
        }
        Derived {
            scope: text(&self.scope),
            subject: text(&self.subject),
            kind: Some(self.kind.clone()),
            data_subject: text(&self.data_subject),
            axes: Vec::new(),
            unique_per_subject: self.unique_per_subject,
            supersedes: text(&self.supersedes),
        }
    }
}
