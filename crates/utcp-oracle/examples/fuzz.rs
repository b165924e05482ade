//! Run N random scenarios on the kernel twice and check self-agreement.
//! Usage: fuzz [N] [SEED]
use utcp_oracle::gen::{generate, scenario_seed, seed_from_env, GenConfig};
use utcp_oracle::*;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let seed: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or_else(seed_from_env);
    println!("seed {seed}");
    let cfg = GenConfig::default();
    let mut a = KernelBackend::new();
    let mut b = KernelBackend::new();
    let t = std::time::Instant::now();
    let mut fails = 0;
    let mut slow = 0;
    for i in 0..n {
        let s = scenario_seed(seed, i);
        let sc = generate(s, &cfg);
        let t1 = std::time::Instant::now();
        let oa = a.run(&sc);
        let el = t1.elapsed();
        if el.as_millis() > 30 {
            slow += 1;
            if slow < 5 {
                println!("slow {el:?} scenario seed {s}\n{}", scenario::transcript(&sc, &oa, None));
            }
        }
        let ob = b.run(&sc);
        if let Err(m) = compare_named(&sc, ("run1", &oa), ("run2", &ob)) {
            fails += 1;
            if fails <= 3 {
                println!("scenario seed {s}:\n{m}");
            }
        }
    }
    println!("{n} scenarios x2 in {:?}; {fails} failures; {slow} slow", t.elapsed());
}
