//! One conformance suite, two databases: every case runs on a fresh SQLite file and on a
//! fresh PostgreSQL database (when `CAIRN_TEST_POSTGRES_URL` is set; required when CI=true).

use std::future::Future;

use cairn_knowledge::{
    backoff, Fingerprint, Forget, InvestigationContext, JobState, KnowledgeRecord, NewIncident,
    OutboxRef, ServiceEntry, Store, StoredEvidence, StoredHypothesis, MAX_OUTBOX_ATTEMPTS,
};
use chrono::Duration;
use chrono::{TimeZone, Utc};

mod common;

async fn on_sqlite<F, Fut>(case: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    common::on_sqlite(|db| case(db.store)).await;
}

async fn on_postgres<F, Fut>(case: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    common::on_postgres("the conformance suite", |db| case(db.store)).await;
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::on_sqlite(super::$name).await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::on_postgres(super::$name).await } )* }
    };
}

conformance!(
    migrate_fresh_then_idempotent,
    processed_event_once,
    processed_event_once_under_concurrency,
    job_lease_is_exclusive_under_concurrency,
    job_retries_with_backoff_then_dead_letters,
    expired_lease_is_reclaimed,
    outbox_is_idempotent_and_never_resends,
    outbox_gives_up_what_slack_will_never_take,
    outbox_claims_are_exclusive_and_keep_each_channel_in_order,
    outbox_batches_keep_their_order_and_skip_known_keys,
    incidents_one_open_per_group_key,
    alerts_dedupe,
    service_catalogue_upserts,
    knowledge_edits_add_versions_and_retraction_keeps_rows,
    runbook_reimport_updates_without_duplicates,
    investigation_round_trip_latest_wins,
    inbound_event_accepted_once_with_its_job,
    forget_is_for_the_author_and_admins_and_keeps_history,
    precedents_carry_incident_and_fingerprint_and_drop_retracted,
    catalogue_and_service_history,
    runbook_directory_import_is_idempotent,
);

