//! Property tests: the parsers accept exactly what they document and never panic, and filter
//! text is only ever plain text to the database.

mod common;

use keytop::config::Config;
use keytop::domain::duration::parse_duration;
use keytop::domain::money::MAX_AMOUNT;
use keytop::domain::{KeyQuery, Money};
use keytop::service::{KeyService, NewKeySpec, ServiceSettings};
use proptest::prelude::*;

proptest! {
    #[test]
    fn money_round_trips_through_its_decimal_form(micros in -MAX_AMOUNT.micros()..=MAX_AMOUNT.micros()) {
        let money = Money::from_micros(micros);
        prop_assert_eq!(Money::parse(&money.to_decimal_string()), Ok(money));
    }

    #[test]
    fn money_parses_every_plain_decimal(
        negative in any::<bool>(),
        dollar in any::<bool>(),
        whole in 0i64..1_000_000_000_000,
        fraction in proptest::option::of("[0-9]{1,6}"),
    ) {
        let text = format!(
            "{}{}{whole}{}",
            if negative { "-" } else { "" },
            if dollar { "$" } else { "" },
            fraction.as_ref().map(|f| format!(".{f}")).unwrap_or_default()
        );
        let parsed = Money::parse(&text).unwrap();
        let fraction_micros: i64 = fraction.map_or(0, |f| format!("{f:0<6}").parse().unwrap());
        let magnitude = whole * 1_000_000 + fraction_micros;
        prop_assert_eq!(parsed.micros(), if negative { -magnitude } else { magnitude });
    }

    #[test]
    fn money_rejects_exponents_separators_and_words(
        digits in "[0-9]{1,5}",
        junk in prop_oneof![Just("e3"), Just("E-2"), Just(",000"), Just(",5"), Just(" 000"), Just("x"), Just("..1")],
    ) {
        let text = format!("{digits}{junk}");
        prop_assert!(Money::parse(&text).is_err(), "{} was accepted", text);
    }

    #[test]
    fn money_parse_never_panics_and_only_accepts_what_reformats(text in "\\PC{0,24}") {
        if let Ok(money) = Money::parse(&text) {
            prop_assert_eq!(Money::parse(&money.to_decimal_string()), Ok(money));
        }
    }

    #[test]
    fn durations_parse_every_unit(count in 1i64..100_000, unit in prop_oneof![Just(('s', 1)), Just(('m', 60)), Just(('h', 3600)), Just(('d', 86_400)), Just(('w', 604_800))]) {
        let parsed = parse_duration(&format!("{count}{}", unit.0));
        let seconds = count * unit.1;
        if seconds <= 100 * 366 * 86_400 {
            prop_assert_eq!(parsed.unwrap().num_seconds(), seconds);
        } else {
            prop_assert!(parsed.is_err());
        }
    }

    #[test]
    fn duration_parse_never_panics(text in "\\PC{0,16}") {
        let _ = parse_duration(&text);
    }

    #[test]
    fn config_parse_never_panics(text in "\\PC{0,200}") {
        let _ = Config::parse(&text);
    }

    #[test]
    fn config_parse_never_panics_on_near_valid_toml(
        section in prop_oneof![Just("sweep"), Just("ui"), Just("keys"), Just("database"), Just("keybindings")],
        setting in "[a-z_]{1,20}",
        value in prop_oneof![Just("\"60s\"".to_string()), Just("true".to_string()), "\"\\PC{0,12}\"", "-?[0-9]{1,22}"],
    ) {
        let _ = Config::parse(&format!("[{section}]\n{setting} = {value}\n"));
    }
}

/// Filter text goes to the database only as a bound parameter: whatever it contains, the rows
/// returned are exactly those whose name, owner or hint contain it (ASCII case-insensitive) or
/// whose id starts with it.
#[test]
fn hostile_filters_are_plain_text() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let db = runtime.block_on(common::sqlite_db());
    let (master_key, _) = keytop::crypto::MasterKey::generate();
    let service = KeyService::new(db.store.clone(), Ok(master_key), ServiceSettings::default(), "prop".into());
    let names = ["50% off", "under_score", "it's", "back\\slash", "semi;colon", "DROP TABLE", "plain", "quote\"d"];
    let keys = runtime.block_on(async {
        service.add_user("owner").await.unwrap();
        let mut keys = Vec::new();
        for name in names {
            let mut spec = NewKeySpec::new("owner");
            spec.name = Some(name.into());
            keys.push(service.create_key(&spec).await.unwrap().key);
        }
        keys
    });
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(200));
    runner
        .run(&"[%_'\\\\;\" a-eA-EoO-]{0,6}", |filter| {
            let listed = runtime
                .block_on(service.list_keys(&KeyQuery {
                    filter: Some(filter.clone()),
                    limit: 100,
                    ..KeyQuery::default()
                }))
                .unwrap();
            let needle = filter.trim().to_ascii_lowercase();
            let mut expected: Vec<String> = keys
                .iter()
                .filter(|k| {
                    needle.is_empty()
                        || [&k.name, &k.owner_name, &k.key_hint]
                            .iter()
                            .any(|t| t.to_ascii_lowercase().contains(&needle))
                        || k.id.to_string().starts_with(&needle)
                })
                .map(|k| k.name.clone())
                .collect();
            let mut got: Vec<String> = listed.into_iter().map(|k| k.name).collect();
            expected.sort();
            got.sort();
            prop_assert_eq!(got, expected, "filter {:?}", filter);
            Ok(())
        })
        .unwrap();
    let count: i64 = runtime.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        sqlx::query_scalar("SELECT COUNT(*) FROM api_keys").fetch_one(&mut conn).await.unwrap()
    });
    assert_eq!(count, names.len() as i64, "no filter changed the table");
}

