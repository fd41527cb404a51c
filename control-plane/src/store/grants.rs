//! Grants of the built-in authorization server revoked by an admin: kept with the tenant's
//! identity settings until the last access token issued for them has expired, so that each
//! worker refuses those tokens once it applies the policy revision the revocation makes.
//! And the time before which the server's signing keys are retired.

use super::tenants::json_column;
use super::*;
use crate::audit::Change;

impl Store {
    /// Applies `f` to tenant `slug`'s identity state at time `now` and records the change
    /// it returns, publishing a new policy revision.
    async fn change_identity(
        &self,
        slug: &TenantSlug,
        now: Millis,
        f: impl FnOnce(&mut IdentitySettings) -> Result<Change>,
    ) -> Result<()> {
        let (mut tx, rev) = self.begin_change().await?;
        let mut tenant = Self::tenant_in(&mut tx, slug).await?;
        let change = f(&mut tenant.identity)?;
        sqlx::query(
            "UPDATE tenants SET identity = $1, revision = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(json_column(&tenant.identity))
        .bind(rev as i64)
        .bind(now)
        .bind(&tenant.id)
        .execute(&mut *tx)
        .await?;
        self.commit_audited(tx, slug, rev, true, change).await
    }

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
        let now = now_millis();
        self.change_identity(slug, now, |identity| {
            let revoked = &mut identity.revoked_grants;
            revoked.retain(|r| r.until > now && r.id != id);
            if revoked.len() >= MAX_REVOKED_GRANTS {
                return Err(Error::FailedPrecondition(format!(
                    "tenant {slug} has {MAX_REVOKED_GRANTS} grants revoked within an access \
                     token's lifetime; wait for some of their tokens to expire"
                )));
            }
            revoked.push(RevokedGrant {
                id: id.to_owned(),
                until,
            });
            let object = format!("grant/{slug}/{id}");
            Ok(Change::new("RevokeGrant", object, Some(grant), None))
        })
        .await
    }

    /// Retires every signing key tenant `slug`'s authorization server made until now,
    /// recorded and published: the time they are retired until (ms).
    pub async fn retire_signing_keys(&self, slug: &TenantSlug) -> Result<Millis> {
        let now = now_millis();
        self.change_identity(slug, now, |identity| {
            let before = std::mem::replace(&mut identity.signing_keys_not_before, now);
            Ok(Change::new(
                "RotateSigningKeys",
                format!("signing-keys/{slug}"),
                Some(serde_json::json!({ "not_before": before })),
                Some(serde_json::json!({ "not_before": now })),
            ))
        })
        .await?;
        Ok(now)
    }
}
