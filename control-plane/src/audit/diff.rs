//! Field-level diffs of two JSON snapshots: `{"path.to.field": {"from": x, "to": y}}` for
//! every leaf that differs (a field absent on one side is left out of that side). Objects
//! are walked; arrays and scalars are compared whole.

use serde_json::{Map, Value};
use std::collections::BTreeMap;

pub fn diff(before: Option<&Value>, after: Option<&Value>) -> Value {
    let mut from = BTreeMap::new();
    let mut to = BTreeMap::new();
    if let Some(v) = before {
        flatten("", v, &mut from);
    }
    if let Some(v) = after {
        flatten("", v, &mut to);
    }
    let mut out = Map::new();
    let paths: std::collections::BTreeSet<&String> = from.keys().chain(to.keys()).collect();
    for path in paths {
        let (a, b) = (from.get(path), to.get(path));
        if a == b {
            continue;
        }
        let mut entry = Map::new();
        if let Some(a) = a {
            entry.insert("from".into(), (*a).clone());
        }
        if let Some(b) = b {
            entry.insert("to".into(), (*b).clone());
        }
        out.insert(path.clone(), Value::Object(entry));
    }
    Value::Object(out)
}

fn flatten<'a>(prefix: &str, value: &'a Value, out: &mut BTreeMap<String, &'a Value>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&path, v, out);
            }
        }
        _ => {
            out.insert(prefix.to_owned(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_each_changed_leaf_with_both_sides() {
        let before = json!({"name": "a", "quotas": {"burst": 1, "rps": 5}, "tags": [1]});
        let after = json!({"name": "a", "quotas": {"burst": 2, "rps": 5}, "tags": [1, 2]});
        assert_eq!(
            diff(Some(&before), Some(&after)),
            json!({
                "quotas.burst": {"from": 1, "to": 2},
                "tags": {"from": [1], "to": [1, 2]},
            })
        );
    }

    #[test]
    fn a_creation_has_only_the_new_side_and_a_deletion_only_the_old() {
        let v = json!({"name": "a", "q": {"x": 1}});
        assert_eq!(
            diff(None, Some(&v)),
            json!({"name": {"to": "a"}, "q.x": {"to": 1}})
        );
        assert_eq!(
            diff(Some(&v), None),
            json!({"name": {"from": "a"}, "q.x": {"from": 1}})
        );
        assert_eq!(diff(Some(&v), Some(&v)), json!({}));
    }
}
