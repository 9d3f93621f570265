//! The event's tree as a JSON Schema instance: `jsonschema` validates any representation that
//! implements its `json::Json` traits, so a pack's schema reads the tree the event was parsed
//! into, and no `serde_json::Value` is built for it (only, on a cold path, to describe an
//! error).

use std::borrow::Cow;

use jsonschema::json::{Array, Json as Representation, Node, NodeIdentity, Object};
use jsonschema::types::JsonType;
use sealog_model::json::Json;
use serde_json::Value;

/// The representation: nodes of the event's tree.
pub(crate) struct EventTree;

pub(crate) type Validator = jsonschema::Validator<EventTree>;

impl Representation for EventTree {
    type Node<'a> = TreeNode<'a>;
    type PreparedKey = String;
    type StringBuffer = ();

    // Members are a vector scanned in order: a pass over all of them costs about what a few
    // lookups do.
    const KEYS_PER_LOOKUP: usize = 4;
    // A parsed tree owns its children: no node is its own descendant.
    const ACYCLIC: bool = true;

    fn prepare_key(key: &str) -> String {
        key.to_owned()
    }

    fn with_string_node<T>((): &mut (), string: &str, f: impl FnOnce(TreeNode<'_>) -> T) -> T {
        let node = Json::String(Cow::Borrowed(string));
        f(TreeNode(&node))
    }
}

/// One node of the tree, borrowed.
#[derive(Clone, Copy)]
pub(crate) struct TreeNode<'a>(&'a Json<'a>);

impl<'a> TreeNode<'a> {
    pub(crate) fn of(json: &'a Json<'a>) -> Self {
        TreeNode(json)
    }
}

#[derive(Clone, Copy)]
pub(crate) struct TreeObject<'a>(&'a [(Cow<'a, str>, Json<'a>)]);

#[derive(Clone, Copy)]
pub(crate) struct TreeArray<'a>(&'a [Json<'a>]);

impl<'a> Node<'a, EventTree> for TreeNode<'a> {
    type Object = TreeObject<'a>;
    type Array = TreeArray<'a>;
    type Number = &'a serde_json::Number;

    fn as_object(&self) -> Option<TreeObject<'a>> {
        match self.0 {
            Json::Object(members) => Some(TreeObject(members)),
            _ => None,
        }
    }

    fn as_array(&self) -> Option<TreeArray<'a>> {
        match self.0 {
            Json::Array(items) => Some(TreeArray(items)),
            _ => None,
        }
    }

    fn as_string(&self) -> Option<Cow<'a, str>> {
        match self.0 {
            Json::String(s) => Some(Cow::Borrowed(s.as_ref())),
            _ => None,
        }
    }

    fn as_number(&self) -> Option<&'a serde_json::Number> {
        match self.0 {
            Json::Number(n) => Some(n),
            _ => None,
        }
    }

    fn as_boolean(&self) -> Option<bool> {
        match self.0 {
            Json::Bool(b) => Some(*b),
            _ => None,
        }
    }

    fn is_null(&self) -> bool {
        matches!(self.0, Json::Null)
    }

    fn json_type(&self) -> JsonType {
        match self.0 {
            Json::Null => JsonType::Null,
            Json::Bool(_) => JsonType::Boolean,
            Json::Number(_) => JsonType::Number,
            Json::String(_) => JsonType::String,
            Json::Array(_) => JsonType::Array,
            Json::Object(_) => JsonType::Object,
        }
    }

    fn to_value(&self) -> Cow<'a, Value> {
        Cow::Owned(self.0.to_value())
    }

    fn identity(&self) -> Option<NodeIdentity> {
        Some(NodeIdentity::new(
            std::ptr::from_ref::<Json<'a>>(self.0) as usize
        ))
    }
}

