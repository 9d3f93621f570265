//! How the model-based property tests run: a fixed, printed seed unless `PROPTEST_RNG_SEED`
//! names another, so a failure in CI replays anywhere.

use proptest::test_runner::{Config, RngSeed};

/// `cases` cases drawn from `seed` (or from `PROPTEST_RNG_SEED`), shrinking far enough to
/// give a small counterexample.
pub fn config(cases: u32, seed: u64) -> Config {
    let mut c = Config {
        cases,
        max_shrink_iters: 512,
        ..Config::default()
    };
    match std::env::var("PROPTEST_RNG_SEED") {
        Ok(s) => eprintln!("cases from PROPTEST_RNG_SEED={s}"),
        Err(_) => {
            c.rng_seed = RngSeed::Fixed(seed);
            eprintln!("cases from seed {seed}: PROPTEST_RNG_SEED={seed} replays them");
        }
    }
    c
}