async fn runbook_directory_import_is_idempotent(store: Store) {
    store.migrate().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("checkout.md", "---\ntitle: Checkout 5xx\nservices: [checkout]\nalerts: [CheckoutErrors]\ntags: [payments]\n---\nRoll back the last deploy.\n");
    write(
        "db/pool.md",
        "# DB pool exhausted\nRaise the pool, find the slow query.\n",
    );
    write("broken.md", "---\ntitle: [oops\n---\n");
    write("notes.txt", "not a runbook");
    let first = store.import_runbooks(dir.path(), t0()).await.unwrap();
    assert_eq!(
        (first.added, first.updated, first.unchanged),
        (2, 0, 0),
        "{first}"
    );
    assert_eq!(first.skipped.len(), 1);
    assert!(
        first.skipped[0].starts_with("broken.md: front matter line"),
        "{:?}",
        first.skipped
    );
    let again = store
        .import_runbooks(dir.path(), t0() + Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(
        (again.added, again.updated, again.unchanged),
        (0, 0, 2),
        "{again}"
    );
    write("checkout.md", "---\ntitle: Checkout 5xx\nservices: [checkout, cart]\n---\nRoll back, then page payments.\n");
    let changed = store
        .import_runbooks(dir.path(), t0() + Duration::minutes(2))
        .await
        .unwrap();
    assert_eq!(
        (changed.added, changed.updated, changed.unchanged),
        (0, 1, 1),
        "{changed}"
    );
    let all = store.runbooks().await.unwrap();
    assert_eq!(all.len(), 2, "re-import adds nothing");
    let checkout = all.iter().find(|r| r.title == "Checkout 5xx").unwrap();
    assert_eq!(checkout.services, vec!["checkout", "cart"]);
    assert_eq!(checkout.updated_at, t0() + Duration::minutes(2));
    let pool = all.iter().find(|r| r.title == "DB pool exhausted").unwrap();
    assert_eq!(pool.updated_at, t0(), "an unchanged file keeps its date");
    let missing = store
        .import_runbooks(&dir.path().join("nope"), t0())
        .await
        .unwrap_err();
    assert!(
        missing
            .to_string()
            .starts_with("cannot read runbook directory"),
        "{missing}"
    );
}

fn record(kind: &str, statement: &str, author: &str, incident: Option<i64>) -> KnowledgeRecord {
    KnowledgeRecord {
        incident_id: incident,
        channel: Some("C1".into()),
        thread_ts: Some("1700000000.000100".into()),
        ..KnowledgeRecord::draft(
            kind,
            statement,
            serde_json::json!({"services": ["cart-cache"], "rejected": ["checkout"], "fault_kind": "cache_failure"}),
            author,
            "thread_reply",
        )
    }
}

async fn forget_is_for_the_author_and_admins_and_keeps_history(store: Store) {
    store.migrate().await.unwrap();
    let admins = vec!["UADMIN".to_owned()];
    let a = store
        .add_knowledge(
            &record("fact", "cart-cache evicts under load", "U1AAA", None),
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(
        (a.channel.as_deref(), a.services()),
        (Some("C1"), vec!["cart-cache".to_owned()])
    );
    assert_eq!(
        store
            .forget(a.record_id, "U2BBB", &admins, t0())
            .await
            .unwrap(),
        Forget::Refused {
            author: "U1AAA".into()
        }
    );
    assert_eq!(
        store.knowledge(a.record_id).await.unwrap().unwrap().status,
        "active",
        "a refusal changes nothing"
    );
    // An edit by someone else does not make them the author.
    store
        .revise_knowledge(
            a.record_id,
            Some("cart-cache evicts hot keys"),
            None,
            "U2BBB",
            t0(),
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .forget(a.record_id, "U2BBB", &admins, t0())
            .await
            .unwrap(),
        Forget::Refused { .. }
    ));
    let Forget::Retracted(r) = store
        .forget(a.record_id, "U1AAA", &admins, t0())
        .await
        .unwrap()
    else {
        panic!("author may forget")
    };
    assert_eq!(
        (r.status.as_str(), r.version, r.revised_by.as_str()),
        ("retracted", 3, "U1AAA")
    );
    assert!(matches!(
        store
            .forget(a.record_id, "U1AAA", &admins, t0())
            .await
            .unwrap(),
        Forget::AlreadyRetracted(_)
    ));
    let b = store
        .add_knowledge(&record("fact", "other", "U1AAA", None), t0())
        .await
        .unwrap();
    assert!(
        matches!(
            store
                .forget(b.record_id, "UADMIN", &admins, t0())
                .await
                .unwrap(),
            Forget::Retracted(_)
        ),
        "admins may forget any record"
    );
    assert_eq!(
        store
            .forget(999_999, "UADMIN", &admins, t0())
            .await
            .unwrap(),
        Forget::NotFound
    );
    assert_eq!(
        store.knowledge_history(a.record_id).await.unwrap().len(),
        3,
        "nothing deleted"
    );
    let listed = store.list_knowledge(10).await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|r| (r.record_id, r.version, r.status.as_str()))
            .collect::<Vec<_>>(),
        vec![(b.record_id, 2, "retracted"), (a.record_id, 3, "retracted")],
        "latest versions only, newest record first"
    );
}

async fn precedents_carry_incident_and_fingerprint_and_drop_retracted(store: Store) {
    store.migrate().await.unwrap();
    let incident = store
        .create_incident(
            &NewIncident {
                title: "Checkout 5xx".into(),
                source: "pagerduty".into(),
                source_ref: "P1".into(),
                channel: None,
            },
            t0(),
        )
        .await
        .unwrap();
    let mut fingerprint = Fingerprint::default();
    fingerprint.add("cart-cache|cache_misses", 0.9);
    let context = InvestigationContext {
        window_start: Some(t0()),
        window_end: Some(t0()),
        fingerprint: Some(fingerprint.clone()),
    };
    store
        .save_investigation(incident.id, "root_cause_found", &[], t0(), t0(), &context)
        .await
        .unwrap();
    let kept = store
        .add_knowledge(
            &record(
                "correction",
                "cache, not checkout",
                "U1AAA",
                Some(incident.id),
            ),
            t0(),
        )
        .await
        .unwrap();
    let gone = store
        .add_knowledge(
            &record("confirmation", "confirmed", "U1AAA", Some(incident.id)),
            t0(),
        )
        .await
        .unwrap();
    store
        .add_knowledge(
            &record("fact", "no incident, no precedent", "U1AAA", None),
            t0(),
        )
        .await
        .unwrap();
    store
        .forget(gone.record_id, "U1AAA", &[], t0())
        .await
        .unwrap();
    let got = store.precedents().await.unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].record.record_id, kept.record_id);
    assert_eq!(
        (got[0].incident_title.as_str(), got[0].fingerprint.as_ref()),
        ("Checkout 5xx", Some(&fingerprint))
    );
    assert_eq!(got[0].record.rejected(), vec!["checkout".to_owned()]);
    assert_eq!(got[0].record.fault_kind(), Some("cache_failure"));
}

