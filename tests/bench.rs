//! `hitomi bench`: the JSON keys of the speed issue, and `--phase` timing one figure alone.

use hitomi::bench::{run, BenchArgs};

use crate::common::temp_dir;

/// Model A's batch-1 latency alone (the cheapest figure): only its key, a positive time, written
/// as `{"model_a": {...}}` to the JSON file; a model B key would mean `--model` was ignored.
#[test]
fn phase_times_one_figure_and_writes_its_key() {
    let json = temp_dir("bench-phase").join("bench.json");
    let args = BenchArgs {
        json: Some(json.clone()),
        steps: 2,
        warmup: 0,
        model: Some("a".into()),
        phase: Some("latency".into()),
    };
    let res = run(&args).unwrap();
    let written: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(written, res);
    let a = res["model_a"].as_object().expect("model_a figures");
    assert_eq!(a.keys().collect::<Vec<_>>(), ["latency_ms"], "only the phase asked for");
    assert!(a["latency_ms"].as_f64().unwrap() > 0.0);
    assert!(res.get("model_b").is_none());
}
