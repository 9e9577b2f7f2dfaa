//! Talking to a running `rill run` over HTTP: the topic proxy for the tools, the orders API for
//! the feeds; and where a tool goes (a server, a Kafka cluster, or a data directory).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};

use rill_bench::backend::{self, KafkaArgs, OpenLog};

/// Where the default server listens.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// A running server's HTTP API.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Base URL of a running `rill run`.
    #[arg(long, default_value = DEFAULT_SERVER, env = "RILL_SERVER")]
    pub server: String,
}

/// How a tool reaches the log: through a running server, straight to a Kafka cluster, or by
/// opening the data directory.
#[derive(Debug, Clone, Args)]
pub struct LogAccess {
    /// Base URL of a running `rill run` (default: http://127.0.0.1:8080 when it answers).
    #[arg(long, env = "RILL_SERVER", conflicts_with = "bootstrap")]
    pub server: Option<String>,
    /// Open this data directory directly instead (no server may hold it).
    #[arg(long, env = "RILL_DATA_DIR", conflicts_with_all = ["server", "bootstrap"])]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

/// Where a tool goes.
pub enum Target {
    /// Through the topic proxy of a running server.
    Server(Server),
    /// Straight to the log through its traits: a Kafka cluster, or the embedded log's
    /// directory.
    Log(OpenLog),
}

impl LogAccess {
    /// The cluster or the data directory when one is named; else the server when one is named
    /// or the default one answers; else the data directory `./rill-data`.
    pub fn resolve(&self) -> anyhow::Result<Target> {
        if self.kafka.bootstrap.is_some() || self.data_dir.is_some() {
            // On a cluster the directory is not used: `--bootstrap` excludes `--data-dir`.
            let dir = self.data_dir.clone().unwrap_or_default();
            return Ok(Target::Log(backend::open(&self.kafka, &dir, None)?));
        }
        let url = self.server.as_deref().unwrap_or(DEFAULT_SERVER);
        let server = Server::new(url)?;
        match server.get("/health") {
            Ok(_) => Ok(Target::Server(server)),
            Err(error) if self.server.is_some() => {
                Err(error.context(format!("no rill server answers at {url}")))
            }
            Err(_) => Ok(Target::Log(backend::open(
                &self.kafka,
                Path::new("./rill-data"),
                None,
            )?)),
        }
    }
}

/// A blocking client of one server (a small runtime drives the async client).
pub struct Server {
    base: String,
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Server {
    /// A client of the server at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/').to_string();
        if !base.starts_with("http://") {
            bail!("the server URL must start with http:// (got {base})");
        }
        Ok(Server {
            base,
            client: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(2))
                .build()
                .context("building the HTTP client")?,
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the HTTP client runtime")?,
        })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// GET `path`, answering the JSON body of a success or the error the server named.
    pub fn get(&self, path: &str) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        self.runtime
            .block_on(async { json_answer(self.client.get(&url).send().await, &url).await })
    }

    /// POST a JSON body to `path`.
    pub fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        self.runtime.block_on(async {
            json_answer(self.client.post(&url).json(body).send().await, &url).await
        })
    }

    /// Writes records (`{"key":..,"value":..}`) to `topic`, answering their positions.
    pub fn produce(&self, topic: &str, records: Vec<Value>) -> anyhow::Result<Vec<Value>> {
        let answer = self.post(
            &format!("/v1/topics/{topic}/records"),
            &json!({ "records": records }),
        )?;
        Ok(answer["offsets"].as_array().cloned().unwrap_or_default())
    }
}

async fn json_answer(
    sent: Result<reqwest::Response, reqwest::Error>,
    url: &str,
) -> anyhow::Result<Value> {
    let response = sent.with_context(|| format!("calling {url}"))?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .with_context(|| format!("reading the answer of {url}"))?;
    if !status.is_success() {
        let message = body["message"].as_str().unwrap_or("no message");
        bail!("{url} answered {status}: {message}");
    }
    Ok(body)
}
