//! Fixed-point decimals for money and sizes.
//!
//! A value is an `i64` count of `10^-FIXED_DECIMALS` units. Text is parsed digit by digit and
//! scaled integers are rescaled with checked integer arithmetic, so no value ever passes
//! through `f64` on the way in (`(x * SCALE) as i64` silently corrupts values such as 0.29).
//! The one way out to floating point is the named `to_f64`, for analytics only.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Number of decimal places of every fixed-point value.
pub const FIXED_DECIMALS: u32 = 9;
/// `10^FIXED_DECIMALS`: the raw value of 1.0.
pub const FIXED_SCALE: i64 = 1_000_000_000;

/// Why a text or scaled integer is not a valid fixed-point value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseFixedError {
    /// The text is empty.
    #[error("empty number")]
    Empty,
    /// The text spells NaN or infinity.
    #[error("{0:?} is not a finite number")]
    NotFinite(String),
    /// A character that has no place in a decimal number.
    #[error("{text:?} is not a decimal number (unexpected {found:?})")]
    InvalidCharacter {
        /// The whole text.
        text: String,
        /// The first offending character.
        found: char,
    },
    /// More fractional digits than the fixed point holds, not all zero.
    #[error("{0:?} has more than 9 decimal places")]
    TooPrecise(String),
    /// The value does not fit in the fixed-point range.
    #[error("{0:?} is out of range")]
    Overflow(String),
}

/// Parses decimal text (`-12.345`, `+7`, `.5`, `1e-3`, `1.5E+2`) into raw fixed-point units.
pub fn parse_raw(text: &str) -> Result<i64, ParseFixedError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(ParseFixedError::Empty);
    }
    let lower = s.trim_start_matches(['+', '-']).to_ascii_lowercase();
    if lower == "nan" || lower == "inf" || lower == "infinity" {
        return Err(ParseFixedError::NotFinite(s.to_owned()));
    }
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(pos) => {
            let exp: i32 = s[pos + 1..]
                .parse()
                .map_err(|_| ParseFixedError::InvalidCharacter {
                    text: s.to_owned(),
                    found: 'e',
                })?;
            (&s[..pos], exp)
        }
        None => (s, 0),
    };
    let bytes = mantissa.as_bytes();
    let (negative, digits) = match bytes.first() {
        Some(b'-') => (true, &bytes[1..]),
        Some(b'+') => (false, &bytes[1..]),
        _ => (false, bytes),
    };
    // Accumulate all digits as one integer and count the fractional ones.
    let mut value: i128 = 0;
    let mut frac_digits: i32 = 0;
    let mut seen_point = false;
    let mut seen_digit = false;
    for &b in digits {
        match b {
            b'0'..=b'9' => {
                seen_digit = true;
                if value > i128::MAX / 100 {
                    return Err(ParseFixedError::Overflow(s.to_owned()));
                }
                value = value * 10 + i128::from(b - b'0');
                if seen_point {
                    frac_digits += 1;
                }
            }
            b'.' if !seen_point => seen_point = true,
            other => {
                return Err(ParseFixedError::InvalidCharacter {
                    text: s.to_owned(),
                    found: other as char,
                });
            }
        }
    }
    if !seen_digit {
        return Err(ParseFixedError::InvalidCharacter {
            text: s.to_owned(),
            found: digits.first().map_or(' ', |&b| b as char),
        });
    }
    // value * 10^(exponent - frac_digits) units of 1; scale to 10^-9 units.
    let shift = FIXED_DECIMALS as i32 + exponent - frac_digits;
    let scaled = rescale(value, shift).ok_or_else(|| {
        if shift < 0 {
            ParseFixedError::TooPrecise(s.to_owned())
        } else {
            ParseFixedError::Overflow(s.to_owned())
        }
    })?;
    let signed = if negative { -scaled } else { scaled };
    i64::try_from(signed).map_err(|_| ParseFixedError::Overflow(s.to_owned()))
}

