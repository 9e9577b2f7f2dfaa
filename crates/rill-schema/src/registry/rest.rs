//! The registry's REST API: the common subset of Confluent Schema Registry's, at its paths
//! (`/subjects`, `/schemas/ids/{id}`, `/config`, `/compatibility`), so Confluent's clients
//! and serializers can use it with the server's address as their registry URL.
//!
//! Requests may be `application/vnd.schemaregistry.v1+json`, `application/vnd.schemaregistry+json`
//! or `application/json` (the body is read as JSON whatever its type); responses are
//! `application/vnd.schemaregistry.v1+json`. Errors are `{"error_code": N, "message": ".."}`
//! with Confluent's codes (see [`RegistryError::error_code`]).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::LogSchemaRegistry;
use super::state::VersionSelector;
use crate::compatibility::Compatibility;
use crate::error::RegistryError;

/// The content type of every response.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

type Registry = Arc<LogSchemaRegistry>;

/// The routes of the registry's API over `registry`, to serve alone or merge into a server.
pub fn router(registry: Arc<LogSchemaRegistry>) -> Router {
    Router::new()
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route("/subjects/{subject}/versions/{version}", get(version))
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(version_schema),
        )
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/types", get(schema_types))
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(compatibility),
        )
        .route("/config", get(global_config).put(set_global_config))
        .route(
            "/config/{subject}",
            get(subject_config).put(set_subject_config),
        )
        .with_state(registry)
}

fn answer(status: StatusCode, body: Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

fn ok(body: Value) -> Response {
    answer(StatusCode::OK, body)
}

/// An error in Confluent's shape.
enum Failure {
    /// The registry refused or failed.
    Registry(RegistryError),
    /// The call itself did not finish (its thread panicked or was cancelled).
    Internal(String),
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            Failure::Registry(error) => (
                StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                error.error_code(),
                error.to_string(),
            ),
            Failure::Internal(message) => (StatusCode::INTERNAL_SERVER_ERROR, 50001, message),
        };
        answer(status, json!({"error_code": code, "message": message}))
    }
}

type Answer = Result<Response, Failure>;

/// Runs a registry call off the async workers: it reads and writes the log.
async fn blocking<T: Send + 'static>(
    call: impl FnOnce() -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, Failure> {
    match tokio::task::spawn_blocking(call).await {
        Ok(result) => result.map_err(Failure::Registry),
        Err(error) => Err(Failure::Internal(format!(
            "the registry call did not finish: {error}"
        ))),
    }
}

/// Body of register, lookup and compatibility calls.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaBody {
    schema: String,
    /// Absent means AVRO; present, it must be the string AVRO (null is refused as a type
    /// error, as the API's description says).
    #[serde(default, deserialize_with = "present")]
    schema_type: Option<Value>,
    #[serde(default)]
    references: Vec<Value>,
}

/// A field that is present, `null` included (serde reads a `null` `Option` as absent).
fn present<'de, D: serde::Deserializer<'de>>(field: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(field).map(Some)
}

fn schema_body(body: &[u8]) -> Result<String, Failure> {
    let body: SchemaBody = serde_json::from_slice(body).map_err(|error| {
        Failure::Registry(RegistryError::BadRequest {
            reason: format!("expected {{\"schema\": \"<Avro schema as a string>\"}}: {error}"),
        })
    })?;
    match body.schema_type {
        None => {}
        Some(Value::String(kind)) if kind == "AVRO" => {}
        Some(Value::String(kind)) => {
            return Err(Failure::Registry(RegistryError::InvalidSchema {
                reason: format!("schema type {kind} is not supported: only AVRO"),
            }));
        }
        Some(other) => {
            return Err(Failure::Registry(RegistryError::BadRequest {
                reason: format!("schemaType is a string, not {other}"),
            }));
        }
    }
    if !body.references.is_empty() {
        return Err(Failure::Registry(RegistryError::InvalidSchema {
            reason: "schema references are not supported: give the schema whole".into(),
        }));
    }
    Ok(body.schema)
}

fn version_selector(text: &str) -> Result<VersionSelector, Failure> {
    text.parse().map_err(Failure::Registry)
}

async fn subjects(State(registry): State<Registry>) -> Answer {
    let subjects = blocking(move || registry.subjects()).await?;
    Ok(ok(json!(subjects)))
}