async fn catalogue_and_service_history(store: Store) {
    store.migrate().await.unwrap();
    store
        .upsert_service(
            "checkout",
            Some("service"),
            Some("shop"),
            &["cart-cache".to_owned()],
            t0(),
        )
        .await
        .unwrap();
    store
        .upsert_service("cart-cache", Some("cache"), None, &[], t0())
        .await
        .unwrap();
    let all = store.services().await.unwrap();
    assert_eq!(
        all.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        vec!["cart-cache", "checkout"]
    );
    assert_eq!(all[1].depends_on, vec!["cart-cache".to_owned()]);
    let incident = store
        .create_incident(
            &NewIncident {
                title: "Checkout 5xx".into(),
                source: "slack".into(),
                source_ref: "Ev1".into(),
                channel: None,
            },
            t0(),
        )
        .await
        .unwrap();
    let hyp = |rank: i32, service: &str| StoredHypothesis {
        rank,
        service: service.into(),
        kind: Some("cache_failure".into()),
        confidence: 0.7,
        status: "open".into(),
        evidence: vec![],
    };
    store
        .save_investigation(
            incident.id,
            "root_cause_found",
            &[hyp(1, "cart-cache"), hyp(2, "checkout")],
            t0(),
            t0(),
            &InvestigationContext::default(),
        )
        .await
        .unwrap();
    let past = store.incidents_for_service("cart-cache", 10).await.unwrap();
    assert_eq!(past.len(), 1);
    assert_eq!(
        (past[0].incident.id, past[0].rank, past[0].kind.as_deref()),
        (incident.id, 1, Some("cache_failure"))
    );
    assert!(
        store
            .incidents_for_service("checkout", 10)
            .await
            .unwrap()
            .is_empty(),
        "rank 2 and undecided: not its incident"
    );
    store
        .decide_hypothesis(incident.id, 2, "confirmed", "U1", t0())
        .await
        .unwrap();
    assert_eq!(
        store
            .incidents_for_service("checkout", 10)
            .await
            .unwrap()
            .len(),
        1,
        "confirmed counts"
    );
}

