//! `rill run --orders-to-postgres` against a real PostgreSQL (`RILL_POSTGRES_URL`, which
//! `scripts/test.sh` sets from `scripts/postgres.sh start`): the README's walkthrough, an
//! order placed over HTTP shows up in the table in its decided state.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{Rill, data_dir, decided, order, post_order};
use postgres::{Client, NoTls};
use reqwest::StatusCode;

fn postgres_url() -> Option<String> {
    match std::env::var("RILL_POSTGRES_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var_os("RILL_REQUIRE_POSTGRES").is_some() => {
            panic!("RILL_REQUIRE_POSTGRES is set but RILL_POSTGRES_URL is not")
        }
        Err(_) => {
            // Straight to stderr: the test harness would swallow eprintln! of a passing test.
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED: RILL_POSTGRES_URL is unset; run `scripts/postgres.sh start` and \
                 export its output as RILL_POSTGRES_URL to test `rill run --orders-to-postgres` ***\n"
            );
            None
        }
    }
}

/// An order's row as (customer_id, state, product, quantity, price), or `None` while absent.
type OrderRow = (i64, String, String, i32, f64);

/// Runs a query on a thread of its own: the blocking client starts a runtime, which it may
/// not do on the test's.
fn order_row(url: &str, table: &str, id: &str) -> Option<OrderRow> {
    let (url, table, id) = (url.to_string(), table.to_string(), id.to_string());
    std::thread::spawn(move || {
        let mut client = Client::connect(&url, NoTls).expect("connect to PostgreSQL");
        let exists: bool = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
            .expect("look for the table")
            .get(0);
        if !exists {
            return None;
        }
        client
            .query_opt(
                &format!(
                    "SELECT customer_id, state, product, quantity, price FROM {table} WHERE id = $1"
                ),
                &[&id],
            )
            .expect("read the table")
            .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4)))
    })
    .join()
    .expect("the SQL thread")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_placed_over_http_ends_in_the_table_in_its_decided_state() {
    let Some(url) = postgres_url() else { return };
    let table = "orders_walkthrough";
    {
        let url = url.clone();
        std::thread::spawn(move || {
            let mut client = Client::connect(&url, NoTls).expect("connect to PostgreSQL");
            client
                .batch_execute(&format!(
                    "DROP TABLE IF EXISTS {table};
                     DELETE FROM rill_sink_offsets WHERE sink = 'rill_{table}';"
                ))
                .or_else(|_| client.batch_execute(&format!("DROP TABLE IF EXISTS {table}")))
                .expect("clean up");
        })
        .join()
        .expect("the SQL thread");
    }
    let root = tempfile::tempdir().expect("temporary directory");
    let rill = Rill::start(
        &data_dir(&root, "data"),
        &["--orders-to-postgres", &url, "--orders-table", table],
    )
    .await;
    let client = reqwest::Client::new();
    let placed = order("o1", 1, "JUMPERS", 1, 12.5);
    assert_eq!(
        post_order(&client, &rill.base, &placed).await,
        StatusCode::CREATED
    );
    let state = decided(&client, &rill.base, "o1").await["state"].clone();
    assert_eq!(state, "VALIDATED");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let row = order_row(&url, table, "o1");
        if let Some((customer, row_state, product, quantity, price)) = &row
            && *row_state == state
        {
            assert_eq!(
                (*customer, product.as_str(), *quantity, *price),
                (1, "JUMPERS", 1, 12.5)
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "o1 not {state} in {table}: {row:?}\n{}",
            rill.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let log_path = rill.log.clone();
    rill.stop();
    let log = std::fs::read_to_string(&log_path).expect("the server's log");
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, password)| password.to_string())
        .expect("the test URL carries a password");
    assert!(
        log.contains("writing orders into PostgreSQL"),
        "the sink started: {log}"
    );
    assert!(!log.contains(&password), "the password was logged: {log}");
}
