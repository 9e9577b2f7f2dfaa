//! A client of an external registry that speaks Confluent's API (Confluent Schema Registry,
//! Redpanda's, Apicurio's compatible API, or another `rill run`).

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::SchemaRegistry;
use super::rest::CONTENT_TYPE;
use crate::error::{RegistryError, Result};

/// An external schema registry at a URL. Blocking: create it and call it outside async code
/// (serdes run on stream threads).
///
/// ```no_run
/// use rill_schema::{HttpSchemaRegistry, SchemaRegistry};
/// let registry = HttpSchemaRegistry::new("http://127.0.0.1:8081")?;
/// let id = registry.register("greetings-value", r#""string""#)?;
/// # Ok::<(), rill_schema::RegistryError>(())
/// ```
pub struct HttpSchemaRegistry {
    base: String,
    client: reqwest::blocking::Client,
}

#[derive(Deserialize)]
struct IdBody {
    id: i32,
}

#[derive(Deserialize)]
struct SchemaBody {
    schema: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    error_code: i64,
    message: String,
}

/// Percent-encodes a path segment (subjects may hold any character).
fn segment(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(byte).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

impl HttpSchemaRegistry {
    /// A client of the registry at `url` (`http://host:port`, with a path prefix if the
    /// registry has one).
    pub fn new(url: &str) -> Result<Self> {
        let base = url.trim_end_matches('/').to_string();
        let unreachable = |reason: String| RegistryError::Unreachable {
            url: base.clone(),
            reason,
        };
        if !base.starts_with("http://") && !base.starts_with("https://") {
            return Err(unreachable(
                "the URL must start with http:// or https://".into(),
            ));
        }
        let client = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|error| unreachable(error.to_string()))?;
        Ok(HttpSchemaRegistry { base, client })
    }

    fn call<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::blocking::RequestBuilder,
        url: &str,
    ) -> Result<T> {
        let unreachable = |reason: String| RegistryError::Unreachable {
            url: url.to_string(),
            reason,
        };
        let request = request.header(reqwest::header::ACCEPT, CONTENT_TYPE);
        let exchange = move || {
            let response = request.send()?;
            let status = response.status();
            response.bytes().map(|body| (status, body))
        };
        // reqwest's blocking client panics inside an async runtime: from there (a view read
        // in a request handler, say), the exchange runs on a thread of its own.
        let exchanged = if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|scope| match scope.spawn(exchange).join() {
                Ok(exchanged) => exchanged,
                Err(panic) => std::panic::resume_unwind(panic),
            })
        } else {
            exchange()
        };
        let (status, body) = exchanged.map_err(|error| unreachable(error.to_string()))?;
        if !status.is_success() {
            let (error_code, message) = match serde_json::from_slice::<ErrorBody>(&body) {
                Ok(error) => (error.error_code, error.message),
                Err(_) => (
                    i64::from(status.as_u16()),
                    String::from_utf8_lossy(&body).into_owned(),
                ),
            };
            return Err(RegistryError::Remote {
                url: url.to_string(),
                status: status.as_u16(),
                error_code,
                message,
            });
        }
        serde_json::from_slice(&body)
            .map_err(|error| unreachable(format!("unreadable answer: {error}")))
    }
}

impl SchemaRegistry for HttpSchemaRegistry {
    fn register(&self, subject: &str, schema: &str) -> Result<i32> {
        let url = format!("{}/subjects/{}/versions", self.base, segment(subject));
        let request = self
            .client
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .body(json!({ "schema": schema }).to_string());
        Ok(self.call::<IdBody>(request, &url)?.id)
    }

    fn schema_text(&self, id: i32) -> Result<String> {
        let url = format!("{}/schemas/ids/{id}", self.base);
        Ok(self.call::<SchemaBody>(self.client.get(&url), &url)?.schema)
    }

    fn describe(&self) -> String {
        self.base.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_encoded_and_bad_urls_refused() {
        assert_eq!(segment("orders-value"), "orders-value");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
        assert!(matches!(
            HttpSchemaRegistry::new("localhost:8081"),
            Err(RegistryError::Unreachable { .. })
        ));
    }
}
