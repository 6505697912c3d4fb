//! The optional config file (`--config FILE` or `LABELHOST_CONFIG`): a TOML table per verb
//! whose keys are that verb's long flags (`[serve] port = 8000`). Its settings become flags
//! before clap reads the command line, so one parser checks them all and the order of
//! precedence is: the command line, then the environment, then the file, then defaults.

use clap::CommandFactory;
use std::ffi::OsString;

/// A setting from the file, as the flag it becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct Injected {
    /// The flags, in the order they go on the command line.
    pub flags: Vec<String>,
    /// Where they came from.
    pub file: String,
}

/// `argv` with the config file's settings for its verb added after the verb; the file's
/// name and what it added (empty without a file). An error is a sentence naming the file
/// and the setting.
pub fn with_file(argv: Vec<OsString>) -> Result<(Vec<OsString>, Option<Injected>), String> {
    let Some(path) = config_path(&argv) else {
        return Ok((argv, None));
    };
    let file = path.to_string_lossy().into_owned();
    let text = std::fs::read_to_string(&path).map_err(|e| format!("config file {file}: {e}"))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("config file {file}: {e}"))?;
    let cli = crate::config::Cli::command();
    for section in table.keys() {
        if cli.find_subcommand(section).is_none() {
            let verbs: Vec<&str> = cli.get_subcommands().map(|c| c.get_name()).collect();
            return Err(format!(
                "config file {file}: unknown section [{section}]; the sections are the verbs: {}",
                verbs.join(", ")
            ));
        }
    }
    // The verb: the first argument that names one (past the program's name).
    let Some((at, verb)) = argv
        .iter()
        .enumerate()
        .skip(1)
        .find_map(|(i, a)| cli.find_subcommand(a.to_str()?).map(|c| (i, c)))
    else {
        return Ok((argv, None));
    };
    let Some(toml::Value::Table(settings)) = table.get(verb.get_name()) else {
        return Ok((argv, None));
    };
    let given = |long: &str| {
        argv.iter().filter_map(|a| a.to_str()).any(|a| {
            a.strip_prefix("--")
                .and_then(|a| a.strip_prefix(long))
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('='))
        })
    };
    let mut flags = Vec::new();
    for (key, value) in settings {
        let long = key.replace('_', "-");
        let where_ = || format!("config file {file}: [{}] {key}", verb.get_name());
        let Some(arg) = verb
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()) && long != "config")
        else {
            return Err(format!(
                "{}: no such setting; the settings are the flags of `labelhost {} --help`",
                where_(),
                verb.get_name()
            ));
        };
        let from_env = arg.get_env().is_some_and(|v| std::env::var_os(v).is_some());
        if given(&long) || from_env {
            continue;
        }
        let takes_value = arg.get_action().takes_values();
        for item in items(value).map_err(|e| format!("{}: {e}", where_()))? {
            match (takes_value, item) {
                (false, Item::Bool(true)) => flags.push(format!("--{long}")),
                (false, Item::Bool(false)) => {}
                (false, _) => return Err(format!("{}: expected true or false", where_())),
                (true, Item::Text(v)) => flags.push(format!("--{long}={v}")),
                (true, Item::Bool(b)) => flags.push(format!("--{long}={b}")),
            }
        }
    }
    let mut out = argv;
    let added: Vec<OsString> = flags.iter().map(OsString::from).collect();
    out.splice(at + 1..at + 1, added);
    Ok((out, Some(Injected { flags, file })))
}

enum Item {
    Bool(bool),
    Text(String),
}

/// A setting's values: an array is one flag per element.
fn items(value: &toml::Value) -> Result<Vec<Item>, String> {
    let one = |v: &toml::Value| match v {
        toml::Value::Boolean(b) => Ok(Item::Bool(*b)),
        toml::Value::String(s) => Ok(Item::Text(s.clone())),
        toml::Value::Integer(i) => Ok(Item::Text(i.to_string())),
        toml::Value::Float(f) => Ok(Item::Text(f.to_string())),
        other => Err(format!(
            "expected a string, number or boolean, not {}",
            other.type_str()
        )),
    };
    match value {
        toml::Value::Array(values) => values.iter().map(one).collect(),
        v => one(v).map(|i| vec![i]),
    }
}

/// `--config FILE` / `--config=FILE` anywhere on the command line, else `LABELHOST_CONFIG`.
fn config_path(argv: &[OsString]) -> Option<std::path::PathBuf> {
    let mut args = argv.iter().skip(1);
    while let Some(a) = args.next() {
        let Some(s) = a.to_str() else { continue };
        if s == "--" {
            break;
        }
        if s == "--config" {
            return args.next().map(Into::into);
        }
        if let Some(path) = s.strip_prefix("--config=") {
            return Some(path.into());
        }
    }
    std::env::var_os("LABELHOST_CONFIG")
        .filter(|v| !v.is_empty())
        .map(Into::into)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::with_file;
    use std::ffi::OsString;

    fn argv(args: &[&str]) -> Vec<OsString> {
        std::iter::once("labelhost")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect()
    }

    fn run(file: &str, args: &[&str]) -> Result<Vec<String>, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labelhost.toml");
        std::fs::write(&path, file).unwrap();
        let mut all = vec!["--config", path.to_str().unwrap()];
        all.extend(args);
        let (out, _) = with_file(argv(&all))?;
        Ok(out
            .into_iter()
            .skip(3)
            .map(|a| a.into_string().unwrap())
            .collect())
    }

    #[test]
    fn the_file_s_settings_become_flags_after_the_verb_and_the_command_line_wins() {
        let file = r#"
            [serve]
            plugins = "/srv/plugins"
            port = 8100
            share_paths = true
            follow-symlinks = false
            conf = ["a=1", "b=2"]
            warm-heap = 2.5
            [apps]
            server = "http://h:1"
        "#;
        let out = run(file, &["serve", "--port", "9000"]).unwrap();
        assert_eq!(
            out,
            [
                "serve",
                "--conf=a=1",
                "--conf=b=2",
                "--plugins=/srv/plugins",
                "--share-paths",
                "--warm-heap=2.5",
                "--port",
                "9000"
            ]
        );
        let out = run(file, &["apps", "list"]).unwrap();
        assert_eq!(out, ["apps", "--server=http://h:1", "list"]);
    }

    #[test]
    fn unknown_sections_settings_and_types_are_named() {
        let e = run("[srve]\nport = 1\n", &["serve"]).unwrap_err();
        assert!(
            e.contains("unknown section [srve]") && e.contains("serve"),
            "{e}"
        );
        let e = run("[serve]\nprot = 1\n", &["serve"]).unwrap_err();
        assert!(e.contains("[serve] prot: no such setting"), "{e}");
        let e = run("[serve]\nshare-paths = \"yes\"\n", &["serve"]).unwrap_err();
        assert!(
            e.contains("[serve] share-paths: expected true or false"),
            "{e}"
        );
        let e = run("[serve]\nport = { a = 1 }\n", &["serve"]).unwrap_err();
        assert!(
            e.contains("[serve] port: expected a string, number or boolean, not table"),
            "{e}"
        );
        let e = run("[serve\n", &["serve"]).unwrap_err();
        assert!(e.contains("labelhost.toml"), "{e}");
    }

    #[test]
    fn no_config_file_leaves_the_command_line_as_it_is() {
        let args = argv(&["serve", "--port", "1"]);
        if std::env::var_os("LABELHOST_CONFIG").is_none() {
            assert_eq!(with_file(args.clone()).unwrap(), (args, None));
        }
    }
}
