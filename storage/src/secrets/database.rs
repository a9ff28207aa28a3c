//! The PostgreSQL connection configuration held in a secret: a whole URL or key=value
//! string, or the JSON Secrets Manager keeps for RDS and Aurora, merged onto the URL the
//! operator gave.
//!
//! Errors name a JSON key or the kind of problem and never quote the secret: neither
//! serde_json's nor tokio-postgres's messages are passed on, since both can quote input.

use serde_json::{Map, Value};
use tokio_postgres::Config;
use tokio_postgres::config::Host;

use super::{SecretError, SecretValue};

/// The `engine` values of a PostgreSQL secret (RDS writes `postgres`).
const POSTGRES_ENGINES: [&str; 3] = ["postgres", "postgresql", "aurora-postgresql"];

/// The database connection from a secret.
///
/// The secret is either a whole PostgreSQL URL or key=value string
/// (`postgres://user:pass@host:5432/db?...`, `host=... user=...`), which replaces `base`, or
/// the JSON Secrets Manager uses for RDS and Aurora:
/// `{"username":..,"password":..,"host":..,"port":..,"dbname":..,"engine":"postgres"}`, where
/// only `username` and `password` are required. JSON fields override the corresponding
/// fields of `base` (the `--storage` URL the operator gave, with its TLS mode and
/// timeouts); what the JSON leaves out stays as in `base`. A JSON `host` replaces all of
/// `base`'s hosts (and its `hostaddr`s); without a JSON `port` the first of `base`'s ports
/// stays. Other JSON keys (`dbInstanceIdentifier`, ...) are ignored.
pub fn database_config(base: Option<&Config>, secret: &SecretValue) -> Result<Config, SecretError> {
    let text = secret.expose().trim();
    if text.starts_with('{') {
        return from_json(base, text);
    }
    pool::pg::parse_config(text).map_err(|_| SecretError::Database {
        // tokio-postgres's message can quote part of the string: not passed on.
        reason: "not a JSON object, and not a valid PostgreSQL URL or key=value connection \
                 string"
            .to_owned(),
    })
}

fn invalid(reason: impl Into<String>) -> SecretError {
    SecretError::Database { reason: reason.into() }
}

fn from_json(base: Option<&Config>, text: &str) -> Result<Config, SecretError> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        invalid(format!("not valid JSON (syntax error at line {} column {})", e.line(), e.column()))
    })?;
    let Value::Object(fields) = value else {
        return Err(invalid("the JSON is not an object"));
    };
    if let Some(engine) = optional_string(&fields, "engine")?
        && !POSTGRES_ENGINES.contains(&engine)
    {
        let quotable = engine.len() <= 32
            && engine.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        return Err(invalid(if quotable {
            format!("engine `{engine}` is not PostgreSQL")
        } else {
            "engine is not PostgreSQL".to_owned()
        }));
    }
    let username = optional_string(&fields, "username")?
        .ok_or_else(|| invalid("the JSON has no `username`"))?;
    let password = optional_string(&fields, "password")?
        .ok_or_else(|| invalid("the JSON has no `password`"))?;
    let host = optional_string(&fields, "host")?;
    let port = port(&fields)?;
    let dbname = optional_string(&fields, "dbname")?;

    let mut config = match base {
        Some(base) if host.is_none() && port.is_none() => base.clone(),
        Some(base) => copy_without_hosts(base, host.is_none(), port.is_none()),
        None => Config::new(),
    };
    config.user(username).password(password);
    if let Some(host) = host {
        config.host(host);
    }
    if let Some(port) = port {
        config.port(port);
    }
    if let Some(dbname) = dbname {
        config.dbname(dbname);
    }
    Ok(config)
}

/// A string field: `Ok(None)` when absent or null, an error naming the key when it is
/// another type or empty.
fn optional_string<'a>(
    fields: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a str>, SecretError> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.is_empty() => Err(invalid(format!("`{key}` is empty"))),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(invalid(format!("`{key}` is not a string"))),
    }
}

/// `port`, a number or a string of digits (both occur in the wild), 1 to 65535.
fn port(fields: &Map<String, Value>) -> Result<Option<u16>, SecretError> {
    let bad = || invalid("`port` is not a port number (1 to 65535)");
    let port = match fields.get("port") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(number)) => number.as_u64().ok_or_else(bad)?,
        Some(Value::String(text)) => text.trim().parse::<u64>().map_err(|_| bad())?,
        Some(_) => return Err(bad()),
    };
    match u16::try_from(port) {
        Ok(port) if port > 0 => Ok(Some(port)),
        _ => Err(bad()),
    }
}

