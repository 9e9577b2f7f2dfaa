//! The feeds: `add-inventory` (stock per product) and `post-orders` (orders through the REST
//! API with a payment each, measuring how long each takes to be decided).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use rill_orders::domain::{Customer, Order, OrderState, Payment, Product};
use rill_orders::http::ProduceRequest;
use rill_orders::records::InputRecord;
use rill_orders::topics::{CUSTOMERS, LEVELS, PAYMENTS, WAREHOUSE_INVENTORY};
use serde_json::Value;

use crate::client::{Server, ServerArgs};

/// Flags of `rill add-inventory`.
#[derive(Debug, Args)]
pub struct AddInventoryArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Stock of UNDERPANTS.
    #[arg(long, default_value_t = 20)]
    underpants: i64,
    /// Stock of JUMPERS.
    #[arg(long, default_value_t = 10)]
    jumpers: i64,
    /// Stock of STOCKINGS (left unchanged when not given).
    #[arg(long)]
    stockings: Option<i64>,
}

pub fn add_inventory(args: &AddInventoryArgs) -> anyhow::Result<()> {
    let server = Server::new(&args.server.server)?;
    let mut stock = vec![
        (Product::Underpants, args.underpants),
        (Product::Jumpers, args.jumpers),
    ];
    if let Some(stockings) = args.stockings {
        stock.push((Product::Stockings, stockings));
    }
    let records = stock
        .iter()
        .map(|&(product, count)| InputRecord::Stock { product, count }.proxy_json())
        .collect::<Result<_, _>>()?;
    server.produce(WAREHOUSE_INVENTORY, records)?;
    for (product, count) in stock {
        println!("{product} = {count}");
    }
    Ok(())
}

/// Flags of `rill post-orders`.
#[derive(Debug, Args)]
pub struct PostOrdersArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Orders to post.
    #[arg(long, default_value_t = 100)]
    count: u64,
    /// Orders per second offered.
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// Customers to pick from (ids 0..N; written to `customers` first).
    #[arg(long, default_value_t = 100)]
    customers: i64,
    /// Longest wait for an order's final state, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: u64,
}

/// What happened to the posted orders.
#[derive(Default)]
struct Tally {
    posted: AtomicU64,
    validated: AtomicU64,
    failed: AtomicU64,
    timed_out: AtomicU64,
    errors: AtomicU64,
}

/// A small xorshift generator: the feed needs variety, not quality.
struct Random(u64);

impl Random {
    fn seeded() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Random(nanos | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

pub fn post_orders(args: &PostOrdersArgs) -> anyhow::Result<()> {
    if !args.rate.is_finite() || args.rate <= 0.0 {
        bail!("--rate must be above 0");
    }
    let base = args.server.server.trim_end_matches('/').to_string();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the client runtime")?;
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .pool_max_idle_per_host(512)
        .build()
        .context("building the HTTP client")?;
    let tally = Arc::new(Tally::default());
    let latencies = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).context("histogram")?,
    ));
    let prefix = format!(
        "o{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    let mut random = Random::seeded();
    seed_customers(&base, args.customers, &mut random)?;
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    runtime.block_on(async {
        let bar = crate::progress::bar(args.count, "posted");
        let progress = {
            let tally = tally.clone();
            let bar = bar.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_millis(200));
                loop {
                    every.tick().await;
                    bar.set_position(tally.posted.load(Ordering::Relaxed));
                    bar.set_message(format!(
                        "VALIDATED {}, FAILED {}, timed out {}, errors {}",
                        tally.validated.load(Ordering::Relaxed),
                        tally.failed.load(Ordering::Relaxed),
                        tally.timed_out.load(Ordering::Relaxed),
                        tally.errors.load(Ordering::Relaxed),
                    ));
                }
            })
        };
        let mut tasks = Vec::with_capacity(args.count as usize);
        for i in 0..args.count {
            tokio::time::sleep_until((started + interval.mul_f64(i as f64)).into()).await;
            let order = Order {
                id: format!("{prefix}-{i:07}"),
                customer_id: random.below(args.customers.max(1) as u64) as i64,
                state: OrderState::Created,
                product: Product::ALL[random.below(Product::ALL.len() as u64) as usize],
                quantity: 1 + random.below(3) as i32,
                price: (1 + random.below(5_000)) as f64 / 100.0,
            };
            tasks.push(tokio::spawn(place(
                client.clone(),
                base.clone(),
                order,
                args.timeout_ms,
                tally.clone(),
                latencies.clone(),
            )));
        }
        for task in tasks {
            let _ = task.await;
        }
        progress.abort();
        bar.finish_and_clear();
    });
    let elapsed = started.elapsed().as_secs_f64();
    let histogram = latencies.lock();
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "posted {} orders in {elapsed:.2} s ({:.0} orders/s)",
        tally.posted.load(Ordering::Relaxed),
        tally.posted.load(Ordering::Relaxed) as f64 / elapsed
    );
    println!(
        "VALIDATED {}, FAILED {}, timed out {}, errors {}",
        tally.validated.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
        tally.timed_out.load(Ordering::Relaxed),
        tally.errors.load(Ordering::Relaxed)
    );
    if !histogram.is_empty() {
        println!(
            "POST to final state: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            ms(0.5),
            ms(0.9),
            ms(0.99),
            histogram.max() as f64 / 1000.0
        );
    }
    Ok(())
}

