/// Transactions that commit between the slot's creation and the snapshot are in both: they
/// come once. One still open at the snapshot is not in it: it comes from the slot.
#[test]
fn changes_around_the_snapshot_come_exactly_once() {
    let Some(pg) = Postgres::start() else { return };
    let mut db = pg.client();
    db.batch_execute(TABLE).expect("table");
    db.batch_execute("INSERT INTO customers VALUES (1, 'A', 'A', 'a@x', '', 'gold')")
        .expect("rows");
    let dir = tempfile::tempdir().expect("dir");
    let log = embedded_log(&dir);
    create_topic(log.as_ref(), "customers", 3, CleanupPolicy::Compact);

    let committed = Mutex::new(pg.client());
    let open = Arc::new(Mutex::new(pg.client()));
    let mut config = config(&pg);
    let hook_open = open.clone();
    config.faults = Some(Arc::new(move |at| {
        if at == SourcePoint::AfterSlotCreated {
            let mut db = committed.lock().expect("lock");
            db.batch_execute(
                "UPDATE customers SET level = 'platinum' WHERE id = 1;
                 INSERT INTO customers VALUES (2, 'B', 'B', 'b@x', '', 'gold')",
            )
            .expect("committed before the snapshot");
            hook_open
                .lock()
                .expect("lock")
                .batch_execute(
                    "BEGIN; INSERT INTO customers VALUES (3, 'C', 'C', 'c@x', '', 'silver')",
                )
                .expect("open across the snapshot");
        }
        false
    }));
    let mut source = PostgresSource::start(log.as_ref(), config).expect("start");
    open.lock()
        .expect("lock")
        .batch_execute("COMMIT")
        .expect("commit");
    db.batch_execute("UPDATE customers SET level = 'silver' WHERE id = 2")
        .expect("after");
    drain(&mut source);

    let expected: BTreeMap<i64, Vec<Option<String>>> = [
        (1, vec![some("platinum@a@x")]),
        (2, vec![some("gold@b@x"), some("silver@b@x")]),
        (3, vec![some("silver@c@x")]),
    ]
    .into_iter()
    .collect();
    assert_eq!(history(log.as_ref()), expected);
}
