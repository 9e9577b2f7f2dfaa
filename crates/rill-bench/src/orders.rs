//! The order pipeline benchmark: every service of the order system in this process,
//! exactly-once, started through the one instance bootstrap `rill run` uses, on the embedded
//! log or (`--bootstrap`) on a Kafka cluster; `--compare` measures both in one invocation.
//!
//! - **throughput**: N orders (with a payment each) produced straight into `orders`, stock for
//!   about half of them, spread over many customers so that the fraud check passes most; orders/s
//!   from the first CREATED sent to the last order's final state, read back from `orders`.
//! - **latency**: orders produced at a fixed rate; time from the produce acknowledgement (the
//!   record is durable) to its final state appearing in `orders`.
//! - **memory**: the process's peak resident set (`VmHWM`) after each phase.
//! - **http**: the REST API on a loopback port, driven by an in-process HTTP/1.1 client over a
//!   number of keep-alive connections: POST /v1/orders (201 = durable in the log) per second,
//!   then GET /v1/orders/{id} per second of orders already in the view.
//!
//! Each phase starts from a fresh data directory, so they do not disturb each other; on Kafka
//! each phase first deletes the order system's topics (its own topics and those of its five
//! applications), so point `--bootstrap` at a cluster kept for benchmarks.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use rill_log::{
    ConsumerConfig, IsolationLevel, Log, LogError, ProducerRecord, SeekTo, TopicPartition,
};
use rill_orders::domain::{Customer, Email, Order, OrderState, Payment, Product};
use rill_orders::email::{EmailError, Emailer};
use rill_orders::instance::{Instance, InstanceConfig};
use rill_orders::records::InputRecord;
use rill_orders::system::Service;
use rill_orders::topics::{self, ORDERS, PAYMENTS};

use crate::backend::{self, KafkaArgs, OpenLog};

/// The parts of `rill bench orders`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Phase {
    /// N orders as fast as they can be produced: orders/s to the final state.
    Throughput,
    /// N orders (and payments) written first, then the services started on them: orders/s
    /// from the start to the last final state, as a user starting `rill run` on a backlog
    /// sees it (joining, loading tables and all).
    Backlog,
    /// A fixed offered rate: acknowledged-to-final latency.
    Latency,
    /// The REST API: POST/s and GET/s over loopback.
    Http,
}

/// Flags of `rill bench orders`.
#[derive(Debug, Args)]
pub struct OrdersBenchArgs {
    /// Scratch directory (each phase uses a fresh sub-directory, removed afterwards).
    #[arg(long, default_value = "./target/bench-orders")]
    dir: PathBuf,
    /// Which phases to run, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "throughput,latency,http"
    )]
    phases: Vec<Phase>,
    /// Orders of the throughput phase.
    #[arg(long, default_value_t = 1_000_000)]
    orders: u64,
    /// Customers the orders are spread over (each also written to `customers`).
    #[arg(long, default_value_t = 100_000)]
    customers: u64,
    /// Partitions of each system topic (as `rill run --partitions`).
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Stream threads per service.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Commit interval of every service, ms (default: as `rill run`, 20 embedded, 100 on Kafka).
    #[arg(long)]
    commit_interval_ms: Option<u64>,
    /// Do not write a payment per order (the email service then joins nothing).
    #[arg(long)]
    no_payments: bool,
    /// Offered rate of the latency phase, orders/s.
    #[arg(long, default_value_t = 5_000)]
    rate: u64,
    /// Length of the latency phase, seconds.
    #[arg(long, default_value_t = 10)]
    latency_seconds: u64,
    /// Most POSTs of the HTTP phase.
    #[arg(long, default_value_t = 200_000)]
    http_posts: u64,
    /// Most GETs of the HTTP phase.
    #[arg(long, default_value_t = 500_000)]
    http_gets: u64,
    /// Longest time of each HTTP measurement (POST, GET), seconds.
    #[arg(long, default_value_t = 20)]
    http_seconds: u64,
    /// Concurrent HTTP connections of the load generator.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Give up a phase that has not finished after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout_s: u64,
    /// On this Kafka cluster instead of the embedded log (its order-system topics are deleted
    /// before each phase).
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Measure the embedded log and the `--bootstrap` cluster in one invocation, alternating,
    /// and print them side by side with the Kafka/embedded ratio.
    #[arg(long, requires = "bootstrap")]
    compare: bool,
    /// Measurements of each backend (medians are reported).
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Memory budget of the persistent stores, MiB (as `rill run --memory`).
    #[arg(long, default_value_t = rill_streams::DEFAULT_MEMORY_BUDGET / (1024 * 1024))]
    memory: u64,
}

/// What one measurement of one backend gave.
struct Figures {
    throughput: Option<ThroughputResult>,
    backlog: Option<ThroughputResult>,
    latency: Option<LatencyResult>,
    http: Option<HttpResult>,
}

impl Figures {
    fn orders_per_s(&self, args: &OrdersBenchArgs) -> Option<f64> {
        self.throughput
            .as_ref()
            .map(|t| args.orders as f64 / t.seconds)
    }