async fn register(
    State(registry): State<Registry>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Answer {
    let schema = schema_body(&body)?;
    let id = blocking(move || registry.register_schema(&subject, &schema)).await?;
    Ok(ok(json!({ "id": id })))
}

async fn versions(State(registry): State<Registry>, Path(subject): Path<String>) -> Answer {
    let versions = blocking(move || registry.versions(&subject)).await?;
    Ok(ok(json!(versions)))
}

async fn version(
    State(registry): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
) -> Answer {
    let which = version_selector(&version)?;
    let found = blocking(move || registry.version(&subject, which)).await?;
    Ok(ok(json!(found)))
}

async fn version_schema(
    State(registry): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
) -> Answer {
    let which = version_selector(&version)?;
    let found = blocking(move || registry.version(&subject, which)).await?;
    let schema: Value = serde_json::from_str(&found.schema).unwrap_or(Value::String(found.schema));
    Ok(ok(schema))
}

async fn lookup(
    State(registry): State<Registry>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Answer {
    let schema = schema_body(&body)?;
    let found = blocking(move || registry.lookup(&subject, &schema)).await?;
    Ok(ok(json!(found)))
}

async fn delete_subject(State(registry): State<Registry>, Path(subject): Path<String>) -> Answer {
    let deleted = blocking(move || registry.delete_subject(&subject)).await?;
    Ok(ok(json!(deleted)))
}

async fn schema_by_id(State(registry): State<Registry>, Path(id): Path<String>) -> Answer {
    let id: i32 = id.parse().map_err(|_| {
        Failure::Registry(RegistryError::BadRequest {
            reason: format!("a schema id is an integer, not '{id}'"),
        })
    })?;
    let schema = blocking(move || registry.schema(id)).await?;
    Ok(ok(json!({ "schema": schema.text.as_ref() })))
}

async fn schema_types() -> Response {
    ok(json!(["AVRO"]))
}

async fn compatibility(
    State(registry): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    let which = version_selector(&version)?;
    let schema = schema_body(&body)?;
    let compatible = blocking(move || registry.is_compatible(&subject, which, &schema)).await?;
    Ok(ok(json!({ "is_compatible": compatible })))
}

/// Body of `PUT /config`.
#[derive(Debug, Deserialize)]
struct ConfigBody {
    compatibility: String,
}

fn config_body(body: &[u8]) -> Result<Compatibility, Failure> {
    let body: ConfigBody = serde_json::from_slice(body).map_err(|error| {
        Failure::Registry(RegistryError::BadRequest {
            reason: format!("expected {{\"compatibility\": \"BACKWARD\"}}: {error}"),
        })
    })?;
    body.compatibility.parse().map_err(Failure::Registry)
}

async fn global_config(State(registry): State<Registry>) -> Answer {
    let level = blocking(move || registry.compatibility(None)).await?;
    Ok(ok(
        json!({ "compatibilityLevel": level.unwrap_or_default().name() }),
    ))
}

async fn set_global_config(State(registry): State<Registry>, body: Bytes) -> Answer {
    let level = config_body(&body)?;
    blocking(move || registry.set_compatibility(None, level)).await?;
    Ok(ok(json!({ "compatibility": level.name() })))
}

/// `defaultToGlobal` of `GET /config/{subject}`, read here so that a bad value is refused
/// in the registry's error shape.
fn default_to_global(query: &HashMap<String, String>) -> Result<bool, Failure> {
    match query.get("defaultToGlobal").map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(Failure::Registry(RegistryError::BadRequest {
            reason: format!("defaultToGlobal is true or false, not '{other}'"),
        })),
    }
}

async fn subject_config(
    State(registry): State<Registry>,
    Path(subject): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let default_to_global = default_to_global(&query)?;
    let (own, global) = blocking(move || {
        Ok((
            registry.compatibility(Some(&subject))?.ok_or(subject),
            registry.compatibility(None)?,
        ))
    })
    .await?;
    let level = match (own, default_to_global) {
        (Ok(level), _) => level,
        (Err(_), true) => global.unwrap_or_default(),
        (Err(subject), false) => {
            return Err(Failure::Registry(RegistryError::SubjectConfigNotFound {
                subject,
            }));
        }
    };
    Ok(ok(json!({ "compatibilityLevel": level.name() })))
}

async fn set_subject_config(
    State(registry): State<Registry>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Answer {
    let level = config_body(&body)?;
    blocking(move || registry.set_compatibility(Some(&subject), level)).await?;
    Ok(ok(json!({ "compatibility": level.name() })))
}