async fn inbound_event_accepted_once_with_its_job(store: Store) {
    store.migrate().await.unwrap();
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let payload = serde_json::json!({"channel": "C1", "text": "why is checkout slow?"});
    assert!(store
        .accept_inbound("slack:Ev1", "investigate", payload.clone(), now)
        .await
        .unwrap());
    for _ in 0..3 {
        assert!(!store
            .accept_inbound("slack:Ev1", "investigate", payload.clone(), now)
            .await
            .unwrap());
    }
    // A key recorded before jobs carried their event's key is still a repeat.
    assert!(store.mark_processed("slack:Ev0", now).await.unwrap());
    assert!(!store
        .accept_inbound("slack:Ev0", "investigate", payload.clone(), now)
        .await
        .unwrap());
    assert_eq!(
        store.count_jobs(JobState::Queued).await.unwrap(),
        1,
        "one job for one event"
    );
    let job = store
        .lease_job("w", now, chrono::Duration::minutes(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((job.kind.as_str(), &job.payload), ("investigate", &payload));
}

async fn migrate_fresh_then_idempotent(store: Store) {
    let first = store.migrate().await.unwrap();
    assert_eq!(first.applied.len(), first.total);
    assert_eq!(first.total, 14);
    assert!(
        first.to_string().starts_with("applied 14 migrations"),
        "{first}"
    );
    assert!(store.pending_migrations().await.unwrap().is_empty());
    let again = store.migrate().await.unwrap();
    assert!(again.applied.is_empty());
    assert_eq!(again.to_string(), "database is up to date (14 migrations)");
    store.ping().await.unwrap();
}

async fn processed_event_once(store: Store) {
    store.migrate().await.unwrap();
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    assert!(store.mark_processed("Ev1", now).await.unwrap());
    assert!(!store.mark_processed("Ev1", now).await.unwrap());
    assert!(store.mark_processed("Ev2", now).await.unwrap());
    // Pruning past the horizon forgets old keys only.
    let later = now + Duration::hours(2);
    assert!(store.mark_processed("Ev3", later).await.unwrap());
    assert_eq!(
        store
            .prune_processed(later - Duration::hours(1))
            .await
            .unwrap(),
        2
    );
    assert!(!store.mark_processed("Ev3", later).await.unwrap());
    assert!(store.mark_processed("Ev1", later).await.unwrap());
}

async fn processed_event_once_under_concurrency(store: Store) {
    store.migrate().await.unwrap();
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.mark_processed("same", now).await.unwrap() })
        })
        .collect();
    let mut firsts = 0;
    for t in tasks {
        firsts += usize::from(t.await.unwrap());
    }
    assert_eq!(firsts, 1, "exactly one caller processes the event");
}

fn t0() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

async fn job_lease_is_exclusive_under_concurrency(store: Store) {
    store.migrate().await.unwrap();
    for i in 0..20 {
        store
            .enqueue_job("investigate", serde_json::json!({ "n": i }), t0(), 3)
            .await
            .unwrap();
    }
    assert_eq!(store.count_jobs(JobState::Queued).await.unwrap(), 20);
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                while let Some(job) = store
                    .lease_job(&format!("w{w}"), t0(), Duration::minutes(5))
                    .await
                    .unwrap()
                {
                    got.push(job.payload["n"].as_i64().unwrap());
                }
                got
            })
        })
        .collect();
    // While workers move jobs from queued to running, the total stays what it is.
    let watcher = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..10 {
                seen.push(store.count_all_jobs().await.unwrap());
                tokio::task::yield_now().await;
            }
            seen
        })
    };
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    assert!(
        watcher.await.unwrap().iter().all(|n| *n == 20),
        "one consistent total while jobs change state"
    );
    all.sort();
    assert_eq!(
        all,
        (0..20).collect::<Vec<i64>>(),
        "every job claimed exactly once"
    );
    assert_eq!(store.count_jobs(JobState::Running).await.unwrap(), 20);
}