/// Multiplies by `10^shift` (or divides exactly for a negative shift); `None` when the result
/// overflows `i128` or a division would drop non-zero digits.
fn rescale(value: i128, shift: i32) -> Option<i128> {
    if shift >= 0 {
        let factor = 10i128.checked_pow(u32::try_from(shift).ok()?)?;
        value.checked_mul(factor)
    } else {
        let divisor = 10i128.checked_pow(u32::try_from(-shift).ok()?)?;
        (value % divisor == 0).then_some(value / divisor)
    }
}

/// Powers of ten that fit an `i64`.
const POW10: [i64; 19] = {
    let mut p = [1i64; 19];
    let mut i = 1;
    while i < 19 {
        p[i] = p[i - 1] * 10;
        i += 1;
    }
    p
};

/// Converts an integer carrying `decimals` implied decimal places into raw fixed-point units.
#[inline]
pub fn raw_from_scaled(value: i64, decimals: u32) -> Result<i64, ParseFixedError> {
    let shift = FIXED_DECIMALS as i32 - decimals as i32;
    // The common shifts in i64 arithmetic (a product or quotient that does not fit is the same
    // error either way); the rest through i128.
    let fast = match usize::try_from(shift.unsigned_abs()) {
        Ok(n) if n < POW10.len() && shift >= 0 => Some(value.checked_mul(POW10[n])),
        Ok(n) if n < POW10.len() => Some((value % POW10[n] == 0).then(|| value / POW10[n])),
        _ => None,
    };
    match fast
        .unwrap_or_else(|| rescale(i128::from(value), shift).and_then(|v| i64::try_from(v).ok()))
    {
        Some(raw) => Ok(raw),
        None => Err(scaled_error(value, decimals, shift)),
    }
}

#[cold]
fn scaled_error(value: i64, decimals: u32, shift: i32) -> ParseFixedError {
    // The number as a decimal text, as its source would have written it: 1815200 with 4
    // decimals is "181.5200".
    let digits = value.unsigned_abs().to_string();
    let sign = if value < 0 { "-" } else { "" };
    let text = match decimals as usize {
        0 => format!("{sign}{digits}"),
        d => {
            let padded = format!("{digits:0>width$}", width = d + 1);
            let (int, frac) = padded.split_at(padded.len() - d);
            format!("{sign}{int}.{frac}")
        }
    };
    if shift < 0 {
        ParseFixedError::TooPrecise(text)
    } else {
        ParseFixedError::Overflow(text)
    }
}

/// Writes raw fixed-point units as the shortest decimal text that parses back to them.
fn write_raw(raw: i64, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let sign = if raw < 0 { "-" } else { "" };
    let abs = raw.unsigned_abs();
    let scale = FIXED_SCALE as u64;
    let (int, frac) = (abs / scale, abs % scale);
    if frac == 0 {
        write!(f, "{sign}{int}")
    } else {
        let mut digits = format!("{frac:09}");
        while digits.ends_with('0') {
            digits.pop();
        }
        write!(f, "{sign}{int}.{digits}")
    }
}

