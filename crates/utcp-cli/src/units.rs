//! Parsers for command-line quantities: sizes, durations, rates and
//! probabilities. Each returns a message fit to show the user on error.

use std::time::Duration;

/// Splits `"1.5Gbit"` into `("1.5", "Gbit")`.
fn split_number(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    s.split_at(end)
}

/// Parses a non-negative decimal number, integral or fractional.
fn parse_number(num: &str, what: &str, input: &str) -> Result<f64, String> {
    if num.is_empty() {
        return Err(format!("invalid {what} '{input}': expected a number first"));
    }
    num.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("invalid {what} '{input}': '{num}' is not a number"))
}

/// A byte count: a plain number, or one with a binary suffix `K`, `M`, `G`,
/// `T` (optionally followed by `iB` or `B`; case-insensitive), so `64K` is
/// 65536 and `1G` is 2^30. Fractions are allowed with a suffix (`1.5G`).
/// Must be at least 1.
pub fn parse_size(input: &str) -> Result<u64, String> {
    let s = input.trim();
    if s.starts_with('-') {
        return Err(format!("invalid size '{input}': cannot be negative"));
    }
    let (num, unit) = split_number(s);
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(format!(
                "invalid size '{input}': unknown unit '{unit}' (use e.g. 1G, 256M, 64K or a byte count)"
            ))
        }
    };
    let too_large = || format!("invalid size '{input}': too large");
    let v = if num.contains('.') {
        let v = parse_number(num, "size", input)? * (1u64 << shift) as f64;
        if v >= u64::MAX as f64 {
            return Err(too_large());
        }
        v.round() as u64
    } else {
        let n: u64 = num
            .parse()
            .map_err(|_| format!("invalid size '{input}': expected a whole number of bytes or a unit suffix"))?;
        n.checked_mul(1u64 << shift).ok_or_else(too_large)?
    };
    if v == 0 {
        return Err(format!("invalid size '{input}': must be at least 1 byte"));
    }
    Ok(v)
}

/// A duration with a unit: `ns`, `us` (or `µs`), `ms`, `s`; fractions are
/// allowed (`1.5ms`). A bare `0` means zero.
pub fn parse_duration(input: &str) -> Result<Duration, String> {
    let s = input.trim();
    if s.starts_with('-') {
        return Err(format!("invalid duration '{input}': cannot be negative"));
    }
    let (num, unit) = split_number(s);
    let scale_ns = match unit {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "" if num.parse::<f64>() == Ok(0.0) => 0.0,
        "" => return Err(format!("invalid duration '{input}': missing unit (use ns, us, ms or s, e.g. 100us)")),
        _ => return Err(format!("invalid duration '{input}': unknown unit '{unit}' (use ns, us, ms or s)")),
    };
    let ns = parse_number(num, "duration", input)? * scale_ns;
    if ns > 1e9 * 86_400.0 * 365.0 {
        return Err(format!("invalid duration '{input}': too long"));
    }
    Ok(Duration::from_nanos(ns.round() as u64))
}

/// A length of time where a bare number counts seconds (`utcp soak --seconds 30`, as the
/// option's name says); a unit may still be given (`500ms`, `2s`).
pub fn parse_seconds(input: &str) -> Result<Duration, String> {
    let s = input.trim();
    let (num, unit) = split_number(s);
    if unit.is_empty() && !s.starts_with('-') {
        let secs = parse_number(num, "duration", input)?;
        if secs > 86_400.0 * 365.0 {
            return Err(format!("invalid duration '{input}': too long"));
        }
        return Ok(Duration::from_nanos((secs * 1e9).round() as u64));
    }
    parse_duration(input)
}

/// A link rate in bits per second: a number with an optional decimal prefix
/// `k`, `M`, `G`, `T` (case-insensitive, powers of 1000) and an optional
/// `bit`, `bits` or `bit/s`, so `10Gbit`, `500Mbit` and `1G` are all bits
/// per second. Byte units (`Bps`, `B/s`) are refused as ambiguous (tc reads
/// `bps` as bytes). Must be above zero.
pub fn parse_rate(input: &str) -> Result<u64, String> {
    let s = input.trim();
    if s.starts_with('-') {
        return Err(format!("invalid rate '{input}': cannot be negative"));
    }
    let (num, unit) = split_number(s);
    let (prefix, rest) = match unit.chars().next() {
        Some(c @ ('k' | 'K' | 'm' | 'M' | 'g' | 'G' | 't' | 'T')) => (Some(c), &unit[1..]),
        _ => (None, unit),
    };
    if !matches!(rest.to_ascii_lowercase().as_str(), "" | "bit" | "bits" | "bit/s") {
        return Err(format!(
            "invalid rate '{input}': unknown unit '{unit}' (rates are in bits per second, e.g. 10Gbit, 500Mbit, 1G)"
        ));
    }
    let scale = match prefix.map(|c| c.to_ascii_lowercase()) {
        None => 1.0,
        Some('k') => 1e3,
        Some('m') => 1e6,
        Some('g') => 1e9,
        _ => 1e12,
    };
    let v = parse_number(num, "rate", input)? * scale;
    if v >= u64::MAX as f64 {
        return Err(format!("invalid rate '{input}': too large"));
    }
    let v = v.round() as u64;
    if v == 0 {
        return Err(format!("invalid rate '{input}': must be above 0 bit/s"));
    }
    Ok(v)
}

