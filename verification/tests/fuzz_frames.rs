//! A fixed-seed fuzzing run of the frame decoder in the default test suite; longer runs:
//! change the iteration count or seed (`FUZZ_SEED`, `FUZZ_ITERATIONS`).

use berth_verification::fuzz::fuzz_frames;

#[test]
fn mutated_frames_never_panic_and_every_error_kind_is_reached() {
    let seed = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let iterations = std::env::var("FUZZ_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let report = fuzz_frames(seed, iterations);
    println!("seed {seed}: {report:?}");
    assert_eq!(report.inputs, iterations);
    assert!(
        report.accepted > 0,
        "some mutations keep the frame valid: {report:?}"
    );
    for (kind, count) in [
        "short",
        "truncated",
        "oversized",
        "trailing",
        "version",
        "malformed",
    ]
    .iter()
    .zip(report.refused)
    {
        assert!(count > 0, "no input reached the {kind} error: {report:?}");
    }
}