impl<'a> Object<'a, EventTree> for TreeObject<'a> {
    type Node = TreeNode<'a>;
    type MemberName = &'a str;
    type MembersIter = std::iter::Map<
        std::slice::Iter<'a, (Cow<'a, str>, Json<'a>)>,
        fn(&'a (Cow<'a, str>, Json<'a>)) -> (&'a str, TreeNode<'a>),
    >;

    fn len(&self) -> usize {
        self.0.len()
    }

    fn get(&self, key: &String) -> Option<TreeNode<'a>> {
        self.0
            .iter()
            .find(|(name, _)| sealog_model::json::name_is(name, key))
            .map(|(_, v)| TreeNode(v))
    }

    fn members(&self) -> Self::MembersIter {
        self.0.iter().map(|(name, v)| (name.as_ref(), TreeNode(v)))
    }
}

impl<'a> Array<'a, EventTree> for TreeArray<'a> {
    type Node = TreeNode<'a>;
    type ElementsIter =
        std::iter::Map<std::slice::Iter<'a, Json<'a>>, fn(&'a Json<'a>) -> TreeNode<'a>>;

    fn len(&self) -> usize {
        self.0.len()
    }

    fn elements(&self) -> Self::ElementsIter {
        self.0.iter().map(TreeNode)
    }
}

/// Compiles a pack's schema to validate event trees.
pub(crate) fn compile(schema: &Value) -> Result<Validator, jsonschema::ValidationError<'static>> {
    jsonschema::ValidationOptions::<'_, std::sync::Arc<dyn jsonschema::Retrieve>, EventTree>::default()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(schema)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// jsonschema's own checks of a representation's accessors, on the tree of its document.
    #[test]
    fn the_tree_passes_the_representation_conformance_checks() {
        let document = jsonschema::json::conformance::document();
        let text = serde_json::to_vec(&document).unwrap();
        let tree = Json::parse(&text).unwrap();
        jsonschema::json::conformance::assert_conformance::<EventTree>(&TreeNode(&tree));
    }

    /// The same schema gives the same verdict and the same errors on the tree as on a
    /// `serde_json::Value` of it.
    #[test]
    fn the_tree_validates_like_a_value() {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {
                "id": {"type": "string", "minLength": 2, "format": "uuid"},
                "n": {"type": "integer", "minimum": 0, "multipleOf": 2},
                "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "uniqueItems": true},
                "when": {"type": "string", "format": "date-time"},
                "nested": {"type": "object", "required": ["k"], "additionalProperties": false,
                           "properties": {"k": {"const": {"x": [1, 2.0]}}}}
            },
            "required": ["id"],
            "unevaluatedProperties": false
        });
        let on_tree = compile(&schema).unwrap();
        let on_value = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&schema)
            .unwrap();
        for instance in [
            json!({"id": "3fa85f64-5717-4562-b3fc-2c963f66afa6", "n": 4, "tags": ["a", "b"],
                   "when": "2026-01-03T12:34:56Z", "nested": {"k": {"x": [1.0, 2]}}}),
            json!({"id": "x"}),
            json!({"id": "not-a-uuid", "n": -3, "tags": ["a", "a", "c"], "when": "yesterday"}),
            json!({"id": "3fa85f64-5717-4562-b3fc-2c963f66afa6", "nested": {"k": {"x": [1]}, "extra": 1}}),
            json!({"n": 2.5, "other": true}),
            json!([1, 2]),
        ] {
            let text = serde_json::to_vec(&instance).unwrap();
            let tree = Json::parse(&text).unwrap();
            assert_eq!(
                on_tree.is_valid(TreeNode(&tree)),
                on_value.is_valid(&instance),
                "{instance}"
            );
            let describe = |errors: Vec<(String, String)>| {
                let mut e = errors;
                e.sort();
                e
            };
            let tree_errors = describe(
                on_tree
                    .iter_errors(TreeNode(&tree))
                    .map(|e| (e.instance_path().to_string(), e.masked().to_string()))
                    .collect(),
            );
            let value_errors = describe(
                on_value
                    .iter_errors(&instance)
                    .map(|e| (e.instance_path().to_string(), e.masked().to_string()))
                    .collect(),
            );
            assert_eq!(tree_errors, value_errors, "{instance}");
        }
    }
}
