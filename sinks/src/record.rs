//! How each record type is written.

use std::fmt::Write as _;

use tickflow_core::{
    ArrowRecord, Bar, BookEvent, Fill, IndicatorRow, InstrumentId, InstrumentRegistry, Order,
    PortfolioValue, Position, Prediction, Quote, Reject, RiskReject, Signal, Trade,
};

/// A record that sinks can write.
pub trait SinkRecord: ArrowRecord + Clone + Send + 'static {
    /// Appends one JSON object (no newline) to `out`.
    fn write_json(&self, registry: &InstrumentRegistry, out: &mut String);
    /// Appends one human-readable line (no newline) to `out`.
    fn write_human(&self, registry: &InstrumentRegistry, out: &mut String);
    /// The instrument the record is about, if any (the message key of Kafka sinks).
    fn instrument(&self) -> Option<InstrumentId> {
        None
    }
}

/// JSON string literal.
fn js(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "null".into(), |v| v.to_string())
}

impl SinkRecord for Trade {
    fn instrument(&self) -> Option<InstrumentId> {
        Some(self.instrument)
    }
    fn write_json(&self, reg: &InstrumentRegistry, out: &mut String) {
        let _ = write!(
            out,
            r#"{{"instrument":{},"ts_event":"{}","ts_recv":"{}","price":{},"size":{},"aggressor":"{}","trade_id":{},"suspicious":{}}}"#,
            js(reg.symbol(self.instrument)),
            self.ts_event,
            self.ts_recv,
            self.price,
            self.size,
            self.aggressor.as_str(),
            opt(self.trade_id),
            self.suspicious
        );
    }
    fn write_human(&self, reg: &InstrumentRegistry, out: &mut String) {
        let _ = write!(
            out,
            "trade  {:<10} {}  {} @ {}  {}",
            reg.symbol(self.instrument),
            self.ts_event,
            self.size,
            self.price,
            self.aggressor.as_str()
        );
    }
}

impl SinkRecord for Quote {
    fn instrument(&self) -> Option<InstrumentId> {
        Some(self.instrument)
    }
    fn write_json(&self, reg: &InstrumentRegistry, out: &mut String) {
        let _ = write!(
            out,
            r#"{{"instrument":{},"ts_event":"{}","ts_recv":"{}","bid":{},"bid_size":{},"ask":{},"ask_size":{},"update_id":{},"suspicious":{}}}"#,
            js(reg.symbol(self.instrument)),
            self.ts_event,
            self.ts_recv,
            opt(self.bid),
            self.bid_size,
            opt(self.ask),
            self.ask_size,
            opt(self.update_id),
            self.suspicious
        );
    }
    fn write_human(&self, reg: &InstrumentRegistry, out: &mut String) {
        let side =
            |p: Option<tickflow_core::Price>| p.map_or_else(|| "-".to_string(), |p| p.to_string());
        let _ = write!(
            out,
            "quote  {:<10} {}  {} x {}  /  {} x {}",
            reg.symbol(self.instrument),
            self.ts_event,
            self.bid_size,
            side(self.bid),
            side(self.ask),
            self.ask_size
        );
    }
}

impl SinkRecord for BookEvent {
    fn instrument(&self) -> Option<InstrumentId> {
        Some(self.instrument)
    }
    fn write_json(&self, reg: &InstrumentRegistry, out: &mut String) {
        let _ = write!(
            out,
            r#"{{"instrument":{},"ts_event":"{}","ts_recv":"{}","action":"{}","side":"{}","price":{},"size":{},"order_id":{}}}"#,
            js(reg.symbol(self.instrument)),
            self.ts_event,
            self.ts_recv,
            self.action.as_str(),
            self.side.as_str(),
            self.price,
            self.size,
            opt(self.order_id)
        );
    }
    fn write_human(&self, reg: &InstrumentRegistry, out: &mut String) {
        let _ = write!(
            out,
            "book   {:<10} {}  {:<7} {:<4} {} @ {}  order {}",
            reg.symbol(self.instrument),
            self.ts_event,
            self.action.as_str(),
            self.side.as_str(),
            self.size,
            self.price,
            opt(self.order_id)
        );
    }
}

