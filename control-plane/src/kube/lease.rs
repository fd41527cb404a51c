//! One control-plane replica reconciles at a time: it holds a coordination.k8s.io Lease,
//! renewing it well within its duration; another replica takes the Lease over only once it
//! has expired. Writes carry the Lease's resourceVersion, so two replicas racing for it
//! cannot both win.

use k8s_openapi::api::coordination::v1::{Lease as LeaseObject, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::PostParams;
use std::time::Duration;

/// How long a Lease holds without renewal.
pub const LEASE_FOR: Duration = Duration::from_secs(15);
/// How often the holder renews it (and others look whether it expired).
pub const RENEW_EVERY: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Lease {
    api: Api<LeaseObject>,
    name: String,
    identity: String,
    lease_for: Duration,
    renew_every: Duration,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("name", &self.name)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

impl Lease {
    pub fn new(api: Api<LeaseObject>, name: &str, identity: &str) -> Self {
        Self {
            api,
            name: name.into(),
            identity: identity.into(),
            lease_for: LEASE_FOR,
            renew_every: RENEW_EVERY,
        }
    }

    /// Other timing than `LEASE_FOR` and `RENEW_EVERY` (renew well within the duration).
    pub fn with_timing(mut self, lease_for: Duration, renew_every: Duration) -> Self {
        self.lease_for = lease_for;
        self.renew_every = renew_every;
        self
    }

    /// How often to call `try_hold`.
    pub fn renew_every(&self) -> Duration {
        self.renew_every
    }

    fn spec(&self, now: Timestamp, acquired: Option<MicroTime>, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.lease_for.as_secs().max(1) as i32),
            acquire_time: Some(acquired.unwrap_or(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    /// Takes or renews the Lease; whether this replica holds it now.
    pub async fn try_hold(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let Some(current) = self.api.get_opt(&self.name).await? else {
            let lease = LeaseObject {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(self.spec(now, None, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(e) if is_conflict(&e) => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = current.spec.clone().unwrap_or_default();
        let mine = spec.holder_identity.as_deref() == Some(self.identity.as_str());
        let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
            (Some(MicroTime(renewed)), Some(secs)) => {
                *renewed + SignedDuration::from_secs(i64::from(secs)) < now
            }
            _ => true,
        };
        if !mine && !expired {
            return Ok(false);
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!mine);
        let acquired = if mine { spec.acquire_time } else { None };
        let mut lease = current;
        lease.spec = Some(self.spec(now, acquired, transitions));
        // The resourceVersion read above makes a racing write fail with a conflict.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
