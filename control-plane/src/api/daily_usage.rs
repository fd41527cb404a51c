//! A tenant's usage per UTC day, for billing.

use super::*;
use crate::error::{Error, Result};
use switchyard_proto::admin::v1 as pb;

/// Days one request may cover at most.
const MAX_DAYS: usize = 366;

/// The day `text` names ("YYYY-MM-DD"), or an error naming `field`.
fn day(field: &str, text: &str) -> Result<time::Date> {
    let format = time::format_description::parse_borrowed::<2>("[year]-[month]-[day]")
        .map_err(|e| Error::Internal(format!("day format: {e}")))?;
    time::Date::parse(text, &format).map_err(|_| Error::invalid(field, "must be a day, YYYY-MM-DD"))
}

/// Every day from `from` to `to`, both included, as "YYYY-MM-DD".
fn days(from: &str, to: &str) -> Result<Vec<String>> {
    let (first, last) = (day("from", from)?, day("to", to)?);
    if last < first {
        return Err(Error::invalid("to", "must not be before from"));
    }
    let mut days = Vec::new();
    let mut d = first;
    while d <= last {
        if days.len() == MAX_DAYS {
            return Err(Error::invalid(
                "to",
                format!("the range may cover at most {MAX_DAYS} days"),
            ));
        }
        days.push(format!(
            "{:04}-{:02}-{:02}",
            d.year(),
            u8::from(d.month()),
            d.day()
        ));
        let Some(next) = d.next_day() else { break };
        d = next;
    }
    Ok(days)
}

impl Admin {
    pub(super) async fn daily_usage(&self, r: pb::GetDailyUsageRequest) -> Result<pb::DailyUsage> {
        let slug = slug("slug", &r.slug)?;
        let days = days(&r.from, &r.to)?;
        // An unknown tenant is NOT_FOUND, not a run of zeros.
        self.store.get_tenant(&slug).await?;
        let usage = self.store.daily_usage(&slug, &days).await?;
        Ok(pb::DailyUsage {
            slug: slug.to_string(),
            days: usage
                .into_iter()
                .map(|d| pb::UsageDay {
                    day: d.day,
                    calls: d.calls,
                    tool_calls: d.tool_calls,
                    failed_calls: d.failed,
                    upstream_seconds: d.upstream_ms as f64 / 1000.0,
                    refusals: d.refusals.into_iter().collect(),
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(e: Error) -> String {
        match e {
            Error::InvalidArgument { field, .. } => field,
            other => panic!("not a bad argument: {other:?}"),
        }
    }

    #[test]
    fn a_range_is_every_day_of_it_and_bad_ones_name_their_field() {
        let d = days("2026-02-27", "2026-03-02").unwrap_or_default();
        assert_eq!(d, ["2026-02-27", "2026-02-28", "2026-03-01", "2026-03-02"]);
        assert_eq!(
            days("2028-01-01", "2028-12-31").map(|d| d.len()).ok(),
            Some(366)
        );
        for (from, to, field) in [
            ("2026-1-1", "2026-01-02", "from"),
            ("2026-01-01", "tomorrow", "to"),
            ("2026-02-30", "2026-03-01", "from"),
            ("2026-03-02", "2026-03-01", "to"),
            ("2026-01-01", "2027-01-02", "to"),
        ] {
            let e = days(from, to).expect_err(from);
            assert_eq!(field_of(e), field, "{from}..{to}");
        }
    }
}
