use super::*;
use switchyard_bus::MemoryCas;
use switchyard_common::seal::SecretKey;

fn store() -> Arc<dyn CasKv> {
    Arc::new(MemoryCas::new(Duration::from_secs(3600)))
}

#[derive(Serialize, serde::Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
}

fn claims() -> Claims {
    Claims {
        sub: "key:abcdef123456".into(),
        exp: super::super::now_secs() + 60,
    }
}

/// The key id `token` names.
fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

async fn verifies(keys: &SigningKeys, tenant: &str, token: &str) -> bool {
    let Ok(Some(key)) = keys.verifying(tenant, 0, &kid(token)).await else {
        return false;
    };
    let mut v = validation();
    v.validate_aud = false;
    v.required_spec_claims.clear();
    jsonwebtoken::decode::<Claims>(token, &key, &v).is_ok()
}

#[tokio::test]
async fn workers_agree_on_one_key_per_tenant_and_check_each_others_tokens() {
    let (kv, policy) = (store(), Keyring::new(SecretKey::generate()));
    let a = SigningKeys::new(kv.clone(), policy.clone(), false);
    let b = SigningKeys::new(kv.clone(), policy.clone(), false);
    let c = claims();
    let (ta, tb) = tokio::join!(a.sign("acme", 0, &c), b.sign("acme", 0, &c));
    let (ta, tb) = (ta.unwrap(), tb.unwrap());
    assert_eq!(kid(&ta), kid(&tb), "racing workers made one key");
    assert!(kid(&ta).starts_with(KID_PREFIX));
    assert!(verifies(&b, "acme", &ta).await);
    // Another tenant has a key of its own; acme's token names no key of it.
    let other = a.sign("other", 0, &claims()).await.unwrap();
    assert_ne!(kid(&other), kid(&ta));
    assert!(!verifies(&a, "other", &ta).await);
    let jwks = a.jwks("acme", 0).await.unwrap();
    assert_eq!(jwks["keys"][0]["kid"], kid(&ta).as_str());
    assert!(jwks["keys"][0].get("d").is_none(), "no private part");
}

#[tokio::test]
async fn a_dedicated_worker_opens_its_tenants_keys_and_no_others() {
    let (kv, policy) = (store(), Keyring::new(SecretKey::generate()));
    let shared = SigningKeys::new(kv.clone(), policy.clone(), false);
    let acme_token = shared.sign("acme", 0, &claims()).await.unwrap();
    shared.sign("other", 0, &claims()).await.unwrap();
    let dedicated = SigningKeys::new(kv, policy.for_tenant("acme"), true);
    assert!(verifies(&dedicated, "acme", &acme_token).await);
    assert!(matches!(
        dedicated.sign("other", 0, &claims()).await,
        Err(KeyError::Corrupt(_))
    ));
}

#[tokio::test]
async fn a_new_key_is_published_before_it_signs_and_the_old_one_keeps_checking() {
    let (kv, policy) = (store(), Keyring::new(SecretKey::generate()));
    let hour = Duration::from_secs(3600);
    let first = SigningKeys::new(kv.clone(), policy.clone(), false);
    let old = first.sign("acme", 0, &claims()).await.unwrap();
    // A worker reading them once the period is over puts a new key first, which does
    // not sign yet: other workers may not have read it.
    let rotating =
        SigningKeys::new(kv.clone(), policy.clone(), false).with_rotation(Duration::ZERO, hour);
    let still = rotating.sign("acme", 0, &claims()).await.unwrap();
    assert_eq!(
        kid(&still),
        kid(&old),
        "the old key signs until the new one is known"
    );
    let published = rotating.jwks("acme", 0).await.unwrap();
    assert_eq!(published["keys"].as_array().unwrap().len(), 2);
    // Once it is active, the new key signs, and the old key's tokens still check.
    let later =
        SigningKeys::new(kv.clone(), policy.clone(), false).with_rotation(hour, Duration::ZERO);
    let new = later.sign("acme", 0, &claims()).await.unwrap();
    assert_eq!(kid(&new), published["keys"][0]["kid"].as_str().unwrap());
    assert!(
        verifies(&later, "acme", &old).await,
        "the old key still checks"
    );
    // A fresh worker checks both.
    let fresh = SigningKeys::new(kv, policy, false);
    assert!(verifies(&fresh, "acme", &new).await && verifies(&fresh, "acme", &old).await);
}