    fn latency_ms(&self, quantile: f64) -> Option<f64> {
        self.latency
            .as_ref()
            .map(|l| ms(l.histogram.value_at_quantile(quantile)))
    }

    fn posts_per_s(&self) -> Option<f64> {
        self.http
            .as_ref()
            .map(|h| h.posts.ok as f64 / h.posts.seconds)
    }

    fn gets_per_s(&self) -> Option<f64> {
        self.http
            .as_ref()
            .map(|h| h.gets.ok as f64 / h.gets.seconds)
    }
}

pub fn run(args: &OrdersBenchArgs) -> anyhow::Result<()> {
    if args.orders == 0
        || args.customers == 0
        || args.rate == 0
        || args.connections == 0
        || args.runs == 0
    {
        bail!("--orders, --customers, --rate, --connections and --runs must be above 0");
    }
    if args.memory < 16 {
        bail!("--memory must be at least 16 (MiB)");
    }
    rill_streams::set_memory_budget(args.memory * 1024 * 1024);
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let (sync_p50, sync_p99) = fdatasync_latency(&args.dir)?;
    let sync = format!(
        "fdatasync of 4 KiB in {}: p50 {sync_p50:.0} us, p99 {sync_p99:.0} us",
        args.dir.display()
    );
    eprintln!("{sync}");
    let embedded = KafkaArgs {
        bootstrap: None,
        kafka_properties: Vec::new(),
    };
    let mut measured: Vec<(&str, Figures)> = Vec::new();
    for run in 1..=args.runs {
        let backends: Vec<(&str, &KafkaArgs)> = if args.compare {
            vec![("embedded", &embedded), ("kafka", &args.kafka)]
        } else if args.kafka.bootstrap.is_some() {
            vec![("kafka", &args.kafka)]
        } else {
            vec![("embedded", &embedded)]
        };
        for (label, kafka) in backends {
            eprintln!("run {run}/{}: {label}", args.runs);
            let figures = measure(args, kafka)?;
            println!();
            println!("run {run}, {label}:");
            for line in report_lines(args, &figures) {
                println!("  {line}");
            }
            measured.push((label, figures));
        }
    }
    println!();
    println!("{sync}");
    if args.compare {
        print_comparison(args, &measured);
    }
    println!("peak RSS of the process: {} MiB", peak_rss_kib() / 1024);
    std::fs::remove_dir_all(&args.dir).ok();
    Ok(())
}

/// Every chosen phase once on one backend.
fn measure(args: &OrdersBenchArgs, kafka: &KafkaArgs) -> anyhow::Result<Figures> {
    Ok(Figures {
        throughput: if args.phases.contains(&Phase::Throughput) {
            Some(throughput(args, kafka)?)
        } else {
            None
        },
        backlog: if args.phases.contains(&Phase::Backlog) {
            Some(backlog(args, kafka)?)
        } else {
            None
        },
        latency: if args.phases.contains(&Phase::Latency) {
            Some(latency(args, kafka)?)
        } else {
            None
        },
        http: if args.phases.contains(&Phase::Http) {
            Some(http(args, kafka)?)
        } else {
            None
        },
    })
}

fn report_lines(args: &OrdersBenchArgs, figures: &Figures) -> Vec<String> {
    let mut report = Vec::new();
    if let Some(t) = &figures.throughput {
        report.push(format!(
            "throughput: {} orders, {:.1} s from the first CREATED sent to the last final state: \
             **{:.0} orders/s** (VALIDATED {}, FAILED {}; produced in {:.1} s); peak RSS {} MiB, \
             at most {} threads",
            args.orders,
            t.seconds,
            args.orders as f64 / t.seconds,
            t.validated,
            t.failed,
            t.produce_seconds,
            t.peak_rss_kib / 1024,
            t.peak_threads,
        ));
    }
    if let Some(b) = &figures.backlog {
        report.push(format!(
            "backlog: {} orders written first ({:.1} s), then the services started: {:.1} s to \
             the last final state: **{:.0} orders/s** (VALIDATED {}, FAILED {}); peak RSS {} MiB, \
             at most {} threads",
            args.orders,
            b.produce_seconds,
            b.seconds,
            args.orders as f64 / b.seconds,
            b.validated,
            b.failed,
            b.peak_rss_kib / 1024,
            b.peak_threads,
        ));
    }
    if let Some(l) = &figures.latency {
        report.push(format!(
            "latency at {} orders/s offered for {} s ({} orders, VALIDATED {}, FAILED {}): \
             acknowledged to final state p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
            args.rate,
            args.latency_seconds,
            l.histogram.len(),
            l.validated,
            l.failed,
            ms(l.histogram.value_at_quantile(0.5)),
            ms(l.histogram.value_at_quantile(0.99)),
            ms(l.histogram.value_at_quantile(0.999)),
            ms(l.histogram.max()),
        ));
    }
    if let Some(h) = &figures.http {
        report.push(format!(
            "http, {} connections: **{:.0} POST/s** ({} answered 201 in {:.1} s, {} other; \
             p50 {:.2} ms, p99 {:.2} ms), **{:.0} GET/s** ({} answered 200 in {:.1} s, {} other; \
             p50 {:.2} ms, p99 {:.2} ms)",
            args.connections,
            h.posts.ok as f64 / h.posts.seconds,
            h.posts.ok,
            h.posts.seconds,
            h.posts.other,
            ms(h.posts.latency.value_at_quantile(0.5)),
            ms(h.posts.latency.value_at_quantile(0.99)),
            h.gets.ok as f64 / h.gets.seconds,
            h.gets.ok,
            h.gets.seconds,
            h.gets.other,
            ms(h.gets.latency.value_at_quantile(0.5)),
            ms(h.gets.latency.value_at_quantile(0.99)),
        ));
    }
    report
}

