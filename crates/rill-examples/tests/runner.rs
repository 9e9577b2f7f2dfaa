//! Every example runs on the embedded log through the runner and prints what its sample
//! should give.

use std::sync::Arc;

use rill_examples::{RunOptions, find, run};
use rill_log_embedded::{EmbeddedConfig, EmbeddedLog};

fn lines(name: &str) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let log =
        Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir.path().join("log"))).expect("log"));
    let example = find(name).expect("example");
    let out = run(
        &example,
        log.clone(),
        &RunOptions::new(dir.path().join("state")),
    )
    .expect("run");
    log.close().expect("close");
    out.into_iter().map(|l| l.line).collect()
}

#[test]
fn coffee_coupons_prints_the_two_coupons_of_its_sample() {
    let mut coupons = lines("coffee-coupons");
    coupons.sort();
    assert_eq!(
        coupons,
        vec![
            "coupon for ann: espresso then headphones".to_string(),
            "coupon for cy: flat white then speaker".to_string(),
        ]
    );
}

#[test]
fn abandoned_carts_prints_the_idle_carts_of_its_sample() {
    let mut carts = lines("abandoned-carts");
    carts.sort();
    assert_eq!(
        carts,
        vec![
            "ann abandoned a cart with kettle, mug".to_string(),
            "dan abandoned a cart with rug".to_string(),
        ]
    );
}

#[test]
fn trucks_prints_its_three_views() {
    let out = lines("trucks");
    assert!(
        out.contains(&"t1 last seen in north at".to_string())
            || out
                .iter()
                .any(|l| l.starts_with("t1 last seen in north at")),
        "{out:?}"
    );
    assert!(
        out.contains(&"t1: 60 miles since its last oil change".to_string()),
        "{out:?}"
    );
    assert!(
        out.iter()
            .any(|l| l.contains("north") && l.contains(": 3 reports from t1")),
        "{out:?}"
    );
}

#[test]
fn reprocessing_runs_the_same_code_again_into_new_topics_with_the_same_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log =
        Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir.path().join("log"))).expect("log"));
    let example = find("trucks").expect("example");
    let mut options = RunOptions::new(dir.path().join("state"));
    let first = run(&example, log.clone(), &options).expect("run");
    options.version = 2;
    let again = run(&example, log.clone(), &options).expect("reprocess");
    let topics: Vec<String> = rill_log::Log::admin(log.as_ref())
        .list_topics()
        .expect("topics");
    log.close().expect("close");
    assert!(!first.is_empty());
    let lines = |out: &[rill_examples::OutputLine]| -> Vec<String> {
        out.iter().map(|l| l.line.clone()).collect()
    };
    assert_eq!(lines(&first), lines(&again));
    assert!(again.iter().all(|l| l.topic.ends_with("-v2")), "{again:?}");
    assert!(
        topics.contains(&"truck-positions-v2".to_string()),
        "{topics:?}"
    );
    // The input was written once.
    assert!(first.iter().all(|l| !l.topic.ends_with("-v2")));
}

#[test]
fn flight_contexts_prints_each_context() {
    let out = lines("flight-contexts");
    assert!(
        out.iter()
            .any(|l| l.ends_with(": 2 delayed") && l.starts_with("BA ")),
        "{out:?}"
    );
    assert!(
        out.iter()
            .any(|l| l.starts_with("BA1 ") && l.ends_with(": delayed, boarding")),
        "{out:?}"
    );
    assert_eq!(
        out.iter().filter(|l| l.contains("at the hub")).count(),
        7,
        "{out:?}"
    );
    assert!(
        out.iter()
            .any(|l| l.ends_with("boarding, departed, position")),
        "{out:?}"
    );
}

#[test]
fn flight_contexts_prints_the_spatial_contexts() {
    let out = lines("flight-contexts");
    assert!(
        out.iter().any(|l| l.starts_with("BA1 position near storm")),
        "{out:?}"
    );
    assert_eq!(
        out.iter()
            .filter(|l| l.ends_with("near the bird strike"))
            .count(),
        4,
        "{out:?}"
    );
}

#[test]
fn shop_prints_the_baskets_the_shipments_and_what_get_answers() {
    let mut out = lines("shop");
    // Customer 2 filled a basket and checked out; when the checkout reached the view before
    // the basket had been priced, the view never held that basket and publishes nothing for
    // it (its GET answers an empty basket all the same).
    out.retain(|line| line != "customer 2: empty");
    let expected = [
        "customer 1: 1 x HATS (not in the catalogue); 2 x Woolly jumper at 22.00 = 44.00; \
         2 x Silk stockings at 12.00 = 24.00; total 68.00",
        "customer 3: 1 x Silk stockings at 12.00 = 12.00; total 12.00",
        "o1 shipped: 2 x JUMPERS for customer 1",
        "o3 shipped: 1 x STOCKINGS for customer 3",
    ];
    assert_eq!(&out[..expected.len()], expected, "{out:#?}");
    let answers = &out[expected.len()..];
    assert_eq!(answers.len(), 3, "{out:#?}");
    for (answer, (customer, total)) in answers.iter().zip([(1, 6800), (2, 0), (3, 1200)]) {
        let prefix = format!("/basket/{customer} -> 200 {{\"customer\":{customer},");
        assert!(answer.starts_with(&prefix), "{answer}");
        assert!(
            answer.ends_with(&format!("\"totalCents\":{total}}}")),
            "{answer}"
        );
    }
}
