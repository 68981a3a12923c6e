//! Typed reads of TOML values, each failure naming the key path it concerns.
//!
//! These helpers check types, unknown keys and the value formats that several sections
//! share: durations, URLs and secrets that may come from a file. They know nothing about
//! any particular section, and they never put a secret or an environment variable's value
//! into an error.

use std::fmt;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::{Table, Value};
use url::Url;

use super::error::ConfigError;
use super::interpolate::EnvSources;
use super::suggest;

/// A TOML key path as errors print it: `sinks.ops.headers`, `rules[1].to`, `sinks."a b"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct KeyPath(String);

impl KeyPath {
    /// Returns the empty path of the document itself, the parent of every top-level key.
    pub(super) fn root() -> Self {
        KeyPath(String::new())
    }

    /// Returns the path of `key` inside this table, quoting the key when TOML would.
    pub(super) fn key(&self, key: &str) -> KeyPath {
        let is_bare = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        let key = if is_bare { key.to_owned() } else { format!("{key:?}") };
        if self.0.is_empty() { KeyPath(key) } else { KeyPath(format!("{}.{key}", self.0)) }
    }

    /// Returns the path of element `index` of this array.
    pub(super) fn index(&self, index: usize) -> KeyPath {
        KeyPath(format!("{}[{index}]", self.0))
    }

    pub(super) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Shared state of every section reader: environment sources and the base directory.
pub(super) struct Context {
    /// Values that came from environment variables and must not be printed.
    pub(super) env_sources: EnvSources,
    /// The directory that relative `*_file` paths are resolved against.
    pub(super) base_dir: PathBuf,
}

impl Context {
    /// Returns how an error may refer to the string at `path`: quoted, or, when it came
    /// from the environment, by the names of the variables it came from.
    pub(super) fn shown(&self, path: &KeyPath, text: &str) -> String {
        match self.env_sources.variables(path) {
            Some(names) => format!("the value of {}", variable_list(names)),
            None => format!("`{text}`"),
        }
    }

    /// Returns ` (from `${NAME}`)` when the value at `path` came from the environment.
    pub(super) fn env_note(&self, path: &KeyPath) -> String {
        match self.env_sources.variables(path) {
            Some(names) => format!(" (from {})", variable_list(names)),
            None => String::new(),
        }
    }
}

fn variable_list(names: &[String]) -> String {
    names.iter().map(|name| format!("`${{{name}}}`")).collect::<Vec<_>>().join(", ")
}

/// A string value and the key it was read from.
///
/// For a secret read through `KEY_file`, `path` is that `KEY_file` key and `value` the
/// trimmed contents of the file.
#[derive(Debug)]
pub(super) struct Text {
    pub(super) path: KeyPath,
    pub(super) value: String,
}

/// One TOML table being read, with its path for errors.
pub(super) struct Section<'a> {
    pub(super) path: KeyPath,
    pub(super) table: &'a Table,
    pub(super) ctx: &'a Context,
}

impl<'a> Section<'a> {
    pub(super) fn new(path: KeyPath, table: &'a Table, ctx: &'a Context) -> Self {
        Section { path, table, ctx }
    }

    /// Rejects the first key not in `known`, suggesting the closest known key.
    pub(super) fn check_keys(&self, known: &[&str]) -> Result<(), ConfigError> {
        let Some(unknown) = self.table.keys().find(|key| !known.contains(&key.as_str())) else {
            return Ok(());
        };
        let hint = suggest::hint(unknown, known);
        Err(ConfigError::at(&self.path.key(unknown), format!("unknown key{hint}")))
    }

    /// Returns the raw value of `key` and its path, if the key is present.
    pub(super) fn get(&self, key: &str) -> Option<(KeyPath, &'a Value)> {
        self.table.get(key).map(|value| (self.path.key(key), value))
    }

    pub(super) fn string(&self, key: &str) -> Result<Option<Text>, ConfigError> {
        let Some((path, value)) = self.get(key) else {
            return Ok(None);
        };
        let text = expect_str(&path, value)?;
        Ok(Some(Text { path, value: text.to_owned() }))
    }