async fn job_retries_with_backoff_then_dead_letters(store: Store) {
    store.migrate().await.unwrap();
    let id = store
        .enqueue_job("investigate", serde_json::json!({}), t0(), 2)
        .await
        .unwrap();
    let job = store
        .lease_job("w", t0(), Duration::minutes(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((job.id, job.attempts), (id, 1));
    assert_eq!(
        store.fail_job(id, "w", "boom", t0()).await.unwrap(),
        Some(JobState::Queued)
    );
    // Not due before the backoff has passed.
    assert!(store
        .lease_job("w", t0(), Duration::minutes(1))
        .await
        .unwrap()
        .is_none());
    let later = t0() + backoff(1);
    let job = store
        .lease_job("w", later, Duration::minutes(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.attempts, 2);
    assert_eq!(
        store.fail_job(id, "other", "x", later).await.unwrap(),
        None,
        "only the holder may fail it"
    );
    assert_eq!(
        store.fail_job(id, "w", "boom again", later).await.unwrap(),
        Some(JobState::Dead)
    );
    assert_eq!(store.count_jobs(JobState::Dead).await.unwrap(), 1);
    assert!(store
        .lease_job("w", later + Duration::hours(1), Duration::minutes(1))
        .await
        .unwrap()
        .is_none());
}

async fn expired_lease_is_reclaimed(store: Store) {
    store.migrate().await.unwrap();
    let id = store
        .enqueue_job("investigate", serde_json::json!({}), t0(), 3)
        .await
        .unwrap();
    store
        .lease_job("crashed", t0(), Duration::minutes(1))
        .await
        .unwrap()
        .unwrap();
    assert!(store
        .lease_job("w2", t0() + Duration::seconds(30), Duration::minutes(1))
        .await
        .unwrap()
        .is_none());
    let job = store
        .lease_job("w2", t0() + Duration::minutes(2), Duration::minutes(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((job.id, job.attempts), (id, 2));
    assert!(
        !store.complete_job(id, "crashed").await.unwrap(),
        "the dead worker lost its lease"
    );
    assert!(store.complete_job(id, "w2").await.unwrap());
    assert_eq!(store.count_jobs(JobState::Done).await.unwrap(), 1);
}

async fn outbox_is_idempotent_and_never_resends(store: Store) {
    store.migrate().await.unwrap();
    let payload = serde_json::json!({ "text": "hello" });
    assert!(store
        .enqueue_outbox("inc-1:status", "C1", payload.clone(), t0())
        .await
        .unwrap());
    assert!(!store
        .enqueue_outbox("inc-1:status", "C1", payload.clone(), t0())
        .await
        .unwrap());
    let due = store.due_outbox(t0(), 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].payload, payload);
    store
        .mark_outbox_failed(due[0].id, "429", t0() + Duration::seconds(30), false)
        .await
        .unwrap();
    assert!(
        store.due_outbox(t0(), 10).await.unwrap().is_empty(),
        "honours the retry time"
    );
    let due = store
        .due_outbox(t0() + Duration::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(due[0].attempts, 1);
    assert!(!due[0].in_flight, "a recorded failure is an outcome");
    assert!(store
        .claim_outbox(
            due[0].id,
            t0() + Duration::seconds(30),
            Duration::seconds(12)
        )
        .await
        .unwrap());
    assert!(
        store
            .due_outbox(t0() + Duration::seconds(41), 10)
            .await
            .unwrap()
            .is_empty(),
        "claimed: no one else's to send until the claim expires"
    );
    let due = store
        .due_outbox(t0() + Duration::seconds(42), 10)
        .await
        .unwrap();
    assert!(due[0].in_flight, "a send whose outcome was never recorded");
    assert!(store
        .mark_outbox_sent(due[0].id, "1700000000.000100")
        .await
        .unwrap());
    assert!(!store.mark_outbox_sent(due[0].id, "again").await.unwrap());
    assert!(store
        .due_outbox(t0() + Duration::days(1), 10)
        .await
        .unwrap()
        .is_empty());
    assert!(
        !store
            .enqueue_outbox("inc-1:status", "C1", payload, t0())
            .await
            .unwrap(),
        "sent stays sent"
    );
}

async fn outbox_batches_keep_their_order_and_skip_known_keys(store: Store) {
    store.migrate().await.unwrap();
    let text = |t: &str| serde_json::json!({ "text": t });
    assert!(store
        .enqueue_outbox("t:2", "CA", text("already queued"), t0())
        .await
        .unwrap());
    let batch: Vec<(String, serde_json::Value)> = ["t:1", "t:2", "t:3", "t:3", "t:4"]
        .iter()
        .map(|k| (k.to_string(), text(k)))
        .collect();
    assert_eq!(
        store.enqueue_outbox_all(&batch, "CA", t0()).await.unwrap(),
        3,
        "t:2 was there and t:3 came twice"
    );
    let due = store.due_outbox(t0(), 10).await.unwrap();
    let keys: Vec<&str> = due.iter().map(|m| m.idempotency_key.as_str()).collect();
    assert_eq!(
        keys,
        ["t:2", "t:1", "t:3", "t:4"],
        "queued order is send order"
    );
    assert_eq!(due[0].payload, text("already queued"));
    assert_eq!(due[2].payload, text("t:3"));
}

async fn outbox_claims_are_exclusive_and_keep_each_channel_in_order(store: Store) {
    store.migrate().await.unwrap();
    let payload = serde_json::json!({ "text": "hello" });
    for (key, channel) in [("a:1", "CA"), ("a:2", "CA"), ("b:1", "CB")] {
        store
            .enqueue_outbox(key, channel, payload.clone(), t0())
            .await
            .unwrap();
    }
    let due = store.due_outbox(t0(), 10).await.unwrap();
    let id = |key: &str| due.iter().find(|m| m.idempotency_key == key).unwrap().id;
    let lease = Duration::seconds(12);
    // Eight replicas race for each message: one wins.
    for key in ["a:1", "b:1"] {
        let racers: Vec<_> = (0..8)
            .map(|_| {
                let (store, id) = (store.clone(), id(key));
                tokio::spawn(async move { store.claim_outbox(id, t0(), lease).await.unwrap() })
            })
            .collect();
        let mut won = 0;
        for racer in racers {
            won += usize::from(racer.await.unwrap());
        }
        assert_eq!(won, 1, "{key} claimed {won} times");
    }
    assert!(
        !store.claim_outbox(id("a:2"), t0(), lease).await.unwrap(),
        "a:1 is still pending in the same channel: a:2 waits"
    );
    store.mark_outbox_sent(id("a:1"), "1.1").await.unwrap();
    assert!(store.claim_outbox(id("a:2"), t0(), lease).await.unwrap());
    // A claim whose sender died expires; the message is then due again, marked in flight.
    assert!(!store
        .claim_outbox(id("b:1"), t0() + Duration::seconds(11), lease)
        .await
        .unwrap());
    assert!(store
        .claim_outbox(id("b:1"), t0() + Duration::seconds(12), lease)
        .await
        .unwrap());
}

async fn outbox_gives_up_what_slack_will_never_take(store: Store) {
    store.migrate().await.unwrap();
    let payload = serde_json::json!({ "text": "hello" });
    for key in ["gone:root", "gone:edit", "flaky:status"] {
        store
            .enqueue_outbox(key, "C1", payload.clone(), t0())
            .await
            .unwrap();
    }
    let due = store.due_outbox(t0(), 10).await.unwrap();
    assert_eq!(due.len(), 3);
    // A permanent refusal is dead at once; dead is never due again.
    assert!(store
        .mark_outbox_failed(due[0].id, "channel_not_found", t0(), true)
        .await
        .unwrap());
    assert!(store
        .outbox_dead(OutboxRef::Key("gone:root"))
        .await
        .unwrap());
    store
        .bury_outbox(due[1].id, "edits a message that was never sent")
        .await
        .unwrap();
    // A message that keeps failing is given up after the last attempt, not before.
    for attempt in 1..=MAX_OUTBOX_ATTEMPTS {
        let dead = store
            .mark_outbox_failed(due[2].id, "HTTP 500", t0(), false)
            .await
            .unwrap();
        assert_eq!(dead, attempt == MAX_OUTBOX_ATTEMPTS, "attempt {attempt}");
    }
    assert!(store
        .due_outbox(t0() + Duration::days(1), 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.count_dead_outbox().await.unwrap(), 3);
    assert!(!store
        .outbox_dead(OutboxRef::Key("never:queued"))
        .await
        .unwrap());
    // A dead message is not sent by a later mark either.
    assert!(!store
        .mark_outbox_sent(due[0].id, "1700000000.000100")
        .await
        .unwrap());
    // A failure reported for a message already given up changes nothing and says so.
    assert!(store
        .mark_outbox_failed(due[2].id, "HTTP 500", t0(), false)
        .await
        .unwrap());
}

async fn incidents_one_open_per_group_key(store: Store) {
    store.migrate().await.unwrap();
    let new = NewIncident {
        title: "HighErrorRate".into(),
        source: "alertmanager".into(),
        source_ref: "{}:{alertname=\"X\"}".into(),
        channel: None,
    };
    assert!(store
        .open_incident_by_ref("alertmanager", &new.source_ref)
        .await
        .unwrap()
        .is_none());
    let a = store.create_incident(&new, t0()).await.unwrap();
    assert_eq!((a.status.as_str(), a.created_at), ("open", t0()));
    assert_eq!(
        store
            .open_incident_by_ref("alertmanager", &new.source_ref)
            .await
            .unwrap(),
        Some(a.clone())
    );
    assert!(store
        .set_incident_thread(a.id, "C1", "1700.1")
        .await
        .unwrap());
    assert!(store
        .set_incident_status(a.id, "resolved", t0())
        .await
        .unwrap());
    assert!(
        store
            .open_incident_by_ref("alertmanager", &new.source_ref)
            .await
            .unwrap()
            .is_none(),
        "resolved closes it"
    );
    let b = store
        .create_incident(&new, t0() + Duration::hours(1))
        .await
        .unwrap();
    let listed: Vec<i64> = store
        .list_incidents(10)
        .await
        .unwrap()
        .iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(listed, vec![b.id, a.id], "newest first");
    let a = store.incident(a.id).await.unwrap().unwrap();
    assert_eq!(
        (a.channel.as_deref(), a.thread_ts.as_deref()),
        (Some("C1"), Some("1700.1"))
    );
    assert!(store.incident(9999).await.unwrap().is_none());
}

async fn alerts_dedupe(store: Store) {
    store.migrate().await.unwrap();
    let payload = serde_json::json!({"status": "firing"});
    assert!(store
        .record_alert("pd:Q1:ev1", "pagerduty", payload.clone(), None, t0())
        .await
        .unwrap());
    assert!(!store
        .record_alert("pd:Q1:ev1", "pagerduty", payload, None, t0())
        .await
        .unwrap());
}

async fn service_catalogue_upserts(store: Store) {
    store.migrate().await.unwrap();
    store
        .upsert_service(
            "checkout",
            Some("service"),
            None,
            &["payments".into()],
            t0(),
        )
        .await
        .unwrap();
    store
        .upsert_service("checkout", Some("service"), Some("team-a"), &[], t0())
        .await
        .unwrap();
    store
        .upsert_service("payments", None, None, &[], t0())
        .await
        .unwrap();
    assert_eq!(
        store.service_names().await.unwrap(),
        vec!["checkout", "payments"]
    );
    // Many at once, in one statement per thousand; a name given twice keeps its last entry.
    let entry = |name: String, team: &str| ServiceEntry {
        name,
        kind: Some("service".into()),
        team: Some(team.into()),
        depends_on: vec!["payments".into()],
    };
    let mut many: Vec<ServiceEntry> = (0..1500)
        .map(|i| entry(format!("svc-{i:04}"), "team-b"))
        .collect();
    many.push(entry("checkout".into(), "team-c"));
    many.push(entry("svc-0007".into(), "team-d"));
    store.upsert_services(&many, t0()).await.unwrap();
    let all = store.services().await.unwrap();
    assert_eq!(all.len(), 1502);
    let find = |name: &str| all.iter().find(|s| s.name == name).unwrap().clone();
    assert_eq!(find("checkout").team.as_deref(), Some("team-c"));
    assert_eq!(find("svc-0007").team.as_deref(), Some("team-d"));
    assert_eq!(find("svc-1499").depends_on, vec!["payments"]);
}

async fn knowledge_edits_add_versions_and_retraction_keeps_rows(store: Store) {
    store.migrate().await.unwrap();
    let draft = KnowledgeRecord {
        incident_id: Some(7),
        scope: "service".into(),
        ..KnowledgeRecord::draft(
            "correction",
            "root cause was the cache eviction on cart-cache, not checkout",
            serde_json::json!({"services": ["cart-cache"], "fault_kind": "cache_failure"}),
            "U1AAA",
            "thread_reply",
        )
    };
    let first = store.add_knowledge(&draft, t0()).await.unwrap();
    let second = store.add_knowledge(&draft, t0()).await.unwrap();
    assert_ne!(first.record_id, second.record_id);
    assert_eq!((first.version, first.status.as_str()), (1, "active"));
    let edited = store
        .revise_knowledge(
            first.record_id,
            Some("cart-cache evictions"),
            None,
            "U2BBB",
            t0(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (edited.version, edited.statement.as_str()),
        (2, "cart-cache evictions")
    );
    assert_eq!(
        (edited.author.as_str(), edited.revised_by.as_str()),
        ("U1AAA", "U2BBB"),
        "the author stays; the editor is recorded"
    );
    let retracted = store
        .revise_knowledge(first.record_id, None, Some("retracted"), "U1AAA", t0())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            retracted.version,
            retracted.status.as_str(),
            retracted.statement.as_str()
        ),
        (3, "retracted", "cart-cache evictions")
    );
    let history = store.knowledge_history(first.record_id).await.unwrap();
    assert_eq!(
        history.iter().map(|r| r.version).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(history[0].statement, draft.statement, "history is kept");
    assert_eq!(history[0].fields, draft.fields);
    assert!(store
        .revise_knowledge(424242, None, Some("retracted"), "U1", t0())
        .await
        .unwrap()
        .is_none());
}

async fn runbook_reimport_updates_without_duplicates(store: Store) {
    store.migrate().await.unwrap();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let a = store
        .upsert_runbook(
            "Checkout 5xx",
            "runbooks/checkout.md",
            &s(&["checkout"]),
            &s(&["HighErrorRate"]),
            &s(&["web"]),
            "v1",
            t0(),
        )
        .await
        .unwrap();
    let same_path = store
        .upsert_runbook(
            "Checkout errors",
            "runbooks/checkout.md",
            &s(&["checkout"]),
            &[],
            &[],
            "v2",
            t0(),
        )
        .await
        .unwrap();
    let same_title = store
        .upsert_runbook(
            "Checkout errors",
            "runbooks/moved.md",
            &s(&["checkout"]),
            &[],
            &[],
            "v3",
            t0(),
        )
        .await
        .unwrap();
    assert_eq!((a, same_path, same_title), (a, a, a));
    let other = store
        .upsert_runbook("DB failover", "runbooks/db.md", &[], &[], &[], "x", t0())
        .await
        .unwrap();
    assert_ne!(other, a);
    let all = store.runbooks().await.unwrap();
    assert_eq!(all.len(), 2);
    let checkout = all.iter().find(|r| r.id == a).unwrap();
    assert_eq!(
        (checkout.path.as_str(), checkout.body.as_str()),
        ("runbooks/moved.md", "v3")
    );
    assert_eq!(checkout.services, vec!["checkout"]);
}

async fn investigation_round_trip_latest_wins(store: Store) {
    store.migrate().await.unwrap();
    let new = NewIncident {
        title: "t".into(),
        source: "slack".into(),
        source_ref: "Ev1".into(),
        channel: Some("C1".into()),
    };
    let incident = store.create_incident(&new, t0()).await.unwrap();
    let mut fingerprint = Fingerprint::default();
    fingerprint.add("checkout|errors", 0.7);
    let context = InvestigationContext {
        window_start: Some(t0()),
        window_end: Some(t0() + Duration::hours(1)),
        fingerprint: Some(fingerprint),
    };
    let hyp = |rank: i32, service: &str| StoredHypothesis {
        rank,
        service: service.into(),
        kind: Some("bad_deploy".into()),
        confidence: 0.8 / f64::from(rank),
        status: "open".into(),
        evidence: vec![StoredEvidence {
            kind: "metrics".into(),
            text: format!("{service} errors 12%"),
            source: Some("bundle".into()),
            link: None,
            incident_ref: None,
            record_ref: None,
        }],
    };
    store
        .save_investigation(
            incident.id,
            "root_cause_found",
            &[hyp(1, "old")],
            t0(),
            t0(),
            &InvestigationContext::default(),
        )
        .await
        .unwrap();
    store
        .save_investigation(
            incident.id,
            "root_cause_found",
            &[hyp(2, "payments"), hyp(1, "checkout")],
            t0(),
            t0(),
            &context,
        )
        .await
        .unwrap();
    assert_eq!(
        store.investigation_context(incident.id).await.unwrap(),
        Some(context.clone()),
        "window and fingerprint kept with the latest investigation"
    );
    let got = store.hypotheses(incident.id).await.unwrap();
    assert_eq!(
        got,
        vec![hyp(1, "checkout"), hyp(2, "payments")],
        "latest investigation, by rank"
    );
    assert!(store
        .decide_hypothesis(incident.id, 1, "confirmed", "U1AAA", t0())
        .await
        .unwrap());
    assert_eq!(
        store.hypotheses(incident.id).await.unwrap()[0].status,
        "confirmed"
    );
    assert!(!store
        .decide_hypothesis(incident.id, 9, "rejected", "U1AAA", t0())
        .await
        .unwrap());
}