macro_rules! fixed_point {
    ($(#[$meta:meta])* $name:ident, $what:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name {
            raw: i64,
        }

        impl $name {
            /// Zero.
            pub const ZERO: Self = Self { raw: 0 };
            /// The largest representable value.
            pub const MAX: Self = Self { raw: i64::MAX };
            /// The smallest representable value.
            pub const MIN: Self = Self { raw: i64::MIN };

            /// From raw units of `10^-9`.
            #[inline]
            pub const fn from_raw(raw: i64) -> Self {
                Self { raw }
            }

            /// Raw units of `10^-9`.
            #[inline]
            pub const fn raw(self) -> i64 {
                self.raw
            }

            /// From an integer with `decimals` implied decimal places (`1815200`, 4 → 181.52).
            #[inline]
            pub fn from_scaled(value: i64, decimals: u32) -> Result<Self, ParseFixedError> {
                raw_from_scaled(value, decimals).map(Self::from_raw)
            }

            /// From a whole number of units.
            #[inline]
            pub fn from_int(value: i64) -> Result<Self, ParseFixedError> {
                Self::from_scaled(value, 0)
            }

            /// The nearest `f64`, for analytics only (indicators, features, models).
            #[inline]
            pub fn to_f64(self) -> f64 {
                self.raw as f64 / FIXED_SCALE as f64
            }

            /// Rounds an analytics `f64` to the nearest representable value; `None` for
            /// NaN, infinities and values out of range. Never used on the order path.
            pub fn from_f64_rounded(value: f64) -> Option<Self> {
                if !value.is_finite() {
                    return None;
                }
                let scaled = (value * FIXED_SCALE as f64).round();
                (scaled >= i64::MIN as f64 && scaled < i64::MAX as f64)
                    .then(|| Self::from_raw(scaled as i64))
            }

            /// `self + rhs`, `None` on overflow.
            #[inline]
            pub fn checked_add(self, rhs: Self) -> Option<Self> {
                self.raw.checked_add(rhs.raw).map(Self::from_raw)
            }

            /// `self - rhs`, `None` on overflow.
            #[inline]
            pub fn checked_sub(self, rhs: Self) -> Option<Self> {
                self.raw.checked_sub(rhs.raw).map(Self::from_raw)
            }

            /// `-self`, `None` on overflow.
            #[inline]
            pub fn checked_neg(self) -> Option<Self> {
                self.raw.checked_neg().map(Self::from_raw)
            }

            /// `self * n` for an integer `n`, `None` on overflow.
            #[inline]
            pub fn checked_mul_int(self, n: i64) -> Option<Self> {
                self.raw.checked_mul(n).map(Self::from_raw)
            }

            /// `self * rhs` rounded half away from zero to 9 decimals, `None` on overflow.
            #[inline]
            pub fn checked_mul(self, rhs: impl Into<i64>) -> Option<Self> {
                let product = i128::from(self.raw) * i128::from(rhs.into());
                let half = i128::from(FIXED_SCALE / 2);
                let rounded = if product >= 0 { product + half } else { product - half };
                i64::try_from(rounded / i128::from(FIXED_SCALE)).ok().map(Self::from_raw)
            }

            /// `self / n` for a non-zero integer, rounded half away from zero.
            #[inline]
            pub fn checked_div_int(self, n: i64) -> Option<Self> {
                if n == 0 {
                    return None;
                }
                let (num, den) = (i128::from(self.raw), i128::from(n));
                let q = num / den;
                let r = num % den;
                let up = (r.abs() * 2 >= den.abs()) as i128 * if (num < 0) ^ (den < 0) { -1 } else { 1 };
                i64::try_from(q + up).ok().map(Self::from_raw)
            }

            /// True for a value above zero.
            #[inline]
            pub const fn is_positive(self) -> bool {
                self.raw > 0
            }

            /// True for zero.
            #[inline]
            pub const fn is_zero(self) -> bool {
                self.raw == 0
            }

            /// True if this value is a whole multiple of `step` (a tick or lot size).
            pub fn is_multiple_of(self, step: Self) -> bool {
                step.raw != 0 && self.raw % step.raw == 0
            }

            /// Parses decimal text; see [`parse_raw`].
            pub fn parse(text: &str) -> Result<Self, ParseFixedError> {
                parse_raw(text).map(Self::from_raw)
            }
        }

        impl FromStr for $name {
            type Err = ParseFixedError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_raw(self.raw, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($what, "({})"), self)
            }
        }

        impl From<$name> for i64 {
            fn from(v: $name) -> i64 {
                v.raw
            }
        }
    };
}

fixed_point!(
    /// A price: a signed fixed-point decimal with 9 places (money never passes through `f64`).
    Price,
    "Price"
);
fixed_point!(
    /// A size or volume: a signed fixed-point decimal with 9 places; negative sizes are
    /// representable so that bad input can be seen and refused.
    Quantity,
    "Quantity"
);

