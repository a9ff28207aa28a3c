//! Workload determinism: a seed draws the same kinds and accounts, uniform or Zipf.

use loadtest::workload::{Mix, Picker, Rng};

fn draws(seed: u64, zipf: f64) -> Vec<(String, u32)> {
    let mix = Mix::parse("single=5,batch=1,authorise=2,read_account=1").expect("a valid mix");
    let picker = Picker::new(100, zipf);
    (0..500)
        .map(|index| {
            let mut rng = Rng::for_request(seed, index);
            (mix.pick(&mut rng).name().to_owned(), picker.pick(&mut rng))
        })
        .collect()
}

#[test]
fn same_seed_same_workload() {
    for zipf in [0.0, 1.1] {
        assert_eq!(draws(7, zipf), draws(7, zipf));
        assert_ne!(draws(7, zipf), draws(8, zipf));
    }
}

#[test]
fn zipf_concentrates_on_hot_accounts_and_uniform_does_not() {
    let hot = |zipf| draws(3, zipf).iter().filter(|(_, account)| *account < 5).count();
    assert!(hot(1.2) > 200, "zipf 1.2 puts most draws on the first 5 of 100");
    assert!(hot(0.0) < 60, "uniform puts about 5% there");
}

#[test]
fn picks_stay_in_range_and_pairs_differ() {
    let picker = Picker::new(3, 2.0);
    let mut rng = Rng::new(1);
    for _ in 0..1000 {
        let (a, b) = picker.pick_pair(&mut rng);
        assert!(a < 3 && b < 3 && a != b);
    }
}
