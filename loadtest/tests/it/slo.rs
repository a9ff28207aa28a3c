//! The SLO gate, table-driven: each case is a spec, a latency distribution, errors, and
//! the expected violated objectives.

use loadtest::slo::Slo;
use loadtest::stats::histogram;

fn check(spec: &str, latencies_us: &[u64], errors: u64, violated: &[&str]) {
    let slo = Slo::parse(spec).expect("a valid test spec");
    let mut h = histogram();
    latencies_us.iter().for_each(|v| h.record(*v).expect("in range"));
    let violations = slo.evaluate(&h, latencies_us.len() as u64, errors);
    let names: Vec<&str> =
        violations.iter().map(|v| v.split(' ').next().expect("a named violation")).collect();
    assert_eq!(names, violated, "{spec}: {violations:?}");
}

#[test]
fn gate_table() {
    let fast: Vec<u64> = vec![1_000; 1000];
    let mut tail = vec![1_000; 990];
    tail.extend([40_000; 10]);
    check("p99=10ms,p999=50ms", &fast, 0, &[]);
    check("p99=10ms", &tail, 0, &[]);
    check("p999=10ms", &tail, 0, &["p999"]);
    check("p50=500us,max=30ms", &tail, 0, &["p50", "max"]);
    check("errors=0.1%", &fast, 1, &[]);
    check("errors=0.1%", &fast, 2, &["errors"]);
    check("p90=2ms,errors=0%", &fast, 1, &["errors"]);
}

#[test]
fn parser_table() {
    let cases: [(&str, Result<usize, &str>); 5] = [
        ("p99=10ms,p999=50ms,errors=0.1%", Ok(2)),
        ("max=1s", Ok(1)),
        ("p99=10ms,,", Ok(1)),
        ("p99=10 parsecs", Err("p99=10 parsecs")),
        ("errors=lots", Err("errors=lots")),
    ];
    for (spec, expected) in cases {
        let parsed = Slo::parse(spec).map(|s| s.latencies.len()).map_err(|e| e.part);
        assert_eq!(parsed, expected.map_err(str::to_owned), "{spec}");
    }
}
