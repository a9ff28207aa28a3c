//! Sessions in DynamoDB, with the Redis cache of [`super::cache`] in front.
//!
//! Table layout (one item per session):
//!
//! | attribute     | type | meaning                                                   |
//! |---------------|------|-----------------------------------------------------------|
//! | `session_id`  | S    | partition key                                             |
//! | `operator_id` | S    | the operator; key of the `by_operator` index (keys only)  |
//! | `role`        | S    | the role at sign-in                                       |
//! | `created_at`  | N    | Unix seconds                                              |
//! | `last_seen`   | N    | Unix seconds, only ever moved forward                     |
//! | `expires_at`  | N    | Unix seconds; the table's TTL attribute                   |
//! | `revoked`     | BOOL | set by a revoke, never cleared                            |
//!
//! Reads are strongly consistent. A create is a conditional put (`attribute_not_exists`);
//! a revoke is an update setting `revoked`, so the item survives (until its TTL) and a
//! revoked id can never be created again; a touch is an update conditional on the session
//! being live and `last_seen` moving forward. Calls are bounded: 2 s per attempt, at most 3
//! attempts, 7 s in all.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, ReturnValue, ScalarAttributeType, TableStatus,
    TimeToLiveSpecification, TimeToLiveStatus,
};

use super::cache::{Cached, SessionCache};
use super::{IDLE_TIMEOUT_S, Session, SessionError, Status, check_id, check_new};
use crate::secrets::{AwsBounds, AwsSettings};

/// Most attempts of one DynamoDB call (the SDK's standard retry mode).
const ATTEMPTS_MAX: u32 = 3;
/// Bound on one attempt of a call.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound on one call, retries included.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(7);
/// Bound on opening a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long [`DynamoSessions::ensure_table`] waits for a new table to become active.
const TABLE_ACTIVE_WAIT: Duration = Duration::from_secs(60);

/// The name of the index on `operator_id`.
pub const OPERATOR_INDEX: &str = "by_operator";
/// The table's TTL attribute.
pub const TTL_ATTRIBUTE: &str = "expires_at";

const A_ID: &str = "session_id";
const A_OPERATOR: &str = "operator_id";
const A_ROLE: &str = "role";
const A_CREATED: &str = "created_at";
const A_LAST_SEEN: &str = "last_seen";
const A_EXPIRES: &str = "expires_at";
const A_REVOKED: &str = "revoked";

/// Where the sessions live.
#[derive(Clone, Debug)]
pub struct DynamoSessionsConfig {
    /// The DynamoDB table.
    pub table: String,
    /// Overrides of the standard AWS environment (endpoint, region, credentials).
    pub aws: AwsSettings,
    /// The Redis cache (`redis://` or `rediss://`); `None` reads DynamoDB every time.
    pub redis_url: Option<String>,
}

/// Sessions in a DynamoDB table, cached in Redis. Cheap to clone (the clients are shared);
/// each instance has its own clients, as each gateway process does.
#[derive(Clone)]
pub struct DynamoSessions {
    client: Client,
    table: String,
    cache: Option<SessionCache>,
}

