//! The registry kept in `_schemas`: it survives a restart, and instances over one log agree.

mod common;

use std::sync::Arc;

use rill_schema::{Compatibility, LogSchemaRegistry, SchemaRegistry, VersionSelector};

const V1: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}"#;
const V2: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"long","default":0}]}"#;
const BREAKS_V2: &str = r#"{"type":"record","name":"R","fields":[{"name":"c","type":"long"}]}"#;

#[test]
fn schemas_versions_and_levels_survive_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let (log, registry) = common::registry(dir.path());
    let first = registry.register("r-value", V1).expect("registers");
    let second = registry.register("r-value", V2).expect("registers");
    registry
        .set_compatibility(Some("r-value"), Compatibility::Full)
        .expect("sets");
    drop(registry);
    log.close().expect("closes");
    drop(log);

    let (_log, registry) = common::registry(dir.path());
    assert_eq!((first, second), (1, 2));
    assert_eq!(registry.versions("r-value").expect("versions"), vec![1, 2]);
    let latest = registry
        .version("r-value", VersionSelector::Latest)
        .expect("latest");
    assert_eq!((latest.version, latest.id), (2, 2));
    assert_eq!(
        registry.compatibility(Some("r-value")).expect("level"),
        Some(Compatibility::Full)
    );
    // Registering again finds the same id, writing nothing.
    assert_eq!(registry.register("r-value", V2).expect("finds"), 2);
    assert_eq!(
        registry.schema_text(1).expect("by id"),
        registry.schema(1).expect("id").text.as_ref()
    );
}

#[test]
fn the_default_level_is_backward_and_an_incompatible_schema_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let (_log, registry) = common::registry(dir.path());
    assert_eq!(
        registry.compatibility(None).expect("level"),
        Some(Compatibility::Backward)
    );
    registry.register("r-value", V2).expect("registers");
    let error = registry
        .register("r-value", BREAKS_V2)
        .expect_err("incompatible");
    assert_eq!((error.error_code(), error.status()), (409, 409));
    // Another subject is not bound by r-value's history.
    assert_eq!(
        registry.register("s-value", BREAKS_V2).expect("registers"),
        2
    );
    // The same schema under another subject keeps its id.
    assert_eq!(registry.register("t-value", V2).expect("registers"), 1);
}

/// Two registries over one log stand for two instances of a cluster: they register at the
/// same time, each its own schemas under one subject, and end up agreeing on every version
/// and id, with no id given to two schemas.
#[test]
fn two_instances_racing_on_one_subject_agree() {
    let dir = tempfile::tempdir().expect("dir");
    let (log, first) = common::registry(dir.path());
    first
        .set_compatibility(Some("race-value"), Compatibility::None)
        .expect("sets");
    let second = Arc::new(LogSchemaRegistry::open(log.as_ref()).expect("second instance"));
    let schema = |instance: usize, n: usize| {
        format!(r#"{{"type":"record","name":"R{instance}x{n}","fields":[]}}"#)
    };
    let racers: Vec<_> = [first.clone(), second.clone()]
        .into_iter()
        .enumerate()
        .map(|(instance, registry)| {
            std::thread::spawn(move || {
                (0..10)
                    .map(|n| {
                        let text = schema(instance, n);
                        (
                            text.clone(),
                            registry.register("race-value", &text).expect("registers"),
                        )
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let registered: Vec<(String, i32)> = racers
        .into_iter()
        .flat_map(|racer| racer.join().expect("racer"))
        .collect();
    let mut ids: Vec<i32> = registered.iter().map(|(_, id)| *id).collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=20).collect::<Vec<_>>(), "every schema its own id");
    for registry in [&first, &second] {
        assert_eq!(
            registry.versions("race-value").expect("versions"),
            (1..=20).collect::<Vec<_>>()
        );
        for (text, id) in &registered {
            let found = registry.lookup("race-value", text).expect("registered");
            assert_eq!(found.id, *id);
        }
    }
}

#[test]
fn a_deleted_subject_is_gone_but_its_schemas_stay_readable_by_id() {
    let dir = tempfile::tempdir().expect("dir");
    let (_log, registry) = common::registry(dir.path());
    registry.register("r-value", V1).expect("registers");
    assert_eq!(
        registry.delete_subject("r-value").expect("deletes"),
        vec![1]
    );
    assert!(registry.subjects().expect("subjects").is_empty());
    assert_eq!(
        registry.versions("r-value").expect_err("gone").error_code(),
        40401
    );
    assert!(registry.schema(1).is_ok());
    // Registering again starts a new version.
    registry.register("r-value", V1).expect("registers");
    assert_eq!(registry.versions("r-value").expect("versions"), vec![2]);
}
