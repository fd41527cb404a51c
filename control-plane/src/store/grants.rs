//! Grants of the built-in authorization server revoked by an admin: kept with the tenant's
//! identity settings until the last access token issued for them has expired, so that each
//! worker refuses those tokens once it applies the policy revision the revocation makes.

use super::tenants::json_column;
use super::*;
use crate::audit::Change;

impl Store {
    /// Records grant `id` of tenant `slug` as revoked until `until` (ms), described by
    /// `grant` on the audit trail, publishing a new policy revision. Revocations already
    /// past are forgotten; a tenant keeps at most `MAX_REVOKED_GRANTS` at once.
    pub async fn revoke_grant(
        &self,
        slug: &TenantSlug,
        id: &str,
        until: Millis,
        grant: serde_json::Value,
    ) -> Result<()> {
        let (mut tx, rev) = self.begin_change().await?;
        let mut tenant = Self::tenant_in(&mut tx, slug).await?;
        let now = now_millis();
        let revoked = &mut tenant.identity.revoked_grants;
        revoked.retain(|r| r.until > now && r.id != id);
        if revoked.len() >= MAX_REVOKED_GRANTS {
            return Err(Error::FailedPrecondition(format!(
                "tenant {slug} has {MAX_REVOKED_GRANTS} grants revoked within an access token's \
                 lifetime; wait for some of their tokens to expire"
            )));
        }
        revoked.push(RevokedGrant {
            id: id.to_owned(),
            until,
        });
        sqlx::query(
            "UPDATE tenants SET identity = $1, revision = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(json_column(&tenant.identity))
        .bind(rev as i64)
        .bind(now)
        .bind(&tenant.id)
        .execute(&mut *tx)
        .await?;
        let change = Change::new(
            "RevokeGrant",
            format!("grant/{slug}/{id}"),
            Some(grant),
            None,
        );
        self.commit_audited(tx, slug, rev, true, change).await
    }
}