#[tokio::test]
async fn retired_keys_neither_sign_nor_check_and_a_new_key_signs_at_once() {
    let (kv, policy) = (store(), Keyring::new(SecretKey::generate()));
    let hour = Duration::from_secs(3600);
    // Rotation and activation far off: only the retirement makes a new key, and it signs.
    let keys = SigningKeys::new(kv.clone(), policy.clone(), false).with_rotation(hour, hour);
    let old = keys.sign("acme", 0, &claims()).await.unwrap();
    // Retired in the very second the old key was made: it is retired all the same.
    let retired_at = super::super::now_secs();
    let new = keys.sign("acme", retired_at, &claims()).await.unwrap();
    assert_ne!(
        kid(&new),
        kid(&old),
        "a key made after the retirement signs"
    );
    let other = SigningKeys::new(kv, policy, false);
    let checks = |token: String, not_before: u64| {
        let (other, token) = (&other, token);
        async move {
            let Ok(Some(key)) = other.verifying("acme", not_before, &kid(&token)).await else {
                return false;
            };
            let mut v = validation();
            v.validate_aud = false;
            v.required_spec_claims.clear();
            jsonwebtoken::decode::<Claims>(&token, &key, &v).is_ok()
        }
    };
    assert!(
        !checks(old.clone(), retired_at).await,
        "the retired key checks nothing"
    );
    assert!(checks(new.clone(), retired_at).await);
    // It is gone from the store too: a worker that has not applied the retirement yet
    // no longer finds it once it reads the keys again.
    let published = other.jwks("acme", 0).await.unwrap();
    assert_eq!(published["keys"].as_array().unwrap().len(), 1);
    assert_eq!(
        published["keys"][0]["kid"].as_str(),
        Some(kid(&new).as_str())
    );
}

#[test]
fn a_replaced_key_is_kept_until_its_tokens_have_expired() {
    let now = 10_000_000;
    let key = |created: u64| StoredKey {
        kid: format!("k{created}"),
        sealed: String::new(),
        x: String::new(),
        y: String::new(),
        created,
    };
    let retain = RETAIN_FOR.as_secs();
    // Newest first: the signer, one replaced a moment ago, one replaced long ago.
    let keys = vec![key(now - 10), key(now - 2 * retain), key(now - 3 * retain)];
    let kept: Vec<u64> = retained(keys, now).iter().map(|k| k.created).collect();
    assert_eq!(kept, vec![now - 10, now - 2 * retain]);
}

/// A store that can be taken away.
#[derive(Debug)]
struct Flaky {
    inner: MemoryCas,
    down: std::sync::atomic::AtomicBool,
}

impl Flaky {
    fn check(&self) -> switchyard_bus::Result<()> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(switchyard_bus::BusError::Unavailable("down".into()));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl CasKv for Flaky {
    async fn get(&self, key: &str) -> switchyard_bus::Result<Option<switchyard_bus::Versioned>> {
        self.check()?;
        self.inner.get(key).await
    }
    async fn create(&self, key: &str, value: bytes::Bytes) -> switchyard_bus::Result<bool> {
        self.check()?;
        self.inner.create(key, value).await
    }
    async fn update(
        &self,
        key: &str,
        value: bytes::Bytes,
        revision: u64,
    ) -> switchyard_bus::Result<bool> {
        self.check()?;
        self.inner.update(key, value, revision).await
    }
    async fn take(&self, key: &str, revision: u64) -> switchyard_bus::Result<bool> {
        self.check()?;
        self.inner.take(key, revision).await
    }
    async fn delete(&self, key: &str) -> switchyard_bus::Result<()> {
        self.check()?;
        self.inner.delete(key).await
    }
    async fn list(
        &self,
        prefix: &str,
        max: usize,
    ) -> switchyard_bus::Result<Vec<(String, switchyard_bus::Versioned)>> {
        self.check()?;
        self.inner.list(prefix, max).await
    }
}

#[tokio::test]
async fn while_the_store_is_away_the_keys_read_last_go_on() {
    let flaky = Arc::new(Flaky {
        inner: MemoryCas::new(Duration::from_secs(3600)),
        down: false.into(),
    });
    let mut keys = SigningKeys::new(flaky.clone(), Keyring::new(SecretKey::generate()), false);
    // Read the store on every use.
    keys.fresh = Duration::ZERO;
    let before = keys.sign("acme", 0, &claims()).await.unwrap();
    flaky.down.store(true, std::sync::atomic::Ordering::SeqCst);
    let during = keys.sign("acme", 0, &claims()).await.unwrap();
    assert_eq!(kid(&during), kid(&before));
    assert!(verifies(&keys, "acme", &before).await);
    // A tenant whose keys were never read has none to go on with.
    assert!(matches!(
        keys.sign("other", 0, &claims()).await,
        Err(KeyError::Unavailable(_))
    ));
    // Keys retired meanwhile are not used, even with nothing else to go on.
    let retired = super::super::now_secs();
    assert!(!verifies_at(&keys, retired, &before).await);
    assert!(matches!(
        keys.sign("acme", retired, &claims()).await,
        Err(KeyError::Unavailable(_))
    ));
}

async fn verifies_at(keys: &SigningKeys, not_before: u64, token: &str) -> bool {
    matches!(
        keys.verifying("acme", not_before, &kid(token)).await,
        Ok(Some(_))
    )
}
