//! The original pipeline's engagement rules, as pure functions on numbers.
//!
//! Place in the flow: `fields.rs` reads the rule inputs out of the event and
//! content rows, calls these functions, and writes the results as columns.
//! This module knows nothing of rows or of the generated bindings, so it can be
//! tested alone and shared: `enricher-v2` and `faulty-enricher` include this
//! very file with `#[path]`. (Depending on this crate as an rlib does not work
//! on wasm32: its `export!` symbols would be linked into theirs, and a cargo
//! feature to turn them off is unified back on whenever both crates are built
//! in one `cargo build`.)
//!
//! The rules, bit for bit with the Python original:
//!
//! ```text
//! engagement_seconds = round(duration_ms / 1000.0, 3)           if duration_ms is a number >= 0
//! engagement_pct     = round(engagement_seconds / length_seconds * 100, 2)
//!                                                  if length_seconds is a number > 0 and seconds is not None
//! ```
//!
//! "A number" is what Python's `json.loads` gives as `int` or `float` (never
//! `bool`); ints are unbounded there, hence [`Number::BigInt`].

use core::fmt::Write as _;

/// A numeric column value, as Python's `json.loads` would have typed it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Number {
    /// An `int` that fits in 64 signed bits.
    Int(i64),
    /// An `int` beyond 64 bits, already converted to the nearest `f64` (ties to
    /// even, as CPython converts an int operand of a float division). It is
    /// `±inf` where CPython would raise `OverflowError`; it is never zero.
    BigInt(f64),
    /// A `float`.
    Float(f64),
}

/// An int too large for a float took part in a division: CPython raises
/// `OverflowError: int too large to convert to float` there, so there is no
/// value to reproduce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IntTooLarge;

impl Number {
    /// Python `x >= 0`. Exact for ints; false for NaN.
    fn is_non_negative(self) -> bool {
        match self {
            Number::Int(i) => i >= 0,
            // A big int's f64 has its sign and is never zero, so the
            // comparison is exact even when the magnitude is rounded.
            Number::BigInt(f) | Number::Float(f) => f >= 0.0,
        }
    }

    /// Python `x > 0`.
    fn is_positive(self) -> bool {
        match self {
            Number::Int(i) => i > 0,
            Number::BigInt(f) | Number::Float(f) => f > 0.0,
        }
    }

    /// The `f64` CPython uses for `x` as an operand of `x / 1000.0` or
    /// `s / x`: `i64 as f64` rounds to nearest, ties to even, as
    /// `PyLong_AsDouble` does.
    fn to_f64(self) -> Result<f64, IntTooLarge> {
        match self {
            Number::Int(i) => Ok(i as f64),
            Number::Float(f) => Ok(f),
            Number::BigInt(f) if f.is_finite() => Ok(f),
            Number::BigInt(_) => Err(IntTooLarge),
        }
    }
}

/// `round(duration_ms / 1000.0, 3)` when `duration_ms` is a number >= 0, else
/// `None` (missing, null, negative, NaN or not a number).
pub(crate) fn engagement_seconds(duration_ms: Option<Number>) -> Result<Option<f64>, IntTooLarge> {
    match duration_ms {
        Some(d) if d.is_non_negative() => Ok(Some(py_round(d.to_f64()? / 1000.0, 3))),
        _ => Ok(None),
    }
}

/// `round(seconds / length_seconds * 100, 2)` when `length_seconds` is a
/// number > 0 and `seconds` is known, else `None`. Not capped at 100: an event
/// longer than its content gives more than 100, as in the original.
pub(crate) fn engagement_pct(
    seconds: Option<f64>,
    length_seconds: Option<Number>,
) -> Result<Option<f64>, IntTooLarge> {
    match (seconds, length_seconds) {
        // Evaluated as `(s / length) * 100` like Python's left-to-right
        // operators: `s * 100 / length` would round differently.
        (Some(s), Some(length)) if length.is_positive() => {
            Ok(Some(py_round(s / length.to_f64()? * 100.0, 2)))
        }
        _ => Ok(None),
    }
}

/// Python's `round(x, ndigits)` for a float.
///
/// CPython rounds the exact binary value of `x` to `ndigits` decimals with
/// ties to even (`_Py_dg_dtoa` mode 3), then parses that decimal back
/// (`_Py_dg_strtod`). Rust's `{:.N}` prints the same correctly rounded,
/// ties-to-even decimal of the exact value (the tests below pin that down,
/// since it was round-half-up before Rust 1.67), and `str::parse::<f64>` is
/// correctly rounded, so printing and parsing back is CPython's algorithm.
/// So `round(2.675, 2) == 2.67` (2.675 is really 2.67499999...) and
/// `round(0.125, 2) == 0.12` (an exact tie, to even).
pub(crate) fn py_round(x: f64, ndigits: usize) -> f64 {
    // CPython returns NaN and infinities unchanged.
    if !x.is_finite() {
        return x;
    }
    let mut text = DecimalBuf::new();
    // Writing to a `DecimalBuf` never fails (it spills to the heap), and
    // `{:.N}` of a finite float always parses back; keep `x` as a fallback
    // rather than panicking in a plugin.
    if write!(text, "{x:.ndigits$}").is_err() {
        return x;
    }
    text.as_str().parse().unwrap_or(x)
}

