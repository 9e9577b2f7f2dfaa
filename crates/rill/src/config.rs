//! Settings of `rill run` from a file, the environment and flags, in rising precedence:
//! `rill.toml` (named by `--config` or `RILL_CONFIG`) < `RILL_*` environment < flags.
//!
//! The file's keys are the long names of `rill run`'s flags (`data-dir = "./rill-data"`,
//! `partitions = 6`, `services = ["orders", "fraud"]`) and a `[kafka]` table of librdkafka
//! properties (what `--kafka-property` takes). Every flag `--some-flag` also reads
//! `RILL_SOME_FLAG`. Rather than a second parser beside clap's, the file's values become the
//! flags' defaults, so clap's own order (command line, then environment, then default) gives
//! the precedence, and its parsers check the file's values as strictly as the flags'.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command};

/// The subcommands whose flags the file and the environment set.
const CONFIGURED: [&str; 2] = ["run", "config"];

/// The flag that takes librdkafka properties, filled from the file's `[kafka]` table.
const KAFKA_PROPERTY: &str = "kafka-property";

/// The flags whose connection strings may hold a password, masked by `rill config`.
const POSTGRES_CONNINFOS: [&str; 2] = ["customers-from-postgres", "orders-to-postgres"];

/// Words in a librdkafka property's key that mark its value as a secret for `rill config`.
const SECRET_MARKS: [&str; 5] = ["password", "secret", "key", "token", "jaas"];

/// A parsed `rill.toml`.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    path: PathBuf,
    /// Flag long name to its values.
    settings: BTreeMap<String, Vec<String>>,
}

impl ConfigFile {
    /// Reads and checks the file at `path` against the flags of `command`'s `run`.
    pub fn load(path: &Path, command: &Command) -> anyhow::Result<ConfigFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the configuration file {}", path.display()))?;
        ConfigFile::parse(path, &text, command)
    }

    fn parse(path: &Path, text: &str, command: &Command) -> anyhow::Result<ConfigFile> {
        let table: toml::Table = text
            .parse()
            .with_context(|| format!("parsing the configuration file {}", path.display()))?;
        let run = command
            .find_subcommand("run")
            .context("the command line has no `run`")?;
        let known: Vec<&str> = command
            .get_arguments()
            .chain(run.get_arguments())
            .filter(|arg| !arg.is_hide_set())
            .filter_map(|arg| arg.get_long())
            .filter(|long| !matches!(*long, "help" | "version" | "config" | KAFKA_PROPERTY))
            .collect();
        let mut settings = BTreeMap::new();
        for (key, value) in &table {
            let in_file = || format!("in {}", path.display());
            if key == "kafka" {
                let toml::Value::Table(properties) = value else {
                    bail!(
                        "`kafka` {} must be a table of librdkafka properties, e.g. [kafka] \"security.protocol\" = \"ssl\"",
                        in_file()
                    );
                };
                let mut pairs = Vec::new();
                for (property, value) in properties {
                    let value = scalar(value)
                        .with_context(|| format!("kafka property `{property}` {}", in_file()))?;
                    pairs.push(format!("{property}={value}"));
                }
                settings.insert(KAFKA_PROPERTY.to_string(), pairs);
                continue;
            }
            if !known.contains(&key.as_str()) {
                bail!(
                    "unknown setting `{key}` {}; known: {}, and a [kafka] table",
                    in_file(),
                    known.join(", ")
                );
            }
            let values = match value {
                toml::Value::Array(items) => {
                    items.iter().map(scalar).collect::<anyhow::Result<Vec<_>>>()
                }
                other => scalar(other).map(|value| vec![value]),
            }
            .with_context(|| format!("setting `{key}` {}", in_file()))?;
            settings.insert(key.clone(), values);
        }
        Ok(ConfigFile {
            path: path.to_path_buf(),
            settings,
        })
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sets(&self, long: &str) -> bool {
        self.settings.contains_key(long)
    }
}

