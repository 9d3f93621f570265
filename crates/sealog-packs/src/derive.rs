//! Derivation of scope, subject, data subject, axes and supersedes target: a pure function of
//! the event, so the same facts come out of a fresh event and of its stored record.

use crate::Derived;

use crate::pointer::Node;
use crate::rules::TypeRules;

impl TypeRules {
    pub(crate) fn data_subject<N: Node>(&self, event: &N) -> Option<String> {
        self.data_subject
            .as_ref()
            .and_then(|p| p.get(event))
            .and_then(Node::text)
    }

    pub(crate) fn derive<N: Node>(&self, event: &N) -> Derived {
        let found = self.paths.resolve(event, crate::paths::Readers::DERIVE);
        let text = |p: &Option<crate::pointer::Pointer>| {
            p.as_ref().and_then(|p| found.get(p)).and_then(Node::text)
        };
        // An axis over an array gives a value per element: room for a few.
        let mut axes = Vec::with_capacity(self.axes.len() + 8);
        for axis in &self.axes {
            found.visit(&axis.pointer, &mut |_, node| {
                let Some(node) = node else { return };
                let value = if axis.join.is_empty() {
                    node.text()
                } else {
                    axis.join
                        .iter()
                        .map(|j| j.get(node).and_then(Node::text))
                        .collect::<Option<Vec<_>>>()
                        .map(|parts| parts.join(":"))
                };
                axes.extend(value.map(|v| (axis.name.clone(), v)));
            });
        }
        // Postings are a set: element order in the body must not change what is indexed.
        axes.sort();
        axes.dedup();
        Derived {
            scope: text(&self.scope),
            subject: text(&self.subject),
            data_subject: text(&self.data_subject),
            axes,
            unique_per_subject: self.unique_per_subject,
            supersedes: text(&self.supersedes),
        }
    }
}
