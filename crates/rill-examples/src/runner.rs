//! Running an example on a log: its topics created, its sample produced, the application
//! started, and its outputs read back until they are quiet.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rill_log::{
    ConsumedRecord, ConsumerConfig, IsolationLevel, Log, LogError, ProducerRecord, SeekTo,
    TopicConfig, TopicPartition,
};
use rill_streams::{StreamsApp, StreamsConfig, StreamsError};

use crate::{Example, Outputs};

/// Why an example could not run.
#[derive(Debug, thiserror::Error)]
pub enum ExampleError {
    /// The log refused something.
    #[error("{what}: {source}")]
    Log {
        /// What the runner was doing.
        what: &'static str,
        /// The log's error.
        #[source]
        source: LogError,
    },
    /// The application failed.
    #[error(transparent)]
    Streams(#[from] StreamsError),
    /// Asking the running application (over its API) failed.
    #[error("{what}: {source}")]
    Query {
        /// What the example was doing.
        what: &'static str,
        /// Why it failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn log_error(what: &'static str) -> impl FnOnce(LogError) -> ExampleError {
    move |source| ExampleError::Log { what, source }
}

/// How an example runs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The application's state directory.
    pub state_dir: PathBuf,
    /// Partitions of the topics it creates.
    pub partitions: i32,
    /// Outputs count as complete after this long without a new record.
    pub quiet: Duration,
    /// Longest run.
    pub max_wait: Duration,
    /// Run number: the first run (1) writes the sample and the example's own output topics;
    /// a later run `n` processes the same input again, from its start, as a new application
    /// (`example-NAME-vN`) into `<output>-vN` (reprocessing, kappa style).
    pub version: u32,
}

impl RunOptions {
    /// Three partitions, three quiet seconds, at most a minute.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        RunOptions {
            state_dir: state_dir.into(),
            partitions: 3,
            quiet: Duration::from_secs(3),
            max_wait: Duration::from_secs(60),
            version: 1,
        }
    }
}

/// One output record, rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputLine {
    /// The topic it was written to.
    pub topic: String,
    /// The record, for people.
    pub line: String,
}

/// Runs `example` on `log`: creates its topics (keeping existing ones), writes its sample,
/// runs it until its outputs have been quiet for `options.quiet`, and answers what it wrote,
/// topic by topic, by key (for a table output, only the latest record per key), then what the
/// example's [`query`](Example::query) asked the running application.
pub fn run(
    example: &Example,
    log: Arc<dyn Log>,
    options: &RunOptions,
) -> Result<Vec<OutputLine>, ExampleError> {
    let (outputs, application) = if options.version <= 1 {
        (Outputs::default(), format!("example-{}", example.name))
    } else {
        let suffix = format!("-v{}", options.version);
        (
            Outputs::suffixed(&suffix),
            format!("example-{}{suffix}", example.name),
        )
    };
    let output_topics: Vec<String> = example.outputs.iter().map(|t| outputs.name(t)).collect();
    let admin = log.admin();
    let existing = admin.list_topics().map_err(log_error("listing topics"))?;
    let inputs = example.inputs.iter().map(|t| t.to_string());
    for topic in inputs.chain(output_topics.iter().cloned()) {
        if !existing.contains(&topic) {
            admin
                .create_topic(&topic, &TopicConfig::with_partitions(options.partitions))
                .map_err(log_error("creating a topic"))?;
        }
    }
    if options.version <= 1 {
        write_sample(example, log.as_ref())?;
    }

    let mut config = StreamsConfig::new(application, &options.state_dir);
    config.commit_interval = Duration::from_millis(50);
    let mut app = StreamsApp::new((example.topology)(&outputs)?, log.clone(), config);
    app.start()?;
    // The quiet period counts from when every stream thread has its tasks: opening and
    // restoring stores can take seconds on a busy machine, and nothing is written meanwhile.
    let running = || app.state() == rill_streams::AppState::Running;
    let read = read_outputs(&output_topics, log.as_ref(), options, running);
    let answers = match (&read, example.query) {
        (Ok(_), Some(query)) => query(&app, log.clone()),
        _ => Ok(Vec::new()),
    };
    let closed = app.close();
    let records = read?;
    let answers = answers?;
    closed?;

    let mut lines = Vec::new();
    for (topic, name) in example.outputs.iter().zip(&output_topics) {
        let of_topic = records.iter().filter(|r| &*r.topic == name.as_str());
        let shown: Vec<&ConsumedRecord> = if example.tables.contains(topic) {
            let mut latest: Vec<&ConsumedRecord> = Vec::new();
            for record in of_topic {
                latest.retain(|kept| kept.key != record.key);
                latest.push(record);
            }
            latest.sort_by(|a, b| a.key.cmp(&b.key));
            latest
        } else {
            // By key, so that a run prints the same as the last whatever order the partitions
            // were read in (a key's records keep their order: they share a partition).
            let mut events: Vec<&ConsumedRecord> = of_topic.collect();
            events.sort_by(|a, b| a.key.cmp(&b.key));
            events
        };
        for record in shown {
            lines.push(OutputLine {
                topic: name.clone(),
                line: (example.render)(
                    topic,
                    record.key.as_deref().unwrap_or_default(),
                    record.value.as_deref(),
                ),
            });
        }
    }
    lines.extend(answers);
    Ok(lines)
}

/// Writes the example's sample input, timestamped relative to now.
fn write_sample(example: &Example, log: &dyn Log) -> Result<(), ExampleError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let producer = log
        .producer(&Default::default())
        .map_err(log_error("creating a producer"))?;
    for sample in (example.sample)(now) {
        producer
            .send(
                ProducerRecord::new(sample.topic)
                    .key(sample.key)
                    .value(sample.value)
                    .timestamp(sample.timestamp),
            )
            .map_err(log_error("writing the sample"))?
            .wait()
            .map_err(log_error("writing the sample"))?;
    }
    Ok(())
}

/// Reads the committed records of the outputs from their start until none came for
/// `options.quiet` while the application was `running` (and at least that long after the
/// start).
fn read_outputs(
    outputs: &[String],
    log: &dyn Log,
    options: &RunOptions,
    running: impl Fn() -> bool,
) -> Result<Vec<ConsumedRecord>, ExampleError> {
    let mut partitions = Vec::new();
    for topic in outputs {
        let count = log
            .admin()
            .describe_topic(topic)
            .map_err(log_error("describing an output"))?
            .config
            .partitions;
        partitions.extend((0..count).map(|p| TopicPartition::new(topic.as_str(), p)));
    }
    let consumer = log
        .consumer(
            &ConsumerConfig {
                isolation: IsolationLevel::ReadCommitted,
                ..ConsumerConfig::default()
            },
            None,
        )
        .map_err(log_error("creating a consumer"))?;
    consumer
        .assign(&partitions)
        .map_err(log_error("reading the outputs"))?;
    for partition in &partitions {
        consumer
            .seek(partition, SeekTo::Beginning)
            .map_err(log_error("reading the outputs"))?;
    }
    let started = Instant::now();
    let mut last_new = started;
    let mut records = Vec::new();
    while last_new.elapsed() < options.quiet && started.elapsed() < options.max_wait {
        let polled = consumer
            .poll(Duration::from_millis(100))
            .map_err(log_error("reading the outputs"))?;
        if !polled.is_empty() || !running() {
            last_new = Instant::now();
            records.extend(polled);
        }
    }
    Ok(records)
}
