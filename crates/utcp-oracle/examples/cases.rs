//! Print the kernel transcript of every named case.
use utcp_oracle::cases::{check_case, named_cases};
use utcp_oracle::*;
fn main() {
    let mut k = KernelBackend::new();
    for c in named_cases() {
        let o = k.run(&c.scenario);
        let ok = check_case(&c, &o).is_ok();
        println!("== {} [{}] -- {}", c.name, if ok { "ok" } else { "FAIL" }, c.doc);
        print!("{}", scenario::transcript(&c.scenario, &o, None));
    }
}
