//! `tunix-bench codec`: what the event framing costs per event, in-process. Encodes and decodes
//! the dataset traces in each framing (single-object; Confluent with built-in ids; Confluent with
//! an external registry's ids resolved through a cache, as the consumers do), several rounds
//! each, interleaved so the machine's drift hits every framing alike. Prints events/s (median
//! of the rounds) and the ratio to single-object.
//!
//! Run (no stack needed): `target/release/tunix-bench codec --events 200000 --rounds 5`

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use tunix_schemas::{Encoder, EventKind, ShippedSchema, Trace, TraceEvent, TraceSubmitted};

/// Runs the benchmark over `n` events, `rounds` times per framing.
pub fn codec(root: &Path, n: usize, rounds: usize) {
    let dataset: Vec<Trace> = crate::gen::dataset(root)
        .iter()
        .map(|v| Trace::parse_json(&serde_json::to_vec(v).expect("json")).expect("valid"))
        .collect();
    let events: Vec<TraceEvent> = (0..n)
        .map(|i| {
            TraceEvent::Submitted(TraceSubmitted {
                id: tunix_schemas::ids::new_trace_id(),
                created_at: tunix_schemas::truncate_to_micros(chrono::Utc::now()),
                trace: dataset[i % dataset.len()].clone(),
                idempotency_key: None,
            })
        })
        .collect();
    // An external registry numbering the current schemas 1..=8, and the consumers' cache of it.
    let external: HashMap<ShippedSchema, i32> = EventKind::ALL
        .iter()
        .enumerate()
        .map(|(n, k)| (ShippedSchema::current(*k), n as i32 + 1))
        .collect();
    let cache: HashMap<i32, ShippedSchema> = external.iter().map(|(s, id)| (*id, *s)).collect();
    let framings: [(&str, Encoder); 3] = [
        ("single-object", Encoder::single_object()),
        ("confluent, built-in ids", Encoder::confluent_builtin()),
        (
            "confluent, external ids (cached)",
            Encoder::confluent(|s| external.get(&s).copied()).expect("ids"),
        ),
    ];
    let mut encode: Vec<Vec<f64>> = vec![Vec::new(); framings.len()];
    let mut decode: Vec<Vec<f64>> = vec![Vec::new(); framings.len()];
    let mut bytes = vec![0usize; framings.len()];
    for _ in 0..rounds {
        for (f, (_, encoder)) in framings.iter().enumerate() {
            let started = Instant::now();
            let values: Vec<Vec<u8>> = events.iter().map(|e| encoder.encode(e)).collect();
            encode[f].push(n as f64 / started.elapsed().as_secs_f64());
            bytes[f] = values.iter().map(Vec::len).sum();
            let started = Instant::now();
            for v in &values {
                let event =
                    TraceEvent::decode_with(v, |id| cache.get(&id).copied()).expect("decodes");
                std::hint::black_box(event);
            }
            decode[f].push(n as f64 / started.elapsed().as_secs_f64());
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let base_encode = median(&mut encode[0].clone());
    let base_decode = median(&mut decode[0].clone());
    println!("{n} dataset events, {rounds} rounds per framing (median)");
    println!(
        "| framing | bytes/event | encode events/s | × single-object | decode events/s | × single-object |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (f, (name, _)) in framings.iter().enumerate() {
        let e = median(&mut encode[f]);
        let d = median(&mut decode[f]);
        println!(
            "| {name} | {:.1} | {e:.0} | {:.2} | {d:.0} | {:.2} |",
            bytes[f] as f64 / n as f64,
            e / base_encode,
            d / base_decode
        );
    }
}
