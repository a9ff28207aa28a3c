//! Tenant authentication: `Authorization: Bearer KEYID.SECRET` against an in-memory
//! cache of key digests.
//!
//! The cache is swapped whole when keys change (arc-swap), so a lookup takes no lock.
//! A failure never says which part was wrong, and nothing here logs a credential.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::HeaderMap;
use http::header::AUTHORIZATION;
use storage::ledger::TenantId;
use storage::tenants::ApiKeyRecord;

use crate::errors::ApiError;

/// API keys by key id.
pub struct KeyCache {
    keys: ArcSwap<HashMap<String, ApiKeyRecord>>,
}

impl KeyCache {
    /// A cache holding `records`.
    pub fn new(records: Vec<ApiKeyRecord>) -> Self {
        Self { keys: ArcSwap::from_pointee(index(records)) }
    }

    /// Replaces every key at once.
    pub fn replace(&self, records: Vec<ApiKeyRecord>) {
        self.keys.store(Arc::new(index(records)));
    }

    /// The tenant whose credentials `headers` carry.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<TenantId, ApiError> {
        let value = headers.get(AUTHORIZATION).ok_or(ApiError::Unauthenticated)?;
        let credential = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthenticated)?;
        let (key_id, secret) =
            crypto::api_key::split_credential(credential).ok_or(ApiError::Unauthenticated)?;
        let keys = self.keys.load();
        let record = keys.get(key_id).ok_or(ApiError::Unauthenticated)?;
        if crypto::api_key::verify(secret, &record.secret_digest) {
            Ok(record.tenant)
        } else {
            Err(ApiError::Unauthenticated)
        }
    }
}

fn index(records: Vec<ApiKeyRecord>) -> HashMap<String, ApiKeyRecord> {
    records.into_iter().map(|r| (r.key_id.clone(), r)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn cache_with_key() -> (KeyCache, String) {
        let key = crypto::api_key::generate().unwrap();
        let record =
            ApiKeyRecord { key_id: key.key_id.clone(), tenant: 7, secret_digest: key.digest };
        (KeyCache::new(vec![record]), format!("{}.{}", key.key_id, key.secret))
    }

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn valid_bearer_key_names_its_tenant() {
        let (cache, credential) = cache_with_key();
        assert_eq!(cache.authenticate(&headers(&format!("Bearer {credential}"))).unwrap(), 7);
    }

    #[test]
    fn anything_else_is_unauthenticated() {
        let (cache, credential) = cache_with_key();
        let (other, other_credential) = cache_with_key();
        drop(other);
        let cases = [
            String::new(),
            credential.clone(),
            format!("Basic {credential}"),
            format!("Bearer {other_credential}"),
            format!("Bearer {}.{}", &credential[..crypto::api_key::KEY_ID_LEN], "ab".repeat(32)),
        ];
        for case in cases {
            let result = cache.authenticate(&headers(&case));
            assert!(matches!(result, Err(ApiError::Unauthenticated)), "{case}");
        }
        assert!(matches!(cache.authenticate(&HeaderMap::new()), Err(ApiError::Unauthenticated)));
    }
}