/// A string buffer for one formatted number that lives on the stack while it
/// is short (every realistic value is) and moves to the heap otherwise (a huge
/// float prints all of its ~300 integer digits). Saves an allocation per
/// rounded value on the enrich hot path.
struct DecimalBuf {
    bytes: [u8; 64],
    len: usize,
    spilled: Option<String>,
}

impl DecimalBuf {
    fn new() -> Self {
        Self {
            bytes: [0; 64],
            len: 0,
            spilled: None,
        }
    }

    fn as_str(&self) -> &str {
        match &self.spilled {
            Some(s) => s,
            // Only whole `&str`s are copied in, so the prefix is UTF-8.
            None => core::str::from_utf8(&self.bytes[..self.len]).unwrap_or(""),
        }
    }
}

impl core::fmt::Write for DecimalBuf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        if let Some(spilled) = &mut self.spilled {
            spilled.push_str(s);
            return Ok(());
        }
        let end = self.len + s.len();
        if end <= self.bytes.len() {
            self.bytes[self.len..end].copy_from_slice(s.as_bytes());
            self.len = end;
        } else {
            let mut spilled = String::with_capacity(end.max(128));
            spilled.push_str(self.as_str());
            spilled.push_str(s);
            self.spilled = Some(spilled);
        }
        Ok(())
    }
}