/// The medians of each backend side by side, with Kafka's figure over the embedded one.
fn print_comparison(args: &OrdersBenchArgs, measured: &[(&str, Figures)]) {
    type Pick = fn(&OrdersBenchArgs, &Figures) -> Option<f64>;
    let rows: [(&str, Pick); 6] = [
        ("orders/s (throughput)", |a, f| f.orders_per_s(a)),
        ("orders/s (backlog)", |a, f| {
            f.backlog.as_ref().map(|b| a.orders as f64 / b.seconds)
        }),
        ("latency p50, ms", |_, f| f.latency_ms(0.5)),
        ("latency p99, ms", |_, f| f.latency_ms(0.99)),
        ("POST /v1/orders per s", |_, f| f.posts_per_s()),
        ("GET /v1/orders/{id} per s", |_, f| f.gets_per_s()),
    ];
    let median_of = |label: &str, pick: Pick| -> Option<f64> {
        let mut values: Vec<f64> = measured
            .iter()
            .filter(|(l, _)| *l == label)
            .filter_map(|(_, f)| pick(args, f))
            .collect();
        (!values.is_empty()).then(|| super::median(&mut values))
    };
    println!(
        "medians of {} run(s) each | embedded | Kafka | Kafka / embedded",
        args.runs
    );
    println!("---|---|---|---");
    for (name, pick) in rows {
        if let (Some(embedded), Some(kafka)) =
            (median_of("embedded", pick), median_of("kafka", pick))
        {
            println!(
                "{name} | {embedded:.1} | {kafka:.1} | {:.2}x",
                kafka / embedded
            );
        }
    }
    let per_run: Vec<String> = measured
        .chunks(2)
        .filter_map(|pair| match pair {
            [(_, embedded), (_, kafka)] => Some(format!(
                "{:.2}",
                kafka.orders_per_s(args)? / embedded.orders_per_s(args)?
            )),
            _ => None,
        })
        .collect();
    if !per_run.is_empty() {
        println!(
            "orders/s ratio per run (Kafka / embedded): {}",
            per_run.join(", ")
        );
    }
}

