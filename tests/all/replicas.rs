//! Two `waygate serve` replicas on one PostgreSQL database (the server `cargo xtask test`
//! starts) behave as one Waygate: a key made against the shared database works on both, a
//! revoked one stops on both within the key ring's refresh, the command history of both
//! lands in one table that either serves, and a reload or a disable through one reaches
//! the other (`LISTEN`/`NOTIFY`).

use crate::support::{
    ADMIN_KEY, Binary, blocking_request, eventually, fresh_postgres_database, install_example,
    keys_cli_on, spawn_binary,
};
use serde_json::Value;

/// `waygate keys ARGS --database-url URL`; its standard output.
fn keys_cli(url: &str, args: &[&str]) -> String {
    keys_cli_on(&["--database-url".as_ref(), url.as_ref()], args)
}

fn execute(replica: &Binary, key: &str) -> (u16, String) {
    blocking_request(
        &replica.addr,
        "POST",
        "/mcp/execute",
        &[("x-api-key", key)],
        r#"{"action":"hostile__ok","params":{}}"#,
    )
}

fn admin_post(replica: &Binary, path: &str) -> (u16, String) {
    blocking_request(&replica.addr, "POST", path, &[("x-api-key", ADMIN_KEY)], "")
}

/// The `status` of plugin `name` in `GET /plugins`, if listed.
fn plugin_status(replica: &Binary, name: &str) -> Option<String> {
    let (status, body) = blocking_request(
        &replica.addr,
        "GET",
        "/plugins",
        &[("x-api-key", ADMIN_KEY)],
        "",
    );
    assert_eq!(status, 200, "{body}");
    let listed: Value = serde_json::from_str(&body).unwrap();
    listed["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|plugin| plugin["name"] == name)
        .and_then(|plugin| plugin["status"].as_str().map(str::to_owned))
}

fn history(replica: &Binary) -> Value {
    let (status, body) = blocking_request(
        &replica.addr,
        "GET",
        "/mcp/commands/history?limit=100",
        &[("x-api-key", ADMIN_KEY)],
        "",
    );
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn two_replicas_on_one_postgres_database_share_keys_and_history() {
    let url = fresh_postgres_database();
    let (data_a, data_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Both start with the same WAYGATE_ADMIN_KEY: the first stores it, the second finds it.
    let a = spawn_binary(data_a.path(), &[("WAYGATE_DATABASE_URL", &url)]);
    let b = spawn_binary(data_b.path(), &[("WAYGATE_DATABASE_URL", &url)]);
    assert!(
        !data_a.path().join("waygate.db").exists() && !data_b.path().join("waygate.db").exists(),
        "no replica may fall back to an SQLite file"
    );

    let created: Value = serde_json::from_str(&keys_cli(
        &url,
        &["create", "--name", "ci", "--role", "caller", "--json"],
    ))
    .unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    for (name, replica) in [("a", &a), ("b", &b)] {
        eventually(&format!("the new key working on replica {name}"), || {
            execute(replica, &key).0 == 200
        });
    }

    // One command through each replica; both show both, from the one shared table.
    let request_ids: Vec<String> = [&a, &b]
        .iter()
        .map(|replica| {
            let (status, body) = execute(replica, ADMIN_KEY);
            assert_eq!(status, 200, "{body}");
            let answer: Value = serde_json::from_str(&body).unwrap();
            let command_id = answer["command_id"].as_str().unwrap();
            format!("req_{}", command_id.trim_start_matches("cmd_"))
        })
        .collect();
    let shows_both = |replica: &Binary| {
        let listed = history(replica);
        let seen: Vec<&str> = listed["commands"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|row| row["request_id"].as_str())
            .collect();
        request_ids.iter().all(|id| seen.contains(&id.as_str()))
    };
    // History is written in batches, every 200 ms.
    eventually("both commands in replica a's history", || shows_both(&a));
    assert!(shows_both(&b), "replica b reads the same table");

    keys_cli(&url, &["revoke", "ci"]);
    for (name, replica) in [("a", &a), ("b", &b)] {
        eventually(
            &format!("the revoked key refused on replica {name}"),
            || execute(replica, &key).0 == 401,
        );
    }

    // A package appears in both plugin directories (a shared volume, in production); only
    // replica a is asked to reload, and b follows.
    for data in [&data_a, &data_b] {
        install_example(data.path(), "echo");
    }
    assert_eq!(plugin_status(&b, "echo"), None);
    assert_eq!(admin_post(&a, "/plugins/reload").0, 200);
    assert_eq!(plugin_status(&a, "echo").as_deref(), Some("active"));
    eventually("replica b loading what a's reload loaded", || {
        plugin_status(&b, "echo").as_deref() == Some("active")
    });

    // Disabled through b: the wish is in the shared table, and a reloads to honour it. (b
    // may still be finishing the reload it repeated: 409 until then.)
    eventually("replica b accepting the disable", || {
        admin_post(&b, "/plugins/echo/disable").0 == 200
    });
    eventually("replica a taking the plugin b disabled out", || {
        plugin_status(&a, "echo").as_deref() == Some("disabled")
    });
}

/// Replicas started at the same moment on an empty database (a new Deployment) all come
/// up and accept the admin key: one migrates while the others wait for its lock (without
/// the lock, the others fail on tables the first is creating). The key itself is stored by
/// whichever gets there first; the race where two try at once is handled in
/// `ensure_admin_key` but this test does not reliably reach it.
#[test]
fn replicas_starting_together_on_an_empty_database_all_serve() {
    let url = fresh_postgres_database();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let replicas: Vec<Binary> = std::thread::scope(|scope| {
        let starting: Vec<_> = dirs
            .iter()
            .map(|dir| {
                let url = url.as_str();
                scope.spawn(move || spawn_binary(dir.path(), &[("WAYGATE_DATABASE_URL", url)]))
            })
            .collect();
        starting
            .into_iter()
            .map(|replica| replica.join().expect("a replica failed to start"))
            .collect()
    });
    for replica in &replicas {
        let (status, body) = execute(replica, ADMIN_KEY);
        assert_eq!(status, 200, "{body}");
    }
}
