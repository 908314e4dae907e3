//! Configuration files: `--config FILE` (or `BERTH_CONFIG`) for `berth master`, `berth agent`
//! and `berth local`.
//!
//! A configuration file is TOML. Its keys are the command's long flags without their dashes,
//! kebab-case like the flags themselves; `log-format` is accepted by every command:
//!
//! ```toml
//! # berth master --config /etc/berth/master.toml
//! id = 1
//! masters = "1=10.0.0.1:5050,2=10.0.0.2:5050,3=10.0.0.3:5050"
//! data-dir = "/var/lib/berth/master"
//! cluster = "prod"
//! secret-file = "/etc/berth/secret"
//! log-format = "json"
//! ```
//!
//! A flag that takes a number takes a TOML integer (`id = 1`), a flag without a value a
//! boolean (`demo = true`), every other flag a string. Paths are used as written, like a
//! flag's: a relative path is relative to the directory `berth` runs in.
//!
//! # Precedence
//!
//! Highest first: the flag, its `BERTH_*` environment variable, the configuration file, the
//! built-in default. The file's values become the *defaults* of the command line, which is
//! then parsed as usual, so clap applies that order itself and checks the file's values with
//! the very parsers that check flags.
//!
//! # Errors
//!
//! The whole file is checked before anything starts: a file that cannot be read, malformed
//! TOML, an unknown key, a value of the wrong type or a value its flag refuses is a
//! [`ConfigError`] naming the file and, but for a missing file, the line. A value in the file
//! is checked even if a flag overrides it: a bad file is refused as a whole.

#![warn(missing_docs)]

use std::any::TypeId;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use clap::error::{ContextKind, ContextValue};
use clap::{Arg, ArgAction, Command};
use toml::de::{DeTable, DeValue};

/// The `--config` argument's id (its field name in the commands' arguments).
pub const CONFIG_ARGUMENT: &str = "config";

/// The environment variable that names a configuration file, like `--config`.
pub const CONFIG_VARIABLE: &str = "BERTH_CONFIG";

/// The commands that read a configuration file.
pub const CONFIGURABLE_COMMANDS: [&str; 3] = ["master", "agent", "local"];

/// Why a configuration file was refused. Each names the file; all but
/// [`Read`](ConfigError::Read) also name the line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration file {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        error: io::Error,
    },
    /// The file is not valid TOML (the parser's message gives the line and column).
    #[error("the configuration file {} is not valid TOML: {error}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What the TOML parser said.
        error: Box<toml::de::Error>,
    },
    /// A key is not a flag of the command.
    #[error(
        "{}:{line}: unknown key `{key}` for `berth {command}`{hint}; the keys are its long \
         flags without the dashes: {known}",
        path.display(),
        hint = Hint(suggestion.as_deref()),
        known = known.join(", ")
    )]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The key's line, from 1.
        line: usize,
        /// The key.
        key: String,
        /// The command the file was given to.
        command: String,
        /// A known key it was probably meant to be.
        suggestion: Option<String>,
        /// Every key the command accepts.
        known: Box<[String]>,
    },
    /// A value's TOML type is not the one its flag takes.
    #[error("{}:{line}: `{key}` must be {expected}, not {found}", path.display())]
    WrongType {
        /// The file.
        path: PathBuf,
        /// The value's line, from 1.
        line: usize,
        /// The key.
        key: String,
        /// The type the flag takes.
        expected: ValueKind,
        /// The TOML type given (`"string"`, `"array"`, ...).
        found: &'static str,
    },
    /// A value has the right type but its flag refuses it.
    #[error("{}:{line}: invalid value for `{key}`: {reason}", path.display())]
    InvalidValue {
        /// The file.
        path: PathBuf,
        /// The value's line, from 1.
        line: usize,
        /// The key.
        key: String,
        /// Why the flag refuses it.
        reason: String,
    },
}

/// `" (did you mean `KEY`?)"`, or nothing.
struct Hint<'a>(Option<&'a str>);

impl fmt::Display for Hint<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(key) => write!(formatter, " (did you mean `{key}`?)"),
            None => Ok(()),
        }
    }
}

/// The TOML type a key takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueKind {
    /// A string: most flags.
    String,
    /// An integer: flags that take a number.
    Integer,
    /// A boolean: flags without a value.
    Boolean,
}

