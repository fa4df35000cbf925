//! Times the expansion of a 100,000-job sweep: `cargo run --release -p cg-sweep --example expand_bench`.
//! Prints wall-clock times and, on Linux, the CPU time of the process (a fairer figure on a busy machine).

fn main() {
    let points = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let cpu_before = cpu_secs();
    let t = cg_sweep::bench_expand(points);
    let cpu = cpu_secs()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    println!(
        "expanded {} jobs: load {:.1} ms, count {:.3} ms, expand {:.1} ms wall ({:.2} µs/job){}",
        t.jobs,
        t.load.as_secs_f64() * 1e3,
        t.count.as_secs_f64() * 1e3,
        t.expand.as_secs_f64() * 1e3,
        t.expand.as_secs_f64() * 1e6 / t.jobs.max(1) as f64,
        cpu.map(|c| format!("; load+count+expand {:.1} ms CPU", c * 1e3))
            .unwrap_or_default(),
    );
}

/// Seconds this process has run on a CPU (Linux: /proc/self/schedstat), `None` elsewhere.
fn cpu_secs() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/self/schedstat").ok()?;
    let ns: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e9)
}
