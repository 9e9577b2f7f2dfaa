//! `rill run --orders-to-postgres` against a real PostgreSQL (`RILL_POSTGRES_URL`, which
//! `scripts/test.sh` sets from `scripts/postgres.sh start`): the README's walkthrough, an
//! order placed over HTTP shows up in the table in its decided state.

mod common;

use std::time::{Duration, Instant};

use common::{Rill, data_dir, decided, order, post_order, stop_and_check_log, with_postgres};
use reqwest::StatusCode;
use rill_test_postgres::{password, postgres_url};

/// What this test tests, for the message that says it is skipped.
const WHAT: &str = "`rill run --orders-to-postgres`";

/// An order's row as (customer_id, state, product, quantity, price), or `None` while absent.
type OrderRow = (i64, String, String, i32, f64);

/// The row of order `id` in `table`, or `None` while the table or the row is absent.
fn order_row(url: &str, table: &str, id: &str) -> Option<OrderRow> {
    let (table, id) = (table.to_string(), id.to_string());
    with_postgres(url, move |client| {
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_placed_over_http_ends_in_the_table_in_its_decided_state() {
    let Some(url) = postgres_url(WHAT) else {
        return;
    };
    let table = "orders_walkthrough";
    with_postgres(&url, move |client| {
        client
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS {table};
                 DELETE FROM rill_sink_offsets WHERE sink = 'rill_{table}';"
            ))
            .or_else(|_| client.batch_execute(&format!("DROP TABLE IF EXISTS {table}")))
            .expect("clean up");
    });
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

    let password = password(&url).expect("the test URL carries a password");
    stop_and_check_log(rill, "writing orders into PostgreSQL", password);
}
