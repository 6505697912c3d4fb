//! `labelhost apps list|load|reload|retire|roll`: an operator's app management against
//! running servers, through their REST API (`/apps`), with the server's typed errors as
//! the message.

use crate::config::{AppsAction, AppsArgs};
use crate::{Error, Result};
use serde_json::Value;
use std::time::Duration;

/// One app's line: name, version, generation, plugin-api and its tasks by kind.
fn line(app: &Value) -> String {
    let text = |k: &str| app[k].as_str().unwrap_or("-").to_owned();
    let tasks: Vec<String> = app["tasks"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .map(|t| {
                    format!(
                        "{}:{}",
                        t["kind"].as_str().unwrap_or("?"),
                        t["name"].as_str().unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    format!(
        "{:<16} {:<10} {:>10} {:<10} {}",
        text("name"),
        text("version"),
        app["generation"]
            .as_u64()
            .map_or("-".into(), |g| g.to_string()),
        text("plugin_api"),
        tasks.join(" ")
    )
}

/// The answer's JSON, or the server's `detail` (and code) as the error.
fn answer(r: reqwest::blocking::Response) -> Result<Value> {
    let status = r.status();
    let body: Value = r
        .json()
        .map_err(|e| Error::Internal(format!("the server's answer ({status}) is not JSON: {e}")))?;
    if status.is_success() {
        return Ok(body);
    }
    let detail = body["detail"].as_str().unwrap_or("no detail");
    let code = body["code"]
        .as_str()
        .map_or(String::new(), |c| format!(" {c}"));
    Err(Error::BadRequest(format!(
        "the server answered {status}{code}: {detail}"
    )))
}

/// Runs one `apps` action and prints what the server answered.
pub fn apps(args: &AppsArgs) -> Result<()> {
    let base = args.server.trim_end_matches('/');
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .map_err(|e| Error::Internal(format!("HTTP client: {e}")))?;
    let send = |req: reqwest::blocking::RequestBuilder| {
        let req = match &args.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        req.send()
            .map_err(|e| Error::BadRequest(format!("cannot reach {base}: {e}")))
            .and_then(answer)
    };
    let name_of = |v: &Value| v["name"].as_str().unwrap_or("?").to_owned();
    match &args.action {
        AppsAction::List => {
            let all = send(http.get(format!("{base}/apps")))?;
            println!(
                "{:<16} {:<10} {:>10} {:<10} tasks",
                "app", "version", "generation", "plugin-api"
            );
            for app in all["apps"].as_array().into_iter().flatten() {
                println!("{}", line(app));
            }
        }
        AppsAction::Load { bundle } => {
            let body = serde_json::json!({ "bundle": bundle });
            let app = send(http.post(format!("{base}/apps")).json(&body))?;
            println!(
                "loaded {} (generation {})",
                name_of(&app),
                app["generation"]
            );
        }
        AppsAction::Reload { name } => {
            let app = send(http.post(format!("{base}/apps/{name}/reload")))?;
            println!(
                "reloaded {} (generation {})",
                name_of(&app),
                app["generation"]
            );
        }
        AppsAction::Retire { name } => {
            let out = send(http.delete(format!("{base}/apps/{name}")))?;
            println!("retired {} (drained: {})", name_of(&out), out["drained"]);
        }
        AppsAction::Roll {
            name,
            hosts,
            expect_version,
        } => {
            for (i, host) in hosts.iter().enumerate() {
                let host = host.trim_end_matches('/');
                let before = send(http.get(format!("{host}/apps")))?;
                let was = before["apps"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|a| a["name"] == name.as_str())
                    .map(|a| a["generation"].clone())
                    .ok_or_else(|| Error::NotFound(format!("{host}: no app {name:?} loaded")))?;
                let app = send(http.post(format!("{host}/apps/{name}/reload"))).map_err(|e| {
                    Error::BadRequest(format!("{host}: {e}; hosts after it were not swapped"))
                })?;
                let version = app["version"].as_str().unwrap_or("?");
                println!(
                    "{host}: {name} generation {was} -> {} (version {version})",
                    app["generation"]
                );
                if let Some(want) = expect_version.as_deref().filter(|w| *w != version) {
                    let left = hosts.len() - i - 1;
                    return Err(Error::BadRequest(format!(
                        "{host} loaded version {version}, not {want}; the roll stops here ({left} hosts not swapped)"
                    )));
                }
            }
        }
    }
    Ok(())
}
