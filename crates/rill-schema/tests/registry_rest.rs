//! The registry's REST API, its answers checked against the shapes Confluent Schema Registry
//! documents, and the HTTP client used by a serde against it.

mod common;

use std::sync::Arc;

use reqwest::blocking::{Client, Response};
use rill_schema::{AvroSerde, CONTENT_TYPE, HttpSchemaRegistry, SchemaCache, SchemaRegistry, wire};
use rill_streams::Serde;
use serde_json::{Value, json};

const V1: &str = r#"{"type":"record","name":"Payment","fields":[{"name":"id","type":"string"}]}"#;
const V2: &str = r#"{"type":"record","name":"Payment","fields":[{"name":"id","type":"string"},{"name":"amount","type":"double","default":0.0}]}"#;
const BREAKS: &str =
    r#"{"type":"record","name":"Payment","fields":[{"name":"ccy","type":"string"}]}"#;

struct Api {
    url: String,
    client: Client,
}

impl Api {
    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.url))
            .header("Accept", CONTENT_TYPE);
        if let Some(body) = body {
            request = request
                .header("Content-Type", CONTENT_TYPE)
                .body(body.to_string());
        }
        let response: Response = request.send().expect("answers");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert_eq!(content_type, CONTENT_TYPE, "{path}");
        (status, response.json().expect("JSON body"))
    }

    fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None)
    }

    fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body))
    }

    fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::PUT, path, Some(body))
    }
}

/// `{"error_code": code, "message": non-empty}` and nothing else, as Confluent answers errors.
fn assert_error(answer: (u16, Value), status: u16, code: i64) {
    assert_eq!(answer.0, status, "{}", answer.1);
    let fields = answer.1.as_object().expect("an object");
    assert_eq!(fields.len(), 2, "{}", answer.1);
    assert_eq!(fields["error_code"], json!(code), "{}", answer.1);
    assert!(!fields["message"].as_str().expect("message").is_empty());
}

#[test]
fn the_api_answers_in_confluents_shapes() {
    let dir = tempfile::tempdir().expect("dir");
    let (_log, registry) = common::registry(dir.path());
    let served = common::serve(registry);
    let api = Api {
        url: served.url.clone(),
        client: Client::new(),
    };

    assert_eq!(api.get("/subjects"), (200, json!([])));
    assert_eq!(
        api.post("/subjects/payments-value/versions", json!({"schema": V1})),
        (200, json!({"id": 1}))
    );
    // Registering it again answers the same id; plain application/json is taken too.
    let again = api
        .client
        .post(format!("{}/subjects/payments-value/versions", api.url))
        .header("Content-Type", "application/json")
        .body(json!({"schema": V1, "schemaType": "AVRO"}).to_string())
        .send()
        .expect("answers");
    assert_eq!(again.json::<Value>().expect("JSON"), json!({"id": 1}));
    assert_eq!(
        api.post("/subjects/payments-value/versions", json!({"schema": V2})),
        (200, json!({"id": 2}))
    );

    let (status, schema) = api.get("/schemas/ids/1");
    assert_eq!(status, 200);
    let text = schema["schema"].as_str().expect("schema is a string");
    assert_eq!(
        serde_json::from_str::<Value>(text).expect("schema JSON"),
        serde_json::from_str::<Value>(V1).expect("V1")
    );
    assert_eq!(api.get("/subjects"), (200, json!(["payments-value"])));
    assert_eq!(
        api.get("/subjects/payments-value/versions"),
        (200, json!([1, 2]))
    );
    let (status, latest) = api.get("/subjects/payments-value/versions/latest");
    assert_eq!(status, 200);
    assert_eq!(
        (&latest["subject"], &latest["id"], &latest["version"]),
        (&json!("payments-value"), &json!(2), &json!(2))
    );
    assert!(latest["schema"].is_string());
    assert_eq!(
        api.get("/subjects/payments-value/versions/1").1.get("id"),
        Some(&json!(1))
    );
    let (status, found) = api.post("/subjects/payments-value", json!({"schema": V1}));
    assert_eq!(
        (status, &found["version"], &found["id"]),
        (200, &json!(1), &json!(1))
    );

    assert_eq!(
        api.post(
            "/compatibility/subjects/payments-value/versions/latest",
            json!({"schema": BREAKS})
        ),
        (200, json!({"is_compatible": false}))
    );
    assert_eq!(
        api.post(
            "/compatibility/subjects/payments-value/versions/1",
            json!({"schema": V2})
        ),
        (200, json!({"is_compatible": true}))
    );

    assert_eq!(
        api.get("/config"),
        (200, json!({"compatibilityLevel": "BACKWARD"}))
    );
    assert_error(api.get("/config/payments-value"), 404, 40408);
    assert_eq!(
        api.put("/config/payments-value", json!({"compatibility": "NONE"})),
        (200, json!({"compatibility": "NONE"}))
    );
    assert_eq!(
        api.get("/config/payments-value"),
        (200, json!({"compatibilityLevel": "NONE"}))
    );
    assert_eq!(
        api.put("/config", json!({"compatibility": "FULL"})),
        (200, json!({"compatibility": "FULL"}))
    );
    assert_eq!(
        api.get("/config/other-value?defaultToGlobal=true"),
        (200, json!({"compatibilityLevel": "FULL"}))
    );
    assert_error(
        api.put("/config", json!({"compatibility": "SIDEWAYS"})),
        422,
        42203,
    );

    assert_eq!(
        api.call(reqwest::Method::DELETE, "/subjects/payments-value", None),
        (200, json!([1, 2]))
    );
    assert_eq!(api.get("/subjects"), (200, json!([])));
}

