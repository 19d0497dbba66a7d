//! Signals: strategy rules over the indicator stream.
//!
//! In: [`IndicatorRow`]s (one per instrument and bar). Out: [`Signal`]s. A strategy has a `buy`
//! and a `sell` rule, each an expression over the row's columns:
//!
//! ```text
//! expr := and ("or" and)*          and := atom ("and" atom)*
//! atom := "(" expr ")" | operand op operand
//! op   := ">" | "<" | ">=" | "<=" | "crosses_above" | "crosses_below"
//! operand := column name (sma_20, rsi_14, close, ...) | number
//! ```
//!
//! A comparison with an undefined operand is false. `a crosses_above b` holds when `a <= b` on
//! the instrument's previous row and `a > b` on this one. Per instrument, a signal is emitted
//! only when it changes direction (no second buy while the last signal was a buy), no sooner
//! than `cooldown` after the previous signal, and not against the previous signal before
//! `min_holding` has passed. Strength is 1 (rules are yes/no).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tickflow_core::{Duration, IndicatorRow, InstrumentId, Side, Signal, Timestamp};

use crate::error::{Error, Result};
use crate::operator::{Emitter, Operator, decode_parts, decode_state, encode_state, regroup};

/// Comparison operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    /// `>`
    Gt,
    /// `<`
    Lt,
    /// `>=`
    Ge,
    /// `<=`
    Le,
    /// `crosses_above`
    CrossesAbove,
    /// `crosses_below`
    CrossesBelow,
}

/// An operand: a column of the row, or a constant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Operand {
    /// Column index.
    Column(usize),
    /// Constant.
    Number(f64),
}

/// A parsed rule.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// `a op b`.
    Cmp(Operand, Cmp, Operand),
    /// All of.
    And(Vec<Expr>),
    /// Any of.
    Or(Vec<Expr>),
}

/// A rule that does not parse: where (byte offset in the rule text) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleError {
    /// Byte offset in the rule.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Ident(String),
    Number(f64),
    Op(Cmp),
    And,
    Or,
    Open,
    Close,
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, RuleError> {
    let b = text.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let tok = match c {
            b'(' => {
                i += 1;
                Token::Open
            }
            b')' => {
                i += 1;
                Token::Close
            }
            b'>' | b'<' => {
                i += 1;
                let eq = b.get(i) == Some(&b'=');
                if eq {
                    i += 1;
                }
                Token::Op(match (c, eq) {
                    (b'>', false) => Cmp::Gt,
                    (b'>', true) => Cmp::Ge,
                    (_, false) => Cmp::Lt,
                    _ => Cmp::Le,
                })
            }
            b'0'..=b'9' | b'-' | b'.' => {
                i += 1;
                while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                    i += 1;
                }
                // An exponent (`1e-4`, `2.5E3`): predicted returns are that small.
                if matches!(b.get(i), Some(b'e' | b'E')) {
                    i += 1 + usize::from(matches!(b.get(i + 1), Some(b'+' | b'-')));
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                let t = &text[start..i];
                let not_a_number = |why: &str| RuleError {
                    offset: start,
                    message: format!("`{t}` is not a {why}number"),
                };
                let x: f64 = t.parse().map_err(|_| not_a_number(""))?;
                if !x.is_finite() {
                    return Err(not_a_number("finite "));
                }
                Token::Number(x)
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                match &text[start..i] {
                    "and" => Token::And,
                    "or" => Token::Or,
                    "crosses_above" => Token::Op(Cmp::CrossesAbove),
                    "crosses_below" => Token::Op(Cmp::CrossesBelow),
                    word => Token::Ident(word.to_owned()),
                }
            }
            other => {
                return Err(RuleError {
                    offset: start,
                    message: format!("unexpected `{}`", other as char),
                });
            }
        };
        out.push((start, tok));
    }
    Ok(out)
}