impl Price {
    /// `price * quantity` in raw units of `10^-9` money, exact, in `i128`.
    #[inline]
    pub fn notional_raw(self, qty: Quantity) -> i128 {
        i128::from(self.raw) * i128::from(qty.raw()) / i128::from(FIXED_SCALE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_decimal_text_exactly() {
        assert_eq!(Price::parse("181.52").unwrap().raw(), 181_520_000_000);
        assert_eq!(Price::parse("0.29").unwrap().raw(), 290_000_000);
        assert_eq!(Price::parse("-0.000000001").unwrap().raw(), -1);
        assert_eq!(Price::parse(".5").unwrap().raw(), 500_000_000);
        assert_eq!(Price::parse("1.5e2").unwrap().raw(), 150 * FIXED_SCALE);
        assert_eq!(Price::parse("25e-9").unwrap().raw(), 25);
        assert_eq!(
            Price::parse("61234.56000000").unwrap().raw(),
            61_234_560_000_000
        );
        assert_eq!(Quantity::parse("0.00100000000").unwrap().raw(), 1_000_000);
    }

    #[test]
    fn refuses_bad_text_with_a_reason() {
        assert!(matches!(
            Price::parse("NaN"),
            Err(ParseFixedError::NotFinite(_))
        ));
        assert!(matches!(
            Price::parse("-inf"),
            Err(ParseFixedError::NotFinite(_))
        ));
        assert!(matches!(Price::parse(""), Err(ParseFixedError::Empty)));
        assert!(matches!(
            Price::parse("1.2.3"),
            Err(ParseFixedError::InvalidCharacter { .. })
        ));
        assert!(matches!(
            Price::parse("12a"),
            Err(ParseFixedError::InvalidCharacter { .. })
        ));
        assert!(matches!(
            Price::parse("0.0000000001"),
            Err(ParseFixedError::TooPrecise(_))
        ));
        assert!(matches!(
            Price::parse("99999999999"),
            Err(ParseFixedError::Overflow(_))
        ));
        assert!(matches!(
            Price::parse("-"),
            Err(ParseFixedError::InvalidCharacter { .. })
        ));
    }

    #[test]
    fn from_scaled_integers_without_floats() {
        assert_eq!(
            Price::from_scaled(1_815_200, 4).unwrap(),
            Price::parse("181.52").unwrap()
        );
        assert_eq!(
            Price::from_scaled(4_786_250_000_000, 9)
                .unwrap()
                .to_string(),
            "4786.25"
        );
        assert_eq!(Price::from_scaled(10, 10).unwrap().raw(), 1);
        // Refusals quote the number as its source wrote it.
        let refused = |r: Result<Price, ParseFixedError>| r.unwrap_err().to_string();
        assert_eq!(
            refused(Price::from_scaled(1, 10)),
            "\"0.0000000001\" has more than 9 decimal places"
        );
        assert_eq!(
            refused(Price::from_scaled(i64::MAX, 0)),
            "\"9223372036854775807\" is out of range"
        );
        assert_eq!(
            refused(Price::from_scaled(-99_999_999_999_999, 4)),
            "\"-9999999999.9999\" is out of range"
        );
    }

    #[test]
    fn display_is_shortest() {
        assert_eq!(Price::parse("181.520").unwrap().to_string(), "181.52");
        assert_eq!(Price::parse("7").unwrap().to_string(), "7");
        assert_eq!(Price::from_raw(-1).to_string(), "-0.000000001");
        assert_eq!(Price::MIN.to_string(), "-9223372036.854775808");
    }

    #[test]
    fn multiplication_rounds_half_away_from_zero() {
        let p = Price::parse("0.000000001").unwrap();
        assert_eq!(
            p.checked_mul(Quantity::parse("0.5").unwrap())
                .unwrap()
                .raw(),
            1
        );
        let q = Price::parse("2.5").unwrap();
        assert_eq!(
            q.checked_mul(Quantity::parse("4").unwrap()).unwrap(),
            Price::parse("10").unwrap()
        );
        assert_eq!(
            Price::parse("10").unwrap().checked_div_int(4).unwrap(),
            Price::parse("2.5").unwrap()
        );
        assert_eq!(Price::from_raw(-5).checked_div_int(2).unwrap().raw(), -3);
        assert!(Price::MAX.checked_mul_int(2).is_none());
    }

    proptest! {
        #[test]
        fn display_round_trips(raw in any::<i64>()) {
            let p = Price::from_raw(raw);
            prop_assert_eq!(Price::parse(&p.to_string()).unwrap(), p);
            let q = Quantity::from_raw(raw);
            prop_assert_eq!(q.to_string().parse::<Quantity>().unwrap(), q);
        }

        #[test]
        fn parses_what_integer_arithmetic_predicts(int in -9_000_000_000i64..9_000_000_000, frac in 0u32..1_000_000_000, width in 1usize..=9) {
            let frac = frac % 10u32.pow(width as u32);
            let text = format!("{}{}.{:0width$}", if int < 0 { "-" } else { "" }, int.unsigned_abs(), frac, width = width);
            let expected_abs = i128::from(int.unsigned_abs()) * i128::from(FIXED_SCALE)
                + i128::from(frac) * 10i128.pow(9 - width as u32);
            let expected = if int < 0 { -expected_abs } else { expected_abs };
            prop_assert_eq!(i128::from(Price::parse(&text).unwrap().raw()), expected);
        }

        #[test]
        fn scaled_matches_text(value in -9_000_000_000i64..9_000_000_000, decimals in 0u32..=9) {
            let text = if decimals == 0 { value.to_string() } else {
                let abs = value.unsigned_abs();
                let p = 10u64.pow(decimals);
                format!("{}{}.{:0w$}", if value < 0 { "-" } else { "" }, abs / p, abs % p, w = decimals as usize)
            };
            prop_assert_eq!(Price::from_scaled(value, decimals).unwrap(), Price::parse(&text).unwrap());
        }

        #[test]
        fn scaled_agrees_with_i128(value in any::<i64>(), decimals in 0u32..40) {
            let wide = rescale(i128::from(value), FIXED_DECIMALS as i32 - decimals as i32)
                .and_then(|v| i64::try_from(v).ok());
            prop_assert_eq!(raw_from_scaled(value, decimals).ok(), wide);
        }

        #[test]
        fn checked_add_agrees_with_i128(a in any::<i64>(), b in any::<i64>()) {
            let wide = i128::from(a) + i128::from(b);
            let got = Price::from_raw(a).checked_add(Price::from_raw(b));
            prop_assert_eq!(got.map(|p| i128::from(p.raw())), i64::try_from(wide).ok().map(i128::from));
            let got = Quantity::from_raw(a).checked_sub(Quantity::from_raw(b));
            let wide = i128::from(a) - i128::from(b);
            prop_assert_eq!(got.map(|p| i128::from(p.raw())), i64::try_from(wide).ok().map(i128::from));
        }

        #[test]
        fn checked_mul_is_exact_within_rounding(a in -1_000_000_000_000_000i64..1_000_000_000_000_000, b in -1_000_000_000_000i64..1_000_000_000_000) {
            let got = Price::from_raw(a).checked_mul(Quantity::from_raw(b));
            let exact = i128::from(a) * i128::from(b);
            if let Some(p) = got {
                let back = i128::from(p.raw()) * i128::from(FIXED_SCALE);
                prop_assert!((back - exact).abs() <= i128::from(FIXED_SCALE / 2));
            } else {
                prop_assert!(exact / i128::from(FIXED_SCALE) > i128::from(i64::MAX) - 1 || exact / i128::from(FIXED_SCALE) < i128::from(i64::MIN) + 1);
            }
        }

        #[test]
        fn never_panics_on_arbitrary_text(s in "\\PC{0,30}") {
            let _ = Price::parse(&s);
        }
    }
}