impl fmt::Display for ValueKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            ValueKind::String => "a string",
            ValueKind::Integer => "an integer",
            ValueKind::Boolean => "a boolean (true or false)",
        })
    }
}

/// One key a command accepts in its configuration file: one of its long flags.
#[derive(Clone, Debug)]
pub struct ConfigKey {
    /// The flag's name without the dashes, e.g. `data-dir`.
    pub name: String,
    /// The TOML type it takes.
    pub kind: ValueKind,
    /// Whether the flag belongs to `berth` itself (`--log-format`) rather than the command.
    pub global: bool,
    argument: Arg,
}

impl ConfigKey {
    /// Checks `value` (as clap would see it on the command line) with the flag's own parser,
    /// and returns why it is refused.
    fn check(&self, value: &str) -> Result<(), String> {
        if self.kind == ValueKind::Boolean {
            return Ok(()); // TOML already made sure it is `true` or `false`.
        }
        let probe = Command::new("berth")
            .no_binary_name(true)
            .arg(self.argument.clone().required(false));
        // `--flag=value`, so that a value starting with a dash stays a value.
        match probe.try_get_matches_from([format!("--{}={value}", self.name)]) {
            Ok(_) => Ok(()),
            Err(error) => Err(reason(&error)),
        }
    }
}

/// The keys `command` of `root` accepts, by name: its long flags except `--config` and the
/// hidden ones, and `root`'s global flags.
///
/// # Panics
/// If `root` has no subcommand `command`.
pub fn config_keys(root: &Command, command: &str) -> BTreeMap<String, ConfigKey> {
    let subcommand = root
        .find_subcommand(command)
        .unwrap_or_else(|| panic!("berth has no command {command}"));
    let globals = root
        .get_arguments()
        .filter(|argument| argument.is_global_set())
        .map(|argument| (argument, true));
    let own = subcommand
        .get_arguments()
        .filter(|argument| argument.get_id() != CONFIG_ARGUMENT)
        .map(|argument| (argument, false));
    own.chain(globals)
        .filter(|(argument, _)| !argument.is_hide_set())
        .filter_map(|(argument, global)| {
            let name = argument.get_long()?.to_string();
            let key = ConfigKey {
                name: name.clone(),
                kind: kind_of(argument),
                global,
                argument: argument.clone(),
            };
            Some((name, key))
        })
        .collect()
}

/// The TOML type of the values `argument` takes: a boolean for a flag without a value, an
/// integer for one whose parser yields an integer, a string otherwise.
fn kind_of(argument: &Arg) -> ValueKind {
    if matches!(
        argument.get_action(),
        ArgAction::SetTrue | ArgAction::SetFalse
    ) {
        return ValueKind::Boolean;
    }
    let parsed = argument.get_value_parser().type_id();
    let integers = [
        TypeId::of::<u8>(),
        TypeId::of::<u16>(),
        TypeId::of::<u32>(),
        TypeId::of::<u64>(),
        TypeId::of::<usize>(),
        TypeId::of::<i64>(),
    ];
    if integers.iter().any(|integer| parsed == *integer) {
        ValueKind::Integer
    } else {
        ValueKind::String
    }
}

/// A configuration file, checked, for one command.
#[derive(Debug)]
pub struct ConfigFile {
    command: String,
    /// The values, as clap would see them on the command line, by key.
    values: Vec<(ConfigKey, String)>,
}

