//! Instruments: interned ids and the registry that gives them meaning.
//!
//! The registry is built once before a job starts (from what its sources declare), in sorted
//! `(venue, symbol)` order so that the same inputs always get the same ids, then shared
//! read-only. Hot paths move [`InstrumentId`]s, never strings.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fixed::{Price, Quantity};

/// An interned instrument: an index into the [`InstrumentRegistry`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug)]
#[serde(transparent)]
pub struct InstrumentId(pub u32);

impl fmt::Display for InstrumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

impl FromStr for InstrumentId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim_start_matches('#').parse().map(InstrumentId)
    }
}

/// What a source declares about an instrument before it has an id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstrumentSpec {
    /// Ticker or venue symbol (`IBM`, `BTCUSDT`, `ESH4`).
    pub symbol: String,
    /// Venue or market (`US-EQUITY`, `BINANCE-SPOT`, `CME`).
    pub venue: String,
    /// Minimum price increment.
    pub tick_size: Price,
    /// Minimum size increment.
    pub lot_size: Quantity,
    /// Quote currency.
    pub currency: String,
}

/// A registered instrument.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instrument {
    /// Its id.
    pub id: InstrumentId,
    /// Its static data.
    pub spec: InstrumentSpec,
}

/// Maps [`InstrumentId`] to symbol, venue, tick size, lot size and currency.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct InstrumentRegistry {
    instruments: Vec<Instrument>,
    #[serde(skip)]
    by_key: HashMap<(String, String), InstrumentId>,
}

impl InstrumentRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a registry from specs, deduplicated and ordered by `(venue, symbol)`, so ids do
    /// not depend on the order in which sources were listed or opened.
    pub fn from_specs(specs: impl IntoIterator<Item = InstrumentSpec>) -> Self {
        let mut specs: Vec<InstrumentSpec> = specs.into_iter().collect();
        specs.sort_by(|a, b| (&a.venue, &a.symbol).cmp(&(&b.venue, &b.symbol)));
        specs.dedup_by(|a, b| a.venue == b.venue && a.symbol == b.symbol);
        let mut reg = Self::new();
        for spec in specs {
            reg.register(spec);
        }
        reg
    }

    /// Registers an instrument, or returns the id it already has.
    pub fn register(&mut self, spec: InstrumentSpec) -> InstrumentId {
        let key = (spec.venue.clone(), spec.symbol.clone());
        if let Some(id) = self.by_key.get(&key) {
            return *id;
        }
        let id = InstrumentId(self.instruments.len() as u32);
        self.instruments.push(Instrument { id, spec });
        self.by_key.insert(key, id);
        id
    }

    /// Looks an instrument up by venue and symbol.
    pub fn lookup(&self, venue: &str, symbol: &str) -> Option<InstrumentId> {
        self.by_key
            .get(&(venue.to_owned(), symbol.to_owned()))
            .copied()
    }

    /// The instrument with this id.
    pub fn get(&self, id: InstrumentId) -> Result<&Instrument> {
        self.instruments
            .get(id.0 as usize)
            .ok_or(Error::UnknownInstrument(id.0))
    }

    /// The symbol of an id, or `"#<id>"` for an unknown one (for display only).
    pub fn symbol(&self, id: InstrumentId) -> &str {
        self.instruments
            .get(id.0 as usize)
            .map_or("?", |i| i.spec.symbol.as_str())
    }

    /// All instruments in id order.
    pub fn iter(&self) -> impl Iterator<Item = &Instrument> {
        self.instruments.iter()
    }

    /// Number of instruments.
    pub fn len(&self) -> usize {
        self.instruments.len()
    }

    /// True when nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.instruments.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(venue: &str, symbol: &str) -> InstrumentSpec {
        InstrumentSpec {
            symbol: symbol.into(),
            venue: venue.into(),
            tick_size: Price::parse("0.01").unwrap(),
            lot_size: Quantity::parse("1").unwrap(),
            currency: "USD".into(),
        }
    }

    #[test]
    fn ids_do_not_depend_on_declaration_order() {
        let a = InstrumentRegistry::from_specs([spec("X", "B"), spec("X", "A"), spec("W", "Z")]);
        let b = InstrumentRegistry::from_specs([
            spec("W", "Z"),
            spec("X", "A"),
            spec("X", "B"),
            spec("X", "A"),
        ]);
        assert_eq!(a.len(), 3);
        for inst in a.iter() {
            assert_eq!(b.lookup(&inst.spec.venue, &inst.spec.symbol), Some(inst.id));
        }
        assert_eq!(a.lookup("W", "Z"), Some(InstrumentId(0)));
        assert!(a.get(InstrumentId(9)).is_err());
    }
}
