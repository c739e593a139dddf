//! The list parameters' parsing rules and messages, and cursors bound to their filters.

use super::*;

fn param_of(raw: &str) -> String {
    match ListQuery::parse(Some(raw)) {
        Err(ApiError::InvalidParam { param, .. }) => param.into_owned(),
        other => panic!("{raw}: {other:?}"),
    }
}

#[test]
fn parameters_follow_the_original_rules() {
    let q = ListQuery::parse(None).unwrap();
    assert_eq!((q.limit, q.offset), (20, 0));
    let q = ListQuery::parse(Some(
        "limit=100&offset=5&trace_version=1.0&created_after=2026-01-01",
    ))
    .unwrap();
    assert_eq!(
        (q.limit, q.offset, q.trace_version.as_deref()),
        (100, 5, Some("1.0"))
    );
    assert_eq!(
        q.created_after.unwrap().to_rfc3339(),
        "2026-01-01T00:00:00+00:00"
    );
    for (raw, param) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=abc", "limit"),
        ("offset=-1", "offset"),
        ("created_before=yesterday", "created_before"),
        ("cursor=garbage", "cursor"),
    ] {
        assert_eq!(param_of(raw), param, "{raw}");
    }
}

#[test]
fn filters_parse_and_bad_syntax_names_the_parameter() {
    let q = ListQuery::parse(Some(
        "meta.run=17&meta.model.name=gpt&tag=math&q=Paris%20推理&score.correct=1&score.quality=gte:0.8&score.judge=missing",
    ))
    .unwrap();
    assert_eq!(q.meta.len(), 3);
    assert_eq!(q.meta[2].param, "tag");
    assert_eq!(q.q.as_ref().unwrap().1.len(), 2);
    assert_eq!(
        q.scores,
        vec![
            ("correct".into(), ScoreCondition::Compare("=", 1.0)),
            ("quality".into(), ScoreCondition::Compare(">=", 0.8)),
            ("judge".into(), ScoreCondition::Missing),
        ]
    );
    for (raw, param) in [
        ("meta.=x", "meta."),
        ("meta.a..b=x", "meta.a..b"),
        ("tag=", "tag"),
        ("q=%20%2C%2C", "q"),
        ("score.correct=maybe", "score.correct"),
        ("score.correct=gte:x", "score.correct"),
        ("score.correct=between:1", "score.correct"),
        ("score.=1", "score."),
        ("score.q=inf", "score.q"),
    ] {
        assert_eq!(param_of(raw), param, "{raw}");
    }
}

#[test]
fn a_cursor_is_bound_to_its_filters() {
    let t = DateTime::<Utc>::from_timestamp_micros(1_763_786_096_123_456).unwrap();
    let id = Uuid::now_v7();
    let filtered = ListQuery::parse(Some("meta.run=17&q=paris")).unwrap();
    let c = filtered.cursor_after(&t, &id);
    // The same filters, in another order: accepted.
    let again = ListQuery::parse(Some(&format!("q=paris&meta.run=17&cursor={c}"))).unwrap();
    assert_eq!(again.after, Some((t, id)));
    // Other filters, or none: refused.
    for other in [
        "meta.run=18&q=paris",
        "q=paris",
        "meta.run=17&q=paris&tag=x",
        "",
    ] {
        assert_eq!(
            param_of(&format!("{other}&cursor={c}")),
            "cursor",
            "{other}"
        );
    }
    // Cursors from before filters were bound still work.
    let v1 = URL_SAFE_NO_PAD.encode(format!("v1:{}:{id}", t.timestamp_micros()));
    assert!(ListQuery::parse(Some(&format!("cursor={v1}&meta.run=1"))).is_ok());
    assert!(ListQuery::parse(Some(&format!("cursor={c}&offset=10&meta.run=17&q=paris"))).is_err());
}

#[test]
fn instants_are_refused_below_what_postgres_stores() {
    let min = DateTime::<Utc>::from_timestamp_micros(PG_MIN_MICROS).unwrap();
    assert_eq!(
        min.to_rfc3339(),
        "-4713-11-24T00:00:00+00:00",
        "Julian day 0"
    );
    let q = ListQuery::parse(Some("created_after=-4713-11-24")).unwrap();
    assert_eq!(q.created_after, Some(min));
    for raw in [
        "created_after=-4713-11-23",
        "created_before=-4713-11-23T23:59:59.999999",
        "created_before=-9999-01-01",
    ] {
        assert_eq!(param_of(raw), raw.split('=').next().unwrap(), "{raw}");
    }
    let forged = |micros: i64| URL_SAFE_NO_PAD.encode(format!("v1:{micros}:{}", Uuid::nil()));
    assert!(ListQuery::parse(Some(&format!("cursor={}", forged(PG_MIN_MICROS)))).is_ok());
    for micros in [PG_MIN_MICROS - 1, i64::MIN, i64::MAX] {
        assert_eq!(param_of(&format!("cursor={}", forged(micros))), "cursor");
    }
}