fn scalar(value: &toml::Value) -> anyhow::Result<String> {
    match value {
        toml::Value::String(text) => Ok(text.clone()),
        toml::Value::Integer(n) => Ok(n.to_string()),
        toml::Value::Float(x) => Ok(x.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        other => bail!(
            "expected a string, number or boolean, found {}",
            other.type_str()
        ),
    }
}

/// The configuration file named on the command line (`--config PATH`) or by `RILL_CONFIG`.
pub fn named_file(args: &[OsString]) -> Option<PathBuf> {
    let mut args = args.iter().skip(1);
    while let Some(arg) = args.next() {
        let text = arg.to_string_lossy();
        if text == "--" {
            break;
        }
        if text == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(path) = text.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os("RILL_CONFIG").map(PathBuf::from)
}

/// `command` with a `RILL_*` variable for every flag of the configured subcommands and the
/// file's values as defaults.
pub fn configure(mut command: Command, file: Option<&ConfigFile>) -> Command {
    if let Some(file) = file {
        command = with_file_defaults(command, file);
    }
    for name in CONFIGURED {
        command = command.mut_subcommand(name, |sub| {
            let mut sub = sub;
            let ids: Vec<(String, String)> = sub
                .get_arguments()
                .filter(|arg| arg.get_env().is_none() && !arg.is_hide_set())
                .filter_map(|arg| Some((arg.get_id().to_string(), arg.get_long()?.to_string())))
                .filter(|(_, long)| !matches!(long.as_str(), "help" | KAFKA_PROPERTY))
                .collect();
            for (id, long) in ids {
                sub = sub.mut_arg(id, |arg| arg.env(env_name(&long)));
            }
            if let Some(file) = file {
                sub = with_file_defaults(sub, file);
            }
            sub
        });
    }
    command
}

fn with_file_defaults(mut command: Command, file: &ConfigFile) -> Command {
    let ids: Vec<(String, Vec<String>)> = command
        .get_arguments()
        .filter_map(|arg| {
            let values = file.settings.get(arg.get_long()?)?;
            Some((arg.get_id().to_string(), values.clone()))
        })
        .collect();
    for (id, values) in ids {
        command = command.mut_arg(id, |arg| arg.default_values(values));
    }
    command
}

/// `--some-flag` reads `RILL_SOME_FLAG`.
fn env_name(long: &str) -> String {
    format!("RILL_{}", long.replace('-', "_").to_uppercase())
}

/// The effective settings of `rill run` as a TOML document, each with where it came from;
/// secrets masked.
pub fn describe(command: &Command, matches: &ArgMatches, file: Option<&ConfigFile>) -> String {
    let mut out = String::from(
        "# The settings `rill run` would use with these flags; precedence: flag > RILL_* environment > file > default.\n",
    );
    if let Some(file) = file {
        out.push_str(&format!("# file: {}\n", file.path().display()));
    }
    let Some(("config", sub_matches)) = matches.subcommand() else {
        return out;
    };
    let Some(sub) = command.find_subcommand("config") else {
        return out;
    };
    let mut kafka = Vec::new();
    for arg in command.get_arguments().chain(sub.get_arguments()) {
        let Some(long) = arg.get_long() else { continue };
        if arg.is_hide_set() || matches!(long, "help" | "version" | "config") {
            continue;
        }
        let id = arg.get_id().as_str();
        let owner = if sub.get_arguments().any(|a| a.get_id() == arg.get_id()) {
            sub_matches
        } else {
            matches
        };
        let mut values: Vec<String> = owner
            .get_raw(id)
            .map(|raw| raw.map(|v| v.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        if POSTGRES_CONNINFOS.contains(&long) {
            values = values
                .iter()
                .map(|v| rill_connect_postgres::redact(v))
                .collect();
        }
        let source = match owner.value_source(id) {
            Some(ValueSource::CommandLine) => "flag".to_string(),
            Some(ValueSource::EnvVariable) => format!(
                "environment {}",
                arg.get_env()
                    .map_or_else(String::new, |e| e.to_string_lossy().into_owned())
            ),
            Some(ValueSource::DefaultValue) if file.is_some_and(|f| f.sets(long)) => {
                "file".to_string()
            }
            _ => "default".to_string(),
        };
        if long == KAFKA_PROPERTY {
            kafka.extend(values.into_iter().map(|pair| (pair, source.clone())));
            continue;
        }
        let multiple =
            matches!(arg.get_action(), ArgAction::Append) || arg.get_value_delimiter().is_some();
        let line = match values.as_slice() {
            [] => {
                out.push_str(&format!("# {long} is not set\n"));
                continue;
            }
            [one] if !multiple => format!("{long} = {}", toml_value(one)),
            many => format!(
                "{long} = [{}]",
                many.iter()
                    .map(|v| toml_value(v))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        out.push_str(&format!("{line:<56} # {source}\n"));
    }
    if !kafka.is_empty() {
        out.push_str("\n[kafka]\n");
        for (pair, source) in kafka {
            let (key, value) = pair.split_once('=').unwrap_or((pair.as_str(), ""));
            let shown = if is_secret(key) { "***" } else { value };
            let line = format!(
                "{} = {}",
                toml::Value::String(key.to_string()),
                toml::Value::String(shown.to_string())
            );
            out.push_str(&format!("{line:<56} # {source}\n"));
        }
    }
    out
}

fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_MARKS.iter().any(|mark| key.contains(mark))
}

/// A raw flag value as TOML: numbers and booleans bare, anything else quoted.
fn toml_value(raw: &str) -> String {
    if raw.parse::<i64>().is_ok() || raw == "true" || raw == "false" {
        raw.to_string()
    } else {
        toml::Value::String(raw.to_string()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn command() -> Command {
        crate::cli::Cli::command()
    }

    fn file(text: &str) -> anyhow::Result<ConfigFile> {
        ConfigFile::parse(Path::new("rill.toml"), text, &command())
    }

    fn effective(file_text: &str, args: &[&str]) -> String {
        let file = file(file_text).expect("valid file");
        let command = configure(command(), Some(&file));
        let matches = command
            .clone()
            .try_get_matches_from(args)
            .expect("valid flags");
        describe(&command, &matches, Some(&file))
    }

    fn line<'a>(described: &'a str, key: &str) -> &'a str {
        described
            .lines()
            .find(|line| line.starts_with(&format!("{key} =")))
            .unwrap_or_else(|| panic!("no `{key}` in\n{described}"))
    }

    #[test]
    fn a_flag_beats_the_file_and_the_file_beats_the_default() {
        let described = effective(
            "partitions = 6\nthreads = 2\nservices = [\"orders\", \"fraud\"]\n",
            &["rill", "config", "--threads", "4"],
        );
        assert!(
            line(&described, "partitions").contains("= 6"),
            "{described}"
        );
        assert!(
            line(&described, "partitions").ends_with("# file"),
            "{described}"
        );
        assert!(line(&described, "threads").contains("= 4"), "{described}");
        assert!(
            line(&described, "threads").ends_with("# flag"),
            "{described}"
        );
        assert!(
            line(&described, "services").contains(r#"["orders", "fraud"]"#),
            "{described}"
        );
        assert!(
            line(&described, "http").contains("127.0.0.1:8080"),
            "{described}"
        );
        assert!(
            line(&described, "http").ends_with("# default"),
            "{described}"
        );
    }

    #[test]
    fn the_file_configures_run_itself() {
        let file = file("partitions = 9\nno-seed = true\n").expect("valid file");
        let matches = configure(command(), Some(&file))
            .try_get_matches_from(["rill", "run"])
            .expect("valid flags");
        let run = matches.subcommand_matches("run").expect("run");
        assert_eq!(run.get_one::<i32>("partitions"), Some(&9));
        assert_eq!(run.get_one::<bool>("no_seed"), Some(&true));
    }

    #[test]
    fn a_bad_value_in_the_file_is_refused_like_a_bad_flag() {
        let file = file("partitions = \"many\"\n").expect("parses as TOML");
        let refused = configure(command(), Some(&file)).try_get_matches_from(["rill", "run"]);
        assert!(refused.is_err());
    }

    #[test]
    fn unknown_keys_and_bad_toml_are_named() {
        let error = file("partitons = 3\n").expect_err("unknown key");
        let message = format!("{error:#}");
        assert!(message.contains("unknown setting `partitons`"), "{message}");
        assert!(message.contains("partitions"), "{message}");
        assert!(file("partitions = [").is_err());
        let error = file("kafka = 3\n").expect_err("kafka must be a table");
        assert!(format!("{error:#}").contains("table"));
    }

    #[test]
    fn kafka_secrets_are_masked_and_other_properties_shown() {
        let described = effective(
            "[kafka]\n\"sasl.password\" = \"hunter2\"\n\"security.protocol\" = \"sasl_ssl\"\n",
            &["rill", "config"],
        );
        assert!(!described.contains("hunter2"), "{described}");
        assert!(
            described.contains(r#""sasl.password" = "***""#),
            "{described}"
        );
        assert!(
            described.contains(r#""security.protocol" = "sasl_ssl""#),
            "{described}"
        );
    }

    #[test]
    fn the_postgres_password_is_masked() {
        let described = effective(
            "customers-from-postgres = \"postgres://rill:hunter2@127.0.0.1/rill\"\n\
             orders-to-postgres = \"host=db password=hunter3\"\n",
            &["rill", "config"],
        );
        assert!(!described.contains("hunter2"), "{described}");
        assert!(!described.contains("hunter3"), "{described}");
        assert!(
            line(&described, "customers-from-postgres")
                .contains("postgres://rill:***@127.0.0.1/rill"),
            "{described}"
        );
        assert!(
            line(&described, "orders-to-postgres").contains("host=db password=***"),
            "{described}"
        );
    }

    #[test]
    fn every_flag_has_an_environment_variable() {
        let command = configure(command(), None);
        let run = command.find_subcommand("run").expect("run");
        let partitions = run
            .get_arguments()
            .find(|arg| arg.get_long() == Some("partitions"))
            .expect("--partitions");
        assert_eq!(
            partitions
                .get_env()
                .map(|e| e.to_string_lossy().into_owned()),
            Some("RILL_PARTITIONS".to_string())
        );
    }

    #[test]
    fn the_config_path_comes_from_the_flag_before_the_environment() {
        let args: Vec<OsString> = ["rill", "run", "--config", "a.toml"]
            .iter()
            .map(OsString::from)
            .collect();
        assert_eq!(named_file(&args), Some(PathBuf::from("a.toml")));
        let args: Vec<OsString> = ["rill", "--config=b.toml", "run"]
            .iter()
            .map(OsString::from)
            .collect();
        assert_eq!(named_file(&args), Some(PathBuf::from("b.toml")));
    }
}
