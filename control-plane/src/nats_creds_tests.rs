use super::*;

fn signer() -> (NatsSigner, KeyPair) {
    let account = KeyPair::new(KeyPairType::Account);
    let signing = KeyPair::new(KeyPairType::Account);
    let s = NatsSigner::new(
        &signing.seed().unwrap(),
        &account.public_key(),
        Buckets::default(),
    )
    .unwrap();
    (s, signing)
}

/// The JWT of a credentials file, and its claims.
fn jwt_of(creds: &str) -> (String, serde_json::Value) {
    let jwt = creds.lines().nth(1).unwrap().to_owned();
    let claims = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims)
        .unwrap();
    (jwt, serde_json::from_slice(&bytes).unwrap())
}

#[test]
fn credentials_are_signed_for_the_tenant_and_the_same_each_time() {
    let (s, signing) = signer();
    let creds = s.dedicated_worker_creds("acme").unwrap();
    assert_eq!(creds, s.dedicated_worker_creds("acme").unwrap());
    let (jwt, claims) = jwt_of(&creds);
    let (signed, signature) = jwt.rsplit_once('.').unwrap();
    let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(signature)
        .unwrap();
    KeyPair::from_public_key(&signing.public_key())
        .unwrap()
        .verify(signed.as_bytes(), &signature)
        .unwrap();
    assert_eq!(claims["iss"], signing.public_key());
    assert_eq!(claims["sub"], s.user_key("acme").unwrap().public_key());
    assert_eq!(claims["nats"]["type"], "user");
    assert_eq!(claims["nats"]["issuer_account"], s.account);
    let allowed: Vec<String> =
        serde_json::from_value(claims["nats"]["pub"]["allow"].clone()).unwrap();
    assert_eq!(allowed, s.permissions("acme").publish);
    // The seed in the file is the user key's.
    let seed = creds.lines().nth(5).unwrap();
    assert_eq!(
        KeyPair::from_seed(seed).unwrap().public_key(),
        claims["sub"]
    );
}

#[test]
fn each_tenant_gets_its_own_key_and_only_its_own_subjects() {
    let (s, _) = signer();
    assert_ne!(
        s.user_key("acme").unwrap().public_key(),
        s.user_key("globex").unwrap().public_key()
    );
    let p = s.permissions("acme");
    for subject in p.publish.iter().chain(&p.subscribe) {
        assert!(!subject.contains("globex"), "{subject}");
        // Every subject names the tenant, or only opens a bucket (no values in it).
        assert!(
            subject.contains("acme") || subject.contains(".STREAM.INFO."),
            "{subject}"
        );
    }
    assert!(
        !p.publish
            .iter()
            .any(|s| s == ">" || s.ends_with(".KV_switchyard-policy.>"))
    );
}

#[test]
fn bad_keys_are_refused_naming_the_setting() {
    let account = KeyPair::new(KeyPairType::Account).public_key();
    let user_seed = KeyPair::new(KeyPairType::User).seed().unwrap();
    let e = NatsSigner::new(&user_seed, &account, Buckets::default()).unwrap_err();
    assert!(e.to_string().contains("nats_account_signing_key"), "{e}");
    let e = NatsSigner::new("not a seed", &account, Buckets::default()).unwrap_err();
    assert!(e.to_string().contains("nats_account_signing_key"), "{e}");
    let signing = KeyPair::new(KeyPairType::Account).seed().unwrap();
    let user = KeyPair::new(KeyPairType::User).public_key();
    let e = NatsSigner::new(&signing, &user, Buckets::default()).unwrap_err();
    assert!(e.to_string().contains("nats_account"), "{e}");
}