/// A random fleet: each key's owner (one of three users), usage rows (key, UTC days before today,
/// seconds into that day, cost in micros, tokens, response time), which keys get purged, the
/// range in days and the length of the top lists.
#[derive(Debug, Clone)]
struct RandomFleet {
    owners: Vec<usize>,
    rows: Vec<(usize, i64, i64, i64, i64, Option<i64>)>,
    purged: Vec<bool>,
    days: u32,
    top: u32,
}

fn random_fleet() -> impl Strategy<Value = RandomFleet> {
    (1usize..=6)
        .prop_flat_map(|keys| {
            let row =
                (0..keys, 0i64..12, 0i64..43_200, 0i64..5_000_000, 0i64..100_000, proptest::option::of(0i64..5_000));
            (
                proptest::collection::vec(0usize..3, keys),
                proptest::collection::vec(row, 0..40),
                proptest::collection::vec(any::<bool>(), keys),
                1u32..15,
                1u32..5,
            )
        })
        .prop_map(|(owners, rows, purged, days, top)| RandomFleet { owners, rows, purged, days, top })
}

/// The test's clock: noon UTC, so that every generated row of today lies in the past.
struct Noon;

impl keytop::domain::Clock for Noon {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 3, 15, 12, 0, 0).unwrap()
    }
}

/// Requests, tokens, cost, response time sum and timed requests of one day.
type DaySums = [i64; 5];

fn sums_of(day: &keytop::domain::DailyUsage) -> DaySums {
    [day.requests, day.tokens, day.cost.micros(), day.response_ms_sum, day.timed_requests]
}

fn add_sums(total: &mut DaySums, part: DaySums) {
    total.iter_mut().zip(part).for_each(|(sum, value)| *sum += value);
}