impl SinkRecord for Bar {
    fn instrument(&self) -> Option<InstrumentId> {
        Some(self.instrument)
    }
    fn write_json(&self, reg: &InstrumentRegistry, out: &mut String) {
        let _ = write!(
            out,
            r#"{{"instrument":{},"bar_type":"{}","start":"{}","end":"{}","open":{},"high":{},"low":{},"close":{},"volume":{},"vwap":{},"trade_count":{}}}"#,
            js(reg.symbol(self.instrument)),
            self.kind,
            self.start,
            self.end,
            self.open,
            self.high,
            self.low,
            self.close,
            self.volume,
            self.vwap,
            self.trade_count
        );
    }
    fn write_human(&self, reg: &InstrumentRegistry, out: &mut String) {
        let _ = write!(
            out,
            "bar    {:<10} {}  O {} H {} L {} C {}  V {}  VWAP {}  n={}",
            reg.symbol(self.instrument),
            self.end,
            self.open,
            self.high,
            self.low,
            self.close,
            self.volume,
            self.vwap,
            self.trade_count
        );
    }
}

impl SinkRecord for Reject {
    fn instrument(&self) -> Option<InstrumentId> {
        self.instrument
    }
    fn write_json(&self, reg: &InstrumentRegistry, out: &mut String) {
        let _ = write!(
            out,
            r#"{{"instrument":{},"ts_event":{},"reason":"{}","detail":{},"origin":{},"line":{}}}"#,
            self.instrument
                .map_or_else(|| "null".into(), |i| js(reg.symbol(i))),
            self.ts_event
                .map_or_else(|| "null".into(), |t| format!("\"{t}\"")),
            self.reason,
            js(&self.detail),
            js(&self.origin),
            self.line
        );
    }
    fn write_human(&self, _reg: &InstrumentRegistry, out: &mut String) {
        let _ = write!(out, "reject {self}");
    }
}

impl SinkRecord for Signal {
    fn instrument(&self) -> Option<InstrumentId> {
        Some(self.instrument)
    }
    fn write_json(&self, reg: &InstrumentRegistry, out: &mut String) {
        // The same signal has the same id however often it is computed (a replayed or restarted
        // job), so consumers de-duplicate by it: instrument, event time, side.
        let id = format!(
            "{}:{}:{}",
            reg.symbol(self.instrument),
            self.ts_event.nanos(),
            self.side.as_str()
        );
        let _ = write!(
            out,
            r#"{{"id":{},"instrument":{},"ts_event":"{}","side":"{}","strength":{},"reason":{}}}"#,
            js(&id),
            js(reg.symbol(self.instrument)),
            self.ts_event,
            self.side.as_str(),
            if self.strength.is_finite() {
                self.strength
            } else {
                0.0
            },
            js(&self.reason)
        );
    }
    fn write_human(&self, reg: &InstrumentRegistry, out: &mut String) {
        let _ = write!(
            out,
            "signal {:<10} {}  {:<4} strength {:.2}  {}",
            reg.symbol(self.instrument),
            self.ts_event,
            self.side.as_str(),
            self.strength,
            self.reason
        );
    }
}

impl SinkRecord for Prediction {
    fn instrument(&self) -> Option<InstrumentId> {
        Some(self.instrument)
    }
    fn write_json(&self, reg: &InstrumentRegistry, out: &mut String) {
        let num = |v: f64| {
            if v.is_finite() {
                v.to_string()
            } else {
                "null".into()
            }
        };
        let _ = write!(
            out,
            r#"{{"instrument":{},"ts_event":"{}","horizon":{},"p_up":{},"expected_return":{},"model_version":{}}}"#,
            js(reg.symbol(self.instrument)),
            self.ts_event,
            self.horizon,
            num(self.p_up),
            num(self.expected_return),
            js(&self.model_version)
        );
    }
    fn write_human(&self, reg: &InstrumentRegistry, out: &mut String) {
        let _ = write!(
            out,
            "predict {:<10} {}  p_up {:.3}  E[r] {:+.6} over {} bar(s)  {}",
            reg.symbol(self.instrument),
            self.ts_event,
            self.p_up,
            self.expected_return,
            self.horizon,
            self.model_version
        );
    }
}