/// Writes customers `0..count` to `customers` (the customers feed), so the email service can
/// find them; levels are picked at random.
fn seed_customers(base: &str, count: i64, random: &mut Random) -> anyhow::Result<()> {
    const NAMES: [&str; 6] = ["Ann", "Bo", "Cy", "Di", "Ed", "Flo"];
    let server = Server::new(base)?;
    let records = (0..count.max(1))
        .map(|id| {
            let name = NAMES[random.below(NAMES.len() as u64) as usize];
            let customer = Customer {
                id,
                first_name: name.to_string(),
                last_name: format!("Customer{id}"),
                email: format!("customer{id}@example.com"),
                address: format!("{id} Example Street"),
                level: LEVELS[random.below(LEVELS.len() as u64) as usize].to_string(),
            };
            InputRecord::Customer(customer).proxy_json()
        })
        .collect::<Result<_, _>>()?;
    server.produce(CUSTOMERS, records)?;
    Ok(())
}

/// Posts one order and its payment, then waits for its final state.
async fn place(
    client: reqwest::Client,
    base: String,
    order: Order,
    timeout_ms: u64,
    tally: Arc<Tally>,
    latencies: Arc<Mutex<Histogram<u64>>>,
) {
    let sent = Instant::now();
    let outcome = async {
        let posted = client
            .post(format!("{base}/v1/orders"))
            .json(&order)
            .send()
            .await?;
        if posted.status() != reqwest::StatusCode::CREATED {
            let status = posted.status();
            let body: Value = posted.json().await.unwrap_or(Value::Null);
            anyhow::bail!("POST answered {status}: {}", body["message"]);
        }
        tally.posted.fetch_add(1, Ordering::Relaxed);
        let payment = Payment {
            id: format!("pay-{}", order.id),
            order_id: order.id.clone(),
            ccy: "EUR".into(),
            amount: order.value(),
        };
        client
            .post(format!("{base}/v1/topics/{PAYMENTS}/records"))
            .json(&ProduceRequest {
                records: vec![InputRecord::Payment(payment).proxy_json()?],
            })
            .send()
            .await?
            .error_for_status()?;
        let decided = client
            .get(format!(
                "{base}/v1/orders/{}/validated?timeout={timeout_ms}",
                order.id
            ))
            .timeout(Duration::from_millis(timeout_ms) + Duration::from_secs(5))
            .send()
            .await?;
        if decided.status() == reqwest::StatusCode::GATEWAY_TIMEOUT {
            return Ok(None);
        }
        let decided: Order = decided.error_for_status()?.json().await?;
        Ok(Some(decided.state))
    }
    .await;
    match outcome {
        Ok(Some(state)) => {
            let counter = if state == OrderState::Validated {
                &tally.validated
            } else {
                &tally.failed
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let micros = sent.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
            let _ = latencies.lock().record(micros.max(1));
        }
        Ok(None) => {
            tally.timed_out.fetch_add(1, Ordering::Relaxed);
        }
        Err(error) => {
            if tally.errors.fetch_add(1, Ordering::Relaxed) < 5 {
                eprintln!("order {}: {error:#}", order.id);
            }
        }
    }
}