impl ConfigFile {
    /// Reads and checks `path` for `command` (one of [`CONFIGURABLE_COMMANDS`]) of `root`.
    pub fn read(path: &Path, root: &Command, command: &str) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        ConfigFile::parse(path, &text, root, command)
    }

    /// Checks `text`, the contents of `path`, for `command` of `root`.
    pub fn parse(
        path: &Path,
        text: &str,
        root: &Command,
        command: &str,
    ) -> Result<ConfigFile, ConfigError> {
        let table = DeTable::parse(text).map_err(|error| ConfigError::Syntax {
            path: path.to_path_buf(),
            error: Box::new(error),
        })?;
        let keys = config_keys(root, command);
        // In the order of the file, so that the first mistake in it is the one reported.
        let mut entries: Vec<_> = table.get_ref().iter().collect();
        entries.sort_by_key(|(name, _)| name.span().start);
        let mut values = Vec::new();
        for (name, value) in entries {
            let key_name: &str = name.get_ref();
            let line = line_of(text, name.span().start);
            let Some(key) = keys.get(key_name) else {
                return Err(ConfigError::UnknownKey {
                    path: path.to_path_buf(),
                    line,
                    key: key_name.to_string(),
                    command: command.to_string(),
                    suggestion: suggest(key_name, &keys),
                    known: keys.keys().cloned().collect(),
                });
            };
            let line = line_of(text, value.span().start);
            let text_value =
                command_line_text(key.kind, value.get_ref()).ok_or(ConfigError::WrongType {
                    path: path.to_path_buf(),
                    line,
                    key: key.name.clone(),
                    expected: key.kind,
                    found: value.get_ref().type_str(),
                })?;
            key.check(&text_value)
                .map_err(|reason| ConfigError::InvalidValue {
                    path: path.to_path_buf(),
                    line,
                    key: key.name.clone(),
                    reason,
                })?;
            values.push((key.clone(), text_value));
        }
        Ok(ConfigFile {
            command: command.to_string(),
            values,
        })
    }

    /// The keys the file sets, with their values as they would be written on the command
    /// line.
    pub fn values(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values
            .iter()
            .map(|(key, value)| (key.name.as_str(), value.as_str()))
    }

    /// `root` with the file's values as the defaults of their flags. A flag the file sets is
    /// no longer required: the file provides it.
    pub fn apply(&self, mut root: Command) -> Command {
        for (key, value) in &self.values {
            let id = key.argument.get_id().as_str().to_string();
            let set_default = |argument: Arg| argument.default_value(value.clone()).required(false);
            root = if key.global {
                root.mut_arg(id, set_default)
            } else {
                root.mut_subcommand(&self.command, |command| command.mut_arg(id, set_default))
            };
        }
        root
    }
}

/// The configuration file the command line `args` names (its `--config`, or
/// [`CONFIG_VARIABLE`]), with the command it is for; `None` for a command that reads none.
///
/// The command line is parsed leniently here: its required flags may well be in the file.
/// Whatever is wrong with it is reported by the real parse that follows.
pub fn config_file_named(root: &Command, args: &[OsString]) -> Option<(String, PathBuf)> {
    let matches = root
        .clone()
        .ignore_errors(true)
        .try_get_matches_from(args)
        .ok()?;
    let (command, command_matches) = matches.subcommand()?;
    if !CONFIGURABLE_COMMANDS.contains(&command) {
        return None;
    }
    let path = command_matches
        .try_get_one::<PathBuf>(CONFIG_ARGUMENT)
        .ok()
        .flatten()?;
    Some((command.to_string(), path.clone()))
}

/// A value as clap would see it on the command line, if it has the TOML type `kind`.
fn command_line_text(kind: ValueKind, value: &DeValue<'_>) -> Option<String> {
    match (kind, value) {
        (ValueKind::String, DeValue::String(text)) => Some(text.to_string()),
        (ValueKind::Boolean, DeValue::Boolean(flag)) => Some(flag.to_string()),
        (ValueKind::Integer, DeValue::Integer(integer)) => {
            // In decimal: TOML also writes integers in hexadecimal, octal and binary. Too
            // large for i128 is too large for every flag: the flag's parser says so.
            Some(
                i128::from_str_radix(integer.as_str(), integer.radix())
                    .map_or_else(|_| integer.to_string(), |number| number.to_string()),
            )
        }
        _ => None,
    }
}

/// Why clap refused a value, without its `error:` prefix and usage hints.
fn reason(error: &clap::Error) -> String {
    if let Some(source) = std::error::Error::source(error) {
        return source.to_string();
    }
    if let (Some(ContextValue::String(value)), Some(ContextValue::Strings(valid))) = (
        error.get(ContextKind::InvalidValue),
        error.get(ContextKind::ValidValue),
    ) {
        return format!("{value:?} is not one of: {}", valid.join(", "));
    }
    let rendered = error.to_string();
    let first_line = rendered.lines().next().unwrap_or_default();
    first_line
        .strip_prefix("error: ")
        .unwrap_or(first_line)
        .to_string()
}

/// The line, from 1, of byte `offset` of `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let before = text.get(..offset).unwrap_or(text);
    before.bytes().filter(|byte| *byte == b'\n').count() + 1
}

