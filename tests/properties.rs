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
