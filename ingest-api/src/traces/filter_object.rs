//! The list filter as a JSON object (`{"meta.run": "17", "q": "paris", "tag": ["a", "b"]}`): the
//! one encoding of filters that datasets, bulk deletes and `tunix-admin` share. It is turned
//! into list parameters and parsed by [`ListQuery::parse`], so every filter means the same
//! everywhere.

use std::collections::BTreeMap;

use serde_json::Value;
use tunix_schemas::{ErrorKind, Loc, ValidationErrors};

use super::filter::ListQuery;
use crate::http::error::ApiError;

/// A filter value as the list parameter's values: a scalar, or an array of scalars (repeated).
fn filter_value(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Number(n) => Some(vec![n.to_string()]),
        Value::Bool(b) => Some(vec![b.to_string()]),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                filter_value(i)
                    .filter(|v| v.len() == 1)
                    .map(|mut v| v.remove(0))
            })
            .collect(),
        _ => None,
    }
}

/// Parses a list filter given as JSON (`{"meta.run": "17", "q": "paris", "tag": ["a", "b"]}`):
/// the one encoding of filters shared by datasets, bulk deletes and the CLI. Keys are the list's
/// query parameters, values a string, number or boolean or a non-empty array of them (a repeated
/// parameter). Problems are pushed to `errs` under `<root>.filter.<key>`; returns the filter and
/// its parsed query when there were none.
pub fn parse_filter_object(
    value: Option<&Value>,
    root: &Loc,
    errs: &mut ValidationErrors,
) -> Option<(BTreeMap<String, Vec<String>>, ListQuery)> {
    let before = errs.errors().len();
    let mut filter: BTreeMap<String, Vec<String>> = BTreeMap::new();
    match value {
        None | Some(Value::Null) => {}
        Some(Value::Object(f)) => {
            for (k, v) in f {
                if matches!(k.as_str(), "limit" | "offset" | "cursor") {
                    errs.push(
                        root.child("filter").child(k.clone()),
                        ErrorKind::ValueError,
                        format!("{k} is a paging parameter, not a filter; use the dataset's limit"),
                    );
                    continue;
                }
                match filter_value(v) {
                    Some(values) if !values.is_empty() => {
                        filter.insert(k.clone(), values);
                    }
                    _ => errs.push(
                        root.child("filter").child(k.clone()),
                        ErrorKind::ValueError,
                        "a filter value is a string, number or boolean, or a non-empty array of them",
                    ),
                }
            }
        }
        Some(_) => errs.push(
            root.child("filter"),
            ErrorKind::DictType,
            "filter should be an object of list parameters, e.g. {\"meta.run\": \"17\", \"q\": \"paris\"}",
        ),
    }
    // The filter, parsed by the list's own rules; its errors name the parameter under `filter`.
    let raw: String = {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, values) in &filter {
            for v in values {
                ser.append_pair(k, v);
            }
        }
        ser.finish()
    };
    let query = match ListQuery::parse(Some(&raw)) {
        Ok(q) => Some(q),
        Err(ApiError::InvalidParam { param, msg, .. }) => {
            errs.push(
                root.child("filter").child(param.to_string()),
                ErrorKind::ValueError,
                msg,
            );
            None
        }
        Err(other) => {
            errs.push(
                root.child("filter"),
                ErrorKind::ValueError,
                other.to_string(),
            );
            None
        }
    };
    match query {
        Some(q) if errs.errors().len() == before => Some((filter, q)),
        _ => None,
    }
}