/// A probability in [0, 1], as a fraction (`0.01`) or percentage (`1%`).
pub fn parse_probability(input: &str) -> Result<f64, String> {
    let s = input.trim();
    let (body, scale) = match s.strip_suffix('%') {
        Some(b) => (b.trim_end(), 100.0),
        None => (s, 1.0),
    };
    let v = body
        .parse::<f64>()
        .map_err(|_| format!("invalid probability '{input}': not a number (use e.g. 0.01 or 1%)"))?
        / scale;
    check_probability(v).map_err(|e| format!("invalid probability '{input}': {e}"))
}

/// Accepts `v` iff it is a probability.
pub fn check_probability(v: f64) -> Result<f64, String> {
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("must be between 0 and 1 (e.g. 0.01 or 1%), got {v}"))
    }
}

/// Human-readable binary size, e.g. `1 GiB`, `1.50 KiB`.
pub fn fmt_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes} B")
    } else if v.fract() == 0.0 {
        format!("{v} {}", UNITS[i])
    } else {
        format!("{v:.2} {}", UNITS[i])
    }
}

/// Human-readable decimal rate, e.g. `10 Gbit/s`.
pub fn fmt_rate(bits_per_s: u64) -> String {
    let v = bits_per_s as f64;
    let (v, p) = if v >= 1e12 {
        (v / 1e12, "T")
    } else if v >= 1e9 {
        (v / 1e9, "G")
    } else if v >= 1e6 {
        (v / 1e6, "M")
    } else if v >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    format!("{} {p}bit/s", trim_float(v))
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("256M"), Ok(256 << 20));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("12345"), Ok(12345));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("2gb"), Ok(2 << 30));
        assert_eq!(parse_size("1.5K"), Ok(1536));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert_eq!(parse_size(" 8M "), Ok(8 << 20));
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
        for bad in ["", "G", "0", "0K", "1X", "-1", "1.2.3M", "99999999999T", "1 G"] {
            assert!(parse_size(bad).is_err(), "{bad} accepted");
        }
        assert!(parse_size("1X").unwrap_err().contains("unknown unit"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("100us"), Ok(Duration::from_micros(100)));
        assert_eq!(parse_duration("100µs"), Ok(Duration::from_micros(100)));
        assert_eq!(parse_duration("1ms"), Ok(Duration::from_millis(1)));
        assert_eq!(parse_duration("1.5ms"), Ok(Duration::from_micros(1500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("250ns"), Ok(Duration::from_nanos(250)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("100").unwrap_err().contains("missing unit"));
        for bad in ["", "ms", "1h", "-1ms", "1e3us"] {
            assert!(parse_duration(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_seconds("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_seconds("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_seconds("3s"), Ok(Duration::from_secs(3)));
        for bad in ["", "-1", "-2s", "1h", "x", "99999999999"] {
            assert!(parse_seconds(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("10Gbit"), Ok(10_000_000_000));
        assert_eq!(parse_rate("500Mbit"), Ok(500_000_000));
        assert_eq!(parse_rate("1G"), Ok(1_000_000_000));
        assert_eq!(parse_rate("100kbit"), Ok(100_000));
        assert_eq!(parse_rate("2.5gbit/s"), Ok(2_500_000_000));
        assert_eq!(parse_rate("1000000"), Ok(1_000_000));
        assert_eq!(parse_rate("1Tbits"), Ok(1_000_000_000_000));
        for bad in ["", "0", "0Gbit", "1Gbps", "1GB/s", "1X", "fast", "-1G"] {
            assert!(parse_rate(bad).is_err(), "{bad} accepted");
        }
        assert!(parse_rate("1Gbps").unwrap_err().contains("bits per second"));
    }

    #[test]
    fn probabilities() {
        assert_eq!(parse_probability("0"), Ok(0.0));
        assert_eq!(parse_probability("1"), Ok(1.0));
        assert_eq!(parse_probability("0.01"), Ok(0.01));
        assert_eq!(parse_probability("5%"), Ok(0.05));
        for bad in ["1.5", "-0.1", "101%", "NaN", "inf", "x", ""] {
            let e = parse_probability(bad).unwrap_err();
            assert!(e.contains("probability"), "{bad}: {e}");
        }
        assert!(parse_probability("1.5").unwrap_err().contains("between 0 and 1"));
        assert!(parse_size("-5").unwrap_err().contains("cannot be negative"));
        assert!(parse_duration("-1ms").unwrap_err().contains("cannot be negative"));
        assert!(parse_rate("-1G").unwrap_err().contains("cannot be negative"));
    }

    #[test]
    fn formatting() {
        assert_eq!(fmt_size(1 << 30), "1 GiB");
        assert_eq!(fmt_size(256 << 10), "256 KiB");
        assert_eq!(fmt_size(1_000_000), "976.56 KiB");
        assert_eq!(fmt_size(1), "1 B");
        assert_eq!(fmt_size(1536), "1.50 KiB");
        assert_eq!(fmt_rate(10_000_000_000), "10 Gbit/s");
        assert_eq!(fmt_rate(1_500_000), "1.5 Mbit/s");
        assert_eq!(fmt_rate(999), "999 bit/s");
    }
}