impl SinkRecord for IndicatorRow {
    fn instrument(&self) -> Option<InstrumentId> {
        Some(self.instrument)
    }
    fn write_json(&self, reg: &InstrumentRegistry, out: &mut String) {
        let _ = write!(
            out,
            r#"{{"instrument":{},"end":"{}""#,
            js(reg.symbol(self.instrument)),
            self.end
        );
        for (name, value) in self.names.iter().zip(&self.values) {
            // `{}` of an f64 is its shortest round-tripping decimal; non-finite values are null.
            let _ = match value {
                Some(v) if v.is_finite() => write!(out, ",{}:{v}", js(name)),
                _ => write!(out, ",{}:null", js(name)),
            };
        }
        out.push('}');
    }
    fn write_human(&self, reg: &InstrumentRegistry, out: &mut String) {
        let _ = write!(
            out,
            "ind    {:<10} {} ",
            reg.symbol(self.instrument),
            self.end
        );
        for (name, value) in self.names.iter().zip(&self.values) {
            if let Some(v) = value {
                let _ = write!(out, " {name}={v:.4}");
            }
        }
    }
}

fn order_json(o: &Order, reg: &InstrumentRegistry, out: &mut String) {
    let _ = write!(
        out,
        r#""instrument":{},"order_id":{},"ts_event":"{}","side":"{}","order_type":"{}","tif":"{}","limit_price":{},"quantity":{},"reference_price":{},"reason":{}"#,
        js(reg.symbol(o.instrument)),
        o.id,
        o.ts_event,
        o.side.as_str(),
        o.order_type.as_str(),
        o.tif.as_str(),
        opt(o.limit),
        o.quantity,
        o.reference,
        js(&o.reason)
    );
}

fn order_human(o: &Order, reg: &InstrumentRegistry, out: &mut String) {
    let _ = write!(
        out,
        "#{} {:<10} {}  {:<4} {} {} {}",
        o.id,
        reg.symbol(o.instrument),
        o.ts_event,
        o.side.as_str(),
        o.quantity,
        o.order_type.as_str(),
        o.tif.as_str(),
    );
    if let Some(l) = o.limit {
        let _ = write!(out, " @ {l}");
    }
}

impl SinkRecord for Order {
    fn instrument(&self) -> Option<InstrumentId> {
        Some(self.instrument)
    }
    fn write_json(&self, reg: &InstrumentRegistry, out: &mut String) {
        out.push('{');
        order_json(self, reg, out);
        out.push('}');
    }
    fn write_human(&self, reg: &InstrumentRegistry, out: &mut String) {
        out.push_str("order ");
        order_human(self, reg, out);
    }
}

impl SinkRecord for RiskReject {
    fn instrument(&self) -> Option<InstrumentId> {
        Some(self.order.instrument)
    }
    fn write_json(&self, reg: &InstrumentRegistry, out: &mut String) {
        out.push('{');
        order_json(&self.order, reg, out);
        let _ = write!(
            out,
            r#","reject_reason":"{}","detail":{}}}"#,
            self.reason,
            js(&self.detail)
        );
    }
    fn write_human(&self, reg: &InstrumentRegistry, out: &mut String) {
        out.push_str("risk reject ");
        order_human(&self.order, reg, out);
        let _ = write!(out, "  {}: {}", self.reason, self.detail);
    }
}

impl SinkRecord for Fill {
    fn instrument(&self) -> Option<InstrumentId> {
        Some(self.instrument)
    }
    fn write_json(&self, reg: &InstrumentRegistry, out: &mut String) {
        let _ = write!(
            out,
            r#"{{"instrument":{},"order_id":{},"exec":{},"ts_event":"{}","side":"{}","price":{},"quantity":{},"fee":{},"leaves":{},"status":"{}"}}"#,
            js(reg.symbol(self.instrument)),
            self.order_id,
            self.exec,
            self.ts_event,
            self.side.as_str(),
            self.price,
            self.quantity,
            self.fee,
            self.leaves,
            self.status.as_str()
        );
    }
    fn write_human(&self, reg: &InstrumentRegistry, out: &mut String) {
        let _ = write!(
            out,
            "fill #{}.{} {:<10} {}  {:<4} {} @ {}  fee {}  leaves {}  {}",
            self.order_id,
            self.exec,
            reg.symbol(self.instrument),
            self.ts_event,
            self.side.as_str(),
            self.quantity,
            self.price,
            self.fee,
            self.leaves,
            self.status.as_str()
        );
    }
}