/// A copy of `base` (tokio-postgres can add hosts and ports but not remove them), keeping
/// its hosts and hostaddrs only if `keep_hosts`, and its ports only if `keep_ports` (then
/// only the first when the hosts are replaced, since it must fit a single host).
fn copy_without_hosts(base: &Config, keep_hosts: bool, keep_ports: bool) -> Config {
    let mut config = Config::new();
    if let Some(user) = base.get_user() {
        config.user(user);
    }
    if let Some(password) = base.get_password() {
        config.password(password);
    }
    if let Some(dbname) = base.get_dbname() {
        config.dbname(dbname);
    }
    if let Some(options) = base.get_options() {
        config.options(options);
    }
    if let Some(name) = base.get_application_name() {
        config.application_name(name);
    }
    config.ssl_mode(base.get_ssl_mode());
    config.ssl_negotiation(base.get_ssl_negotiation());
    if keep_hosts {
        for host in base.get_hosts() {
            match host {
                Host::Tcp(name) => config.host(name.as_str()),
                #[cfg(unix)]
                Host::Unix(path) => config.host_path(path),
            };
        }
        for addr in base.get_hostaddrs() {
            config.hostaddr(*addr);
        }
    }
    if keep_ports {
        if keep_hosts {
            for port in base.get_ports() {
                config.port(*port);
            }
        } else if let Some(port) = base.get_ports().first() {
            config.port(*port);
        }
    }
    if let Some(timeout) = base.get_connect_timeout() {
        config.connect_timeout(*timeout);
    }
    if let Some(timeout) = base.get_tcp_user_timeout() {
        config.tcp_user_timeout(*timeout);
    }
    config.keepalives(base.get_keepalives());
    config.keepalives_idle(base.get_keepalives_idle());
    if let Some(interval) = base.get_keepalives_interval() {
        config.keepalives_interval(interval);
    }
    if let Some(retries) = base.get_keepalives_retries() {
        config.keepalives_retries(retries);
    }
    config.target_session_attrs(base.get_target_session_attrs());
    config.channel_binding(base.get_channel_binding());
    config.load_balance_hosts(base.get_load_balance_hosts());
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = "host=a.example,b.example hostaddr=10.0.0.1,10.0.0.2 port=5432,5433 \
        user=u password=p dbname=d options=-cstatement_timeout=5s application_name=protea \
        sslmode=require sslnegotiation=direct connect_timeout=7 tcp_user_timeout=9 \
        keepalives=0 keepalives_idle=11 keepalives_interval=13 keepalives_retries=4 \
        target_session_attrs=read-write channel_binding=require load_balance_hosts=random";

    #[test]
    fn a_copy_keeping_everything_equals_the_original() {
        let base: Config = FULL.parse().unwrap();
        assert_eq!(copy_without_hosts(&base, true, true), base);
        let bare = Config::new();
        assert_eq!(copy_without_hosts(&bare, true, true), bare);
    }

    #[test]
    fn a_copy_without_hosts_keeps_the_rest() {
        let base: Config = FULL.parse().unwrap();
        let copy = copy_without_hosts(&base, false, true);
        assert!(copy.get_hosts().is_empty());
        assert!(copy.get_hostaddrs().is_empty());
        assert_eq!(copy.get_ports(), &[5432]);
        assert_eq!(copy.get_ssl_mode(), base.get_ssl_mode());
        assert_eq!(copy.get_keepalives_retries(), Some(4));
        assert!(copy_without_hosts(&base, false, false).get_ports().is_empty());
    }

    #[test]
    fn json_errors_name_the_key_not_the_value() {
        let cases = [
            (r#"{"username":"u"}"#, "no `password`"),
            (r#"{"password":"s3cr3t-value"}"#, "no `username`"),
            (r#"{"username":"u","password":7}"#, "`password` is not a string"),
            (r#"{"username":"u","password":""}"#, "`password` is empty"),
            (r#"{"username":"u","password":"s3cr3t-value","port":"s3cr3t-value"}"#, "`port`"),
            (r#"{"username":"u","password":"s3cr3t-value","port":70000}"#, "`port`"),
            (r#"{"username":"u","password":"s3cr3t-value","port":0}"#, "`port`"),
            (r#"{"username":"u","password":"s3cr3t-value","engine":"mysql"}"#, "engine `mysql`"),
            (r#"{"username":"u","password":"s3cr3t-value""#, "not valid JSON"),
            (r#"{"username":"u","password":"s3cr3t-value",}"#, "not valid JSON"),
        ];
        for (json, expected) in cases {
            let error = database_config(None, &SecretValue::new(json)).unwrap_err();
            let text = format!("{error} {error:?}");
            assert!(text.contains(expected), "{json}: {text}");
            assert!(!text.contains("s3cr3t"), "{json}: {text}");
        }
    }

    #[test]
    fn a_string_that_is_no_connection_string_is_not_quoted() {
        for secret in ["s3cr3t-value", "host='s3cr3t-value", "s3cr3t-value=x"] {
            let error = database_config(None, &SecretValue::new(secret)).unwrap_err();
            let text = format!("{error} {error:?}");
            assert!(text.contains("not a valid PostgreSQL URL"), "{text}");
            assert!(!text.contains("s3cr3t"), "{text}");
        }
    }

    #[test]
    fn port_as_string_and_engines_are_accepted() {
        let json = r#"{"username":"u","password":"p","port":"6432","engine":"aurora-postgresql"}"#;
        let config = database_config(None, &SecretValue::new(json)).unwrap();
        assert_eq!(config.get_ports(), &[6432]);
        assert_eq!(config.get_user(), Some("u"));
        assert_eq!(config.get_password(), Some(&b"p"[..]));
    }
}
