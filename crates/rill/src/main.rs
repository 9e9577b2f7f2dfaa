//! The `rill` binary: parses flags into typed settings and calls the libraries.
//!
//! **Owns:** the command line and mapping errors to exit codes; the benchmarks and choosing a
//! log from flags live in `rill-bench`.
//! **May depend on:** every rill crate; nothing depends on it.

mod cli;
mod client;
mod config;
mod example;
mod feeds;
mod postgres_sink;
mod postgres_source;
mod progress;
mod reset;
mod restarting;
mod run;
mod tools;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

/// mimalloc rather than glibc malloc: the stream threads allocate and free many small buffers
/// per record (keys, values, serde output), and glibc's arena bookkeeping took about a third
/// of the order pipeline's CPU. The `system-allocator` feature leaves it out, so heap profilers
/// that hook malloc (heaptrack, valgrind) see every allocation.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc (v3) keeps freed pages for a second before it returns them to the OS; the stream
/// threads free tens of MiB a second (decoded batches, spilled store writes), so that second
/// held about 60 MiB of peak RSS in the order pipeline. Measured at 200,000 orders (BENCHMARKS.md):
/// peak RSS 626-640 MiB with 1 s, 562-587 with 100 ms, 540-543 with 10 ms, for about 1/4 and
/// 1/2 more system CPU (returning pages and faulting them back in); 100 ms is the middle.
/// `MIMALLOC_PURGE_DELAY` still overrides it.
#[cfg(not(feature = "system-allocator"))]
#[allow(unsafe_code)] // the allocator's option setter is a C function
fn return_freed_memory_sooner() {
    use std::ffi::{c_int, c_long};
    // `mi_option_purge_delay` in mimalloc v3's option enum (libmimalloc-sys 0.1.49, pinned in
    // Cargo.lock); libmimalloc-sys exports the setter only with its `extended` feature.
    const MI_OPTION_PURGE_DELAY: c_int = 15;
    unsafe extern "C" {
        fn mi_option_set(option: c_int, value: c_long);
    }
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a plain integer option of the allocator linked into this binary; mimalloc
        // reads it when it next schedules a purge.
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, 100) }
    }
}

/// rill's own events at info, its dependencies' at warn: the storage engine alone logged some
/// 150 lines of internals at start ("Recovering LSM-tree at ..."), burying the line with the
/// API's address. rdkafka's consumer module is off: its one error message ("Failed to close
/// consumer queue on drop") fires for every Kafka consumer that rill closed explicitly before
/// dropping it, which is every consumer. `RUST_LOG` replaces the whole filter.
const DEFAULT_LOG_FILTER: &str = "warn,rill=info,rill_orders=info,rill_streams=info,rill_log=info,\
rill_log_embedded=info,rill_log_kafka=info,rill_connect_postgres=info,rdkafka::consumer::base_consumer=off";

fn main() -> ExitCode {
    #[cfg(not(feature = "system-allocator"))]
    return_freed_memory_sooner();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let file = match config::named_file(&args)
        .map(|path| config::ConfigFile::load(&path, &cli::Cli::command()))
        .transpose()
    {
        Ok(file) => file,
        Err(error) => {
            eprintln!("error: {}", chain_message(&error));
            return ExitCode::from(2);
        }
    };
    let command = config::configure(cli::Cli::command(), file.as_ref());
    let matches = command.clone().get_matches_from(args);
    let cli = match cli::Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    init_logging(cli.log_format);
    let invocation = cli::Invocation {
        command: &command,
        matches: &matches,
        file: file.as_ref(),
    };
    match cli::execute(cli, &invocation) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", chain_message(&error));
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: cli::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    // Colours only for a terminal: escape codes make a log file or a CI page hard to read.
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        cli::LogFormat::Text => logs.init(),
        cli::LogFormat::Json => logs.json().init(),
    }
}

/// The error and its causes in one line, each cause once: the libraries' errors already end
/// their message with their source's, so anyhow's `{:#}` would repeat every cause.
fn chain_message(error: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if message.ends_with(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
}

#[cfg(test)]
mod tests {
    use super::chain_message;

    #[derive(Debug, thiserror::Error)]
    #[error("unknown topic 'a'")]
    struct Leaf;

    #[derive(Debug, thiserror::Error)]
    #[error("describing a topic: {source}")]
    struct Wrapping {
        #[source]
        source: Leaf,
    }

    #[test]
    fn a_cause_already_in_its_wrapper_message_is_not_repeated() {
        let error = anyhow::Error::new(Wrapping { source: Leaf }).context("starting");
        assert_eq!(
            chain_message(&error),
            "starting: describing a topic: unknown topic 'a'"
        );
    }

    #[test]
    fn a_cause_the_wrapper_does_not_name_is_printed() {
        let error = anyhow::Error::new(Leaf).context("starting");
        assert_eq!(chain_message(&error), "starting: unknown topic 'a'");
    }
}