#[test]
fn errors_carry_confluents_codes() {
    let dir = tempfile::tempdir().expect("dir");
    let (_log, registry) = common::registry(dir.path());
    let served = common::serve(registry);
    let api = Api {
        url: served.url.clone(),
        client: Client::new(),
    };
    assert_error(api.get("/subjects/nothing/versions"), 404, 40401);
    assert_error(api.get("/schemas/ids/42"), 404, 40403);
    assert_error(
        api.post("/subjects/p-value/versions", json!({"schema": "{not avro"})),
        422,
        42201,
    );
    assert_error(
        api.post(
            "/subjects/p-value/versions",
            json!({"schema": V1, "schemaType": "PROTOBUF"}),
        ),
        422,
        42201,
    );
    api.post("/subjects/p-value/versions", json!({"schema": V2}));
    assert_error(
        api.post("/subjects/p-value/versions", json!({"schema": BREAKS})),
        409,
        409,
    );
    assert_error(api.get("/subjects/p-value/versions/7"), 404, 40402);
    assert_error(api.get("/subjects/p-value/versions/zero"), 422, 42202);
    assert_error(
        api.post("/subjects/p-value", json!({"schema": V1})),
        404,
        40403,
    );
    assert_error(
        api.post("/subjects/p-value/versions", json!({"nope": 1})),
        400,
        400,
    );
    assert_error(api.get("/config/p-value?defaultToGlobal=maybe"), 400, 400);
    assert_error(
        api.post(
            "/subjects/p-value/versions",
            json!({"schema": V1, "schemaType": null}),
        ),
        400,
        400,
    );
    assert_error(api.put("/config", json!({"compatibility": 3})), 400, 400);
}

/// A serde pointed at the registry by URL (as `--schema-registry` does) writes records that a
/// serde on the registry itself reads, with the same ids.
#[test]
fn a_serde_uses_a_registry_by_url() {
    let dir = tempfile::tempdir().expect("dir");
    let (_log, registry) = common::registry(dir.path());
    let served = common::serve(registry.clone());
    let remote = SchemaCache::new(Arc::new(
        HttpSchemaRegistry::new(&served.url).expect("client"),
    ));
    let local = SchemaCache::new(registry.clone());
    let writer = AvroSerde::<String>::new(remote.clone(), r#""string""#).expect("schema");
    let reader = AvroSerde::<String>::new(local, r#""string""#).expect("schema");
    let bytes = writer
        .serialize("notes", &"hello".to_string())
        .expect("encodes");
    let (id, _) = wire::split(&bytes).expect("framed");
    assert_eq!(
        registry.versions("notes-value").expect("registered"),
        vec![1]
    );
    assert_eq!(
        reader.deserialize("notes", &bytes).expect("decodes"),
        "hello"
    );
    assert_eq!(
        remote.to_json(&bytes).expect("framed").expect("decodes"),
        json!("hello")
    );
    // An unknown id is the registry's 40403, reported through the client.
    let error = writer
        .deserialize("notes", &[0, 0, 0, 0, 9, 0])
        .expect_err("unknown id");
    assert!(error.reason.contains("40403"), "{error}");
    assert_eq!(id, 1);
}

/// Serdes are called from async code too (a view read in a request handler); the blocking
/// client must answer there rather than panic.
#[test]
fn the_client_answers_inside_an_async_runtime() {
    let dir = tempfile::tempdir().expect("dir");
    let (_log, registry) = common::registry(dir.path());
    let id = registry
        .register("notes-value", r#""string""#)
        .expect("registers");
    let served = common::serve(registry);
    let client = HttpSchemaRegistry::new(&served.url).expect("client");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let text = runtime.block_on(async { client.schema_text(id) });
    assert_eq!(text.expect("the schema"), r#""string""#);
}
