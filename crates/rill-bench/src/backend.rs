//! Choosing the log from flags: the embedded log in a data directory, or a Kafka cluster
//! (shared by `rill run`, the tools and the benchmarks).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use rill_log::Log;
use rill_log_embedded::{EmbeddedConfig, EmbeddedLog, FsyncPolicy};
use rill_log_kafka::{KafkaConfig, KafkaLog};

/// Flags that point at a Kafka cluster instead of the embedded log.
#[derive(Debug, Clone, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers (`host:port[,host:port..]`); without it the embedded log is used.
    #[arg(long, env = "RILL_BOOTSTRAP")]
    pub bootstrap: Option<String>,
    /// A librdkafka setting for every Kafka client, `key=value` (repeatable): TLS, SASL,
    /// timeouts. Values are never printed.
    #[arg(long = "kafka-property", value_name = "KEY=VALUE")]
    pub kafka_properties: Vec<KafkaProperty>,
}

/// One `key=value` librdkafka setting; its value may be a secret, so `Debug` hides it.
#[derive(Clone)]
pub struct KafkaProperty {
    key: String,
    value: String,
}

impl FromStr for KafkaProperty {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (key, value) = text
            .split_once('=')
            .ok_or_else(|| "expected key=value, e.g. security.protocol=ssl".to_string())?;
        let key = key.trim();
        if key.is_empty() {
            return Err("the key before '=' is empty".into());
        }
        Ok(KafkaProperty {
            key: key.to_string(),
            value: value.to_string(),
        })
    }
}

impl fmt::Debug for KafkaProperty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}=***", self.key)
    }
}

impl KafkaArgs {
    /// The client configuration for the cluster, or `None` for the embedded log.
    pub fn config(&self) -> Option<KafkaConfig> {
        let bootstrap = self.bootstrap.as_ref()?;
        let mut config = KafkaConfig::new(bootstrap.clone());
        for property in &self.kafka_properties {
            config = config.property(&property.key, &property.value);
        }
        Some(config)
    }
}

/// An open log of either kind.
pub enum OpenLog {
    /// The embedded log in a directory, owned by this process.
    Embedded(Arc<EmbeddedLog>, PathBuf),
    /// A Kafka cluster.
    Kafka(Arc<KafkaLog>),
}

impl OpenLog {
    /// The log behind the traits.
    pub fn shared(&self) -> Arc<dyn Log> {
        match self {
            OpenLog::Embedded(log, _) => log.clone(),
            OpenLog::Kafka(log) => log.clone(),
        }
    }

    /// Where the log is, for people.
    pub fn describe(&self) -> String {
        match self {
            OpenLog::Embedded(_, dir) => format!("embedded log in {}", dir.display()),
            OpenLog::Kafka(log) => format!("Kafka at {}", log.config().bootstrap_servers),
        }
    }

    /// Closes the embedded log cleanly; a cluster needs nothing.
    pub fn close(self) -> anyhow::Result<()> {
        match self {
            OpenLog::Embedded(log, _) => log.close().context("closing the embedded log"),
            OpenLog::Kafka(_) => Ok(()),
        }
    }
}

/// Opens (creating if needed) the embedded log in `data_dir`.
pub fn open_embedded(data_dir: &Path, fsync: FsyncPolicy) -> anyhow::Result<Arc<EmbeddedLog>> {
    let config = EmbeddedConfig::new(data_dir).fsync(fsync);
    Ok(Arc::new(EmbeddedLog::open(config)?))
}

/// The commit interval of the order system's services: `asked_ms`, or the default of the
/// log in use (a commit is a local write on the embedded log, a round of requests on Kafka).
pub fn commit_interval(asked_ms: Option<u64>, kafka: &KafkaArgs) -> std::time::Duration {
    match (asked_ms, &kafka.bootstrap) {
        (Some(ms), _) => std::time::Duration::from_millis(ms.max(1)),
        (None, Some(_)) => rill_orders::system::CLUSTER_COMMIT_INTERVAL,
        (None, None) => rill_orders::system::EMBEDDED_COMMIT_INTERVAL,
    }
}

/// How long the order system's tasks wait for an input that still has records to read: on
/// the embedded log, whose consumers know their lag, long enough for any backlog's first
/// fetches; on Kafka never (its consumer does not know its lag, so every quiet input would be
/// waited for).
pub fn max_task_idle(kafka: &KafkaArgs) -> std::time::Duration {
    match kafka.bootstrap {
        Some(_) => std::time::Duration::ZERO,
        None => std::time::Duration::from_secs(5),
    }
}

/// Opens the cluster named by `kafka`, or the embedded log in `data_dir`. On a cluster, topics
/// are created with `replication_factor` replicas, by default min(3, brokers).
pub fn open(
    kafka: &KafkaArgs,
    data_dir: &Path,
    replication_factor: Option<i32>,
) -> anyhow::Result<OpenLog> {
    let Some(mut config) = kafka.config() else {
        let log = open_embedded(data_dir, FsyncPolicy::Always)?;
        return Ok(OpenLog::Embedded(log, data_dir.to_path_buf()));
    };
    let replication = match replication_factor {
        Some(factor) => factor,
        None => {
            let probe = KafkaLog::new(config.clone()).context("configuring the Kafka client")?;
            let brokers = probe
                .kafka_admin()
                .broker_count()
                .with_context(|| format!("reaching Kafka at {}", config.bootstrap_servers))?;
            (brokers as i32).clamp(1, 3)
        }
    };
    config.replication_factor = Some(replication);
    let log = KafkaLog::new(config).context("configuring the Kafka client")?;
    Ok(OpenLog::Kafka(Arc::new(log)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_values_are_hidden_from_debug_output() {
        let property: KafkaProperty = "sasl.password=hunter2".parse().expect("valid");
        let shown = format!("{property:?}");
        assert_eq!(shown, "sasl.password=***");
        assert!(!shown.contains("hunter2"));
    }

    #[test]
    fn a_property_needs_a_key_and_an_equals_sign() {
        assert!("security.protocol".parse::<KafkaProperty>().is_err());
        assert!("=x".parse::<KafkaProperty>().is_err());
        let property: KafkaProperty = "a=b=c".parse().expect("valid");
        assert_eq!(
            (property.key.as_str(), property.value.as_str()),
            ("a", "b=c")
        );
    }
}