impl fmt::Debug for DynamoSessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamoSessions")
            .field("table", &self.table)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl DynamoSessions {
    /// Builds the DynamoDB client (the standard AWS environment with `config.aws` applied, a
    /// rustls (ring) HTTPS client, the bounds above) and the Redis client (which connects in
    /// the background: an unreachable Redis is not an error, the store then reads DynamoDB).
    /// Nothing is called yet; fails when no region is configured or the Redis URL is bad.
    pub async fn connect(config: DynamoSessionsConfig) -> Result<Self, SessionError> {
        let bounds = AwsBounds {
            connect: CONNECT_TIMEOUT,
            attempt: ATTEMPT_TIMEOUT,
            operation: OPERATION_TIMEOUT,
            attempts_max: ATTEMPTS_MAX,
        };
        let Some(sdk_config) = config.aws.sdk_config(bounds).await else {
            return Err(SessionError::AwsRegionMissing { table: config.table });
        };
        let cache = match config.redis_url.as_deref() {
            Some(url) => Some(SessionCache::connect(url).await?),
            None => None,
        };
        Ok(Self { client: Client::new(&sdk_config), table: config.table, cache })
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The DynamoDB client (for tools and tests).
    pub fn dynamo_client(&self) -> &Client {
        &self.client
    }

    fn dynamo_error<E, R>(&self, operation: &'static str, error: &SdkError<E, R>) -> SessionError
    where
        E: std::error::Error + ProvideErrorMetadata + 'static,
        R: fmt::Debug,
    {
        let detail = match error {
            SdkError::ServiceError(service) => {
                let err = service.err();
                match (err.code(), err.message()) {
                    (Some(code), Some(message)) => format!("{code}: {message}"),
                    (Some(code), None) => code.to_owned(),
                    _ => DisplayErrorContext(err).to_string(),
                }
            }
            // A response that could not be parsed may have carried an item: do not quote it.
            SdkError::ResponseError(_) => "the response could not be read".to_owned(),
            _ => DisplayErrorContext(error).to_string(),
        };
        SessionError::Dynamo { table: self.table.clone(), operation, detail }
    }

    /// Creates the table if it does not exist (partition key `session_id`, on-demand
    /// billing, the `by_operator` index, TTL on `expires_at`) and waits until it is active.
    /// For local runs and tests; in AWS the table comes from Terraform.
    pub async fn ensure_table(&self) -> Result<(), SessionError> {
        let exists = match self.client.describe_table().table_name(&self.table).send().await {
            Ok(_) => true,
            Err(error) => {
                if error.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) {
                    false
                } else {
                    return Err(self.dynamo_error("DescribeTable", &error));
                }
            }
        };
        if !exists {
            self.create_table().await?;
        }
        self.wait_active().await?;
        let ttl = self
            .client
            .describe_time_to_live()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|e| self.dynamo_error("DescribeTimeToLive", &e))?;
        let status = ttl.time_to_live_description().and_then(|d| d.time_to_live_status());
        if !matches!(status, Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)) {
            let specification = TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(TTL_ATTRIBUTE)
                .build()
                .map_err(|_| self.invalid_request("UpdateTimeToLive"))?;
            self.client
                .update_time_to_live()
                .table_name(&self.table)
                .time_to_live_specification(specification)
                .send()
                .await
                .map_err(|e| self.dynamo_error("UpdateTimeToLive", &e))?;
        }
        Ok(())
    }

    fn invalid_request(&self, operation: &'static str) -> SessionError {
        SessionError::Dynamo {
            table: self.table.clone(),
            operation,
            detail: "the request could not be built".to_owned(),
        }
    }

    async fn create_table(&self) -> Result<(), SessionError> {
        let bad = |_| self.invalid_request("CreateTable");
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
        };
        let hash_key = |name: &str| {
            KeySchemaElement::builder().attribute_name(name).key_type(KeyType::Hash).build()
        };
        let index = GlobalSecondaryIndex::builder()
            .index_name(OPERATOR_INDEX)
            .key_schema(hash_key(A_OPERATOR).map_err(bad)?)
            .projection(Projection::builder().projection_type(ProjectionType::KeysOnly).build())
            .build()
            .map_err(bad)?;
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attribute(A_ID).map_err(bad)?)
            .attribute_definitions(attribute(A_OPERATOR).map_err(bad)?)
            .key_schema(hash_key(A_ID).map_err(bad)?)
            .global_secondary_indexes(index)
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            // Another process created it meanwhile.
            Err(error)
                if error.as_service_error().is_some_and(|e| e.is_resource_in_use_exception()) =>
            {
                Ok(())
            }
            Err(error) => Err(self.dynamo_error("CreateTable", &error)),
        }
    }

    async fn wait_active(&self) -> Result<(), SessionError> {
        let started = tokio::time::Instant::now();
        loop {
            let described = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|e| self.dynamo_error("DescribeTable", &e))?;
            let status = described.table().and_then(|t| t.table_status());
            if status == Some(&TableStatus::Active) {
                return Ok(());
            }
            if started.elapsed() >= TABLE_ACTIVE_WAIT {
                return Err(SessionError::TableNotActive {
                    table: self.table.clone(),
                    waited_s: TABLE_ACTIVE_WAIT.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// See [`super::Sessions::create`].
    pub async fn create(&self, session: &Session) -> Result<(), SessionError> {
        check_new(session)?;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(session)))
            .condition_expression("attribute_not_exists(#id)")
            .expression_attribute_names("#id", A_ID)
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(SessionError::Exists)
            }
            Err(error) => Err(self.dynamo_error("PutItem", &error)),
        }
    }

    /// See [`super::Sessions::get`]. The cache answers when it holds the tombstone or a
    /// live session; otherwise (a miss, an idle-expired entry whose `last_seen` may be
    /// stale, Redis down) DynamoDB answers and the cache is filled.
    pub async fn get(&self, id: &str, now_s: u64) -> Result<Option<Session>, SessionError> {
        check_id(id)?;
        let mut cache_usable = false;
        if let Some(cache) = &self.cache {
            match cache.get(id).await {
                Some(Cached::Revoked) => return Ok(None),
                Some(Cached::Session(session)) => match session.status(now_s) {
                    Status::Live => return Ok(Some(session)),
                    Status::Revoked | Status::Expired => return Ok(None),
                    // Another process may have touched it since: ask DynamoDB.
                    Status::IdleExpired => cache_usable = true,
                },
                Some(Cached::Miss) => cache_usable = true,
                None => {}
            }
        }
        let Some(session) = self.read(id).await? else { return Ok(None) };
        if let (true, Some(cache)) = (cache_usable, &self.cache) {
            if session.revoked {
                cache.tombstone(id).await;
            } else {
                cache.fill(&session).await;
            }
        }
        Ok(session.is_live(now_s).then_some(session))
    }

    /// See [`super::Sessions::get_and_touch`].
    pub async fn get_and_touch(
        &self,
        id: &str,
        now_s: u64,
    ) -> Result<Option<Session>, SessionError> {
        let Some(session) = self.get(id, now_s).await? else { return Ok(None) };
        if !session.touch_due(now_s) {
            return Ok(Some(session));
        }
        self.touch(id, now_s).await
    }

    /// See [`super::Sessions::touch`].
    pub async fn touch(&self, id: &str, now_s: u64) -> Result<Option<Session>, SessionError> {
        check_id(id)?;
        let updated = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(A_ID, AttributeValue::S(id.to_owned()))
            .update_expression("SET #seen = :now")
            .condition_expression(
                "attribute_exists(#id) AND #revoked = :false AND #expires > :now \
                 AND #seen < :now AND #seen >= :idle_floor",
            )
            .expression_attribute_names("#id", A_ID)
            .expression_attribute_names("#seen", A_LAST_SEEN)
            .expression_attribute_names("#revoked", A_REVOKED)
            .expression_attribute_names("#expires", A_EXPIRES)
            .expression_attribute_values(":now", number(now_s))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(
                ":idle_floor",
                number(now_s.saturating_sub(IDLE_TIMEOUT_S)),
            )
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        let session = match updated {
            Ok(output) => match output.attributes() {
                Some(item) => from_item(item).map_err(|reason| self.corrupt(reason))?,
                None => return Err(self.corrupt("the update returned no attributes")),
            },
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                // Missing, revoked, expired, or already seen at `now_s` or later.
                return match self.read(id).await? {
                    Some(session) if session.is_live(now_s) => Ok(Some(session)),
                    _ => Ok(None),
                };
            }
            Err(error) => return Err(self.dynamo_error("UpdateItem", &error)),
        };
        if let Some(cache) = &self.cache {
            cache.fill(&session).await;
        }
        Ok(session.is_live(now_s).then_some(session))
    }

    /// See [`super::Sessions::revoke`]. DynamoDB first, then the cache's tombstone. When
    /// Redis cannot be reached from this process the revoke still stands in DynamoDB, but
    /// processes that cached the session may answer it live for up to the cache TTL (30 s);
    /// a warning is logged.
    pub async fn revoke(&self, id: &str) -> Result<bool, SessionError> {
        check_id(id)?;
        let updated = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(A_ID, AttributeValue::S(id.to_owned()))
            .update_expression("SET #revoked = :true")
            .condition_expression("attribute_exists(#id)")
            .expression_attribute_names("#id", A_ID)
            .expression_attribute_names("#revoked", A_REVOKED)
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .send()
            .await;
        let existed = match updated {
            Ok(_) => true,
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                false
            }
            Err(error) => return Err(self.dynamo_error("UpdateItem", &error)),
        };
        if let Some(cache) = &self.cache
            && !cache.tombstone(id).await
        {
            tracing::warn!(
                table = %self.table,
                "session revoked in DynamoDB but the cache tombstone was not written; \
                 other processes may serve a cached copy until it expires"
            );
        }
        Ok(existed)
    }

    /// See [`super::Sessions::revoke_all_for`]: a query of the `by_operator` index, then a
    /// revoke of each session found.
    pub async fn revoke_all_for(&self, operator_id: &str) -> Result<usize, SessionError> {
        if operator_id.is_empty() {
            return Err(SessionError::InvalidSession("operator_id is empty"));
        }
        let mut ids = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(OPERATOR_INDEX)
                .key_condition_expression("#op = :op")
                .expression_attribute_names("#op", A_OPERATOR)
                .expression_attribute_values(":op", AttributeValue::S(operator_id.to_owned()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.dynamo_error("Query", &e))?;
            for item in page.items() {
                match item.get(A_ID) {
                    Some(AttributeValue::S(id)) => ids.push(id.clone()),
                    _ => return Err(self.corrupt("session_id is missing or not a string")),
                }
            }
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        let mut revoked = 0;
        for id in ids {
            if check_id(&id).is_err() {
                return Err(self.corrupt("session_id has an invalid shape"));
            }
            if self.revoke(&id).await? {
                revoked += 1;
            }
        }
        Ok(revoked)
    }

    /// One strongly consistent read of `id`.
    async fn read(&self, id: &str) -> Result<Option<Session>, SessionError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(A_ID, AttributeValue::S(id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.dynamo_error("GetItem", &e))?;
        match output.item() {
            None => Ok(None),
            Some(item) => from_item(item).map(Some).map_err(|reason| self.corrupt(reason)),
        }
    }

    fn corrupt(&self, reason: &'static str) -> SessionError {
        SessionError::Corrupt { table: self.table.clone(), reason }
    }
}