    /// Reads a string that, when present, must not be empty.
    pub(super) fn non_empty_string(&self, key: &str) -> Result<Option<Text>, ConfigError> {
        let text = self.string(key)?;
        if let Some(text) = &text
            && text.value.is_empty()
        {
            let note = self.ctx.env_note(&text.path);
            return Err(ConfigError::at(&text.path, format!("empty{note}; set a value or remove the key")));
        }
        Ok(text)
    }

    pub(super) fn bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        let Some((path, value)) = self.get(key) else {
            return Ok(None);
        };
        match value {
            Value::Boolean(flag) => Ok(Some(*flag)),
            other => Err(wrong_type(&path, "`true` or `false`", other)),
        }
    }

    /// Reads a whole number within `range`.
    pub(super) fn integer_in(&self, key: &str, range: RangeInclusive<i64>) -> Result<Option<i64>, ConfigError> {
        let Some((path, value)) = self.get(key) else {
            return Ok(None);
        };
        let (low, high) = (range.start(), range.end());
        let fix = format!("set a whole number from {low} to {high}");
        match value {
            Value::Integer(number) if range.contains(number) => Ok(Some(*number)),
            Value::Integer(number) => Err(ConfigError::at(&path, format!("{number} is outside {low}..={high}; {fix}"))),
            other => Err(ConfigError::at(&path, format!("expected a whole number, found {}; {fix}", type_name(other)))),
        }
    }

    /// Reads a humantime duration such as `"30s"` or `"1h 30m"`; `example` shows a good one.
    pub(super) fn duration(&self, key: &str, example: &str) -> Result<Option<Duration>, ConfigError> {
        let Some((path, value)) = self.get(key) else {
            return Ok(None);
        };
        let fix = format!("write a duration such as \"{example}\" or \"1h 30m\"");
        let text = match value {
            Value::String(text) => text,
            other => {
                return Err(ConfigError::at(
                    &path,
                    format!("expected a duration string, found {}; {fix}", type_name(other)),
                ));
            }
        };
        humantime::parse_duration(text)
            .map(Some)
            .map_err(|_| ConfigError::at(&path, format!("{} is not a duration; {fix}", self.ctx.shown(&path, text))))
    }

    /// Reads a duration that must be longer than zero.
    pub(super) fn positive_duration(&self, key: &str, example: &str) -> Result<Option<Duration>, ConfigError> {
        let duration = self.duration(key, example)?;
        if duration == Some(Duration::ZERO) {
            let path = self.path.key(key);
            return Err(ConfigError::at(
                &path,
                format!("must be longer than zero; write a duration such as \"{example}\""),
            ));
        }
        Ok(duration)
    }

    /// Reads a sub-table, such as `[akua]` or an inline table.
    pub(super) fn table(&self, key: &str) -> Result<Option<Section<'a>>, ConfigError> {
        let Some((path, value)) = self.get(key) else {
            return Ok(None);
        };
        match value {
            Value::Table(table) => Ok(Some(Section::new(path, table, self.ctx))),
            other => Err(wrong_type(&path, "a table", other)),
        }
    }

    /// Reads an array of tables, as `[[rules]]` writes it; `expected` describes it in errors.
    pub(super) fn tables(&self, key: &str, expected: &str) -> Result<Option<Vec<Section<'a>>>, ConfigError> {
        let Some((path, value)) = self.get(key) else {
            return Ok(None);
        };
        let Value::Array(items) = value else {
            return Err(wrong_type(&path, expected, value));
        };

        let mut sections = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let item_path = path.index(index);
            match item {
                Value::Table(table) => sections.push(Section::new(item_path, table, self.ctx)),
                other => return Err(wrong_type(&item_path, "a table", other)),
            }
        }
        Ok(Some(sections))
    }

    /// Reads a string or an array of strings. A lone string is a list of one, with the
    /// key's own path; array elements get indexed paths.
    pub(super) fn strings(&self, key: &str) -> Result<Option<Vec<Text>>, ConfigError> {
        let Some((path, value)) = self.get(key) else {
            return Ok(None);
        };
        match value {
            Value::String(text) => Ok(Some(vec![Text { path, value: text.clone() }])),
            Value::Array(items) => {
                let mut texts = Vec::with_capacity(items.len());
                for (index, item) in items.iter().enumerate() {
                    let path = path.index(index);
                    let text = expect_str(&path, item)?;
                    texts.push(Text { path, value: text.to_owned() });
                }
                Ok(Some(texts))
            }
            other => Err(wrong_type(&path, "a string or an array of strings", other)),
        }
    }

    /// Reads a secret given either inline as `key` or as a path in `{key}_file`.
    ///
    /// Exactly one of the two may be set. A file is read whole, relative paths resolved
    /// against the configuration file's directory, and surrounding whitespace trimmed. The
    /// result is never empty. `None` means neither key is present.
    pub(super) fn secret(&self, key: &str) -> Result<Option<Text>, ConfigError> {
        let file_key = format!("{key}_file");
        let inline = self.string(key)?;
        let file = self.string(&file_key)?;

        let text = match (inline, file) {
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => {
                let message = format!("set either `{key}` or `{file_key}`, not both");
                return Err(ConfigError::at(&self.path.key(key), message));
            }
            (Some(inline), None) => inline,
            (None, Some(file)) => self.read_secret_file(file)?,
        };

        if text.value.trim().is_empty() {
            let note = self.ctx.env_note(&text.path);
            return Err(ConfigError::at(&text.path, format!("empty{note}; set the {key}")));
        }
        Ok(Some(text))
    }

    /// Reads a secret that must be present, naming both ways to set it when it is not.
    pub(super) fn required_secret(&self, key: &str, example: &str) -> Result<Text, ConfigError> {
        self.secret(key)?.ok_or_else(|| {
            let message = format!("missing; set `{key} = \"{example}\"` or `{key}_file = \"/path/to/file\"`");
            ConfigError::at(&self.path.key(key), message)
        })
    }

    fn read_secret_file(&self, file: Text) -> Result<Text, ConfigError> {
        if file.value.is_empty() {
            return Err(ConfigError::at(&file.path, "empty; set the path of the file that contains the secret"));
        }

        let resolved = resolve(&self.ctx.base_dir, &file.value);
        let contents = std::fs::read_to_string(&resolved).map_err(|error| {
            let named = match self.ctx.env_sources.variables(&file.path) {
                Some(_) => format!("the file named by {}", self.ctx.shown(&file.path, &file.value)),
                None => format!("`{}`", resolved.display()),
            };
            ConfigError::at(&file.path, format!("cannot read {named}: {error}; check the path and its permissions"))
        })?;

        Ok(Text { path: file.path, value: contents.trim().to_owned() })
    }
}