struct Parser<'a> {
    tokens: Vec<(usize, Token)>,
    pos: usize,
    names: &'a [String],
    end: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|(_, t)| t)
    }
    fn offset(&self) -> usize {
        self.tokens.get(self.pos).map_or(self.end, |(o, _)| *o)
    }
    fn err<T>(&self, message: String) -> Result<T, RuleError> {
        Err(RuleError {
            offset: self.offset(),
            message,
        })
    }
    fn or(&mut self) -> Result<Expr, RuleError> {
        let mut parts = vec![self.and()?];
        while self.peek() == Some(&Token::Or) {
            self.pos += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::Or(parts)
        })
    }
    fn and(&mut self) -> Result<Expr, RuleError> {
        let mut parts = vec![self.atom()?];
        while self.peek() == Some(&Token::And) {
            self.pos += 1;
            parts.push(self.atom()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::And(parts)
        })
    }
    fn atom(&mut self) -> Result<Expr, RuleError> {
        if self.peek() == Some(&Token::Open) {
            self.pos += 1;
            let e = self.or()?;
            if self.peek() != Some(&Token::Close) {
                return self.err("expected `)`".into());
            }
            self.pos += 1;
            return Ok(e);
        }
        let a = self.operand()?;
        let op = match self.peek() {
            Some(Token::Op(op)) => *op,
            _ => {
                return self.err(
                    "expected a comparison: >, <, >=, <=, crosses_above or crosses_below".into(),
                );
            }
        };
        self.pos += 1;
        let b = self.operand()?;
        Ok(Expr::Cmp(a, op, b))
    }
    fn operand(&mut self) -> Result<Operand, RuleError> {
        match self.peek().cloned() {
            Some(Token::Number(x)) => {
                self.pos += 1;
                Ok(Operand::Number(x))
            }
            Some(Token::Ident(name)) => match self.names.iter().position(|n| *n == name) {
                Some(i) => {
                    self.pos += 1;
                    Ok(Operand::Column(i))
                }
                None => self.err(format!(
                    "unknown indicator `{name}` (known: {})",
                    self.names.join(", ")
                )),
            },
            _ => self.err("expected an indicator name or a number".into()),
        }
    }
}

/// Parses a rule against the column names of the input stream.
pub fn parse(text: &str, names: &[String]) -> Result<Expr, RuleError> {
    let tokens = tokenize(text)?;
    if tokens.is_empty() {
        return Err(RuleError {
            offset: 0,
            message: "empty rule".into(),
        });
    }
    let mut p = Parser {
        tokens,
        pos: 0,
        names,
        end: text.len(),
    };
    let e = p.or()?;
    if p.pos < p.tokens.len() {
        return p
            .err("unexpected text after the rule (combine conditions with `and` / `or`)".into());
    }
    Ok(e)
}

fn value(o: Operand, row: &[Option<f64>]) -> Option<f64> {
    match o {
        Operand::Number(x) => Some(x),
        Operand::Column(i) => row.get(i).copied().flatten(),
    }
}

/// Evaluates a rule on a row (and the instrument's previous row, for crossovers).
pub fn eval(e: &Expr, row: &[Option<f64>], prev: Option<&[Option<f64>]>) -> bool {
    match e {
        Expr::And(parts) => parts.iter().all(|p| eval(p, row, prev)),
        Expr::Or(parts) => parts.iter().any(|p| eval(p, row, prev)),
        Expr::Cmp(a, op, b) => {
            let (Some(x), Some(y)) = (value(*a, row), value(*b, row)) else {
                return false;
            };
            let before = || prev.and_then(|p| Some((value(*a, p)?, value(*b, p)?)));
            match op {
                Cmp::Gt => x > y,
                Cmp::Lt => x < y,
                Cmp::Ge => x >= y,
                Cmp::Le => x <= y,
                Cmp::CrossesAbove => x > y && before().is_some_and(|(px, py)| px <= py),
                Cmp::CrossesBelow => x < y && before().is_some_and(|(px, py)| px >= py),
            }
        }
    }
}

/// A strategy as written in a pipeline file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StrategyConfig {
    /// Strategy name (in every signal's reason).
    pub name: String,
    /// Buy rule.
    pub buy: String,
    /// Sell rule.
    pub sell: String,
    /// Least time before a signal against the previous one.
    pub min_holding: Duration,
    /// Least time between two signals of an instrument.
    pub cooldown: Duration,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct InstrumentState {
    prev: Option<Vec<Option<f64>>>,
    last: Option<(Side, i64)>,
}

/// The signals operator.
pub struct Signals {
    config: StrategyConfig,
    buy: Expr,
    sell: Expr,
    buy_reason: Arc<str>,
    sell_reason: Arc<str>,
    state: BTreeMap<InstrumentId, InstrumentState>,
}