fn number(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn to_item(session: &Session) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (A_ID.to_owned(), AttributeValue::S(session.id.clone())),
        (A_OPERATOR.to_owned(), AttributeValue::S(session.operator_id.clone())),
        (A_ROLE.to_owned(), AttributeValue::S(session.role.clone())),
        (A_CREATED.to_owned(), number(session.created_at_s)),
        (A_LAST_SEEN.to_owned(), number(session.last_seen_s)),
        (A_EXPIRES.to_owned(), number(session.expires_at_s)),
        (A_REVOKED.to_owned(), AttributeValue::Bool(session.revoked)),
    ])
}

fn from_item(item: &HashMap<String, AttributeValue>) -> Result<Session, &'static str> {
    let text = |name: &str, reason: &'static str| match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value.clone()),
        _ => Err(reason),
    };
    let seconds = |name: &str, reason: &'static str| match item.get(name) {
        Some(AttributeValue::N(value)) => value.parse::<u64>().map_err(|_| reason),
        _ => Err(reason),
    };
    Ok(Session {
        id: text(A_ID, "session_id is missing or not a string")?,
        operator_id: text(A_OPERATOR, "operator_id is missing or not a string")?,
        role: text(A_ROLE, "role is missing or not a string")?,
        created_at_s: seconds(A_CREATED, "created_at is missing or not a whole number")?,
        last_seen_s: seconds(A_LAST_SEEN, "last_seen is missing or not a whole number")?,
        expires_at_s: seconds(A_EXPIRES, "expires_at is missing or not a whole number")?,
        revoked: match item.get(A_REVOKED) {
            Some(AttributeValue::Bool(value)) => *value,
            _ => return Err("revoked is missing or not a boolean"),
        },
    })
}