/// The known key `key` was probably meant to be: the same with `-` for `_`, or with a
/// leading `--` removed.
fn suggest(key: &str, keys: &BTreeMap<String, ConfigKey>) -> Option<String> {
    let candidates = [
        key.replace('_', "-"),
        key.trim_start_matches('-').to_string(),
    ];
    candidates
        .into_iter()
        .find(|candidate| candidate != key && keys.contains_key(candidate))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command as BerthCommand, CommandLineError, parse_command_line};
    use crate::logging::LogFormat;
    use clap::CommandFactory;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A configuration file under the temporary directory, removed when dropped.
    struct TestFile {
        path: PathBuf,
    }

    impl TestFile {
        fn new(contents: &str) -> TestFile {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "berth-config-{}-{}.toml",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::write(&path, contents).expect("write a configuration file");
            TestFile { path }
        }

        fn path(&self) -> &str {
            self.path.to_str().expect("a UTF-8 temporary directory")
        }
    }

    impl Drop for TestFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    const MASTER: &str = r#"
id = 2
masters = "1=127.0.0.1:5050,2=127.0.0.1:5051,3=127.0.0.1:5052"
data-dir = "/var/lib/berth/master"
secret-file = "/etc/berth/secret"
"#;

    fn parse(args: &[&str]) -> Result<Cli, CommandLineError> {
        parse_command_line(std::iter::once("berth").chain(args.iter().copied()))
    }

    fn config_error(args: &[&str]) -> ConfigError {
        match parse(args) {
            Err(CommandLineError::Config(error)) => error,
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    fn master(cli: Cli) -> crate::cli::MasterArgs {
        match cli.command {
            BerthCommand::Master(args) => args,
            other => panic!("expected berth master, got {other:?}"),
        }
    }

    #[test]
    fn a_config_file_alone_gives_a_master_every_required_flag() {
        let file = TestFile::new(MASTER);
        let args = master(parse(&["master", "--config", file.path()]).expect("valid"));
        assert_eq!(args.id, 2);
        assert_eq!(args.masters.0.len(), 3);
        assert_eq!(args.data_dir, Path::new("/var/lib/berth/master"));
        assert_eq!(args.secret_file, Path::new("/etc/berth/secret"));
        assert_eq!(args.cluster.as_str(), crate::cli::CLUSTER_DEFAULT);
        assert_eq!(args.listen, None);
        assert_eq!(args.config.as_deref(), Some(file.path.as_path()));
    }

    #[test]
    fn a_flag_overrides_the_config_file() {
        let file = TestFile::new(&format!("{MASTER}cluster = \"from-file\"\n"));
        let cli = parse(&[
            "--log-format",
            "json",
            "master",
            "--id",
            "3",
            "--config",
            file.path(),
            "--cluster",
            "from-flag",
        ])
        .expect("valid");
        assert_eq!(cli.log_format, LogFormat::Json);
        let args = master(cli);
        assert_eq!(args.id, 3);
        assert_eq!(args.cluster.as_str(), "from-flag");
        assert_eq!(args.data_dir, Path::new("/var/lib/berth/master"));
    }

    #[test]
    fn the_config_file_overrides_the_built_in_defaults() {
        let file = TestFile::new(&format!(
            "{MASTER}cluster = \"prod\"\nlisten = \"0.0.0.0:5051\"\nlog-format = \"json\"\n"
        ));
        let cli = parse(&["master", "--config", file.path()]).expect("valid");
        assert_eq!(cli.log_format, LogFormat::Json);
        let args = master(cli);
        assert_eq!(args.cluster.as_str(), "prod");
        assert_eq!(
            args.listen,
            Some("0.0.0.0:5051".parse().expect("an address"))
        );
    }

    #[test]
    fn an_agent_and_a_local_cluster_read_their_own_keys() {
        let agent = TestFile::new(
            "masters = \"127.0.0.1:5050\"\nlisten = \"127.0.0.1:5051\"\n\
             work-dir = \"work\"\nsecret-file = \"secret\"\nresources = \"cpus:2;mem:512\"\n",
        );
        match parse(&["agent", "--config", agent.path()])
            .expect("valid")
            .command
        {
            BerthCommand::Agent(args) => {
                assert_eq!(args.work_dir, Path::new("work"));
                assert_eq!(
                    args.resources.map(|resources| resources.to_string()),
                    Some("cpus:2;mem:512".to_string())
                );
            }
            other => panic!("expected berth agent, got {other:?}"),
        }
        let local = TestFile::new("masters = 5\nagents = 0\ndemo = true\n");
        match parse(&["local", "--config", local.path()])
            .expect("valid")
            .command
        {
            BerthCommand::Local(args) => {
                assert_eq!((args.masters, args.agents, args.demo), (5, 0, true));
            }
            other => panic!("expected berth local, got {other:?}"),
        }
    }

    /// The keys are exactly the documented long flags, with the TOML type of their values;
    /// a new flag shows up here, and in the README's list.
    #[test]
    fn the_keys_are_the_long_flags_of_each_command() {
        let root = Cli::command();
        let described = |command: &str| -> Vec<(String, ValueKind)> {
            config_keys(&root, command)
                .into_values()
                .map(|key| (key.name, key.kind))
                .collect()
        };
        let kinds = |keys: &[(&str, ValueKind)]| -> Vec<(String, ValueKind)> {
            let mut keys: Vec<(String, ValueKind)> = keys
                .iter()
                .map(|(name, kind)| (name.to_string(), *kind))
                .collect();
            keys.sort_by(|left, right| left.0.cmp(&right.0));
            keys
        };
        use ValueKind as Kind;
        assert_eq!(
            described("master"),
            kinds(&[
                ("cluster", Kind::String),
                ("data-dir", Kind::String),
                ("id", Kind::Integer),
                ("listen", Kind::String),
                ("log-format", Kind::String),
                ("masters", Kind::String),
                ("max-connections", Kind::Integer),
                ("secret-file", Kind::String),
            ])
        );
        assert_eq!(
            described("agent"),
            kinds(&[
                ("advertise", Kind::String),
                ("cluster", Kind::String),
                ("hostname", Kind::String),
                ("listen", Kind::String),
                ("log-format", Kind::String),
                ("masters", Kind::String),
                ("resources", Kind::String),
                ("secret-file", Kind::String),
                ("work-dir", Kind::String),
            ])
        );
        assert_eq!(
            described("local"),
            kinds(&[
                ("agent-resources", Kind::String),
                ("agents", Kind::Integer),
                ("demo", Kind::Boolean),
                ("dir", Kind::String),
                ("log-format", Kind::String),
                ("masters", Kind::Integer),
            ])
        );
    }

    #[test]
    fn an_unknown_key_is_named_with_its_file_and_line() {
        let file = TestFile::new(&format!("{MASTER}data_dir = \"/elsewhere\"\n"));
        let error = config_error(&["master", "--config", file.path()]);
        assert!(
            matches!(&error, ConfigError::UnknownKey { line: 6, key, suggestion: Some(suggested), .. }
                if key == "data_dir" && suggested == "data-dir"),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(
            message.starts_with(&format!("{}:6: unknown key `data_dir`", file.path())),
            "{message}"
        );
        assert!(message.contains("(did you mean `data-dir`?)"), "{message}");
        assert!(message.contains("data-dir, id, listen"), "{message}");

        // A key of another command is unknown too.
        let file = TestFile::new("work-dir = \"/w\"\n");
        let error = config_error(&["master", "--config", file.path()]);
        assert!(
            matches!(
                &error,
                ConfigError::UnknownKey {
                    line: 1,
                    suggestion: None,
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_is_named_with_its_file_and_line() {
        let cases = [
            ("id = \"2\"\n", "id", ValueKind::Integer, "string"),
            ("cluster = 7\n", "cluster", ValueKind::String, "integer"),
            (
                "masters = [\"1=127.0.0.1:5050\"]\n",
                "masters",
                ValueKind::String,
                "array",
            ),
            (
                "[data-dir]\npath = \"/d\"\n",
                "data-dir",
                ValueKind::String,
                "table",
            ),
        ];
        for (text, key, expected, found) in cases {
            let file = TestFile::new(text);
            let error = config_error(&["master", "--config", file.path()]);
            match &error {
                ConfigError::WrongType {
                    line: 1,
                    key: error_key,
                    expected: error_expected,
                    found: error_found,
                    ..
                } => {
                    assert_eq!(
                        (error_key.as_str(), *error_expected, *error_found),
                        (key, expected, found)
                    );
                }
                other => panic!("{text}: expected a wrong type, got {other:?}"),
            }
            assert!(
                error
                    .to_string()
                    .starts_with(&format!("{}:1: `{key}` must be", file.path())),
                "{error}"
            );
        }
        let file = TestFile::new("demo = \"yes\"\n");
        let error = config_error(&["local", "--config", file.path()]);
        assert_eq!(
            error.to_string(),
            format!(
                "{}:1: `demo` must be a boolean (true or false), not string",
                file.path()
            )
        );
    }

    #[test]
    fn malformed_toml_is_named_with_its_file_and_line() {
        let file = TestFile::new("id = 1\nmasters = \"1=127.0.0.1:5050\ndata-dir = \"/d\"\n");
        let error = config_error(&["master", "--config", file.path()]);
        assert!(matches!(error, ConfigError::Syntax { .. }), "{error:?}");
        let message = error.to_string();
        assert!(
            message.starts_with(&format!(
                "the configuration file {} is not valid TOML",
                file.path()
            )),
            "{message}"
        );
        assert!(message.contains("line 2"), "{message}");

        let file = TestFile::new("id = 1\nid = 2\n");
        let error = config_error(&["master", "--config", file.path()]);
        assert!(
            error.to_string().contains("line 2"),
            "a duplicate key: {error}"
        );
    }

    #[test]
    fn a_value_its_flag_refuses_is_named_with_its_file_and_line() {
        let cases = [
            ("id = 300\n", "id", "300"),
            (
                "masters = \"1=127.0.0.1:5050,2=127.0.0.1:5051\"\n",
                "masters",
                "must list 1, 3 or 5 masters, not 2",
            ),
            (
                "log-format = \"xml\"\n",
                "log-format",
                "\"xml\" is not one of: text, json",
            ),
            ("cluster = \"-x\"\n", "cluster", "a name"),
        ];
        for (text, key, reason) in cases {
            let file = TestFile::new(&format!("\n{text}"));
            let error = config_error(&["master", "--config", file.path()]);
            assert!(
                matches!(&error, ConfigError::InvalidValue { line: 2, key: error_key, .. } if error_key == key),
                "{text}: {error:?}"
            );
            let message = error.to_string();
            assert!(
                message.starts_with(&format!("{}:2: invalid value for `{key}`", file.path())),
                "{message}"
            );
            assert!(message.contains(reason), "{text}: {message}");
        }
    }

    #[test]
    fn a_bad_value_is_refused_even_where_a_flag_overrides_it() {
        let file = TestFile::new(&format!("{MASTER}cluster = \"not a name\"\n"));
        let error = config_error(&["master", "--config", file.path(), "--cluster", "prod"]);
        assert!(
            matches!(&error, ConfigError::InvalidValue { key, .. } if key == "cluster"),
            "{error:?}"
        );
    }

    #[test]
    fn a_missing_config_file_is_named() {
        let missing = std::env::temp_dir().join("berth-config-does-not-exist.toml");
        let missing = missing.to_str().expect("a UTF-8 temporary directory");
        let error = config_error(&["master", "--config", missing]);
        assert!(
            matches!(&error, ConfigError::Read { error, .. } if error.kind() == io::ErrorKind::NotFound),
            "{error:?}"
        );
        assert!(
            error
                .to_string()
                .starts_with(&format!("cannot read the configuration file {missing}: ")),
            "{error}"
        );
    }

    #[test]
    fn without_a_config_file_the_command_line_is_parsed_as_before() {
        let args = master(
            parse(&[
                "master",
                "--id",
                "1",
                "--masters",
                "1=127.0.0.1:5050",
                "--data-dir",
                "d",
                "--secret-file",
                "s",
            ])
            .expect("valid"),
        );
        assert_eq!(args.config, None);
        // A required flag is still required.
        match parse(&["master", "--id", "1"]) {
            Err(CommandLineError::Usage(error)) => {
                assert_eq!(
                    error.kind(),
                    clap::error::ErrorKind::MissingRequiredArgument
                );
            }
            other => panic!("expected a usage error, got {other:?}"),
        }
        // A flag the file does not set is still required.
        let file = TestFile::new("id = 1\n");
        match parse(&["master", "--config", file.path()]) {
            Err(CommandLineError::Usage(error)) => {
                assert_eq!(
                    error.kind(),
                    clap::error::ErrorKind::MissingRequiredArgument
                );
                assert!(error.to_string().contains("--masters"), "{error}");
            }
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn integers_in_any_base_are_read_as_numbers() {
        let file = TestFile::new("masters = 0x3\nagents = 0b1\n");
        match parse(&["local", "--config", file.path()])
            .expect("valid")
            .command
        {
            BerthCommand::Local(args) => assert_eq!((args.masters, args.agents), (3, 1)),
            other => panic!("expected berth local, got {other:?}"),
        }
    }
}