/// Records the fleet, purges its keys, then checks that the fleet's and each user's daily
/// series are exactly the sums of their keys' series (purged keys' from what was recorded), and
/// the top lists exactly the ranking of those sums.
async fn check_fleet_totals(service: &KeyService, fleet: &RandomFleet) -> Result<(), TestCaseError> {
    use keytop::domain::SpenderKind;
    use keytop::service::UsageInput;
    use std::collections::BTreeMap;

    let users = ["u0", "u1", "u2"];
    for user in users {
        service.add_user(user).await.unwrap();
    }
    let mut keys = Vec::new();
    for owner in &fleet.owners {
        keys.push(service.create_key(&NewKeySpec::new(users[*owner])).await.unwrap().key.id);
    }
    let today = Noon.now_day();
    // What was recorded, per key and day.
    let mut recorded: BTreeMap<(usize, chrono::NaiveDate), DaySums> = BTreeMap::new();
    for (n, &(key, days_ago, seconds, cost, tokens, response_ms)) in fleet.rows.iter().enumerate() {
        let day = today - chrono::Duration::days(days_ago);
        let at = day.and_hms_opt(0, 0, 0).unwrap().and_utc() + chrono::Duration::seconds(seconds);
        let input = UsageInput {
            request_id: Some(format!("r{n}")),
            total_tokens: tokens,
            cost: Money::from_micros(cost),
            response_time_ms: response_ms,
            at: Some(at),
            ..UsageInput::default()
        };
        service.record_usage(keys[key], &input).await.unwrap();
        let row = [1, tokens, cost, response_ms.unwrap_or(0), i64::from(response_ms.is_some())];
        add_sums(recorded.entry((key, day)).or_default(), row);
    }
    for (key, purge) in fleet.purged.iter().enumerate() {
        if *purge {
            service.purge_key(keys[key]).await.unwrap();
        }
    }

    // Each key's series: read back while it exists, else what was recorded for it.
    let first = today - chrono::Duration::days(i64::from(fleet.days) - 1);
    let days: Vec<chrono::NaiveDate> = first.iter_days().take(fleet.days as usize).collect();
    let mut key_series = Vec::new();
    for (key, id) in keys.iter().enumerate() {
        key_series.push(if fleet.purged[key] {
            days.iter().map(|day| recorded.get(&(key, *day)).copied().unwrap_or_default()).collect::<Vec<_>>()
        } else {
            let stats = service.stats(*id, fleet.days).await.unwrap();
            prop_assert_eq!(stats.series.daily.iter().map(|d| d.day).collect::<Vec<_>>(), days.clone());
            stats.series.daily.iter().map(sums_of).collect()
        });
    }
    let sum_of = |keys: &mut dyn Iterator<Item = usize>| {
        let mut total = vec![DaySums::default(); days.len()];
        for key in keys {
            total.iter_mut().zip(&key_series[key]).for_each(|(sum, day)| add_sums(sum, *day));
        }
        total
    };

    let fleet_stats = service.fleet_stats(fleet.days).await.unwrap();
    let all_keys = sum_of(&mut (0..keys.len()));
    prop_assert_eq!(fleet_stats.usage.daily.iter().map(|d| d.day).collect::<Vec<_>>(), days.clone());
    prop_assert_eq!(fleet_stats.usage.daily.iter().map(sums_of).collect::<Vec<_>>(), all_keys.clone());
    let purged = sum_of(&mut (0..keys.len()).filter(|key| fleet.purged[*key]));
    prop_assert_eq!(fleet_stats.purged.daily.iter().map(sums_of).collect::<Vec<_>>(), purged.clone());
    let cost_of = |series: &[DaySums]| series.iter().map(|day| day[2]).sum::<i64>();
    prop_assert_eq!(fleet_stats.usage.total_cost.micros(), cost_of(&all_keys));

    let owned_by = |user: usize| (0..keys.len()).filter(move |key| fleet.owners[*key] == user);
    for (user, name) in users.iter().enumerate() {
        let stats = service.user_stats(name, fleet.days).await.unwrap();
        let expected = sum_of(&mut owned_by(user));
        prop_assert_eq!(stats.usage.daily.iter().map(sums_of).collect::<Vec<_>>(), expected, "user {}", name);
    }

    // The top lists: biggest cost first, equal cost by id, nothing spent left out.
    let ranking = |mut spenders: Vec<(uuid::Uuid, i64)>| {
        spenders.retain(|(_, cost)| *cost > 0);
        spenders.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        spenders.truncate(fleet.top as usize);
        spenders
    };
    let live_keys = (0..keys.len()).filter(|key| !fleet.purged[*key]).map(|key| (keys[key], cost_of(&key_series[key])));
    let top_keys = service.top_spenders(SpenderKind::Key, fleet.days, fleet.top).await.unwrap();
    let listed = |top: &keytop::service::TopSpenders| {
        top.spenders.iter().map(|r| (r.spender.id, r.spender.totals.cost.micros())).collect::<Vec<_>>()
    };
    prop_assert_eq!(listed(&top_keys), ranking(live_keys.collect()));
    prop_assert_eq!(top_keys.purged.map_or(0, |line| line.spender.cost.micros()), cost_of(&purged));
    let mut user_ids = Vec::new();
    for name in users {
        user_ids.push(service.user(name).await.unwrap().id);
    }
    let user_costs = (0..users.len()).map(|user| (user_ids[user], cost_of(&sum_of(&mut owned_by(user))))).collect();
    let top_users = service.top_spenders(SpenderKind::User, fleet.days, fleet.top).await.unwrap();
    prop_assert_eq!(listed(&top_users), ranking(user_costs));
    Ok(())
}

impl Noon {
    fn now_day(&self) -> chrono::NaiveDate {
        keytop::domain::Clock::now(self).date_naive()
    }
}

/// The fleet's and each user's totals are the sums of their keys' series, exactly (integer
/// micros), for random usage, random purges and random ranges ending today, on each backend;
/// the top lists rank those sums exactly.
#[test]
fn fleet_and_user_totals_are_the_sums_of_their_keys() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let backends: Vec<(&str, u32)> =
        std::iter::once(("sqlite", 24)).chain(common::postgres_server().map(|_| ("postgres", 8))).collect();
    for (backend, cases) in backends {
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(cases));
        runner
            .run(&random_fleet(), |fleet| {
                runtime.block_on(async {
                    let db = if backend == "sqlite" {
                        common::sqlite_db().await
                    } else {
                        common::postgres_db().await.unwrap()
                    };
                    let (master_key, _) = keytop::crypto::MasterKey::generate();
                    let service =
                        KeyService::new(db.store.clone(), Ok(master_key), ServiceSettings::default(), "prop".into())
                            .with_clock(std::sync::Arc::new(Noon));
                    check_fleet_totals(&service, &fleet).await
                })
            })
            .unwrap_or_else(|failure| panic!("[{backend}] {failure}"));
    }
}
