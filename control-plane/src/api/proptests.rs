//! Property tests over admin API inputs: whatever a caller sends, parsing never panics and
//! a refusal names the field it was given, without echoing a header's secret value.

use super::*;
use proptest::prelude::*;

/// The field an error names, if it is an InvalidArgument.
fn field_of(e: &Error) -> Option<&str> {
    match e {
        Error::InvalidArgument { field, .. } => Some(field),
        _ => None,
    }
}

proptest! {
    #[test]
    fn identifiers_parse_or_name_their_field(s in "\\PC{0,60}") {
        match slug("tenant", &s) {
            Ok(t) => prop_assert_eq!(t.as_str(), s.as_str()),
            Err(e) => prop_assert_eq!(field_of(&e), Some("tenant")),
        }
        if let Err(e) = connector_name("name", &s) {
            prop_assert_eq!(field_of(&e), Some("name"));
        }
        if let Err(e) = key_id("id", &s) {
            prop_assert_eq!(field_of(&e), Some("id"));
        }
        if let Err(e) = etag(&s) {
            prop_assert_eq!(field_of(&e), Some("etag"));
        }
    }

    #[test]
    fn header_fields_parse_or_name_the_field_and_keep_values_secret(
        name in "\\PC{0,40}",
        value in "\\PC{0,100}",
    ) {
        if let Err(e) = header_name("h.name", &name) {
            prop_assert_eq!(field_of(&e), Some("h.name"));
        }
        if let Err(e) = header_value("h.value", &value) {
            prop_assert_eq!(field_of(&e), Some("h.value"));
            if value.len() > 3 {
                prop_assert!(!e.to_string().contains(&value), "the value was echoed");
            }
        }
    }

    #[test]
    fn prefixes_and_patterns_parse_or_name_the_field(
        p in "\\PC{0,40}",
        list in proptest::collection::vec("\\PC{0,30}", 0..5),
    ) {
        if let Err(e) = prefix("prefix", &p) {
            prop_assert_eq!(field_of(&e), Some("prefix"));
        }
        if let Err(e) = patterns("allow_tools", &list) {
            let f = field_of(&e).unwrap_or_default().to_owned();
            prop_assert!(f.starts_with("allow_tools"), "{f}");
        }
    }

    #[test]
    fn quotas_in_range_or_named(
        rps in any::<u32>(),
        sessions in any::<u32>(),
        others in any::<u32>(),
        monthly in any::<u64>(),
    ) {
        let q = pb::Quotas {
            requests_per_second: Some(rps),
            max_sessions: Some(sessions),
            max_concurrent_other_requests: Some(others),
            monthly_tool_calls: Some(monthly),
            ..Default::default()
        };
        match quota_patch(Some(&q)) {
            Ok(p) => {
                prop_assert_eq!(p.requests_per_second, Some(rps));
                prop_assert_eq!(p.max_concurrent_other_requests, Some(others));
            }
            Err(e) => {
                let f = field_of(&e).unwrap_or_default().to_owned();
                prop_assert!(f.starts_with("quotas."), "{f}");
            }
        }
    }
}