/// Latency of a 4 KiB write plus `fdatasync` in `dir` (200 of them), p50 and p99 in us: the
/// disk's answer to the embedded log's commits, to read latency figures by.
fn fdatasync_latency(dir: &std::path::Path) -> anyhow::Result<(f64, f64)> {
    use std::io::Write;
    let path = dir.join("fdatasync-probe");
    let mut file =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let block = vec![0u8; 4096];
    let mut micros = Vec::with_capacity(200);
    for _ in 0..200 {
        let started = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        micros.push(started.elapsed().as_secs_f64() * 1e6);
    }
    drop(file);
    std::fs::remove_file(&path).ok();
    micros.sort_by(f64::total_cmp);
    Ok((micros[micros.len() / 2], micros[micros.len() * 99 / 100]))
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// `VmHWM` of this process in KiB (0 where /proc is not there).
fn peak_rss_kib() -> u64 {
    proc_status_number("VmHWM:")
}

fn rss_kib() -> u64 {
    proc_status_number("VmRSS:")
}

/// The first number after `field` in `/proc/self/status` (kB for memory fields).
fn proc_status_number(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(field))
                .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Emails nothing (the email service still writes each email to its outbox topic): the
/// default emailer logs a line per email, which would measure the terminal.
struct QuietEmailer;

impl Emailer for QuietEmailer {
    fn send(
        &self,
        _email: &Email,
        _order: &Order,
        _payment: &Payment,
        _customer: &Customer,
    ) -> Result<(), EmailError> {
        Ok(())
    }
}

/// The workload: order `i` of a run, deterministic so that stock can be sized for half.
struct Workload {
    prefix: &'static str,
    customers: u64,
}

impl Workload {
    fn id(&self, i: u64) -> String {
        format!("{}{i:09}", self.prefix)
    }

    /// The index of an order id of this workload.
    fn index(&self, key: &[u8]) -> Option<u64> {
        std::str::from_utf8(key.strip_prefix(self.prefix.as_bytes())?)
            .ok()?
            .parse()
            .ok()
    }

    fn product(i: u64) -> Product {
        Product::ALL[(i % 3) as usize]
    }

    fn quantity(i: u64) -> i32 {
        1 + ((i / 3) % 3) as i32
    }

    fn order(&self, i: u64) -> Order {
        let customer = i % self.customers;
        // One customer in a hundred buys dear and crosses the fraud limit within a few orders,
        // so the fraud FAIL path and the release of reservations are exercised; the others
        // spend at most 30 per order, well below the limit over a session.
        let price = if customer % 100 == 99 {
            400.0
        } else {
            1.0 + (i % 10) as f64
        };
        Order {
            id: self.id(i),
            customer_id: customer as i64,
            state: OrderState::Created,
            product: Self::product(i),
            quantity: Self::quantity(i),
            price,
        }
    }

    /// Stock per product for about half of `orders` orders (by quantity).
    fn stock_for_half(orders: u64) -> Vec<(Product, i64)> {
        Product::ALL
            .iter()
            .enumerate()
            .map(|(p, product)| {
                let wanted: i64 = (0..orders)
                    .filter(|i| i % 3 == p as u64)
                    .map(|i| i64::from(Self::quantity(i)))
                    .sum();
                (*product, wanted / 2)
            })
            .collect()
    }
}

fn order_record(order: &Order) -> anyhow::Result<ProducerRecord> {
    Ok(ProducerRecord::new(ORDERS)
        .key(order.id.clone().into_bytes())
        .value(serde_json::to_vec(order)?))
}

fn payment_record(order: &Order) -> anyhow::Result<ProducerRecord> {
    let payment = Payment {
        id: format!("p{}", order.id),
        order_id: order.id.clone(),
        ccy: "EUR".into(),
        amount: order.value(),
    };
    Ok(ProducerRecord::new(PAYMENTS)
        .key(payment.id.clone().into_bytes())
        .value(serde_json::to_vec(&payment)?))
}

/// A fresh log with the system's topics, stock, customers, and every service started through
/// the instance bootstrap.
struct Running {
    log: Arc<dyn Log>,
    open: OpenLog,
    instance: Instance,
}

fn start(
    args: &OrdersBenchArgs,
    kafka: &KafkaArgs,
    name: &str,
    stock: &[(Product, i64)],
) -> anyhow::Result<Running> {
    let (dir, open) = fresh_log(args, kafka, name)?;
    let log = open.shared();
    let mut config = instance_config(args, kafka, &dir);
    config.seed = seed(args, stock);
    let instance = Instance::start(log.clone(), config).context("starting the order system")?;
    let running = Running {
        log,
        open,
        instance,
    };
    running.warm_up(args)?;
    Ok(running)
}

/// A fresh data directory (and, on Kafka, none of the order system's topics left).
fn fresh_log(
    args: &OrdersBenchArgs,
    kafka: &KafkaArgs,
    name: &str,
) -> anyhow::Result<(PathBuf, OpenLog)> {
    let dir = args.dir.join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    let open = backend::open(kafka, &dir.join("log"), None)?;
    if kafka.bootstrap.is_some() {
        delete_order_system_topics(open.shared().as_ref())?;
    }
    Ok((dir, open))
}

/// Stock for the workload and every customer.
fn seed(args: &OrdersBenchArgs, stock: &[(Product, i64)]) -> Vec<InputRecord> {
    stock
        .iter()
        .map(|&(product, count)| InputRecord::Stock { product, count })
        .chain((0..args.customers).map(|id| {
            InputRecord::Customer(Customer {
                id: id as i64,
                first_name: format!("First{id}"),
                last_name: format!("Last{id}"),
                email: format!("customer{id}@example.com"),
                address: format!("{id} Bench Street"),
                level: topics::LEVELS[(id % 4) as usize].to_string(),
            })
        }))
        .collect()
}

/// The services as `rill run` starts them, with the bench's threads and commit interval.
fn instance_config(
    args: &OrdersBenchArgs,
    kafka: &KafkaArgs,
    dir: &std::path::Path,
) -> InstanceConfig {
    let mut config = InstanceConfig::new(dir.join("state"));
    config.partitions = args.partitions;
    config.system.threads = args.threads.max(1);
    config.system.commit_interval = backend::commit_interval(args.commit_interval_ms, kafka);
    config.system.max_task_idle = backend::max_task_idle(kafka);
    config.system.emailer = Arc::new(QuietEmailer);
    config
}

/// Deletes the order system's topics and its applications' (changelogs, repartition topics,
/// dead letters) from a cluster, and waits until the cluster no longer lists them, so that a
/// phase starts from nothing as it does on a fresh data directory.
fn delete_order_system_topics(log: &dyn Log) -> anyhow::Result<()> {
    let admin = log.admin();
    let ours = |topic: &str| {
        topics::system_topics()
            .iter()
            .any(|(name, _)| *name == topic)
            || Service::ALL.iter().any(|service| {
                topic
                    .strip_prefix(service.application_id())
                    .is_some_and(|rest| rest.starts_with('-'))
            })
    };
    let listed = || -> anyhow::Result<Vec<String>> {
        Ok(admin
            .list_topics()
            .context("listing the cluster's topics")?
            .into_iter()
            .filter(|topic| ours(topic))
            .collect())
    };
    for topic in listed()? {
        match admin.delete_topic(&topic) {
            Ok(()) | Err(LogError::UnknownTopic { .. }) => {}
            Err(error) => return Err(error).with_context(|| format!("deleting {topic}")),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while !listed()?.is_empty() {
        if Instant::now() > deadline {
            bail!("the cluster still lists the deleted topics after 120 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

impl Running {
    fn system(&self) -> &rill_orders::system::OrdersSystem {
        self.instance.system()
    }

    /// Sends one order through every service and waits for its final state, so that the
    /// clock starts on a running pipeline: on Kafka the services first join their groups,
    /// are assigned partitions and fill their tables, seconds that are start-up, not
    /// throughput.
    fn warm_up(&self, args: &OrdersBenchArgs) -> anyhow::Result<()> {
        let order = Order {
            id: "warm-up".into(),
            customer_id: 0,
            state: OrderState::Created,
            product: Product::Jumpers,
            quantity: 1,
            price: 1.0,
        };
        let producer = self.log.producer(&Default::default())?;
        for record in [order_record(&order)?, payment_record(&order)?] {
            // On Kafka, the first writes to topics just deleted and created again were seen
            // purged once (the idempotent producer resetting its sequence): try again.
            let mut attempts = 0;
            while let Err(error) = producer.send(record.clone())?.wait() {
                attempts += 1;
                if attempts == 5 {
                    return Err(error).context("writing the warm-up order");
                }
                eprintln!("warm-up write failed ({error}); trying again");
            }
        }
        let view = self
            .system()
            .view()?
            .context("the orders service does not run")?;
        let deadline = Instant::now() + Duration::from_secs(args.timeout_s);
        loop {
            // Until its partitions are assigned, the view answers that no instance holds the key.
            let seen = view.get(&order.id);
            if let Ok(Some(seen)) = &seen
                && seen.state.is_final()
            {
                return Ok(());
            }
            if !self.system().healthy() {
                bail!("a service stopped with an error while warming up");
            }
            if Instant::now() > deadline {
                bail!(
                    "the warm-up order was not decided in {} s (last read: {seen:?})",
                    args.timeout_s
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn close(self) -> anyhow::Result<()> {
        self.instance.close().context("stopping the services")?;
        self.open.close()?;
        Ok(())
    }
}

/// Reads `orders` from the beginning and notes, per order of the workload, when its final
/// state appeared (ns since `epoch`) and which it was; counts final states seen twice.
struct FinalStates {
    /// Per order: ns since the epoch + 1 when its final state was seen (0: not yet).
    seen_at: Vec<AtomicU64>,
    validated: AtomicU64,
    failed: AtomicU64,
    duplicates: AtomicU64,
    stop: AtomicBool,
}

impl FinalStates {
    fn new(orders: u64) -> Arc<Self> {
        Arc::new(FinalStates {
            seen_at: (0..orders).map(|_| AtomicU64::new(0)).collect(),
            validated: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        })
    }

    fn decided(&self) -> u64 {
        self.validated.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed)
    }

    /// Starts the reader thread.
    fn watch(
        self: &Arc<Self>,
        log: &Arc<dyn Log>,
        partitions: i32,
        workload: Workload,
        epoch: Instant,
    ) -> anyhow::Result<std::thread::JoinHandle<anyhow::Result<()>>> {
        let consumer = log.consumer(
            &ConsumerConfig {
                isolation: IsolationLevel::ReadCommitted,
                max_poll_records: Some(20_000),
                ..Default::default()
            },
            None,
        )?;
        let parts: Vec<TopicPartition> = (0..partitions)
            .map(|p| TopicPartition::new(ORDERS, p))
            .collect();
        consumer.assign(&parts)?;
        for part in &parts {
            consumer.seek(part, SeekTo::Beginning)?;
        }
        let states = self.clone();
        Ok(std::thread::Builder::new()
            .name("bench-reader".into())
            .spawn(move || -> anyhow::Result<()> {
                // Only the state matters, so look for it in the bytes rather than decode.
                const VALIDATED: &[u8] = br#""state":"VALIDATED""#;
                const FAILED: &[u8] = br#""state":"FAILED""#;
                while !states.stop.load(Ordering::Acquire) {
                    for record in consumer.poll(Duration::from_millis(50))? {
                        let (Some(key), Some(value)) = (&record.key, &record.value) else {
                            continue;
                        };
                        let validated = contains(value, VALIDATED);
                        if !validated && !contains(value, FAILED) {
                            continue;
                        }
                        let Some(slot) = workload
                            .index(key)
                            .and_then(|i| states.seen_at.get(i as usize))
                        else {
                            continue;
                        };
                        let at = epoch.elapsed().as_nanos() as u64 + 1;
                        if slot.compare_exchange(0, at, Ordering::AcqRel, Ordering::Relaxed)
                            != Ok(0)
                        {
                            states.duplicates.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        if validated {
                            states.validated.fetch_add(1, Ordering::Relaxed);
                        } else {
                            states.failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                Ok(())
            })?)
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

struct ThroughputResult {
    seconds: f64,
    produce_seconds: f64,
    validated: u64,
    failed: u64,
    peak_rss_kib: u64,
    /// Most threads the process had while the orders were decided.
    peak_threads: u64,
}

/// Writes `n` orders (each with its payment unless `--no-payments`), flushing every 10,000;
/// answers the seconds it took.
fn write_orders(
    log: &dyn Log,
    workload: &Workload,
    n: u64,
    payments: bool,
    produced: &AtomicU64,
) -> anyhow::Result<f64> {
    let producer = log.producer(&Default::default())?;
    let started = Instant::now();
    for i in 0..n {
        let order = workload.order(i);
        // Acknowledgements are awaited in bulk by the flushes below.
        drop(producer.send(order_record(&order)?)?);
        if payments {
            drop(producer.send(payment_record(&order)?)?);
        }
        // Bounds what the log holds in memory for the flusher.
        if i % 10_000 == 9_999 {
            producer.flush(Duration::from_secs(120))?;
            produced.store(i + 1, Ordering::Relaxed);
        }
    }
    producer.flush(Duration::from_secs(120))?;
    produced.store(n, Ordering::Relaxed);
    Ok(started.elapsed().as_secs_f64())
}

/// The backlog phase: the orders first, then the services.
fn backlog(args: &OrdersBenchArgs, kafka: &KafkaArgs) -> anyhow::Result<ThroughputResult> {
    let n = args.orders;
    let (dir, open) = fresh_log(args, kafka, "backlog")?;
    let log = open.shared();
    topics::create_system_topics(log.admin(), args.partitions)
        .context("creating the order system's topics")?;
    let seed = seed(args, &Workload::stock_for_half(n));
    let producer = log.producer(&Default::default())?;
    for record in &seed {
        drop(producer.send(record.producer_record()?)?);
    }
    producer.flush(Duration::from_secs(120))?;
    let workload = || Workload {
        prefix: "b",
        customers: args.customers,
    };
    eprintln!("backlog: writing {n} orders");
    let produced = AtomicU64::new(0);
    let produce_seconds = write_orders(log.as_ref(), &workload(), n, !args.no_payments, &produced)?;
    eprintln!("backlog: starting the services on {n} orders");
    let states = FinalStates::new(n);
    let epoch = Instant::now();
    let reader = states.watch(&log, args.partitions, workload(), epoch)?;
    // The topics exist, so the instance seeds nothing again.
    let instance = Instance::start(log.clone(), instance_config(args, kafka, &dir))
        .context("starting the order system")?;
    let running = Running {
        log,
        open,
        instance,
    };
    let outcome = wait_all(args, &running, &states, n, epoch, &produced, "backlog");
    finish(running, &states, reader, outcome, produce_seconds)
}

/// Stops the reader and the services after a throughput or backlog phase, and answers its
/// figures; fails if an order reached a final state twice.
fn finish(
    running: Running,
    states: &FinalStates,
    reader: std::thread::JoinHandle<anyhow::Result<()>>,
    outcome: anyhow::Result<(f64, u64)>,
    produce_seconds: f64,
) -> anyhow::Result<ThroughputResult> {
    states.stop.store(true, Ordering::Release);
    reader
        .join()
        .map_err(|_| anyhow::anyhow!("the reader panicked"))??;
    let (seconds, peak_threads) = outcome?;
    let peak_rss_kib = peak_rss_kib();
    let duplicates = states.duplicates.load(Ordering::Relaxed);
    running.close()?;
    if duplicates > 0 {
        bail!("{duplicates} orders reached a final state twice");
    }
    Ok(ThroughputResult {
        seconds,
        produce_seconds,
        validated: states.validated.load(Ordering::Relaxed),
        failed: states.failed.load(Ordering::Relaxed),
        peak_rss_kib,
        peak_threads,
    })
}

fn throughput(args: &OrdersBenchArgs, kafka: &KafkaArgs) -> anyhow::Result<ThroughputResult> {
    let n = args.orders;
    eprintln!("throughput: starting the services ({n} orders)");
    let stock = Workload::stock_for_half(n);
    let running = start(args, kafka, "throughput", &stock)?;
    let workload = || Workload {
        prefix: "t",
        customers: args.customers,
    };
    let states = FinalStates::new(n);
    let epoch = Instant::now();
    let reader = states.watch(&running.log, args.partitions, workload(), epoch)?;
    let produced = Arc::new(AtomicU64::new(0));
    let producer_thread = {
        let log = running.log.clone();
        let produced = produced.clone();
        let payments = !args.no_payments;
        let workload = workload();
        std::thread::Builder::new()
            .name("bench-producer".into())
            .spawn(move || write_orders(log.as_ref(), &workload, n, payments, &produced))?
    };
    let outcome = wait_all(args, &running, &states, n, epoch, &produced, "throughput");
    let produce_seconds = producer_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the producer panicked"))??;
    finish(running, &states, reader, outcome, produce_seconds)
}

/// Waits until every one of `n` orders has a final state, printing progress each second;
/// answers seconds from the epoch to the last final state, and the most threads the process
/// had meanwhile.
fn wait_all(
    args: &OrdersBenchArgs,
    running: &Running,
    states: &FinalStates,
    n: u64,
    epoch: Instant,
    produced: &AtomicU64,
    phase: &str,
) -> anyhow::Result<(f64, u64)> {
    let bar = crate::progress::bar(n, &format!("{phase}: decided"));
    let mut peak_threads = 0;
    loop {
        std::thread::sleep(Duration::from_millis(20));
        peak_threads = peak_threads.max(proc_status_number("Threads:"));
        let decided = states.decided();
        if decided >= n {
            break;
        }
        if !running.system().healthy() {
            bail!("{phase}: a service stopped with an error after {decided} final states");
        }
        if epoch.elapsed() > Duration::from_secs(args.timeout_s) {
            bail!(
                "{phase}: only {decided} of {n} orders decided in {} s",
                args.timeout_s
            );
        }
        bar.set_position(decided);
        bar.set_message(format!(
            "(produced {}, VALIDATED {}, FAILED {}, RSS {} MiB)",
            produced.load(Ordering::Relaxed),
            states.validated.load(Ordering::Relaxed),
            states.failed.load(Ordering::Relaxed),
            rss_kib() / 1024,
        ));
    }
    bar.finish_and_clear();
    let last = states
        .seen_at
        .iter()
        .map(|at| at.load(Ordering::Relaxed))
        .max()
        .unwrap_or(0);
    Ok((last.saturating_sub(1) as f64 / 1e9, peak_threads))
}

struct LatencyResult {
    histogram: Histogram<u64>,
    validated: u64,
    failed: u64,
}

fn latency(args: &OrdersBenchArgs, kafka: &KafkaArgs) -> anyhow::Result<LatencyResult> {
    let n = args.rate * args.latency_seconds;
    eprintln!(
        "latency: starting the services ({} orders/s for {} s)",
        args.rate, args.latency_seconds
    );
    let stock = Workload::stock_for_half(n);
    let running = start(args, kafka, "latency", &stock)?;
    let workload = || Workload {
        prefix: "l",
        customers: args.customers,
    };
    let states = FinalStates::new(n);
    let epoch = Instant::now();
    let reader = states.watch(&running.log, args.partitions, workload(), epoch)?;
    // Per order: ns since the epoch + 1 when its record was acknowledged (durable).
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
    let produced = Arc::new(AtomicU64::new(0));
    let (pending_tx, pending_rx) = std::sync::mpsc::channel::<(u64, rill_log::DeliveryFuture)>();
    let acker = {
        let acked = acked.clone();
        std::thread::Builder::new()
            .name("bench-acks".into())
            .spawn(move || -> anyhow::Result<()> {
                for (i, delivery) in pending_rx {
                    delivery.wait()?;
                    if let Some(slot) = acked.get(i as usize) {
                        slot.store(epoch.elapsed().as_nanos() as u64 + 1, Ordering::Release);
                    }
                }
                Ok(())
            })?
    };
    let producer_thread = {
        let log = running.log.clone();
        let produced = produced.clone();
        let payments = !args.no_payments;
        let workload = workload();
        let rate = args.rate;
        std::thread::Builder::new()
            .name("bench-producer".into())
            .spawn(move || -> anyhow::Result<()> {
                let producer = log.producer(&Default::default())?;
                let interval = Duration::from_secs_f64(1.0 / rate as f64);
                let started = Instant::now();
                for i in 0..n {
                    // Sleeps rather than spins (the services need both cores): orders due
                    // while asleep go out together when it wakes.
                    let due = started + interval.mul_f64(i as f64);
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                    let order = workload.order(i);
                    pending_tx.send((i, producer.send(order_record(&order)?)?))?;
                    if payments {
                        drop(producer.send(payment_record(&order)?)?);
                    }
                    produced.store(i + 1, Ordering::Relaxed);
                }
                Ok(())
            })?
    };
    let outcome = wait_all(args, &running, &states, n, epoch, &produced, "latency");
    producer_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the producer panicked"))??;
    acker
        .join()
        .map_err(|_| anyhow::anyhow!("the acknowledgement waiter panicked"))??;
    states.stop.store(true, Ordering::Release);
    reader
        .join()
        .map_err(|_| anyhow::anyhow!("the reader panicked"))??;
    outcome?;
    running.close()?;
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    for (ack, seen) in acked.iter().zip(&states.seen_at) {
        let (ack, seen) = (ack.load(Ordering::Acquire), seen.load(Ordering::Acquire));
        if ack > 0 && seen > 0 {
            // A final state read before the acknowledgement was noted counts as 1 µs.
            histogram.record((seen.saturating_sub(ack) / 1000).max(1))?;
        }
    }
    Ok(LatencyResult {
        histogram,
        validated: states.validated.load(Ordering::Relaxed),
        failed: states.failed.load(Ordering::Relaxed),
    })
}

/// Outcome of one HTTP measurement.
struct HttpRun {
    ok: u64,
    other: u64,
    seconds: f64,
    latency: Histogram<u64>,
}

struct HttpResult {
    posts: HttpRun,
    gets: HttpRun,
}

fn http(args: &OrdersBenchArgs, kafka: &KafkaArgs) -> anyhow::Result<HttpResult> {
    eprintln!(
        "http: starting the services and the API ({} connections)",
        args.connections
    );
    // Enough stock that the posted orders split about evenly, as in the other phases.
    let stock = Workload::stock_for_half(args.http_posts);
    let running = start(args, kafka, "http", &stock)?;
    let api = running.system().http_api()?;
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("rill-http")
        .build()
        .context("starting the HTTP runtime")?;
    let listener = server
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .context("binding the HTTP API")?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = server.spawn(api.serve(listener, async {
        let _ = stop_rx.await;
    }));
    // The load generator has its own single-threaded runtime, so it cannot take more than
    // one core away from the server and the services.
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the client runtime")?;
    let workload = Arc::new(Workload {
        prefix: "h",
        customers: args.customers,
    });
    let limit = Duration::from_secs(args.http_seconds);
    let bodies = {
        let workload = workload.clone();
        move |i: u64| -> anyhow::Result<Request<Full<Bytes>>> {
            Ok(Request::post("/v1/orders")
                .header(HOST, "127.0.0.1")
                .header(CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(serde_json::to_vec(
                    &workload.order(i),
                )?)))?)
        }
    };
    let posts = client.block_on(load(
        addr,
        args.connections,
        args.http_posts,
        limit,
        "POST",
        201,
        bodies,
    ))?;
    let posted = posts.ok + posts.other;
    // Every posted order must be in the view before GETs of them are measured.
    let view = running
        .system()
        .view()?
        .context("the orders service does not run")?;
    let deadline = Instant::now() + Duration::from_secs(args.timeout_s);
    for i in 0..posted {
        while view.get(&workload.id(i))?.is_none() {
            if Instant::now() > deadline {
                bail!("order {} never reached the view", workload.id(i));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let gets = {
        let workload = workload.clone();
        move |i: u64| -> anyhow::Result<Request<Full<Bytes>>> {
            Ok(
                Request::get(format!("/v1/orders/{}", workload.id(i % posted.max(1))))
                    .header(HOST, "127.0.0.1")
                    .body(Full::new(Bytes::new()))?,
            )
        }
    };
    let gets = client.block_on(load(
        addr,
        args.connections,
        args.http_gets,
        limit,
        "GET",
        200,
        gets,
    ))?;
    let _ = stop_tx.send(());
    server.block_on(serving).context("the HTTP server task")??;
    server.shutdown_timeout(Duration::from_secs(2));
    running.close()?;
    Ok(HttpResult { posts, gets })
}

/// Sends up to `count` requests made by `make(i)` over `connections` keep-alive connections,
/// each sending its next request when the previous one is answered, for at most `limit`.
async fn load(
    addr: SocketAddr,
    connections: usize,
    count: u64,
    limit: Duration,
    what: &'static str,
    expected: u16,
    make: impl Fn(u64) -> anyhow::Result<Request<Full<Bytes>>> + Send + Sync + 'static,
) -> anyhow::Result<HttpRun> {
    let make = Arc::new(make);
    let next = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let other = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + limit;
    let mut workers = Vec::with_capacity(connections);
    for _ in 0..connections {
        let (make, next, ok, other) = (make.clone(), next.clone(), ok.clone(), other.clone());
        workers.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(connection);
            let mut latency = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count || Instant::now() >= deadline {
                    break;
                }
                let request = make(i)?;
                let sent = Instant::now();
                sender.ready().await?;
                let response = sender.send_request(request).await?;
                let status = response.status().as_u16();
                response.into_body().collect().await?;
                latency.record((sent.elapsed().as_micros() as u64).max(1))?;
                if status == expected {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    other.fetch_add(1, Ordering::Relaxed);
                }
            }
            anyhow::Ok(latency)
        }));
    }
    let progress = {
        let ok = ok.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            every.tick().await;
            let mut last = 0;
            loop {
                every.tick().await;
                let now = ok.load(Ordering::Relaxed);
                eprintln!(
                    "http {what}: {now}/{count} answered, {}/s, RSS {} MiB",
                    now - last,
                    rss_kib() / 1024
                );
                last = now;
            }
        })
    };
    let mut latency = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    for worker in workers {
        latency.add(worker.await.context("a load connection")??)?;
    }
    let seconds = started.elapsed().as_secs_f64();
    progress.abort();
    Ok(HttpRun {
        ok: ok.load(Ordering::Relaxed),
        other: other.load(Ordering::Relaxed),
        seconds,
        latency,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_ids_round_trip_and_stock_is_half() {
        let workload = Workload {
            prefix: "t",
            customers: 10,
        };
        assert_eq!(workload.index(workload.id(1234).as_bytes()), Some(1234));
        assert_eq!(workload.index(b"x1"), None);
        let total: i64 = (0..900).map(|i| i64::from(Workload::quantity(i))).sum();
        let stock: i64 = Workload::stock_for_half(900).iter().map(|(_, s)| s).sum();
        assert_eq!(stock, total / 2);
        assert!(contains(br#"{"state":"FAILED"}"#, br#""state":"FAILED""#));
    }

    #[test]
    fn peak_rss_is_read_from_proc() {
        if std::path::Path::new("/proc/self/status").exists() {
            assert!(peak_rss_kib() > 0);
        }
    }
}