impl Signals {
    /// A strategy over rows with the given column names.
    pub fn new(config: StrategyConfig, names: &[String]) -> Result<Self> {
        let rule = |text: &str, side: &str| {
            parse(text, names).map_err(|e| Error::Config {
                operator: "signals",
                reason: format!("{side} rule, at character {}: {}", e.offset + 1, e.message),
            })
        };
        let buy = rule(&config.buy, "buy")?;
        let sell = rule(&config.sell, "sell")?;
        if config.min_holding.nanos() < 0 || config.cooldown.nanos() < 0 {
            return Err(Error::Config {
                operator: "signals",
                reason: "min_holding and cooldown must not be negative".into(),
            });
        }
        let buy_reason = format!("{}: buy when {}", config.name, config.buy).into();
        let sell_reason = format!("{}: sell when {}", config.name, config.sell).into();
        Ok(Self {
            config,
            buy,
            sell,
            buy_reason,
            sell_reason,
            state: BTreeMap::new(),
        })
    }
}

impl Operator for Signals {
    type In = IndicatorRow;
    type Out = Signal;

    fn name(&self) -> &'static str {
        "signals"
    }

    fn on_batch(
        &mut self,
        _time: Timestamp,
        input: &mut Vec<IndicatorRow>,
        out: &mut Emitter<Signal>,
    ) {
        for row in input.drain(..) {
            let st = self.state.entry(row.instrument).or_default();
            let prev = st.prev.as_deref();
            let buy = eval(&self.buy, &row.values, prev);
            let sell = eval(&self.sell, &row.values, prev);
            let now = row.end.nanos();
            let side = match (buy, sell) {
                (true, false) => Some(Side::Buy),
                (false, true) => Some(Side::Sell),
                _ => None, // neither, or both (contradictory): no signal
            };
            if let Some(side) = side {
                let allowed = match st.last {
                    None => true,
                    Some((last, _)) if last == side => false,
                    Some((_, at)) => {
                        let since = now.saturating_sub(at);
                        since >= self.config.cooldown.nanos()
                            && since >= self.config.min_holding.nanos()
                    }
                };
                if allowed {
                    st.last = Some((side, now));
                    let reason = if side == Side::Buy {
                        self.buy_reason.clone()
                    } else {
                        self.sell_reason.clone()
                    };
                    out.push(Signal {
                        instrument: row.instrument,
                        ts_event: row.end,
                        side,
                        strength: 1.0,
                        reason,
                    });
                }
            }
            st.prev = Some(row.values);
        }
    }

    fn on_watermark(&mut self, _watermark: Timestamp, _out: &mut Emitter<Signal>) {}

    fn next_emit(&self) -> Option<Timestamp> {
        None
    }

    fn snapshot(&self) -> Result<Vec<u8>> {
        encode_state("signals", &self.state)
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<()> {
        self.state = decode_state("signals", snapshot)?;
        Ok(())
    }

    fn restore_parts(&mut self, parts: &[Vec<u8>], mine: &dyn Fn(u64) -> bool) -> Result<()> {
        let parts: Vec<BTreeMap<InstrumentId, InstrumentState>> = decode_parts("signals", parts)?;
        self.state = regroup("signals", parts, |i| u64::from(i.0), mine)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        ["macd", "adx_14", "close", "bb_lower_20", "rsi_14"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn parses_precedence_and_reports_positions() {
        let e = parse("macd > 0 and adx_14 > 25 or rsi_14 < 30", &names()).unwrap();
        assert!(
            matches!(&e, Expr::Or(parts) if parts.len() == 2 && matches!(parts[0], Expr::And(_)))
        );
        let e = parse(
            "(macd crosses_above 0 or rsi_14 <= 30) and adx_14 >= 25.5",
            &names(),
        )
        .unwrap();
        assert!(matches!(&e, Expr::And(parts) if parts.len() == 2));
        let err = parse("macd > 0 and emma_12 > 1", &names()).unwrap_err();
        assert_eq!(err.offset, 13);
        assert!(err.message.contains("unknown indicator `emma_12`"));
        assert_eq!(parse("macd 0", &names()).unwrap_err().offset, 5);
        assert!(
            parse("macd > 0 adx_14 > 1", &names())
                .unwrap_err()
                .message
                .contains("after the rule")
        );
        assert!(
            parse("(macd > 0", &names())
                .unwrap_err()
                .message
                .contains("expected `)`")
        );
        assert!(parse("", &names()).is_err());
        // Numbers with an exponent, as small predicted returns are written; one that is not
        // finite, or an exponent without digits, is named.
        let e = parse("macd > 1e-4 and rsi_14 < 2.5E1 and adx_14 > 1e+1", &names()).unwrap();
        let at = |macd, rsi, adx| vec![Some(macd), Some(adx), None, None, Some(rsi)];
        assert!(eval(&e, &at(2e-4, 24.0, 11.0), None));
        assert!(!eval(&e, &at(5e-5, 24.0, 11.0), None));
        assert!(!eval(&e, &at(2e-4, 26.0, 11.0), None));
        assert!(!eval(&e, &at(2e-4, 24.0, 9.0), None));
        let err = parse("macd > 1e400", &names()).unwrap_err();
        assert_eq!(
            (err.offset, err.message.as_str()),
            (7, "`1e400` is not a finite number")
        );
        let err = parse("macd > 2e", &names()).unwrap_err();
        assert_eq!(
            (err.offset, err.message.as_str()),
            (7, "`2e` is not a number")
        );
        assert!(
            parse("macd > 0 $", &names())
                .unwrap_err()
                .message
                .contains("unexpected `$`")
        );
    }

    #[test]
    fn crossovers_need_the_previous_row_and_undefined_is_false() {
        let e = parse("macd crosses_above 0", &names()).unwrap();
        let row = |m: Option<f64>| vec![m, None, None, None, None];
        assert!(
            !eval(&e, &row(Some(1.0)), None),
            "no previous row, no cross"
        );
        assert!(eval(&e, &row(Some(1.0)), Some(&row(Some(-1.0)))));
        assert!(eval(&e, &row(Some(1.0)), Some(&row(Some(0.0)))));
        assert!(
            !eval(&e, &row(Some(1.0)), Some(&row(Some(0.5)))),
            "already above"
        );
        assert!(!eval(&e, &row(None), Some(&row(Some(-1.0)))));
        assert!(!eval(&e, &row(Some(1.0)), Some(&row(None))));
        let below = parse("macd crosses_below 0", &names()).unwrap();
        assert!(eval(&below, &row(Some(-1.0)), Some(&row(Some(2.0)))));
    }

    fn row(minute: i64, macd: f64) -> IndicatorRow {
        let names: Arc<[String]> = names().into();
        IndicatorRow {
            instrument: InstrumentId(0),
            end: Timestamp(minute * 60_000_000_000),
            names,
            values: vec![Some(macd), None, None, None, None],
        }
    }

    #[test]
    fn holding_time_cooldown_and_direction_changes() {
        let config = StrategyConfig {
            name: "t".into(),
            buy: "macd > 0".into(),
            sell: "macd < 0".into(),
            min_holding: Duration::from_secs(300),
            cooldown: Duration::from_secs(60),
        };
        let mut s = Signals::new(config, &names()).unwrap();
        let mut out = Emitter::default();
        // minute: macd
        let rows = [
            (1, 1.0),
            (2, 2.0),
            (3, -1.0),
            (7, -1.0),
            (8, 1.0),
            (9, -1.0),
            (14, -2.0),
        ];
        s.on_batch(
            Timestamp(0),
            &mut rows.iter().map(|&(m, v)| row(m, v)).collect(),
            &mut out,
        );
        let got: Vec<(i64, Side)> = out
            .take_values()
            .into_iter()
            .map(|x| (x.ts_event.nanos() / 60_000_000_000, x.side))
            .collect();
        // 1 buy; 2 same side; 3 sell before min holding; 7 sell after 6 min; 8 buy after 1 min < holding;
        // 9 sell repeats the last side; 14 still sell.
        assert_eq!(got, vec![(1, Side::Buy), (7, Side::Sell)]);
        assert!(
            Signals::new(
                StrategyConfig {
                    buy: "nope > 1".into(),
                    ..s.config.clone()
                },
                &names()
            )
            .is_err()
        );
    }

    #[test]
    fn holding_times_spread_over_another_number_of_workers_signal_as_on_one() {
        let config = StrategyConfig {
            name: "t".into(),
            buy: "macd crosses_above 0".into(),
            sell: "macd < -0.5".into(),
            min_holding: Duration::from_secs(300),
            cooldown: Duration::from_secs(120),
        };
        let mut rand = crate::adapter::test_checkpoints::xorshift(0x9e37_79b9_7f4a_7c15);
        let steps: Vec<(Timestamp, Vec<IndicatorRow>)> = (1..400i64)
            .map(|m| {
                let rows = (0..6u32)
                    .map(|i| IndicatorRow {
                        instrument: InstrumentId(i),
                        ..row(m, rand(5) as f64 - 2.0)
                    })
                    .collect();
                (Timestamp(m * 60_000_000_000), rows)
            })
            .collect();
        let n = crate::operator::rescale_check::rescaled_runs_as_one(
            || Signals::new(config.clone(), &names()).unwrap(),
            &steps,
            Timestamp(200 * 60_000_000_000 + 1),
        );
        assert!(n > 50, "{n} signals");
    }
}