/// The number a JSON text denotes, typed as Python's `json.loads` types it:
/// an integer literal is an `int` (of any size), anything with a fraction or
/// an exponent is a `float`. `None` when the text is not a single JSON number
/// (an object, an array, a string, `true`, ...).
///
/// The host passes an integer beyond 64 bits as `value::json`; the original
/// pipeline would still have treated it as a number.
pub(crate) fn parse_json_number(text: &str) -> Option<Number> {
    let text = text.trim_matches([' ', '\t', '\n', '\r']);
    let bytes = text.as_bytes();
    let digits_from = |mut i: usize| {
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    // JSON number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
    // Checked by hand because `str::parse::<f64>` also takes `inf`, `+1`, `.5`.
    let mut i = usize::from(bytes.first() == Some(&b'-'));
    match bytes.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = digits_from(i + 1),
        _ => return None,
    }
    let mut is_int = true;
    if bytes.get(i) == Some(&b'.') {
        is_int = false;
        let end = digits_from(i + 1);
        if end == i + 1 {
            return None;
        }
        i = end;
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        is_int = false;
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let end = digits_from(i);
        if end == i {
            return None;
        }
        i = end;
    }
    if i != bytes.len() {
        return None;
    }
    // Rust's float parsing is correctly rounded (ties to even), as are
    // CPython's `float()` of a JSON float and its int-to-float conversion; it
    // gives `±inf` for magnitudes past f64, where CPython's int conversion
    // would overflow (see `Number::BigInt`) and its float parsing gives inf.
    let float = text.parse::<f64>().ok()?;
    Some(if !is_int {
        Number::Float(float)
    } else if let Ok(int) = text.parse::<i64>() {
        Number::Int(int)
    } else {
        Number::BigInt(float)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected values printed by CPython 3.11 on this machine:
    /// `python3 -c 'print(repr(round(x, n)))'` for each row.
    const PYTHON_ROUNDS: &[(f64, usize, f64)] = &[
        (0.125, 2, 0.12),               // exact tie, to even (down)
        (0.375, 2, 0.38),               // exact tie, to even (up)
        (0.625, 2, 0.62),               // exact tie, to even (down)
        (2.675, 2, 2.67),               // looks like a tie, is 2.67499999...
        (1.005, 2, 1.0),                // is 1.00499999...
        (1.015, 2, 1.01),               // is 1.01499999...
        (1.025, 2, 1.02),               // is 1.02499999...
        (0.285, 2, 0.28),               // is 0.28499999...
        (0.345, 2, 0.34),               // is 0.34499999...
        (8.345, 2, 8.35),               // is 8.34500000000000063...
        (1.5, 0, 2.0),                  // ties to even
        (2.5, 0, 2.0),                  // ties to even
        (0.5, 0, 0.0),                  // ties to even
        (0.0625, 3, 0.062),             // exact tie, to even (down)
        (0.1875, 3, 0.188),             // exact tie, to even (up)
        (0.0005, 3, 0.001),             // is 0.000500000000000000010...
        (0.0015, 3, 0.002),             // is 0.00150000000000000003...
        (0.0025, 3, 0.003),             // is 0.00250000000000000005...
        (1.0005, 3, 1.0),               // is 1.00049999999999994...
        (2147483.6475, 3, 2147483.647), // is 2147483.64749999996...
        (0.12499999999999999, 2, 0.12),
        (0.12500000000000003, 2, 0.13),
        (214748364.7, 2, 214748364.7),
        (-0.001, 2, -0.0), // keeps the sign of zero
        (-0.125, 2, -0.12),
        (0.0, 3, 0.0),
        (5e-324, 3, 0.0),
        (1e300, 3, 1e300),
        (9.223372036854776e15, 3, 9.223372036854776e15),
    ];

    #[test]
    fn py_round_matches_cpython() {
        for &(x, n, want) in PYTHON_ROUNDS {
            let got = py_round(x, n);
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "round({x:?}, {n}): got {got:?}, CPython gives {want:?}"
            );
        }
    }

    #[test]
    fn rust_formatting_rounds_exact_ties_to_even() {
        // The assumption `py_round` rests on; fails loudly if a toolchain
        // ever changes it.
        assert_eq!(format!("{:.2}", 0.125), "0.12");
        assert_eq!(format!("{:.2}", 0.375), "0.38");
        assert_eq!(format!("{:.0}", 0.5), "0");
        assert_eq!(format!("{:.0}", 1.5), "2");
        assert_eq!(format!("{:.0}", 2.5), "2");
        assert_eq!(format!("{:.3}", 0.0625), "0.062");
        assert_eq!(format!("{:.2}", 2.675), "2.67");
    }

    #[test]
    fn py_round_keeps_non_finite() {
        assert!(py_round(f64::NAN, 2).is_nan());
        assert_eq!(py_round(f64::INFINITY, 2), f64::INFINITY);
        assert_eq!(py_round(f64::NEG_INFINITY, 3), f64::NEG_INFINITY);
    }

    #[test]
    fn py_round_spills_long_numbers_to_the_heap() {
        // 1e300 prints 301 integer digits: more than the stack buffer holds.
        assert_eq!(py_round(1.7976931348623157e308, 2), 1.7976931348623157e308);
        assert_eq!(py_round(-1e300, 3), -1e300);
    }

    #[test]
    fn seconds_follow_the_rule() {
        let s = |d| engagement_seconds(d).ok().flatten();
        assert_eq!(s(Some(Number::Int(1500))), Some(1.5));
        assert_eq!(s(Some(Number::Int(125))), Some(0.125));
        assert_eq!(s(Some(Number::Int(0))), Some(0.0));
        assert_eq!(s(Some(Number::Int(-1))), None);
        assert_eq!(s(Some(Number::Float(1.5))), Some(0.002));
        assert_eq!(s(Some(Number::Float(f64::NAN))), None);
        assert_eq!(s(None), None);
        // -0.0 >= 0 in Python too, and the sign survives the division.
        assert_eq!(
            s(Some(Number::Float(-0.0))).map(f64::to_bits),
            Some((-0.0f64).to_bits())
        );
    }

    #[test]
    fn pct_follows_the_rule() {
        let p = |s, l| engagement_pct(s, l).ok().flatten();
        // 1.5 / 1200 * 100 comes out exactly 0.125: a tie, to even.
        assert_eq!(p(Some(1.5), Some(Number::Int(1200))), Some(0.12));
        assert_eq!(p(Some(1.5), Some(Number::Int(0))), None);
        assert_eq!(p(Some(1.5), Some(Number::Int(-60))), None);
        assert_eq!(p(None, Some(Number::Int(60))), None);
        assert_eq!(p(Some(1.5), None), None);
        assert_eq!(p(Some(120.0), Some(Number::Int(60))), Some(200.0)); // not capped
    }

    #[test]
    fn big_ints_behave_as_python_ints() {
        // Python: round(10**30 / 1000.0, 3) == 1e+27
        let big = parse_json_number("1000000000000000000000000000000");
        assert_eq!(big, Some(Number::BigInt(1e30)));
        assert_eq!(engagement_seconds(big), Ok(Some(1e27)));
        // Negative: `x >= 0` is false before any conversion, so no error.
        let negative = parse_json_number(&format!("-{}", "9".repeat(400)));
        assert_eq!(engagement_seconds(negative), Ok(None));
        // 10**400 / 1000.0 raises OverflowError in Python.
        let huge = parse_json_number(&format!("1{}", "0".repeat(400)));
        assert_eq!(engagement_seconds(huge), Err(IntTooLarge));
        assert_eq!(engagement_pct(Some(1.0), huge), Err(IntTooLarge));
        assert_eq!(engagement_pct(None, huge), Ok(None));
    }

    #[test]
    fn json_number_grammar() {
        assert_eq!(parse_json_number("42"), Some(Number::Int(42)));
        assert_eq!(parse_json_number(" -0 "), Some(Number::Int(0)));
        assert_eq!(parse_json_number("1.5"), Some(Number::Float(1.5)));
        assert_eq!(parse_json_number("1e3"), Some(Number::Float(1000.0)));
        assert_eq!(parse_json_number("-2.5E-1"), Some(Number::Float(-0.25)));
        assert_eq!(
            parse_json_number("1e400"),
            Some(Number::Float(f64::INFINITY))
        );
        assert_eq!(
            parse_json_number("9223372036854775808"),
            Some(Number::BigInt(9223372036854775808.0))
        );
        for bad in [
            "", "-", "01", "1.", ".5", "+1", "1e", "1e+", "inf", "NaN", "\"1\"", "[1]", "{}",
            "true", "1 2",
        ] {
            assert_eq!(parse_json_number(bad), None, "{bad:?}");
        }
    }
}
