//! A tiny evaluator for the `%{ assert ... }%` blocks of the corpus: one `assert` statement per
//! line whose condition is a chain of comparisons (`a <= x <= b`, `x == y`) over integers,
//! `tcp_info` field names (`tcpi_*`), `SK_MEMINFO_*` names, symbolic constants (`TCP_CLOSE`)
//! and variables, plus assignments `name = operand` (packetdrill runs all blocks of a script as
//! one Python program, so a variable set in one block is seen by the later ones). The optional
//! message after the comma is ignored. Anything else is "unsupported python".

use std::collections::HashMap;

/// Evaluates the code block; `vars` holds the program's variables (read first, then `lookup`
/// resolves names). Returns a packetdrill-like error.
pub fn eval(
    code: &str,
    vars: &mut HashMap<String, i64>,
    lookup: &mut dyn FnMut(&str) -> Result<i64, String>,
) -> Result<(), String> {
    let mut lookup = |n: &str| -> Result<i64, String> {
        match vars.get(n) {
            Some(v) => Ok(*v),
            None => lookup(n),
        }
    };
    let mut assigned = Vec::new();
    for raw in code.split(['\n', ';']) {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((name, value)) = assignment(line) {
            let toks = tokenize(value).map_err(|e| format!("unsupported python: {e}"))?;
            let [t] = toks.as_slice() else {
                return Err(format!("unsupported python: '{line}'"));
            };
            assigned.push((name.to_string(), operand(t, &mut lookup)?));
            continue;
        }
        let Some(rest) = line.strip_prefix("assert ") else {
            return Err(format!("unsupported python: '{line}'"));
        };
        let cond = match split_top_comma(rest) {
            Some((c, _msg)) => c,
            None => rest,
        };
        let toks = tokenize(cond).map_err(|e| format!("unsupported python: {e}"))?;
        // operand (op operand)*
        if toks.is_empty() || toks.len() % 2 == 0 {
            return Err(format!("unsupported python: '{line}'"));
        }
        let mut vals = Vec::new();
        for (i, t) in toks.iter().enumerate() {
            if i % 2 == 0 {
                vals.push(operand(t, &mut lookup)?);
            } else if !matches!(t.as_str(), "<" | "<=" | "==" | "!=" | ">" | ">=") {
                return Err(format!("unsupported python operator '{t}' in '{line}'"));
            }
        }
        let mut ok = true;
        for i in 0..vals.len() - 1 {
            let (a, b) = (vals[i], vals[i + 1]);
            let r = match toks[2 * i + 1].as_str() {
                "<" => a < b,
                "<=" => a <= b,
                "==" => a == b,
                "!=" => a != b,
                ">" => a > b,
                _ => a >= b,
            };
            ok &= r;
        }
        if !ok {
            let shown: Vec<String> = toks
                .iter()
                .enumerate()
                .map(|(i, t)| if i % 2 == 0 { format!("{t}={}", vals[i / 2]) } else { t.clone() })
                .collect();
            return Err(format!("AssertionError: assert {} ({})", cond.trim(), shown.join(" ")));
        }
    }
    vars.extend(assigned);
    Ok(())
}

/// `name = value` (a plain identifier on the left, a single `=`), if `line` is an assignment.
fn assignment(line: &str) -> Option<(&str, &str)> {
    let i = line.find('=')?;
    let (name, rest) = (line[..i].trim(), &line[i + 1..]);
    let ident = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    (ident && !rest.starts_with('=') && name != "assert").then_some((name, rest.trim()))
}

fn split_top_comma(s: &str) -> Option<(&str, &str)> {
    let mut depth = 0i32;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => return Some((&s[..i], &s[i + 1..])),
            _ => {}
        }
    }
    None
}

fn tokenize(s: &str) -> Result<Vec<String>, String> {
    let cs: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_alphanumeric() || c == '_' {
            let st = i;
            while i < cs.len() && (cs[i].is_ascii_alphanumeric() || cs[i] == '_') {
                i += 1;
            }
            out.push(cs[st..i].iter().collect());
        } else if "<>=!".contains(c) {
            let mut t = c.to_string();
            if cs.get(i + 1) == Some(&'=') {
                t.push('=');
                i += 1;
            }
            i += 1;
            if t == "=" || t == "!" {
                return Err(format!("bad operator '{t}'"));
            }
            out.push(t);
        } else {
            return Err(format!("unexpected character '{c}'"));
        }
    }
    Ok(out)
}

fn operand(t: &str, lookup: &mut dyn FnMut(&str) -> Result<i64, String>) -> Result<i64, String> {
    if let Some(h) = t.strip_prefix("0x") {
        return i64::from_str_radix(h, 16).map_err(|_| format!("bad number {t}"));
    }
    if t.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        return t.parse().map_err(|_| format!("bad number {t}"));
    }
    lookup(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains() {
        let mut l = |n: &str| match n {
            "tcpi_x" => Ok(1000),
            "TCP_CLOSE" => Ok(7),
            _ => Err(format!("unknown {n}")),
        };
        let mut v = HashMap::new();
        eval("assert 990 <= tcpi_x <= 1010, tcpi_x", &mut v, &mut l).unwrap();
        assert!(eval("assert tcpi_x <= 10, tcpi_x", &mut v, &mut l).is_err());
        eval("assert tcpi_x == 1000, tcpi_x;", &mut v, &mut l).unwrap();
        eval("assert 7 == TCP_CLOSE", &mut v, &mut l).unwrap();
        assert!(eval("print(1)", &mut v, &mut l).unwrap_err().contains("unsupported python"));
        assert!(eval("assert tcpi_y == 1", &mut v, &mut l).is_err());
    }

    #[test]
    fn variables_carry_over_blocks() {
        let mut x = 1000;
        let mut v = HashMap::new();
        eval("base = tcpi_x", &mut v, &mut |n: &str| if n == "tcpi_x" { Ok(x) } else { Err(n.into()) }).unwrap();
        x = 2000;
        let mut l = |n: &str| if n == "tcpi_x" { Ok(x) } else { Err(format!("unknown {n}")) };
        eval("assert tcpi_x > base, (base, tcpi_x)", &mut v, &mut l).unwrap();
        assert!(eval("assert tcpi_x == base", &mut v, &mut l).is_err());
        assert!(eval("assert nope == 1", &mut v, &mut l).is_err(), "an unset variable is an error");
        assert!(eval("a = b = 1", &mut v, &mut l).is_err(), "only a single operand is assigned");
    }
}
