//! What a `track_file`'s value does to an instance, with keepalived's semantics: weight 0
//! means FAULT while the value is not 0 (while it is 0, with `reverse`); otherwise the value
//! times the weight (negated with `reverse`) is added to the priority, and a result below
//! -253 means FAULT.

use super::check::Effect;

/// The file's text as keepalived reads it: a number (decimal, or `0x` hex, or `0` octal) at
/// the start, spaces and a sign allowed; missing or empty is 0. `None`: not a number, or
/// outside 32 bits (keepalived logs it and keeps the last value).
pub fn parse(text: &str) -> Option<i64> {
    let t = text.trim_start();
    let (negative, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (radix, digits) = if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        (16, hex)
    } else if t.len() > 1 && t.starts_with('0') {
        (8, t.get(1..).unwrap_or_default())
    } else {
        (10, t)
    };
    let end = digits
        .find(|c: char| !c.is_digit(radix))
        .unwrap_or(digits.len());
    let digits = digits.get(..end).unwrap_or_default();
    let value = if digits.is_empty() {
        // "" or "0" or text: keepalived's strtol gives 0 for all of them.
        0
    } else {
        i64::from_str_radix(digits, radix).ok()?
    };
    let value = if negative { -value } else { value };
    (i64::from(i32::MIN)..=i64::from(i32::MAX) + 1)
        .contains(&value)
        .then_some(value)
}

pub fn effect(value: i64, weight: i32, reverse: bool) -> Effect {
    if weight == 0 {
        return if (value != 0) != reverse {
            Effect::Fault
        } else {
            Effect::Priority(0)
        };
    }
    let sign = if reverse { -1 } else { 1 };
    let delta = value.saturating_mul(i64::from(weight)).saturating_mul(sign);
    if delta < -253 {
        Effect::Fault
    } else {
        Effect::Priority(delta.min(253) as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_read_as_keepalived_reads_them() {
        assert_eq!(parse(""), Some(0));
        assert_eq!(parse("7\n"), Some(7));
        assert_eq!(parse("  -12 apples"), Some(-12));
        assert_eq!(parse("0x10"), Some(16));
        assert_eq!(parse("010"), Some(8));
        assert_eq!(parse("0"), Some(0));
        assert_eq!(parse("up"), Some(0));
        assert_eq!(parse("99999999999"), None);
    }

    #[test]
    fn weight_zero_means_fault_while_the_value_is_not_zero() {
        assert_eq!(effect(0, 0, false), Effect::Priority(0));
        assert_eq!(effect(3, 0, false), Effect::Fault);
        assert_eq!(effect(0, 0, true), Effect::Fault);
        assert_eq!(effect(3, 0, true), Effect::Priority(0));
    }

    #[test]
    fn a_weight_multiplies_the_value_and_below_minus_253_is_fault() {
        assert_eq!(effect(2, -10, false), Effect::Priority(-20));
        assert_eq!(effect(2, -10, true), Effect::Priority(20));
        assert_eq!(effect(-3, 5, false), Effect::Priority(-15));
        assert_eq!(effect(100, 10, false), Effect::Priority(253));
        assert_eq!(effect(-1, 254, false), Effect::Fault);
        assert_eq!(effect(-1, 253, false), Effect::Priority(-253));
    }
}
