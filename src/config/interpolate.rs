//! `${NAME}` substitution of environment variables into string values.
//!
//! Substitution runs on the parsed TOML tree, so a variable's value is never read as TOML
//! syntax. Every string value is covered, also inside arrays and inline tables; keys are
//! not. The module remembers which values came from the environment, so that errors can
//! avoid printing them.

use std::collections::HashMap;

use toml::{Table, Value};

use super::error::ConfigError;
use super::fields::KeyPath;

/// Key paths whose value had variables substituted, each with the variable names used.
#[derive(Debug, Default)]
pub(super) struct EnvSources(HashMap<String, Vec<String>>);

impl EnvSources {
    /// Returns the names of the variables substituted into the value at `path`, if any.
    pub(super) fn variables(&self, path: &KeyPath) -> Option<&[String]> {
        self.0.get(path.as_str()).map(Vec::as_slice)
    }
}

/// Replaces `${NAME}` in every string value of `table` and returns where it did so.
pub(super) fn interpolate_table(
    table: &mut Table,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<EnvSources, ConfigError> {
    let mut sources = EnvSources::default();
    for (key, value) in table.iter_mut() {
        interpolate_value(value, &KeyPath::root().key(key), env, &mut sources)?;
    }
    Ok(sources)
}

fn interpolate_value(
    value: &mut Value,
    path: &KeyPath,
    env: &dyn Fn(&str) -> Option<String>,
    sources: &mut EnvSources,
) -> Result<(), ConfigError> {
    match value {
        Value::String(text) => {
            let (replaced, variables) = substitute(text, env).map_err(|error| error.at(path))?;
            *text = replaced;
            if !variables.is_empty() {
                sources.0.insert(path.to_string(), variables);
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                interpolate_value(item, &path.index(index), env, sources)?;
            }
        }
        Value::Table(table) => {
            for (key, item) in table.iter_mut() {
                interpolate_value(item, &path.key(key), env, sources)?;
            }
        }
        Value::Integer(_) | Value::Float(_) | Value::Boolean(_) | Value::Datetime(_) => {}
    }
    Ok(())
}

/// An error interpolating a string. Never contains the string itself, which may be a
/// secret.
#[derive(Debug, PartialEq, Eq)]
enum SubstituteError {
    Unset { name: String },
    Unterminated,
    InvalidName,
}

impl SubstituteError {
    fn at(self, path: &KeyPath) -> ConfigError {
        let message = match self {
            SubstituteError::Unset { name } => {
                format!("environment variable `{name}` is not set; set it, or write `$${{` for a literal `${{`")
            }
            SubstituteError::Unterminated => {
                "`${` has no closing `}`; close it as `${NAME}`, or write `$${` for a literal `${`".to_owned()
            }
            SubstituteError::InvalidName => "`${...}` contains an invalid variable name; use letters, digits and `_`, \
                 not starting with a digit, or write `$${` for a literal `${`"
                .to_owned(),
        };
        ConfigError::at(path, message)
    }
}

/// Returns `text` with each `${NAME}` replaced and each `$${` turned into `${`, and the
/// names of the variables it replaced. A `$` not followed by `{` stays as it is.
fn substitute(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<(String, Vec<String>), SubstituteError> {
    let mut output = String::with_capacity(text.len());
    let mut variables = Vec::new();
    let mut rest = text;

    while let Some(dollar) = rest.find('$') {
        output.push_str(&rest[..dollar]);
        rest = &rest[dollar..];

        if let Some(after) = rest.strip_prefix("$${") {
            output.push_str("${");
            rest = after;
            continue;
        }

        let Some(after) = rest.strip_prefix("${") else {
            output.push('$');
            rest = &rest[1..];
            continue;
        };
        let close = after.find('}').ok_or(SubstituteError::Unterminated)?;
        let name = &after[..close];
        if !is_variable_name(name) {
            return Err(SubstituteError::InvalidName);
        }
        let value = env(name).ok_or_else(|| SubstituteError::Unset { name: name.to_owned() })?;
        output.push_str(&value);
        if !variables.iter().any(|known| known == name) {
            variables.push(name.to_owned());
        }
        rest = &after[close + 1..];
    }

    output.push_str(rest);
    Ok((output, variables))
}

/// Returns whether `name` is a portable environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    let starts_well = chars.next().is_some_and(|first| first.is_ascii_alphabetic() || first == '_');
    starts_well && chars.all(|rest| rest.is_ascii_alphanumeric() || rest == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("sk_1".to_owned()),
            "EMPTY" => Some(String::new()),
            "DOLLAR" => Some("a${B}".to_owned()),
            _ => None,
        }
    }

    fn run(text: &str) -> Result<(String, Vec<String>), SubstituteError> {
        substitute(text, &env)
    }

    #[test]
    fn substitute_replaces_variables() {
        assert_eq!(run("${TOKEN}").unwrap(), ("sk_1".to_owned(), vec!["TOKEN".to_owned()]));
        assert_eq!(run("Bearer ${TOKEN}!").unwrap().0, "Bearer sk_1!");
        assert_eq!(
            run("${TOKEN}${EMPTY}${TOKEN}").unwrap(),
            ("sk_1sk_1".to_owned(), vec!["TOKEN".into(), "EMPTY".into()])
        );
    }

    #[test]
    fn substitute_keeps_value_literal() {
        assert_eq!(run("${DOLLAR}").unwrap().0, "a${B}");
    }

    #[test]
    fn substitute_escapes_double_dollar() {
        assert_eq!(run("$${TOKEN}").unwrap(), ("${TOKEN}".to_owned(), vec![]));
        assert_eq!(run("cost $5 and $").unwrap().0, "cost $5 and $");
        assert_eq!(run("$$ ${TOKEN}").unwrap().0, "$$ sk_1");
        assert_eq!(run("$${").unwrap().0, "${");
    }

    #[test]
    fn substitute_rejects_bad_references() {
        assert_eq!(run("${MISSING}"), Err(SubstituteError::Unset { name: "MISSING".into() }));
        assert_eq!(run("abc ${TOKEN"), Err(SubstituteError::Unterminated));
        assert_eq!(run("${}"), Err(SubstituteError::InvalidName));
        assert_eq!(run("${1A}"), Err(SubstituteError::InvalidName));
        assert_eq!(run("${A B}"), Err(SubstituteError::InvalidName));
    }

    #[test]
    fn interpolate_walks_arrays_and_tables() {
        let mut table: Table = r#"
            top = "${TOKEN}"
            list = ["x", "${TOKEN}"]
            inline = { inner = "${TOKEN}", n = 1 }
            [section]
            deep = [{ leaf = "$${TOKEN}" }]
        "#
        .parse()
        .unwrap();

        let sources = interpolate_table(&mut table, &env).unwrap();

        assert_eq!(table["top"].as_str(), Some("sk_1"));
        assert_eq!(table["list"][1].as_str(), Some("sk_1"));
        assert_eq!(table["inline"]["inner"].as_str(), Some("sk_1"));
        assert_eq!(table["section"]["deep"][0]["leaf"].as_str(), Some("${TOKEN}"));
        let root = KeyPath::root();
        assert!(sources.variables(&root.key("top")).is_some());
        assert!(sources.variables(&root.key("list").index(1)).is_some());
        assert!(sources.variables(&root.key("list").index(0)).is_none());
        assert!(sources.variables(&root.key("inline").key("inner")).is_some());
        assert!(sources.variables(&root.key("section").key("deep").index(0).key("leaf")).is_none());
    }

    #[test]
    fn interpolate_error_names_key() {
        let mut table: Table = "[akua]\ntoken = \"${NOPE}\"".parse().unwrap();
        let error = interpolate_table(&mut table, &env).unwrap_err();
        assert_eq!(error.key.as_deref(), Some("akua.token"));
        assert!(error.message.contains("`NOPE`"), "{error}");
    }
}
