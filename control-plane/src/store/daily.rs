//! Usage per tenant and UTC day, for billing: added to in the transactions that fold the
//! workers' usage events and refusal tallies, so each event counts once.

use super::*;
use std::collections::BTreeMap;

/// One tenant's usage on one day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageDay {
    /// "YYYY-MM-DD".
    pub day: String,
    pub calls: u64,
    pub tool_calls: u64,
    pub failed: u64,
    pub upstream_ms: u64,
    /// Refused requests, by reason.
    pub refusals: BTreeMap<String, u64>,
}

/// Refused requests to count toward a tenant's day.
#[derive(Debug, Clone)]
pub struct DailyRefusals {
    pub tenant: String,
    pub day: String,
    pub reason: String,
    pub count: i64,
}

/// What `events` add to each tenant's day: calls, tool calls, failed calls, upstream ms.
fn call_totals(events: &[&UsageRecord]) -> BTreeMap<(String, String), [i64; 4]> {
    let mut totals: BTreeMap<(String, String), [i64; 4]> = BTreeMap::new();
    for e in events {
        let Some(call) = &e.call else { continue };
        let t = totals
            .entry((e.tenant.to_string(), day_of(e.at)))
            .or_default();
        t[0] += 1;
        t[1] += i64::from(e.tool_call);
        t[2] += i64::from(!call.ok);
        t[3] += i64::try_from(call.duration_ms).unwrap_or(i64::MAX);
    }
    totals
}

impl Store {
    /// Adds the calls of `events` (new ones only) to their tenants' days.
    pub(super) async fn add_daily_calls(
        tx: &mut Transaction<'static, Any>,
        events: &[&UsageRecord],
    ) -> Result<()> {
        for ((tenant, day), [calls, tools, failed, ms]) in call_totals(events) {
            sqlx::query(
                "INSERT INTO usage_daily (tenant, day, calls, tool_calls, failed, upstream_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant, day) DO UPDATE SET \
                 calls = usage_daily.calls + excluded.calls, \
                 tool_calls = usage_daily.tool_calls + excluded.tool_calls, \
                 failed = usage_daily.failed + excluded.failed, \
                 upstream_ms = usage_daily.upstream_ms + excluded.upstream_ms",
            )
            .bind(tenant)
            .bind(day)
            .bind(calls)
            .bind(tools)
            .bind(failed)
            .bind(ms)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    /// Adds `refusals` to their tenants' days.
    pub(super) async fn add_daily_refusals(
        tx: &mut Transaction<'static, Any>,
        refusals: &[&DailyRefusals],
    ) -> Result<()> {
        for r in refusals {
            sqlx::query(
                "INSERT INTO refusals_daily (tenant, day, reason, count) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (tenant, day, reason) DO UPDATE SET \
                 count = refusals_daily.count + excluded.count",
            )
            .bind(&r.tenant)
            .bind(&r.day)
            .bind(&r.reason)
            .bind(r.count)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    /// `tenant`'s usage on each of `days` (consecutive "YYYY-MM-DD", in order), days without
    /// any as zeros. The caller bounds the range.
    pub async fn daily_usage(&self, tenant: &TenantSlug, days: &[String]) -> Result<Vec<UsageDay>> {
        let (Some(from), Some(to)) = (days.first(), days.last()) else {
            return Ok(Vec::new());
        };
        let mut by_day: BTreeMap<String, UsageDay> = days
            .iter()
            .map(|d| {
                (
                    d.clone(),
                    UsageDay {
                        day: d.clone(),
                        ..Default::default()
                    },
                )
            })
            .collect();
        let calls = sqlx::query(
            "SELECT day, calls, tool_calls, failed, upstream_ms FROM usage_daily \
             WHERE tenant = $1 AND day >= $2 AND day <= $3",
        )
        .bind(tenant.as_str())
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        for row in calls {
            if let Some(d) = by_day.get_mut(&row.try_get::<String, _>(0)?) {
                let n = |i: usize| row.try_get::<i64, _>(i).map(|v| v.max(0) as u64);
                (d.calls, d.tool_calls, d.failed, d.upstream_ms) = (n(1)?, n(2)?, n(3)?, n(4)?);
            }
        }
        let refusals = sqlx::query(
            "SELECT day, reason, count FROM refusals_daily \
             WHERE tenant = $1 AND day >= $2 AND day <= $3",
        )
        .bind(tenant.as_str())
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        for row in refusals {
            if let Some(d) = by_day.get_mut(&row.try_get::<String, _>(0)?) {
                let count: i64 = row.try_get(2)?;
                d.refusals.insert(row.try_get(1)?, count.max(0) as u64);
            }
        }
        Ok(by_day.into_values().collect())
    }
}
