//! `rill example NAME`: one of the example systems (crate `rill-examples`) run on an embedded
//! log with its small sample input, its output printed.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use rill_log_embedded::FsyncPolicy;

/// Flags of `rill example`.
#[derive(Debug, Args)]
pub struct ExampleArgs {
    /// The example (leave it out for the list).
    name: Option<String>,
    /// Where its log and state go (default: a temporary directory, removed afterwards). An
    /// existing directory is used as it is: its earlier input and output stay.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Then run the same code again over the same input, from its start, as a new
    /// application into new output topics (`<output>-v2`), and compare the outputs.
    #[arg(long)]
    reprocess: bool,
}

pub fn example(args: &ExampleArgs) -> anyhow::Result<()> {
    let Some(name) = &args.name else {
        println!("examples (run one with `rill example NAME`):");
        for example in rill_examples::all() {
            println!("  {:<16} {}", example.name, example.summary);
        }
        return Ok(());
    };
    let example = rill_examples::find(name).with_context(|| {
        let names: Vec<&str> = rill_examples::all().iter().map(|e| e.name).collect();
        format!("no example '{name}'; there are: {}", names.join(", "))
    })?;
    let temporary = tempfile::tempdir().context("creating a temporary directory")?;
    let dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| temporary.path().to_path_buf());
    // The example's sample is small: a sync per write would only slow the demonstration.
    let log = rill_bench::backend::open_embedded(&dir.join("log"), FsyncPolicy::Never)?;
    println!("{}: {}", example.name, example.summary);
    println!("input: {}", example.inputs.join(", "));
    let mut options = rill_examples::RunOptions::new(dir.join("state"));
    let lines = rill_examples::run(&example, log.clone(), &options)
        .with_context(|| format!("running example '{name}'"))?;
    print_lines(&lines);
    if args.reprocess {
        options.version = 2;
        let again = rill_examples::run(&example, log.clone(), &options)
            .with_context(|| format!("reprocessing example '{name}'"))?;
        println!("\nreprocessed from the start of its input, as a new application:");
        print_lines(&again);
        let text = |lines: &[rill_examples::OutputLine]| -> Vec<String> {
            lines.iter().map(|l| l.line.clone()).collect()
        };
        if text(&lines) == text(&again) {
            println!("\nthe same {} records as the first run", lines.len());
        } else {
            println!("\nthe outputs differ (an example on the wall clock may: time has passed)");
        }
    }
    log.close().context("closing the log")?;
    Ok(())
}

fn print_lines(lines: &[rill_examples::OutputLine]) {
    let mut topic = "";
    for line in lines {
        if line.topic != topic {
            topic = &line.topic;
            println!("\n{topic}:");
        }
        println!("  {}", line.line);
    }
    if lines.is_empty() {
        println!("\n(no output)");
    }
}