/// Resolves a `*_file` path: absolute paths stay, relative ones join `base_dir`.
fn resolve(base_dir: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() { path.to_owned() } else { base_dir.join(path) }
}

/// Parses an http or https URL.
///
/// With `secret`, the error describes the problem without showing the value, because such
/// URLs often embed a token.
pub(super) fn http_url(ctx: &Context, text: &Text, secret: bool, example: &str) -> Result<Url, ConfigError> {
    let shown = if secret { "the value".to_owned() } else { ctx.shown(&text.path, &text.value) };
    let note = if secret { " (not shown, because it is secret)" } else { "" };
    let fix = format!("write an http or https URL such as \"{example}\"");

    let url = Url::parse(&text.value)
        .map_err(|error| ConfigError::at(&text.path, format!("{shown}{note} is not a valid URL ({error}); {fix}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        let message = format!("{shown}{note} has the scheme `{}`; {fix}", url.scheme());
        return Err(ConfigError::at(&text.path, message));
    }
    Ok(url)
}

fn expect_str<'v>(path: &KeyPath, value: &'v Value) -> Result<&'v str, ConfigError> {
    match value {
        Value::String(text) => Ok(text),
        other => Err(wrong_type(path, "a string", other)),
    }
}

/// Builds "expected X, found Y" without showing the value found.
pub(super) fn wrong_type(path: &KeyPath, expected: &str, found: &Value) -> ConfigError {
    ConfigError::at(path, format!("expected {expected}, found {}", type_name(found)))
}

/// Names a value's TOML type with its article, as in "found an integer".
pub(super) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date-time",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}