impl SinkRecord for Position {
    fn instrument(&self) -> Option<InstrumentId> {
        Some(self.instrument)
    }
    fn write_json(&self, reg: &InstrumentRegistry, out: &mut String) {
        let _ = write!(
            out,
            r#"{{"instrument":{},"ts_event":"{}","quantity":{},"avg_price":{},"mark":{},"market_value":{},"realized_pnl":{},"unrealized_pnl":{},"fees":{},"fills":{}}}"#,
            js(reg.symbol(self.instrument)),
            self.ts_event,
            self.quantity,
            self.avg_price,
            self.mark,
            self.market_value,
            self.realized_pnl,
            self.unrealized_pnl,
            self.fees,
            self.fills
        );
    }
    fn write_human(&self, reg: &InstrumentRegistry, out: &mut String) {
        let _ = write!(
            out,
            "position {:<10} {}  qty {}  avg {}  mark {}  value {}  realized {}  unrealized {}  fees {}",
            reg.symbol(self.instrument),
            self.ts_event,
            self.quantity,
            self.avg_price,
            self.mark,
            self.market_value,
            self.realized_pnl,
            self.unrealized_pnl,
            self.fees
        );
    }
}

impl SinkRecord for PortfolioValue {
    fn write_json(&self, _reg: &InstrumentRegistry, out: &mut String) {
        let _ = write!(
            out,
            r#"{{"ts_event":"{}","net_exposure":{},"gross_exposure":{},"realized_pnl":{},"unrealized_pnl":{},"fees":{},"total_pnl":{},"open_positions":{}}}"#,
            self.ts_event,
            self.net_exposure,
            self.gross_exposure,
            self.realized_pnl,
            self.unrealized_pnl,
            self.fees,
            self.total_pnl,
            self.open_positions
        );
    }
    fn write_human(&self, _reg: &InstrumentRegistry, out: &mut String) {
        let _ = write!(
            out,
            "portfolio {}  net {}  gross {}  realized {}  unrealized {}  fees {}  total {}",
            self.ts_event,
            self.net_exposure,
            self.gross_exposure,
            self.realized_pnl,
            self.unrealized_pnl,
            self.fees,
            self.total_pnl
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickflow_core::{
        BarKind, Duration, InstrumentId, InstrumentSpec, Price, Quantity, Timestamp,
    };

    #[test]
    fn bars_are_written_as_exact_decimals_with_symbol_and_end() {
        let reg = InstrumentRegistry::from_specs([InstrumentSpec {
            symbol: "IBM".into(),
            venue: "US".into(),
            tick_size: Price::from_raw(1),
            lot_size: Quantity::from_raw(1),
            currency: "USD".into(),
        }]);
        let bar = Bar {
            instrument: InstrumentId(0),
            kind: BarKind::Time(Duration::from_secs(60)),
            start: Timestamp(0),
            end: Timestamp(60_000_000_000),
            open: Price::parse("181.52").unwrap(),
            high: Price::parse("181.6").unwrap(),
            low: Price::parse("0.29").unwrap(),
            close: Price::parse("181").unwrap(),
            volume: Quantity::parse("1200").unwrap(),
            vwap: Price::parse("181.5125").unwrap(),
            trade_count: 3,
        };
        let mut s = String::new();
        bar.write_json(&reg, &mut s);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["instrument"], "IBM");
        assert_eq!(v["end"], "1970-01-01T00:01:00Z");
        assert_eq!(v["low"].to_string(), "0.29");
        assert_eq!(v["volume"].as_f64(), Some(1200.0));
        assert_eq!(v["bar_type"], "time:1m");
    }
}
